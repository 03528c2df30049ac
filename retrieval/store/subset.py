"""Nearest neighbours among a subset of the photos (a metadata filter's matches).

A filter is first counted in SQL. One that keeps at least :data:`POST_FILTER_FRACTION` of the photos
is applied after the search: the index is searched for enough candidates that ``k`` of them are
expected to pass (``k / fraction``, times :data:`MARGIN` for a flat index, times
:data:`retrieval.store.ann.RERANK_FACTOR` for an approximate one; grown until ``k`` pass), and the
candidates are checked against the filter by primary key, so its matching ids are never read
(500,000 of them take most of a second to read from SQLite). A narrower filter's ids are read, then, by their number: a subset of at most :data:`EXACT_SUBSET_MAX` photos is scored exactly from its
vectors read from the database (no FAISS); a larger one is searched in the FAISS index: a flat
(exact) index with an ``IDSelectorBatch`` restricting the scan to the subset, an HNSW one with the
same selector in its graph search, an IVF one for enough candidates that ``k``
of them are expected to pass (``k / fraction`` times a margin, grown until ``k`` pass or the whole
index was read), filtered; approximate candidates are re-scored exactly."""
from __future__ import annotations

import math

import numpy as np

from retrieval.store import ann
from retrieval.store.blas import import_faiss

#: Subsets up to this size are scored exactly from their stored vectors (reading 2,000 vectors from
#: SQLite takes about as long as a flat scan of 20,000; measured by scripts/bench/bench_filters.py).
EXACT_SUBSET_MAX = 2_000
#: Candidates fetched = k / (fraction of photos kept) * this.
MARGIN = 3.0
#: Filters keeping at least this fraction of the photos are applied to the search's candidates
#: (at 1,000,000 photos, reading 50,000 ids costs more than checking 2,000 candidates: bench_filters.py).
POST_FILTER_FRACTION = 0.05


def search_filtered(reader, index, query: np.ndarray, k: int, where: str, params: tuple = (),
                    with_paths: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """Exact top-``k`` photos of ``query`` ((D,) float32) among those satisfying the SQL condition
    ``where`` (see :meth:`retrieval.store.queries.Queries.photo_ids_where`), by selectivity (module doc).

    Returns:
        (scores (<=k,) float32, ids (<=k,) int64, how many photos the filter keeps), best first.
    """
    matched = reader.count_photos_matching(where, params, with_paths)
    n = max(int(index.ntotal), 1)
    if matched < POST_FILTER_FRACTION * n:
        allowed = reader.photo_ids_where(where, params, with_paths=with_paths)
        scores, ids = search_subset(reader, index, query, k, allowed)
        return scores, ids, len(allowed)
    # an approximate index already returns RERANK_FACTOR x kk candidates, for exact re-scoring
    margin = MARGIN if ann.kind_of(index) == "flat" else 1.0
    kk = min(n, math.ceil(k * n / matched * margin))
    while True:
        scores, ids, exact = ann.candidates(index, query, kk)
        keep = np.isin(ids, reader.photo_ids_among(ids, where, params, with_paths))
        if keep.sum() >= k or kk >= n:
            break
        kk = min(n, kk * 4)
    scores, ids = scores[keep], ids[keep]
    if exact:
        return scores[:k], ids[:k], matched
    cid, cvec = reader.vectors_for("photos", ids)
    return (*ann.rerank(query, cid, cvec, k), matched)


def search_subset(reader, index, query: np.ndarray, k: int, allowed: np.ndarray,
                  table: str = "photos") -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of ``query`` ((D,) float32) among the rows ``allowed`` ((m,) int64, sorted) of ``table``.

    Args:
        reader: a :class:`retrieval.store.queries.Queries` (``vectors_for``).
        index: the table's FAISS index (ids = row ids).

    Returns:
        (scores (<=k,) float32, ids (<=k,) int64), best first.
    """
    if len(allowed) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    n = max(int(index.ntotal), 1)
    if len(allowed) <= EXACT_SUBSET_MAX and len(allowed) < n:
        ids, vecs = reader.vectors_for(table, allowed)
        return ann.rerank(query, ids, vecs, k)
    kind = ann.kind_of(index)
    if kind == "flat":
        return among(index, query, k, allowed)
    if kind == "hnsw":  # the graph search skips the other ids; its candidates re-scored exactly
        scores, ids = among(index, query, max(ann.RERANK_MIN, ann.RERANK_FACTOR * k), allowed, hnsw=True)
        cid, cvec = reader.vectors_for(table, ids)
        return ann.rerank(query, cid, cvec, k)
    kk = min(n, math.ceil(k * n / len(allowed) * MARGIN))
    while True:
        scores, ids, exact = ann.candidates(index, query, kk)
        keep = np.isin(ids, allowed, assume_unique=False)
        if keep.sum() >= k or kk >= n:
            break
        kk = min(n, kk * 4)
    scores, ids = scores[keep], ids[keep]
    if exact:
        return scores[:k], ids[:k]
    cid, cvec = reader.vectors_for(table, ids)
    return ann.rerank(query, cid, cvec, k)


def among(index, query: np.ndarray, k: int, allowed: np.ndarray, hnsw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of a FAISS ``IndexIDMap`` over a flat (exact) or, with ``hnsw``, an HNSW index (approximate,
    ``efSearch`` at least ``k``), visiting only the ids ``allowed`` (``IDSelectorBatch``)."""
    faiss = import_faiss()
    sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, np.int64))
    params = (faiss.SearchParametersHNSW(sel=sel, efSearch=max(ann.HNSW_EF_SEARCH, k)) if hnsw
              else faiss.SearchParameters(sel=sel))
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one query: no OpenMP team (see retrieval.store.ann.candidates)
    try:
        scores, ids = index.search(np.ascontiguousarray(query.reshape(1, -1), np.float32), min(k, len(allowed)),
                                   params=params)
    finally:
        faiss.omp_set_num_threads(threads)
    keep = ids[0] >= 0
    return scores[0][keep], ids[0][keep]
