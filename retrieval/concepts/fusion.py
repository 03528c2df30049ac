"""Fused ranking: the aligned embedding score, the concept score and the generated-caption match
combined into one score per photo, with weights fitted on held-out Flickr8k train photos
(``scripts/eval/fit_fusion.py``; never on the evaluation galleries).

Methods (compared in docs/concepts.md):

* ``linear``: ``embedding + w_concepts * concepts ** 0.5 + w_caption * caption``;
* ``query-dependent`` (the default): as linear, with the embedding's weight lowered by ``w_strength``
  times how clearly the query names an ImageNet concept (:meth:`ConceptMatcher.strength`), so a
  query that names a known concept leans on the concept channel; the shipped weights are a logistic
  regression's on the embedding, the concept score and their product with the strength, so the fused
  score is also calibrated;
* ``rrf``: reciprocal-rank fusion, ``sum 1 / (k + rank)`` (Cormack, Clarke & Buettcher 2009).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

FUSION_FILE = Path(__file__).resolve().parent / "data" / "fusion.json"
#: every channel a text query can use, in order; ``retr search --channels`` picks some
CHANNELS = ("embedding", "concepts", "caption", "objects")
#: the channels ``retr search`` fuses by default. The generated-caption channel is left out: with it,
#: P@5 and mAP@50 fell on both evaluation galleries (docs/concepts.md), and its weight cannot be fitted
#: honestly on Flickr8k train photos, which the captioner was trained on.
DEFAULT_CHANNELS = ("embedding", "concepts", "objects")


@dataclass
class FusionWeights:
    """Fusion weights and the concept matcher's settings.

    Attributes:
        concepts, caption, objects: weights of those channels (the embedding's is 1; ``objects``: the
            COCO detector channel, :mod:`retrieval.detection.scoring`, used where the index has detections).
        object_threshold: the detector channel's matcher threshold
            (:class:`retrieval.detection.scoring.ObjectMatcher`).
        strength: query-dependent method only: the embedding's weight is ``1 - strength * s(q)``.
        threshold, hypernym_weight: see :class:`retrieval.concepts.scoring.ConceptMatcher`.
        rrf_k: the constant of reciprocal-rank fusion.
        concept_power: the concept score enters as ``concepts ** concept_power`` (0.5: a square
            root, which spreads the small posteriors of photos that show a concept among others;
            chosen on Flickr8k dev and COCO-mini over 1).
        method: how :func:`fuse` combines the channels unless told otherwise.
    """

    concepts: float = 0.5
    caption: float = 0.3
    strength: float = 0.0
    threshold: float = 0.5
    hypernym_weight: float = 0.95
    rrf_k: float = 60.0
    concept_power: float = 0.5
    method: str = "linear"
    objects: float = 0.0
    object_threshold: float = 0.5

    @classmethod
    def load(cls, path: str | Path = FUSION_FILE, which: str = "weights") -> "FusionWeights":
        """The shipped weights (defaults for any key the file lacks); ``which``: ``weights`` (the
        shipped fusion), or one kept for comparison: ``grid_weights`` (grid-searched linear),
        ``linear_weights`` (the linear logistic fusion)."""
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return cls()
        names = {f.name for f in fields(cls)}
        return cls(**{k: v if k == "method" else float(v)
                      for k, v in d.get(which, {}).items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)


def fuse(scores: dict[str, np.ndarray], w: FusionWeights, channels=DEFAULT_CHANNELS,
         method: str | None = None) -> np.ndarray:
    """One fused score per photo.

    Args:
        scores: ``{channel: (..., N) float32}`` (cosines for embedding and caption, [0, 1] for
            concepts); ``"strength"``: (...,) for the query-dependent method.
        w: the weights.
        channels: the channels to use (a missing one counts as absent).
        method: ``linear``, ``query-dependent`` or ``rrf``; None: ``w.method``. Without the concept
            channel, ``query-dependent`` is ``linear`` (the embedding alone keeps its raw cosines).

    Returns:
        (..., N) float32, higher is better.

    Raises:
        ValueError: an unknown method, or no channel.
    """
    use = [c for c in channels if c in scores and c in CHANNELS]
    if not use:
        raise ValueError("no channel to rank by")
    method = method or w.method
    if method == "rrf":
        out = 0.0
        for c in use:
            ranks = np.argsort(np.argsort(-scores[c], axis=-1, kind="stable"), axis=-1, kind="stable")
            out = out + 1.0 / (w.rrf_k + 1.0 + ranks)
        return np.asarray(out, np.float32)
    if method not in ("linear", "query-dependent"):
        raise ValueError(f"unknown fusion method {method!r}")
    weight = {"embedding": 1.0, "concepts": w.concepts, "caption": w.caption, "objects": w.objects}
    out = 0.0
    for c in use:
        k, x = weight[c], scores[c]
        if c == "concepts":
            x = np.power(np.maximum(x, 0.0), w.concept_power)
        if c == "embedding" and method == "query-dependent" and "strength" in scores and "concepts" in use:
            k = 1.0 - w.strength * np.asarray(scores["strength"])[..., None]
        out = out + k * x
    return np.asarray(out, np.float32)
