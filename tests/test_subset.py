"""Search among a filter's photos: exact whatever the selectivity and the FAISS index type."""
from __future__ import annotations

import numpy as np
import pytest

from retrieval.store import ann
from retrieval.store.subset import EXACT_SUBSET_MAX, search_subset


class Vectors:
    """A stand-in reader: ``vectors_for`` from an in-memory table."""

    def __init__(self, ids, vecs):
        self.rows = dict(zip(ids.tolist(), vecs))

    def vectors_for(self, table, ids):
        ids = [int(i) for i in ids if int(i) in self.rows]
        return np.array(ids, np.int64), np.stack([self.rows[i] for i in ids])


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("kept", [0.01, 0.1, 0.5])
def test_subset_search_is_exact(kind, kept):
    rng = np.random.default_rng(0)
    n, d = 30_000, 32
    vecs = rng.standard_normal((n, d)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(1, n + 1, dtype=np.int64)
    index = ann.build(kind, d, n, lambda: iter([(ids, vecs)]))
    allowed = np.sort(rng.choice(ids, int(n * kept), replace=False))
    assert (len(allowed) <= EXACT_SUBSET_MAX) == (kept == 0.01)  # both paths are exercised
    for q in vecs[:5] + 0.1:
        q = (q / np.linalg.norm(q)).astype(np.float32)
        scores, got = search_subset(Vectors(ids, vecs), index, q, 10, allowed)
        s = vecs[allowed - 1] @ q
        want = allowed[np.argsort(-s)[:10]]
        assert set(got.tolist()) <= set(allowed.tolist())
        hit = len(set(got.tolist()) & set(want.tolist()))
        assert hit == 10 if kind == "flat" else hit >= 9
        assert np.all(np.diff(scores) <= 1e-6)
    assert len(search_subset(Vectors(ids, vecs), index, q, 10, np.zeros(0, np.int64))[1]) == 0
