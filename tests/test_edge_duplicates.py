"""Edge cases of near-duplicate finding: a library of look-alikes (screenshots, scans, a low
``?threshold=``) must not make the pair list grow as N^2 (memory), and still groups them."""
from __future__ import annotations

import numpy as np


def test_many_lookalikes_keep_the_pair_list_linear_and_still_form_one_group(monkeypatch):
    from retrieval import duplicates

    n = 600
    rng = np.random.default_rng(0)
    v = np.ones((n, 32), np.float32) + rng.normal(0, 0.01, (n, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    monkeypatch.setattr(duplicates, "CHUNK", 128)
    i, j, s = duplicates.candidate_pairs(v, -1.0)
    assert len(i) <= n * duplicates.MAX_NEIGHBOURS  # not n (n - 1) / 2 = 179,700
    assert (i < j).all() and (s >= 0.99).all()
    i, j, _, _ = duplicates.duplicate_pairs(v, [None] * n, -1.0)
    assert [len(c) for c in duplicates.components(n, i, j)] == [n]


def test_candidate_pairs_unchanged_for_a_few_copies():
    from retrieval import duplicates

    rng = np.random.default_rng(1)
    v = rng.normal(size=(50, 16)).astype(np.float32)
    v[10], v[20], v[30] = v[0], v[0] * 1.0001, v[5]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    i, j, _ = duplicates.candidate_pairs(v, 0.99)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 10), (0, 20), (5, 30), (10, 20)]
