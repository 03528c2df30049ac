"""Read-only queries on an index, shared by :class:`retrieval.store.database.Store` (SQLAlchemy, any
database) and :class:`SqliteReader` (the standard library's ``sqlite3``, for the query path of
an SQLite index: ``retr search`` in a new process then does not import SQLAlchemy, ~0.3 s).

The FAISS files' life cycle is :mod:`retrieval.store.faiss_file`'s.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import numpy as np

from retrieval.io.paths import from_db
from retrieval.store import ann
from retrieval.store.layout import DB_NAME, FORMAT_VERSION, SCHEMA_REVISION, VECTOR_TABLES, faiss_file

TABLES = VECTOR_TABLES
_IN_CHUNK = 500


class Queries:
    """The read queries, written once over :meth:`_rows` (SQL with ``?`` placeholders)."""

    root: Path

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def dim(self) -> int | None:
        d = self.get_meta("dim")
        return int(d) if d else None

    def count(self, table: str) -> int:
        assert table in TABLES
        return int(self._rows(f"SELECT count(*) FROM {table}")[0][0])

    def count_photos_where(self, where: str, params: tuple = ()) -> int:
        """How many photos satisfy the SQL condition ``where`` (``?`` placeholders, columns of ``photos``)."""
        return int(self._rows(f"SELECT count(*) FROM photos WHERE {where}", params)[0][0])

    def count_photos_matching(self, where: str, params: tuple = (), with_paths: bool = True) -> int:
        """How many photos :meth:`photo_ids_where` would return (counted in SQL, no id read)."""
        sql = ("SELECT count(*) FROM photos p LEFT OUTER JOIN photo_metadata m ON m.photo_id = p.id" if with_paths
               else "SELECT count(*) FROM photo_metadata m")
        return int(self._rows(f"{sql} WHERE {where}", params)[0][0])

    def photo_ids_among(self, ids, where: str, params: tuple = (), with_paths: bool = True) -> np.ndarray:
        """(m,) int64 sorted: those of the photo ids ``ids`` that satisfy ``where`` (as in :meth:`photo_ids_where`;
        a primary-key lookup each, whatever the filter's breadth)."""
        ids = [int(i) for i in ids]
        col = "p.id" if with_paths else "m.photo_id"
        sql = ("SELECT p.id FROM photos p LEFT OUTER JOIN photo_metadata m ON m.photo_id = p.id" if with_paths
               else "SELECT m.photo_id FROM photo_metadata m")
        out = []
        for b in range(0, len(ids), _IN_CHUNK):
            part = ids[b : b + _IN_CHUNK]
            out += [r[0] for r in self._rows(f"{sql} WHERE {col} IN ({','.join('?' * len(part))}) AND ({where})",
                                             (*part, *params))]
        return np.sort(np.array(out, np.int64))

    def photo_ids_where(self, where: str, params: tuple = (), with_paths: bool = True) -> np.ndarray:
        """(m,) int64 sorted ids of the photos satisfying ``where`` (``?`` placeholders) over ``photos p``
        left-joined to ``photo_metadata m`` (see :meth:`retrieval.query.filters.Filters.sql`).
        ``with_paths=False``: ``where`` names only ``m``'s columns, and only that table is read
        (its date index covers a date filter: 5x faster than the join at 50,000 matches)."""
        sql = ("SELECT p.id FROM photos p LEFT OUTER JOIN photo_metadata m ON m.photo_id = p.id" if with_paths
               else "SELECT m.photo_id FROM photo_metadata m")
        rows = self._rows(f"{sql} WHERE {where}", params)
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        ids.sort()
        return ids

    def photo_metadata(self, ids) -> dict[int, dict]:
        """{photo id: {taken, taken_source, place, camera_make, camera_model, lens, latitude, longitude}}
        for the photos of these ids that have a metadata row."""
        ids = [int(i) for i in ids]
        keys = ("taken", "taken_source", "place", "camera_make", "camera_model", "lens", "latitude", "longitude")
        out = {}
        for b in range(0, len(ids), _IN_CHUNK):
            part = ids[b : b + _IN_CHUNK]
            for r in self._rows(f"SELECT photo_id, {', '.join(keys)} FROM photo_metadata WHERE photo_id IN "
                                f"({','.join('?' * len(part))})", tuple(part)):
                out[int(r[0])] = dict(zip(keys, r[1:]))
        return out

    def text_contains(self, word: str) -> bool:
        """Whether any indexed text (caption, generated caption, text read in a photo) contains ``word``
        (case-insensitive for ASCII letters; a scan of the texts, stopped at the first match)."""
        pattern = "%" + word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return bool(self._rows("SELECT 1 FROM texts WHERE lower(text) LIKE ? ESCAPE '\\' LIMIT 1", (pattern,)))

    def place_names(self) -> set[str]:
        """Every place name (city, region, country, country code) of the indexed photos, case-folded."""
        names = set()
        for (key,) in self._rows("SELECT DISTINCT place_key FROM photo_metadata WHERE place_key IS NOT NULL"):
            names.update(n for n in key.split("|") if n)
        return names

    def faiss_path(self, table: str) -> Path:
        return faiss_file(self.root, table)

    def iter_vectors(self, table: str, chunk: int = ann.CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (ids (m,) int64, vectors (m, D) float32) of ``table`` in id order, ``chunk`` rows at a time
        (keyset pagination: memory is one chunk)."""
        assert table in TABLES
        dim = self.dim() or 0
        last = -(2 ** 62)
        while True:
            rows = self._rows(f"SELECT id, vector FROM {table} WHERE id > ? ORDER BY id LIMIT ?", (last, chunk))
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), dim)
            yield ids, vecs
            last = int(ids[-1])
            if len(rows) < chunk:
                return

    def vectors_for(self, table: str, ids) -> tuple[np.ndarray, np.ndarray]:
        """(ids (m,) int64, vectors (m, D) float32) of the rows of ``table`` with these ids (missing ones left out)."""
        assert table in TABLES
        ids = [int(i) for i in ids]
        dim = self.dim() or 0
        rows = []
        for b in range(0, len(ids), _IN_CHUNK):
            part = ids[b : b + _IN_CHUNK]
            rows += self._rows(f"SELECT id, vector FROM {table} WHERE id IN ({','.join('?' * len(part))})",
                               tuple(part))
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        return (np.fromiter((r[0] for r in rows), np.int64, len(rows)),
                np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), dim))

    def photo_rows(self, ids) -> dict[int, tuple[str, str | None]]:
        """{photo id: (path, generated caption or None)} for these ids."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        q = ",".join("?" * len(ids))
        paths = dict(self._rows(f"SELECT id, path FROM photos WHERE id IN ({q})", tuple(ids)))
        gen = dict(self._rows(f"SELECT photo_id, text FROM texts WHERE photo_id IN ({q}) AND source = 'generated'",
                              tuple(ids)))
        return {i: (from_db(p), gen.get(i)) for i, p in paths.items()}

    def text_rows(self, ids) -> dict[int, tuple[str, str, str | None, int | None]]:
        """{text id: (text, source, its photo's path or None, its photo's id or None)} for these ids."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        q = ",".join("?" * len(ids))
        return {i: (t, s, from_db(p), pid) for i, t, s, p, pid in self._rows(
            f"SELECT texts.id, texts.text, texts.source, photos.path, texts.photo_id FROM texts LEFT OUTER JOIN "
            f"photos ON photos.id = texts.photo_id WHERE texts.id IN ({q})", tuple(ids))}

    def photo_record(self, photo_id: int) -> dict | None:
        """One photo's row as a dict (``id``, ``path``, ``width``, ``height`` in px, ``size`` in bytes,
        ``mtime``, ``hash``, ``indexed_at``, ``vector`` as (D,) float32), or None when there is none."""
        rows = self._rows("SELECT id, path, width, height, size, mtime, hash, indexed_at, vector FROM photos "
                          "WHERE id = ?", (int(photo_id),))
        if not rows:
            return None
        keys = ("id", "path", "width", "height", "size", "mtime", "hash", "indexed_at")
        rec = dict(zip(keys, rows[0][:8]))
        rec["path"] = from_db(rec["path"])
        rec["vector"] = np.frombuffer(bytes(rows[0][8]), np.float32)
        return rec

    def photo_fingerprints(self) -> dict[int, tuple[str, int, int, str | None]]:
        """{photo id: (path, pixels (width x height), file size in bytes, perceptual hash or None)} of every
        photo (the hash: 16 hex digits, ``""`` when it could not be computed, None when not computed yet)."""
        return {i: (from_db(p), int(w or 0) * int(h or 0), int(sz or 0), ph) for i, p, w, h, sz, ph in self._rows(
            "SELECT id, path, width, height, size, phash FROM photos")}

    def ocr_matching(self, words: list[str], limit: int = 200) -> list[tuple[int, str]]:
        """(photo id, recognised text) of up to ``limit`` photos whose recognised text (OCR) holds any of
        ``words`` (3 letters or more; found inside longer words too, any case: SQLite FTS5 with trigram
        tokens, best BM25 first; on other databases ``ILIKE``)."""
        words = [w for w in words if len(w) >= 3]
        if not words:
            return []
        if getattr(self, "is_sqlite", True):
            match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
            return [tuple(r) for r in self._rows(
                "SELECT ocr_texts.photo_id, ocr_texts.text FROM ocr_fts JOIN ocr_texts ON ocr_texts.photo_id = "
                "ocr_fts.rowid WHERE ocr_fts MATCH ? ORDER BY bm25(ocr_fts) LIMIT ?", (match, int(limit)))]
        likes = ["%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for w in words]
        return [tuple(r) for r in self._rows(
            "SELECT photo_id, text FROM ocr_texts WHERE " + " OR ".join(["text ILIKE ?"] * len(likes))
            + " ORDER BY photo_id LIMIT ?", (*likes, int(limit)))]

    def ocr_text(self, photo_id: int) -> str | None:
        """The text recognised in one photo (``""``: none found), or None when OCR has not read it."""
        rows = self._rows("SELECT text FROM ocr_texts WHERE photo_id = ? AND engine != 'skipped'", (int(photo_id),))
        return rows[0][0] if rows else None

    def ocr_progress(self) -> dict:
        """How far the OCR pass has got: ``considered`` (photos with an ``ocr_texts`` row), ``skipped`` (by the
        gate), ``read`` (by the engine) and ``with_text`` (read, and text found)."""
        considered, skipped, with_text = self._rows(
            "SELECT count(*), coalesce(sum(CASE WHEN engine = 'skipped' THEN 1 ELSE 0 END), 0), "
            "coalesce(sum(CASE WHEN engine != 'skipped' AND text != '' THEN 1 ELSE 0 END), 0) FROM ocr_texts")[0]
        return {"considered": int(considered), "skipped": int(skipped), "read": int(considered) - int(skipped),
                "with_text": int(with_text)}

    def count_concepts(self) -> int:
        """How many photos have their concepts (:mod:`retrieval.concepts`)."""
        return int(self._rows("SELECT count(*) FROM concepts")[0][0])

    def count_generated(self) -> int:
        """How many photos have a generated caption (:mod:`retrieval.indexing.caption_pass`)."""
        return int(self._rows("SELECT count(DISTINCT photo_id) FROM texts WHERE source = 'generated'")[0][0])

    def count_objects(self) -> int:
        """How many photos have been through the COCO detector (:mod:`retrieval.detection`)."""
        return int(self._rows("SELECT count(*) FROM objects")[0][0])

    def object_rows(self, ids=None) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """The stored detections of these photos (None: all), ascending by photo id: (photo id,
        (k,) int16 COCO classes, (k,) float32 best scores, (k,) int16 counts); k = 0 when the
        detector found nothing."""
        sql = "SELECT photo_id, classes, scores, counts FROM objects"
        if ids is None:
            rows = self._rows(sql + " ORDER BY photo_id")
        else:
            ids, rows = sorted(int(i) for i in ids), []
            for b in range(0, len(ids), _IN_CHUNK):
                part = ids[b : b + _IN_CHUNK]
                rows += self._rows(sql + f" WHERE photo_id IN ({','.join('?' * len(part))}) ORDER BY photo_id",
                                   tuple(part))
        return [(int(r[0]), np.frombuffer(bytes(r[1]), np.int16), np.frombuffer(bytes(r[2]), np.float16).astype(np.float32),
                 np.frombuffer(bytes(r[3]), np.uint8).astype(np.int16)) for r in rows]

    def photo_id(self, path: str) -> int | None:
        """The id of the photo indexed at this absolute path, or None."""
        rows = self._rows("SELECT id FROM photos WHERE path = ?", (str(path),))
        return int(rows[0][0]) if rows else None

    def concept_rows(self, ids=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stored concepts (:mod:`retrieval.concepts.scoring`) of these photos (None: all):
        (photo ids (m,) int64 ascending, classes (m, k) int16, posteriors (m, k) float32)."""
        if ids is None:
            rows = self._rows("SELECT photo_id, classes, probs FROM concepts ORDER BY photo_id")
        else:
            ids, rows = sorted(int(i) for i in ids), []
            for b in range(0, len(ids), _IN_CHUNK):
                part = ids[b : b + _IN_CHUNK]
                rows += self._rows(f"SELECT photo_id, classes, probs FROM concepts WHERE photo_id IN "
                                   f"({','.join('?' * len(part))}) ORDER BY photo_id", tuple(part))
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.int16), np.zeros((0, 0), np.float32)
        k = len(rows[0][1]) // 2
        ids, classes, probs = zip(*rows)  # columns, without a Python loop per row
        return (np.array(ids, np.int64), np.frombuffer(b"".join(classes), np.int16).reshape(len(rows), k),
                np.frombuffer(b"".join(probs), np.float16).reshape(len(rows), k).astype(np.float32))

    def generated_vectors(self, photo_ids) -> dict[int, np.ndarray]:
        """{photo id: (D,) float32 aligned embedding of its generated caption} for those that have one."""
        ids, out = [int(i) for i in photo_ids], {}
        for b in range(0, len(ids), _IN_CHUNK):
            part = ids[b : b + _IN_CHUNK]
            for pid, v in self._rows(f"SELECT photo_id, vector FROM texts WHERE source = 'generated' AND photo_id "
                                     f"IN ({','.join('?' * len(part))})", tuple(part)):
                out[int(pid)] = np.frombuffer(bytes(v), np.float32)
        return out

    def photo_texts(self, photo_id: int) -> list[tuple[int, str, str]]:
        """(text id, text, source) of every text of one photo, in id order."""
        return [tuple(r) for r in self._rows("SELECT id, text, source FROM texts WHERE photo_id = ? ORDER BY id",
                                             (int(photo_id),))]


