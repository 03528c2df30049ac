"""The OCR gate: which photos are worth running OCR on, decided from the embedding each photo
already has (a zero-shot classifier channel: cosine similarity to a few text prompts, as in CLIP's
zero-shot classification, Radford et al. 2021), so ordinary photos cost one dot product.

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
#: a photo passes when its best cosine similarity to the prompts is at least this
GATE_THRESHOLD = 0.25


class TextGate:
    """Scores photo embeddings for "contains text worth reading".

    Args:
        encoder: the index's encoder (its ``encode_texts`` embeds :data:`TEXT_PROMPTS` once).
        threshold: see :data:`GATE_THRESHOLD`; ``None`` passes every photo.
    """

    def __init__(self, encoder, threshold: float | None = GATE_THRESHOLD):
        self.threshold = threshold
        self.prompts = None if threshold is None else np.asarray(encoder.encode_texts(list(TEXT_PROMPTS)),
                                                                   np.float32)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """(N,) float32: the best cosine similarity of each (N, D) L2-normalised photo embedding to the prompts."""
        if self.prompts is None:
            return np.ones(len(vectors), np.float32)
        return (np.asarray(vectors, np.float32) @ self.prompts.T).max(axis=1)

    def passes(self, vectors: np.ndarray) -> np.ndarray:
        """(N,) bool: which photos to read."""
        if self.threshold is None:
            return np.ones(len(vectors), bool)
        return self.scores(vectors) >= self.threshold


__all__ = ["GATE_THRESHOLD", "TEXT_PROMPTS", "TextGate"]
