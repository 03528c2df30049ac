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


class _Reader:
    """The read queries find_duplicates uses, over photos given in memory."""

    def __init__(self, vecs, hashes, texts):
        self.vecs, self.hashes, self.texts = np.asarray(vecs, np.float32), hashes, texts

    def iter_vectors(self, table):
        yield np.arange(1, len(self.vecs) + 1), self.vecs

    def dim(self):
        return self.vecs.shape[1]

    def photo_fingerprints(self):
        return {i + 1: (f"p{i}.png", 100 - i, 1000, h) for i, h in enumerate(self.hashes)}

    def ocr_text(self, pid):
        return self.texts[pid - 1]


def test_different_screenshots_are_not_duplicates_but_their_copies_are():
    """Screenshots of different text have near-identical embeddings and hashes: their words tell them apart."""
    from retrieval.duplicates import find_duplicates

    v = np.ones((4, 8), np.float32) / np.sqrt(8)
    texts = ["Wifi network home5g password hunter2 router", "Meeting at noon room four agenda budget",
             "Wifi network home5g password hunter2 router", "Meeting at noon room four agenda budget"]
    groups, _ = find_duplicates(_Reader(v, ["ffff0000ffff0000"] * 4, texts))
    assert sorted(sorted(m.photo_id for m in g.photos) for g in groups) == [[1, 3], [2, 4]]


def test_a_chain_of_small_edits_does_not_join_photos_far_from_the_reference():
    """A-B and B-C are 12 bits apart (each a near-duplicate pair), A-C 24: C is not A's copy."""
    from retrieval.duplicates import find_duplicates

    v = np.ones((3, 8), np.float32) / np.sqrt(8)
    groups, _ = find_duplicates(_Reader(v, ["0000000000000000", "0000000000000fff", "0000000000ffffff"], [""] * 3))
    assert [sorted(m.photo_id for m in g.photos) for g in groups] == [[1, 2]]
