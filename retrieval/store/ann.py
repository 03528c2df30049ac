"""The FAISS search structure of an index: its type, how it is built, how it is searched.

Types (``retr index --index-type``, recorded in the index's ``meta`` table as ``index_type``):

* ``flat``: ``IndexFlatIP``, exact inner product over every vector, 4*D bytes a vector in RAM
  (2 KB at D=512: 1M photos need 2 GB); the ``auto`` choice below :data:`AUTO_FLAT_MAX` vectors.
* ``hnsw``: a Hierarchical Navigable Small World graph (Malkov & Yashunin, "Efficient and
  robust approximate nearest neighbor search using Hierarchical Navigable Small World graphs",
  IEEE TPAMI 2018), FAISS ``IndexHNSWSQ``: the graph (M = :data:`HNSW_M` links a node) over
  8-bit scalar-quantised vectors (D bytes a vector + the links, ~0.8 KB at D=512).
* ``ivf``: an inverted file (Jégou, Douze & Schmid, "Product quantization for nearest
  neighbor search", IEEE TPAMI 2011, section IV): k-means cells of the vectors, a query
  scans the :data:`IVF_NPROBE` nearest cells; FAISS ``IndexIVFScalarQuantizer`` with 8-bit
  codes.
* ``auto`` (the default): ``flat`` below :data:`AUTO_FLAT_MAX` vectors, ``hnsw`` from there.

Approximate types are searched for ``k' = max(RERANK_MIN, RERANK_FACTOR * k)`` candidates,
which are then re-scored exactly against their float32 vectors read from the database
(the source of truth), so scores are exact cosines and the 8-bit codes only choose candidates.

Every index is an ``IndexIDMap`` whose ids are the database row ids.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

from retrieval.store.blas import import_faiss
from retrieval.errors import IndexTypeError

INDEX_TYPES = ("auto", "flat", "hnsw", "ivf")
#: ``auto`` uses flat search below this many vectors, HNSW from there: flat costs ~0.23 ms of CPU per
#: 1,000 vectors a query (exact; 4.5 ms at 20k), HNSW ~1.8-2.1 ms from 10k to 30k (docs/bench.md).
AUTO_FLAT_MAX = 20_000
#: HNSW links per node (2*M at the bottom layer), build and search beam widths.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 128
#: IVF cells scanned per query.
IVF_NPROBE = 32
#: candidates fetched from an approximate index before exact re-ranking: max(RERANK_MIN, RERANK_FACTOR*k)
RERANK_MIN = 100
RERANK_FACTOR = 10
#: vectors used to train the 8-bit quantiser and the IVF cells (a strided sample of the table)
TRAIN_SAMPLE = 50_000
CHUNK = 20_000


def check_type(name: str) -> str:
    """``name`` if it is one of :data:`INDEX_TYPES`, else :class:`IndexTypeError`."""
    if name not in INDEX_TYPES:
        raise IndexTypeError(f"unknown index type {name!r}; choose one of {', '.join(INDEX_TYPES)}")
    return name


def resolve(requested: str | None, n: int) -> str:
    """The concrete type (flat, hnsw, ivf) for ``requested`` (None = auto) and ``n`` vectors."""
    requested = check_type(requested or "auto")
    if requested == "auto":
        return "flat" if n < AUTO_FLAT_MAX else "hnsw"
    return requested


def kind_of(index) -> str:
    """``"flat"``, ``"hnsw"``, ``"ivf"`` (or ``"other"``) for a FAISS index, looking inside an IndexIDMap."""
    faiss = import_faiss()

    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    if isinstance(inner, faiss.IndexFlat):
        return "flat"
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    return "other"


def ivf_nlist(n: int, n_train: int) -> int:
    """IVF cells for ``n`` vectors trained on ``n_train``: about 4*sqrt(n), at least 39 training vectors a cell."""
    return int(max(1, min(round(4 * np.sqrt(max(n, 1))), n_train // 39)))


def build(kind: str, dim: int, n: int, chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]):
    """Build a FAISS index of concrete type ``kind`` over ``n`` vectors, streaming.

    Args:
        kind: ``flat``, ``hnsw`` or ``ivf``.
        dim: vector dimension D.
        n: number of vectors ``chunks`` will yield (sizes the training sample and IVF cells).
        chunks: called once (flat) or twice (hnsw/ivf: a training pass, then the adding
            pass); each call returns an iterable of ((m,) int64 ids, (m, D) float32 vectors).
            Memory: one chunk plus the index, never all vectors as float32 at once
            (except ``flat``, which holds them).

    Returns:
        a ``faiss.IndexIDMap`` over the index.
    """
    faiss = import_faiss()

    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    else:
        step = max(1, -(-n // TRAIN_SAMPLE))  # ceil: at most TRAIN_SAMPLE rows, one copy in memory
        sample = np.empty((-(-n // step) if n else 0, dim), np.float32)
        m = 0
        for before, (_, v) in _offsets(chunks()):
            part = v[(-before) % step :: step]
            part = part[: len(sample) - m]
            sample[m : m + len(part)] = part
            m += len(part)
        sample = sample[:m]
        if kind == "hnsw":
            inner = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        elif kind == "ivf":
            quantizer = faiss.IndexFlatIP(dim)
            inner = faiss.IndexIVFScalarQuantizer(quantizer, dim, ivf_nlist(n, len(sample)),
                                                  faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
            inner.nprobe = IVF_NPROBE
            inner.cp.min_points_per_centroid = 1  # ivf_nlist sizes the cells; no FAISS warning on stderr
        else:
            raise IndexTypeError(f"cannot build index type {kind!r}")
        if len(sample):
            inner.train(np.ascontiguousarray(sample, np.float32))
        del sample
    index = faiss.IndexIDMap(inner)  # the Python wrapper keeps ``inner`` (and the quantizer) alive
    for ids, vecs in chunks():
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vecs, np.float32), np.ascontiguousarray(ids, np.int64))
    return index


def _offsets(it: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]]:
    """(rows seen before this chunk, chunk) for each chunk."""
    seen = 0
    for c in it:
        yield seen, c
        seen += len(c[0])


def candidates(index, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Search ``index`` for ``query`` ((D,) float32).

    Returns:
        (scores (m,) float32, ids (m,) int64, exact) best first, m <= k' ids (-1s dropped);
        ``exact`` is False for approximate types, whose ``k' = max(RERANK_MIN, RERANK_FACTOR*k)``
        candidates must be re-scored (:func:`rerank`).
    """
    faiss = import_faiss()

    n = index.ntotal
    kind = kind_of(index)
    exact = kind == "flat"
    kk = min(n, k if exact else max(RERANK_MIN, RERANK_FACTOR * k))
    if kk == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64), exact
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    if kind == "hnsw":
        inner.hnsw.efSearch = max(HNSW_EF_SEARCH, kk)
    elif kind == "ivf":
        inner.nprobe = max(inner.nprobe, 1)
    # One query: no OpenMP team (its barriers cost a scheduler tick each when the cores are busy,
    # ~16 ms per query measured under load); the setting is this thread's own (libgomp ICV).
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        scores, ids = index.search(np.ascontiguousarray(query.reshape(1, -1), np.float32), kk)
    finally:
        faiss.omp_set_num_threads(threads)
    keep = ids[0] >= 0
    return scores[0][keep], ids[0][keep], exact


def rerank(query: np.ndarray, ids: np.ndarray, vecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of candidates: ``vecs`` (m, D) float32 rows for ``ids`` (m,), scored by
    inner product with ``query`` (D,). Returns (scores (<=k,), ids (<=k,)), best first."""
    if len(ids) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    # einsum's own loop, not BLAS: a (m, D) x (D,) product is too small for threads, whose
    # hand-offs cost a scheduler tick each on a busy machine (measured: 15 ms instead of 2 per query)
    s = np.einsum("ij,j->i", vecs, query.astype(np.float32))
    order = np.argsort(-s, kind="stable")[:k]
    return s[order], ids[order]