class SqliteReader(Queries):
    """A read-only view of an SQLite index through the standard library's ``sqlite3``.

    Use :func:`open_sqlite_reader`, which returns None when anything is unusual (the caller
    then opens a :class:`retrieval.store.database.Store`, whose checks and messages apply).
    """

    def __init__(self, root: Path, db_path: Path, conn: sqlite3.Connection):
        import threading

        self.root, self.db_path, self.conn = Path(root), Path(db_path), conn
        self.where = str(db_path)
        self._lock = threading.Lock()  # one connection, shared by the threads of `retr serve`

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self.conn.close()


def open_sqlite_reader(root: str | Path, db_path: str | Path | None = None) -> SqliteReader | None:
    """A :class:`SqliteReader` on ``db_path`` (default ``root/retr.sqlite``) when it is a retr index of
    this format and schema revision; None otherwise (missing, corrupt, older or newer: the
    full :class:`retrieval.store.database.Store` then migrates it or says what is wrong)."""
    root = Path(root)
    db_path = Path(db_path) if db_path is not None else root / DB_NAME
    if not db_path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"photos", "texts", "meta", "alembic_version"} <= tables:
            raise sqlite3.DatabaseError("incomplete")
        fmt = conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
        rev = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if fmt is None or fmt[0] != str(FORMAT_VERSION) or rev is None or rev[0] != SCHEMA_REVISION:
            raise sqlite3.DatabaseError("other version")
    except sqlite3.Error:
        conn.close()
        return None
    return SqliteReader(root, db_path, conn)
