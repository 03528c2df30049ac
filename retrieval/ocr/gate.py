"""The OCR gate: which photos are worth running OCR on, decided from the embedding each photo
already has (a zero-shot classifier channel, as in CLIP's zero-shot classification, Radford et al.
2021): the photo's best cosine similarity to prompts describing text, minus its best similarity to
prompts describing ordinary scenes. Ordinary photos cost one small matrix product.

It passes photos that are mostly text (signs, receipts, screenshots, documents, posters); a few
words small in a corner of an ordinary photo usually do not move the embedding, and such photos
are skipped (``retr index --ocr-all`` reads every photo).
"""
from __future__ import annotations

import numpy as np

#: what a photo worth reading looks like, in words
TEXT_PROMPTS = (
    "a photo of a sign with words on it",
    "a receipt with printed text",
    "a screenshot of text",
    "a page of a document with printed text",
    "a poster with large words",
    "a label with writing",
)
#: what an ordinary photo looks like, in words
SCENE_PROMPTS = (
    "a photo of a person", "a photo of people outdoors", "a photo of a dog", "a photo of an animal",
    "a landscape", "a photo of a street", "a photo of food", "a photo of a room", "a photo of a child playing",
    "a photo of sports",
)
#: a photo passes when (best text-prompt similarity - best scene-prompt similarity) is at least this
#: (chosen with scripts/eval/ocr.py: see docs/ocr.md)
GATE_THRESHOLD = 0.04


class TextGate:
    """Scores photo embeddings for "contains text worth reading".

    Args:
        encoder: the index's encoder (its ``encode_texts`` embeds :data:`TEXT_PROMPTS` once).
        threshold: see :data:`GATE_THRESHOLD`; ``None`` passes every photo.
    """

    def __init__(self, encoder, threshold: float | None = GATE_THRESHOLD):
        self.threshold = threshold
        self.prompts = self.scenes = None
        if threshold is not None:
            self.prompts = np.asarray(encoder.encode_texts(list(TEXT_PROMPTS)), np.float32)
            self.scenes = np.asarray(encoder.encode_texts(list(SCENE_PROMPTS)), np.float32)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """(N,) float32: for each (N, D) L2-normalised photo embedding, its best cosine similarity to the text
        prompts minus its best to the scene prompts."""
        if self.prompts is None:
            return np.ones(len(vectors), np.float32)
        v = np.asarray(vectors, np.float32)
        return (v @ self.prompts.T).max(axis=1) - (v @ self.scenes.T).max(axis=1)

    def passes(self, vectors: np.ndarray) -> np.ndarray:
        """(N,) bool: which photos to read."""
        if self.threshold is None:
            return np.ones(len(vectors), bool)
        return self.scores(vectors) >= self.threshold


__all__ = ["GATE_THRESHOLD", "SCENE_PROMPTS", "TEXT_PROMPTS", "TextGate"]
