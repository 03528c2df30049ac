"""The OCR gate: which photos are worth running OCR on, decided from the embedding each photo
already has (a zero-shot classifier channel, as in CLIP's zero-shot classification, Radford et al.
2021): the photo's best cosine similarity to prompts describing text, minus its best similarity to
prompts describing ordinary scenes. Ordinary photos cost one small matrix product.

It passes photos that are mostly text (signs, receipts, screenshots, documents, posters). For the
shipped encoders, a linear probe on the embedding (logistic regression trained on Flickr8k train
photos with and without a few words drawn on them: scripts/train/train_text_gate.py) also passes
ordinary photos that carry some text; a photo passes when either says so. Text too small to move
the embedding is still missed (``retr index --ocr-all`` reads every photo).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

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
#: the linear probes, one per encoder id: {"weights": (D,), "bias", "threshold"} (on 10 x the logit scale)
PROBES_FILE = Path(__file__).resolve().parents[1] / "weights" / "text-gate.json"


@lru_cache(maxsize=4)
def text_probe(encoder_id: str) -> tuple[np.ndarray, float, float] | None:
    """(weights (D,) float32, bias, threshold) of the probe trained for ``encoder_id``, or None (none trained,
    or the file is unreadable)."""
    try:
        p = json.loads(PROBES_FILE.read_text()).get(encoder_id)
    except (OSError, ValueError):
        return None
    return None if p is None else (np.asarray(p["weights"], np.float32), float(p["bias"]), float(p["threshold"]))


class TextGate:
    """Scores photo embeddings for "contains text worth reading".

    Args:
        encoder: the index's encoder (its ``encode_texts`` embeds :data:`TEXT_PROMPTS` once).
        threshold: see :data:`GATE_THRESHOLD`; ``None`` passes every photo.
        probe: also use the encoder's linear probe (:func:`text_probe`) where one was trained.
    """

    def __init__(self, encoder, threshold: float | None = GATE_THRESHOLD, probe: bool = True):
        self.threshold = threshold
        self.prompts = self.scenes = self.probe = None
        if threshold is not None:
            self.prompts = np.asarray(encoder.encode_texts(list(TEXT_PROMPTS)), np.float32)
            self.scenes = np.asarray(encoder.encode_texts(list(SCENE_PROMPTS)), np.float32)
            self.probe = text_probe(getattr(encoder, "id", "")) if probe else None
            if self.probe is not None and len(self.probe[0]) != self.prompts.shape[1]:
                self.probe = None

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """(N,) float32: for each (N, D) L2-normalised photo embedding, its best cosine similarity to the text
        prompts minus its best to the scene prompts."""
        if self.prompts is None:
            return np.ones(len(vectors), np.float32)
        v = np.asarray(vectors, np.float32)
        return (v @ self.prompts.T).max(axis=1) - (v @ self.scenes.T).max(axis=1)

    def probe_scores(self, vectors: np.ndarray) -> np.ndarray | None:
        """(N,) float32 logits of the linear probe for (N, D) photo embeddings, or None without a probe."""
        if self.probe is None:
            return None
        w, b, _ = self.probe
        return np.asarray(vectors, np.float32) @ w + b

    def passes(self, vectors: np.ndarray) -> np.ndarray:
        """(N,) bool: which photos to read (the prompts' margin, or the probe, says so)."""
        if self.threshold is None:
            return np.ones(len(vectors), bool)
        ok = self.scores(vectors) >= self.threshold
        probe = self.probe_scores(vectors)
        return ok if probe is None else ok | (probe >= self.probe[2])


__all__ = ["GATE_THRESHOLD", "PROBES_FILE", "SCENE_PROMPTS", "TEXT_PROMPTS", "TextGate", "text_probe"]
