"""Fused text -> photo ranking over an index (the default of ``retr search``, the API and the page).

Candidates are the embedding's nearest photos and the photos with the best concept scores; each is
scored exactly by every channel (:mod:`retrieval.concepts.fusion`), and the fused score is mapped
to a calibrated match probability (:mod:`retrieval.concepts.calibration`). An index without
concepts (built before the concept channel) ranks by the embedding alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retrieval.store import ann
from retrieval.concepts.calibration import Calibration
from retrieval.concepts.fusion import CHANNELS, DEFAULT_CHANNELS, FusionWeights, fuse
from retrieval.concepts.scoring import ConceptMatcher, concept_labels, concept_scores

#: candidates per channel: at least this many, else 10 x k
MIN_CANDIDATES = 200
#: said once when an index has photos but no concepts
NO_CONCEPTS_HINT = ("this index has no concepts yet (built before the concept channel): run `retr index "
                    "PHOTO_FOLDER` again to add them (photos are not embedded again)")


@dataclass
class Ranked:
    """One fused result: photo id, fused score, calibrated match probability (None when not calibrated)."""

    id: int
    score: float
    match: float | None


class FusedRanker:
    """Fused ranking of photos for text queries over one index.

    Args:
        reader: the index's :class:`retrieval.store.queries.Queries`.
        matcher: the :class:`ConceptMatcher` of the index's encoder, or None (no concept channel).
        weights, calibration: default: the shipped ones.
        objects: the detector channel (:class:`retrieval.detection.channel.ObjectChannel`), or None.

    Attributes:
        has_concepts: the index holds concepts for at least one photo.
        has_objects: the index holds detections for at least one photo.
    """

    def __init__(self, reader, matcher: ConceptMatcher | None, weights: FusionWeights | None = None,
                 calibration: Calibration | None = None, objects=None):
        self.reader = reader
        self.objects = objects if objects is not None and len(objects) else None
        self.has_objects = self.objects is not None
        self.weights = weights or FusionWeights.load()
        self.calibration = calibration or Calibration.load()
        self.matcher = matcher
        if matcher is not None:
            matcher.threshold, matcher.hypernym_weight = self.weights.threshold, self.weights.hypernym_weight
        self.ids, self.classes, self.probs = reader.concept_rows() if matcher is not None else (
            np.zeros(0, np.int64), None, None)
        self.has_concepts = len(self.ids) > 0

    def rank(self, faiss_index, query_vec: np.ndarray, sentence: np.ndarray | None, k: int,
             channels=DEFAULT_CHANNELS, text: str = "", extra_ids=()) -> list[Ranked]:
        """The ``k`` best photos for a text query.

        Args:
            faiss_index: the photos' FAISS index.
            query_vec: (D,) float32 aligned query embedding.
            sentence: (384,) float32 sentence embedding of the query (None: no concept channel).
            k: number of results.
            channels: channels to fuse (see :data:`CHANNELS`); ``"embedding"`` alone gives raw cosines.
            text: the query's words (the detector channel reads numbers: "two dogs").
            extra_ids: photo ids to rank besides the channels' own candidates (photos whose text holds the
                query's words); when given, every candidate is returned, not only the ``k`` best.

        Returns:
            list of :class:`Ranked`, best first; ``match`` is set only for the default channels on an
            index with concepts (the calibration was fitted on that fusion).
        """
        channels = tuple(c for c in channels if c in CHANNELS)
        use_con = "concepts" in channels and self.has_concepts and sentence is not None
        m = max(MIN_CANDIDATES, 10 * k)
        q = np.ascontiguousarray(np.asarray(query_vec, np.float32).reshape(-1))
        _, emb_ids, _ = ann.candidates(faiss_index, q, m)
        cand = {int(i) for i in emb_ids if i >= 0} | {int(i) for i in extra_ids}
        con_all = None
        if use_con:
            con_all = concept_scores(self.matcher.class_weights(sentence), self.classes, self.probs)
            top = np.argsort(-con_all, kind="stable")[:m]
            cand |= {int(self.ids[j]) for j in top if con_all[j] > 0}
        obj_all = None
        if "objects" in channels and self.has_objects and sentence is not None:
            obj_all = self.objects.scores(sentence, text)
            top = np.argsort(-obj_all, kind="stable")[:m]
            cand |= {int(self.objects.ids[j]) for j in top if obj_all[j] > 0}
        ids, vecs = self.reader.vectors_for("photos", sorted(cand))
        scores = {}
        if "embedding" in channels:
            scores["embedding"] = vecs @ q
        if use_con:
            scores["concepts"] = _lookup(self.ids, con_all, ids)
            scores["strength"] = np.float32(self.matcher.strength(sentence))
        if obj_all is not None:
            scores["objects"] = _lookup(self.objects.ids, obj_all, ids)
        if "caption" in channels:
            gen = self.reader.generated_vectors(ids)
            if gen:
                scores["caption"] = np.array([float(gen[int(i)] @ q) if int(i) in gen else 0.0 for i in ids],
                                             np.float32)
        if not any(c in scores for c in CHANNELS):
            scores["embedding"] = vecs @ q
        fused = fuse(scores, self.weights, channels)
        calibrated = use_con and set(channels) == set(DEFAULT_CHANNELS)
        order = np.argsort(-fused, kind="stable")[:len(fused) if len(extra_ids) else k]
        probs = self.calibration.probability(fused[order]) if calibrated else [None] * len(order)
        return [Ranked(int(ids[j]), float(fused[j]), None if p is None else float(p)) for j, p in zip(order, probs)]

    def no_match(self, ranked: list[Ranked]) -> bool:
        """The "no good match" verdict: even the best photo's match probability is below the threshold."""
        return bool(ranked) and ranked[0].match is not None and ranked[0].match < self.calibration.no_match

    def objects_of(self, photo_ids) -> dict[int, list[dict]]:
        """{photo id: its detected objects for display (:func:`retrieval.detection.channel.object_labels`)}."""
        from retrieval.detection.channel import object_labels

        return {pid: object_labels(c, s, n) for pid, c, s, n in self.reader.object_rows(photo_ids)}

    def concepts_of(self, photo_ids) -> dict[int, list[dict]]:
        """{photo id: its concepts for display (:func:`concept_labels`)}."""
        ids, cls, p = self.reader.concept_rows(photo_ids)
        return {int(i): concept_labels(c, pp) for i, c, pp in zip(ids, cls, p)}


def _lookup(have_ids: np.ndarray, values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``values`` (aligned with the ascending ``have_ids``) at ``ids``; 0 where an id has none."""
    if len(have_ids) == 0:
        return np.zeros(len(ids), np.float32)
    pos = np.clip(np.searchsorted(have_ids, ids), 0, len(have_ids) - 1)
    return np.where(have_ids[pos] == ids, values[pos], 0.0).astype(np.float32)
