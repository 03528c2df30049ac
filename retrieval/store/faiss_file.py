"""The FAISS files of an index: their whole life cycle, and the check that an index and an encoder match.

The database is the source of truth for vectors; a FAISS file (``photos.faiss``, ``texts.faiss``)
is derived from it (:func:`write_faiss`, stamped in meta), checked cheaply (:func:`faiss_is_current`)
and loaded (:func:`read_faiss`), rebuilt in memory when missing, damaged, stale (an interrupted
``retr index``) or of another type than the index records (``retr index --index-type``, see
:mod:`retrieval.store.ann`). Reads go through :class:`retrieval.store.queries.Queries`, so they
work on the stdlib SQLite reader and on the SQLAlchemy store alike.
"""
from __future__ import annotations

import os
from pathlib import Path

from retrieval.errors import StoreError
from retrieval.store import ann
from retrieval.store.blas import import_faiss
from retrieval.store.layout import REBUILD_HINT
from retrieval.store.queries import Queries


def check_encoder(recorded_id: str | None, encoder_id: str, index_dir: str | Path) -> None:
    """Refuse to mix encoders: the index at ``index_dir`` records ``recorded_id`` (None: a new
    index, anything goes) and the caller holds an encoder with id ``encoder_id``.

    Raises:
        StoreError: the ids differ (vectors of different encoders live in different spaces).
    """
    if recorded_id and recorded_id != encoder_id:
        raise StoreError(f"index at {index_dir} was built with encoder {recorded_id}, not {encoder_id}; vectors "
                         f"of different encoders cannot be mixed: use {REBUILD_HINT}")


def wanted_type(reader: Queries, table: str, n: int | None = None) -> str:
    """The concrete FAISS type ``table`` should have: the index's recorded ``index_type``
    (default auto) resolved for its row count."""
    return ann.resolve(reader.get_meta("index_type"), reader.count(table) if n is None else n)


def build_faiss(reader: Queries, table: str, kind: str | None = None):
    """A FAISS index over all vectors of ``table`` (ids = row ids), built from the database in
    chunks (see :func:`retrieval.store.ann.build`); ``kind`` defaults to :func:`wanted_type`."""
    n = reader.count(table)
    kind = kind or wanted_type(reader, table, n)
    return ann.build(kind, reader.dim() or 1, n, lambda: reader.iter_vectors(table))


def write_faiss(store, table: str) -> int:
    """Rebuild ``<table>.faiss`` from the database of ``store`` (a :class:`retrieval.store.database.Store`;
    atomic: temp file + rename) and stamp it in meta ``faiss_<table>`` (its type, vector count, size
    and mtime, for :func:`faiss_is_current`). Returns its vector count."""
    faiss = import_faiss()

    index = build_faiss(store, table)
    path = store.faiss_path(table)
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)
    with store.session() as s:
        store.set_meta(s, f"faiss_{table}", file_stamp(path, ann.kind_of(index), index.ntotal))
        s.commit()
    return index.ntotal


def file_stamp(path: Path, kind: str, n: int) -> str:
    """The meta stamp of a FAISS file: ``"<type> <vectors> <bytes> <mtime ns>"``."""
    st = path.stat()
    return f"{kind} {n} {st.st_size} {st.st_mtime_ns}"


def faiss_is_current(reader: Queries, table: str) -> bool:
    """True when ``<table>.faiss`` is the file the last :func:`write_faiss` wrote (same size and
    mtime), for the database's row count and the wanted type, whatever the dirty mark says.
    Reads no index data (an unchanged `retr index` of 1M photos does not load 0.8 GB to check);
    an index without that record is loaded and checked instead."""
    path = reader.faiss_path(table)
    n = reader.count(table)
    stamp = reader.get_meta(f"faiss_{table}")
    if stamp is not None:
        kind = wanted_type(reader, table, n)
        return path.exists() and stamp == file_stamp(path, kind, n)
    return read_faiss(reader, table, rebuild=False, check_dirty=False)[0] is not None


def read_faiss(reader: Queries, table: str, rebuild: bool = True, check_dirty: bool = True):
    """Load ``<table>.faiss``; rebuilt in memory from the database when it is missing, damaged,
    stale (the index is marked dirty by an interrupted or running ``retr index``, or its
    vector count differs from the database's) or of another type than the index records.

    Returns:
        (faiss index, rebuilt: bool); with ``rebuild=False``, (None, True) instead of rebuilding.
    """
    faiss = import_faiss()

    path = reader.faiss_path(table)
    n = reader.count(table)
    stale = check_dirty and reader.get_meta("dirty") == "1"
    if path.exists() and not stale:
        try:
            index = faiss.read_index(str(path))
            if index.ntotal == n and ann.kind_of(index) == wanted_type(reader, table, n):
                return index, False
        except RuntimeError:
            pass
    if not rebuild:
        return None, True
    return build_faiss(reader, table), True
