"""The detector channel over an index: every photo's stored COCO detections, scored for a query
(:func:`retrieval.detection.scoring.object_scores`), kept sparse (one entry per photo and detected
class) so that memory grows with what was detected, not with 80 x the library."""
from __future__ import annotations

import numpy as np

from retrieval.detection.names import display_name
from retrieval.detection.scoring import ObjectMatcher, query_count


def object_labels(classes, scores, counts) -> list[dict]:
    """One photo's detected objects for display: ``[{"label", "score", "count"}]``, best first
    (``count``: confident detections, 0 when the best one is below the counting threshold)."""
    return [{"label": display_name(int(c)), "score": round(float(s), 3), "count": int(n)}
            for c, s, n in sorted(zip(classes, scores, counts), key=lambda r: -r[1])]


class ObjectChannel:
    """Stored detections of an index's photos, scored for queries.

    Args:
        rows: :meth:`retrieval.store.queries.Queries.object_rows` (all photos).
        matcher: the query -> class weights :class:`ObjectMatcher`.

    Attributes:
        ids: (P,) int64 ascending ids of the photos that have been through the detector.
    """

    def __init__(self, rows, matcher: ObjectMatcher):
        self.matcher = matcher
        self.ids = np.array([r[0] for r in rows], np.int64)
        lens = [len(r[1]) for r in rows]
        self.row = np.repeat(np.arange(len(rows)), lens)
        self.cls = np.concatenate([r[1] for r in rows]).astype(np.int64) if rows else np.zeros(0, np.int64)
        self.score = np.concatenate([r[2] for r in rows]) if rows else np.zeros(0, np.float32)
        self.count = np.concatenate([r[3] for r in rows]) if rows else np.zeros(0, np.int16)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, sentence: np.ndarray, text: str) -> np.ndarray:
        """(P,) float32 object score of every photo in :attr:`ids` for a query (its (384,) sentence
        embedding and its words, for a number such as "two dogs")."""
        w = self.matcher.class_weights(sentence)
        s = w[self.cls] * self.score
        want = query_count(text)
        if want is not None:
            s = np.where(self.count == want, s, s * self.matcher.count_miss)
        out = np.zeros(len(self.ids), np.float32)
        np.maximum.at(out, self.row, s.astype(np.float32))
        return out

    def strength(self, sentence: np.ndarray) -> float:
        """How clearly the query names a COCO class: its best class weight, in [0, 1]."""
        return float(self.matcher.class_weights(sentence).max())
