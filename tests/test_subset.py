"""Search among a filter's photos: exact whatever the selectivity and the FAISS index type."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from retrieval.store import ann
from retrieval.store.subset import EXACT_SUBSET_MAX, POST_FILTER_FRACTION, search_filtered, search_subset


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


class Filtered(Vectors):
    """A stand-in reader whose SQL filter is a set of allowed ids; counts what each path reads."""

    def __init__(self, ids, vecs, allowed):
        super().__init__(ids, vecs)
        self.allowed, self.ids_read, self.checked = set(allowed.tolist()), 0, 0

    def count_photos_matching(self, where, params=(), with_paths=True):
        return len(self.allowed)

    def photo_ids_where(self, where, params=(), with_paths=True):
        self.ids_read += len(self.allowed)
        return np.array(sorted(self.allowed), np.int64)

    def photo_ids_among(self, ids, where, params=(), with_paths=True):
        self.checked += len(ids)
        return np.array(sorted(self.allowed & {int(i) for i in ids}), np.int64)


@lru_cache(maxsize=None)
def gallery(kind: str, n: int = 10_000, d: int = 32):
    """(ids, unit vectors, FAISS index of ``kind``) of a random gallery, built once per kind."""
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((n, d)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(1, n + 1, dtype=np.int64)
    return ids, vecs, ann.build(kind, d, n, lambda: iter([(ids, vecs)]))


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("kept", [0.02, 0.1, 0.5, 0.9])
def test_broad_filters_are_applied_to_candidates_and_stay_exact(kind, kept):
    """A filter keeping >= POST_FILTER_FRACTION is checked on the candidates only (its ids never read);
    a narrower one reads its ids; both give the exact top-k of the kept photos (HNSW: 9 of 10 or more)."""
    ids, vecs, index = gallery(kind)
    n, rng = len(ids), np.random.default_rng(1)
    allowed = np.sort(rng.choice(ids, int(n * kept), replace=False))
    for q in vecs[:5] + 0.1:
        q = (q / np.linalg.norm(q)).astype(np.float32)
        reader = Filtered(ids, vecs, allowed)
        scores, got, matched = search_filtered(reader, index, q, 10, "f", ())
        assert matched == len(allowed) and set(got.tolist()) <= set(allowed.tolist())
        assert (reader.ids_read == 0) == (kept >= POST_FILTER_FRACTION)
        assert reader.checked < n / 4 if kept >= POST_FILTER_FRACTION else reader.checked == 0
        want = allowed[np.argsort(-(vecs[allowed - 1] @ q))[:10]]
        hit = len(set(got.tolist()) & set(want.tolist()))
        assert hit == 10 if kind == "flat" else hit >= 9
        assert np.all(np.diff(scores) <= 1e-6)
