"""The index folder's layout and format: file names, format version, schema revision (one place).

An index folder holds::

    retr.sqlite     the database (photos, texts, their vectors, concepts, objects, meta), unless --db names another
    photos.faiss    the FAISS search structure over photo vectors (see retrieval.store.faiss_file)
    texts.faiss     the same over text vectors
    .lock           held by a writer (filelock)
    shards/         vector shards of a Ray run (retr index --ray)
"""
from __future__ import annotations

from pathlib import Path

#: The SQLite database of an index without ``--db``.
DB_NAME = "retr.sqlite"
#: The lock file a writer (``retr index``) holds.
LOCK_NAME = ".lock"
#: Bumped whenever the on-disk layout changes; older indexes must be rebuilt or migrated.
FORMAT_VERSION = 1
#: The Alembic head revision this retr's schema is at (``retrieval/store/migrations/versions``).
SCHEMA_REVISION = "detected_objects"
#: Environment variable naming the database when no ``db_url`` is given.
DB_ENV = "RETR_DB"
#: The command that starts an index afresh, named by every message that asks for it.
REBUILD_HINT = "`retr index PHOTO_FOLDER --rebuild`"
#: The vector tables, each with its FAISS file.
VECTOR_TABLES = ("photos", "texts")


def faiss_file(index_dir: str | Path, table: str) -> Path:
    """The FAISS file of ``table`` (``photos`` or ``texts``) in the index folder ``index_dir``."""
    return Path(index_dir) / f"{table}.faiss"
