"""Build and update an index: files -> decode -> encode -> store.

Incremental: a second run embeds only new or changed files, re-finds moved
files by content hash without re-embedding, and removes photos that are gone.
Each batch is committed to SQLite as it finishes (a checkpoint), so an
interrupted run keeps the photos it finished and the next run resumes.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from sqlalchemy import delete, select

from retrieval.store import ann
from retrieval.io.decode import DEFAULT_MAX_MEGAPIXELS, load_image
from retrieval.errors import DecodeError
from retrieval.indexing.plan import Plan, Todo, is_under, plan
from retrieval.indexing.trace import phase
from retrieval.io.files import FileInfo, content_hash, walk_images
from retrieval.indexing.fingerprints import fill_perceptual_hashes, hash_or_blank
from retrieval.store.faiss_file import check_encoder, faiss_is_current
from retrieval.store.folders import FOLDERS_KEY, with_folder
from retrieval.indexing.metadata import add_missing_metadata
from retrieval.store.layout import DB_NAME, LOCK_NAME, VECTOR_TABLES, faiss_file
from retrieval.store.database import (Concept, DetectedObjects, OcrText, Photo, PhotoInfo, Store, TextRow, Tombstone,
                                      drop_index_tables, now_iso,
                                      resolve_db_url, sqlite_file)
from retrieval.errors import IndexingError, StoreError


#: photos captioned together by :meth:`retrieval.captioning.model.Captioner.beam_search_batch` at index
#: time (and per commit): the batched beam search costs 22 CPU ms a photo in groups of 32, 10 in
#: 128, 6 in 512 (2 cores)
CAPTION_BATCH = 512
#: a run that would remove more than this many photos of a root, and more than half of them, needs ``prune``
PRUNE_GUARD_MIN = 20


@dataclass
class IndexReport:
    """What one ``retr index`` run did (counts of photos)."""

    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    restored: int = 0
    failed: int = 0
    #: image files found under the root (0: nothing to index there)
    found: int = 0
    captions: int = 0
    generated: int = 0
    concepts: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def indexed(self) -> int:
        """Photos in the index from this folder after the run."""
        return self.added + self.updated + self.moved + self.unchanged + self.restored

    def fail(self, path: str, reason: str, on_error: Callable[[str, str], None] | None = None) -> None:
        """Count ``path`` as failed for ``reason`` (one line), and tell ``on_error(path, reason)``."""
        self.failed += 1
        self.failures.append((path, reason))
        if on_error:
            on_error(path, reason)

    def changed(self) -> bool:
        """Whether the run changed any photo or text of the index."""
        return bool(self.added or self.updated or self.moved or self.removed or self.restored or self.captions
                    or self.generated)

    def summary(self) -> str:
        return (f"added {self.added}, updated {self.updated}, moved {self.moved}, removed {self.removed}, "
                f"unchanged {self.unchanged}, failed {self.failed}"
                + (f", restored {self.restored} (removed earlier, same content: not embedded again)"
                   if self.restored else ""))


@dataclass
class Embedded:
    """What embedding one :class:`Todo` gave: a vector, or the reason it has none.

    Attributes:
        todo: the photo.
        hash: content hash (None only when the file could not be read).
        width, height: upright size in pixels before any reduction (0 on failure).
        vector: (D,) float32, L2-normalised; None on failure.
        phash: perceptual hash, 16 hex digits (:func:`retrieval.io.phash.perceptual_hash`); None when not computed.
        error: one line saying why the photo could not be embedded; None on success.
        concepts: (1000,) float32 ImageNet posteriors when the encoder gives them
            (``encode_images_and_concepts``), else None.
    """

    todo: Todo
    hash: str | None = None
    width: int = 0
    height: int = 0
    vector: np.ndarray | None = None
    error: str | None = None
    phash: str | None = None
    concepts: np.ndarray | None = None


#: ``embed(todo) -> iterable of batches``: embeds the photos of ``todo`` and yields lists of
#: :class:`Embedded` (every item of ``todo`` exactly once); each list is committed as one batch.
Embedder = Callable[[list[Todo]], Iterable[list[Embedded]]]


def embed_locally(todo: list[Todo], encoder, *, batch_size: int = 32, workers: int = 2,
                  max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> Iterator[list[Embedded]]:
    """Embed photos in this process: ``workers`` threads hash and decode while the encoder runs.

    Args:
        todo: photos to embed; a missing ``hash`` is computed from the file.
        encoder: its ``encode_images(list of RGB PIL images) -> (N, D) float32``.
        batch_size: photos per encoder batch (and per yielded list).
        workers: hashing and decoding threads.
        max_megapixels: larger images are refused (an :class:`Embedded` with ``error``).

    Yields:
        one list of :class:`Embedded` per batch of ``todo``, in order. A file that cannot be
        read or decoded, or a batch the encoder fails on, gives items with ``error`` set.

    When ``encoder.concurrent_images`` is true (ONNX Runtime, one thread per call), each worker
    also embeds the batch it decoded, so ``workers`` cores each hash, decode and embed at once;
    otherwise (torch, whose own threads use every core) this thread embeds while the workers
    decode the next batches.
    """
    in_workers = bool(getattr(encoder, "concurrent_images", False))
    with_concepts = hasattr(encoder, "encode_images_and_concepts")

    def encode(decoded: list) -> list:
        ok = [(e, im) for e, im in decoded if im is not None]
        if ok:
            phase("embed")
            try:
                if with_concepts:
                    vecs, probs = encoder.encode_images_and_concepts([im for _, im in ok])
                else:
                    vecs, probs = encoder.encode_images([im for _, im in ok]), [None] * len(ok)
            except Exception as ex:  # noqa: BLE001 - one bad batch is reported, the run goes on
                for e, _ in ok:
                    e.error = f"could not be embedded ({ex.__class__.__name__}: {ex})"
            else:
                for (e, _), v, p in zip(ok, vecs, probs):
                    e.vector = np.ascontiguousarray(v, np.float32)
                    e.concepts = p
        return [e for e, _ in decoded]

    def work(batch: list[Todo]) -> list:
        phase("decode")
        decoded = [decode(t) for t in batch]
        return encode(decoded) if in_workers else decoded

    def decode(t: Todo) -> tuple[Embedded, object]:
        try:
            h = t.hash or content_hash(t.file.path)
        except OSError as e:
            return Embedded(t, error=f"cannot read file ({e.strerror or e})"), None
        try:
            im = load_image(t.file.path, max_megapixels=max_megapixels, draft_size=(320, 320))
        except DecodeError as e:
            return Embedded(t, hash=h, error=e.reason), None
        w, hh = im.info.get("original_size", im.size)
        return Embedded(t, hash=h, width=w, height=hh, phash=hash_or_blank(im)), im

    with ThreadPoolExecutor(max(1, workers)) as pool:
        # Decoding runs ahead of the encoder by at most workers + 1 batches: memory stays
        # bounded whatever the library size (Executor.map would decode every photo up front
        # when decoding outpaces the encoder: +250 MB per 1,000 photos, measured).
        batches = iter([todo[i : i + batch_size] for i in range(0, len(todo), batch_size)])
        ahead: deque = deque()

        def submit() -> None:
            b = next(batches, None)
            if b is not None:
                ahead.append(pool.submit(work, b))

        for _ in range(max(1, workers) + 1):
            submit()
        while ahead:
            done = ahead.popleft().result()
            submit()
            yield done if in_workers else encode(done)


def _remove_index_files(index_dir: Path, db_url: str | None = None) -> None:
    """Delete the index: its FAISS files, and its database (the SQLite file, or retr's
    tables in the database at ``db_url``)."""
    db_url = resolve_db_url(db_url)
    db_file = index_dir / DB_NAME if db_url is None else sqlite_file(db_url)
    if db_url is not None and db_file is None:
        drop_index_tables(db_url)  # a server database: retr's tables, never files
    paths = [faiss_file(index_dir, t) for t in VECTOR_TABLES]
    if db_file is not None:
        paths += [db_file, db_file.with_name(db_file.name + "-wal"), db_file.with_name(db_file.name + "-shm")]
    for p in paths:
        if p.exists():
            p.unlink()


def open_for_write(index_dir: Path, encoder, rebuild: bool = False, db_url: str | None = None) -> Store:
    """Open (or create) the index at ``index_dir`` for ``encoder``.

    ``db_url``: the database holding the index (see :class:`retrieval.store.database.Store`);
    ``rebuild`` deletes the index first (for a server database: retr's tables in it).

    Raises:
        StoreError: the index was built by another encoder (and not ``rebuild``),
            or is corrupt.
    """
    if rebuild:
        _remove_index_files(index_dir, db_url)
    store = Store(index_dir, create=True, db_url=db_url)
    have = store.get_meta("encoder_id")
    try:
        check_encoder(have, encoder.id, index_dir)
    except StoreError:
        store.close()
        raise
    if have is None:
        with store.session() as s:
            store.set_meta(s, "encoder_id", encoder.id)
            store.set_meta(s, "encoder_spec", getattr(encoder, "spec", None) or "default")
            store.set_meta(s, "dim", str(encoder.dim))
            s.commit()
    return store


def index_folder(
    root: str | Path, index_dir: str | Path, *, encoder=None, captions_file: str | Path | None = None,
    captioner=None, rebuild: bool = False, batch_size: int = 32, workers: int = 2,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS, include_hidden: bool = False, exclude: tuple[str, ...] = (),
    export_query_path: bool = True, on_error: Callable[[str, str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None, db_url: str | None = None,
    embed: Embedder | None = None, defer_hashes: bool = False, index_type: str | None = None, prune: bool = False,
) -> IndexReport:
    """Index every image under ``root`` (a folder, or one image file) into the index at ``index_dir``
    (created if missing; never indexed itself), incrementally (see :func:`retrieval.indexing.plan.plan`).
    Every photo gets its ImageNet concepts (those indexed before the concept channel on the next run,
    without re-embedding: :func:`add_missing_concepts`).

    Args:
        encoder: an :class:`retrieval.encoders.base.Encoder` (default: the shipped one).
        captions_file: COCO-captions JSON, ``file_name`` relative to ``root``: its captions are indexed.
        captioner: a :class:`retrieval.captioning.model.Captioner`: every photo under ``root`` without a
            generated caption (new, changed, or indexed earlier without one) gets one, indexed as a text.
        rebuild: delete the existing index first.
        batch_size: photos per encoder batch (and per checkpoint commit).
        workers: threads hashing, decoding (and, for ``concurrent_images`` encoders, embedding) batches.
        max_megapixels, include_hidden, exclude: larger images are refused (reported as failed); also index
            hidden files; glob patterns of names or root-relative paths to skip.
        export_query_path: export the encoder to ONNX first (once per encoder; fast embedding, torch-free search).
        on_error, on_progress: ``on_error(path, reason)`` for each file not indexed; ``on_progress(done,
            total)`` over the files to embed.
        db_url: SQLAlchemy URL of the database for the index's tables (one database holds one index);
            None: ``$RETR_DB`` if set, else ``index_dir/retr.sqlite``. FAISS files stay in ``index_dir``.
        embed: the embedding step (:data:`Embedder`); default :func:`embed_locally` with ``encoder``,
            ``batch_size``, ``workers``, ``max_megapixels`` (:func:`retrieval.indexing.distributed.embed_on_ray`
            embeds on a Ray cluster).
        defer_hashes: leave hashing a new file to ``embed`` when no photo is gone (a first run reads each
            file once, where it is embedded); changed files and possible moves are still hashed here.
        index_type: ``auto``, ``flat``, ``hnsw`` or ``ivf`` (:mod:`retrieval.store.ann`), recorded in the
            index; None keeps the recorded one. A change rebuilds the FAISS files, which are also rewritten
            when photos or texts changed, or when they are missing or damaged.
        prune: remove gone photos even where :func:`check_removals` stops the run (kept 30 days as tombstones).

    Returns:
        :class:`IndexReport`.

    Raises:
        IndexingError: no ``root``, another run holds the lock, ``prune`` needed, a captioner of another encoder.
        StoreError: incompatible or corrupt index (message says how to rebuild).
        IndexTypeError: ``index_type`` is not one of :data:`retrieval.store.ann.INDEX_TYPES`.
        KeyboardInterrupt: passed on after the finished batches are committed.
    """
    if index_type is not None:
        ann.check_type(index_type)
    root = os.path.abspath(root)
    if not os.path.exists(root):
        raise IndexingError(f"{root}: no such file or folder")
    index_dir = Path(index_dir).absolute()
    index_dir.mkdir(parents=True, exist_ok=True)
    report = IndexReport()
    fail = partial(report.fail, on_error=on_error)
    with writer_lock(index_dir):
        if encoder is None:
            from retrieval.encoders.base import load_encoder

            encoder = load_encoder()
        _check_captioner(captioner, encoder)
        store = open_for_write(index_dir, encoder, rebuild, db_url=db_url)
        try:
            was_clean, type_changed = store.get_meta("dirty") == "0", _record_index_type(store, index_type)
            if export_query_path:
                _export_fast_path(encoder)
            found = list(walk_images(root, skip_dirs=(index_dir,), include_hidden=include_hidden,
                                     exclude=tuple(exclude), on_error=fail))
            todo = _apply_plan(store, _checked_plan(store, found, root, defer_hashes, prune), report, fail)
            embed = embed or (lambda items: embed_locally(items, encoder, batch_size=batch_size, workers=workers,
                                                          max_megapixels=max_megapixels))
            _embed_and_store(store, todo, embed, report, fail, on_progress, root, encoder)
            fill_perceptual_hashes(store, root, workers=workers, max_megapixels=max_megapixels)
            _enrich(store, encoder, root, embed, report, fail, captioner, captions_file, batch_size, on_error)
            _save_search_files(store, type_changed or not was_clean or report.changed(), root)
            return report
        finally:
            store.close()


@contextmanager
def writer_lock(index_dir: Path, wait: float = 0.0):
    """Hold the index's writer lock (``.lock``) for the block, waiting up to ``wait`` seconds for it.

    Raises:
        IndexingError: another ``retr index`` holds it (still, after ``wait`` seconds)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(index_dir / LOCK_NAME))
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise IndexingError(f"{index_dir}: another `retr index` is writing this index") from None
    try:
        yield
    finally:
        lock.release()


def _record_index_type(store: Store, index_type: str | None) -> bool:
    """Record ``index_type`` in the index when it is another than the recorded one; returns whether it changed."""
    if index_type is None or store.index_type() == index_type:
        return False
    with store.session() as s:
        store.set_meta(s, "index_type", index_type)
        s.commit()
    return True


def _indexed_photos(store: Store) -> dict:
    """{path: row (id, path, size, mtime, hash)} of every photo in the index."""
    with store.session() as s:
        return {r.path: r for r in s.execute(select(Photo.id, Photo.path, Photo.size, Photo.mtime, Photo.ctime,
                                                    Photo.inode, Photo.hash)).all()}


def _apply_plan(store: Store, p: Plan, report: IndexReport, fail: Callable[[str, str], None]) -> list[Todo]:
    """Mark the index dirty, then carry out ``p``'s touches, moves and removals in one commit;
    returns the photos left to embed."""
    for path, reason in p.failures:
        fail(path, reason)
    report.unchanged += p.unchanged
    report.found = p.found
    with store.session() as s:
        store.set_meta(s, "dirty", "1")
        for rid, f in p.touch:
            row = s.get(Photo, rid)
            row.mtime, row.ctime, row.inode = f.mtime, f.ctime, f.inode
        for rid, f in p.moves:
            row = s.get(Photo, rid)
            row.path, row.size, row.mtime, row.ctime, row.inode = f.path, f.size, f.mtime, f.ctime, f.inode
            report.moved += 1
        if p.gone:
            store.delete_photos(s, [r.id for r in p.gone])
            report.removed += len(p.gone)
        report.restored += _restore(s, p.back)
        s.commit()
    return p.todo


def _checked_plan(store: Store, found: list, root: str, defer_hashes: bool, prune: bool) -> Plan:
    """:func:`retrieval.indexing.plan.plan` of the index's photos and tombstones against ``found``; unless
    ``prune``, refused by :func:`check_removals` (after moves were found: a renamed folder is no removal)."""
    existing = _indexed_photos(store)
    p = plan(existing, found, root, defer_hashes=defer_hashes, tombstones=_tombstones(store))
    if not prune:
        check_removals(root, len(p.gone), sum(is_under(x, root) for x in existing))
    return p


def _tombstones(store: Store) -> dict[str, int]:
    """Drop the tombstones past their days; {content hash: tombstone id} of the others (newest wins)."""
    with store.session() as s:
        store.expire_tombstones(s)
        s.commit()
        return {h: i for i, h in s.execute(select(Tombstone.id, Tombstone.hash).order_by(Tombstone.id)).all()}


def check_removals(root: str, n_gone: int, n_under: int) -> None:
    """Refuse a run that would remove all of the ``n_under`` photos indexed under ``root``, or more
    than half of them when that is more than :data:`PRUNE_GUARD_MIN` (``prune`` of :func:`index_folder`).

    Raises:
        IndexingError: one line saying why, and that ``--prune`` removes them.
    """
    if n_gone == 0:
        return
    if n_gone == n_under:
        why = f"all {n_under} photo(s) indexed under it are gone (an unmounted disk or a failed sync?)"
    elif n_gone > PRUNE_GUARD_MIN and 2 * n_gone > n_under:
        why = f"{n_gone} of the {n_under} photos indexed under it are gone"
    else:
        return
    raise IndexingError(f"{root}: {why}; nothing was removed; if they were deleted on purpose, "
                        f"run again with --prune to remove them from the index")


def _restore(s, back: list) -> int:
    """Bring photos back from their tombstones (vector and generated caption, no embedding)."""
    for tid, f, h in back:
        t = s.get(Tombstone, tid)
        photo = Photo(path=f.path, size=f.size, mtime=f.mtime, ctime=f.ctime, inode=f.inode, hash=h,
                      width=t.width, height=t.height,
                      indexed_at=now_iso(), vector=t.vector)
        s.add(photo)
        s.flush()
        if t.caption is not None and t.caption_vector is not None:
            s.add(TextRow(photo_id=photo.id, text=t.caption, source="generated", vector=t.caption_vector))
        s.delete(t)
    return len(back)


def _embed_and_store(store: Store, todo: list[Todo], embed: Embedder, report: IndexReport,
                     fail: Callable[[str, str], None], on_progress: Callable[[int, int], None] | None,
                     root: str, encoder=None) -> None:
    """Embed ``todo`` batch by batch, committing each batch as it comes (a checkpoint); then read the
    metadata (EXIF) of the photos under ``root`` that have none (:mod:`retrieval.indexing.metadata`); when
    photos were embedded, record the precision ``encoder`` embeds them in (:func:`_record_precision`)."""
    done = 0
    if on_progress:
        on_progress(0, len(todo))
    for batch in embed(todo):
        _store_embedded(store, batch, report, fail)
        done += len(batch)
        if on_progress:
            on_progress(done, len(todo))
    add_missing_metadata(store, root)
    if report.added or report.updated:
        _record_precision(store, encoder)


def _record_precision(store: Store, encoder) -> None:
    """Record in meta ``image_precision`` the precision this run embedded photos in (``fp32``, or
    ``int8`` and its quantisation settings); runs of different precisions are all listed (`` + ``)."""
    now = getattr(encoder, "image_precision", None) or "fp32"
    have = store.get_meta("image_precision")
    value = now if not have or have == now else " + ".join(dict.fromkeys(have.split(" + ") + [now]))
    with store.session() as s:
        store.set_meta(s, "image_precision", value)
        s.commit()


def _save_search_files(store: Store, changed: bool, root: str) -> None:
    """Rewrite the FAISS files when anything changed (or one is not the one last written), record
    the run over ``root`` (:mod:`retrieval.store.folders`) and mark the index clean."""
    for table in VECTOR_TABLES:
        if changed or not faiss_is_current(store, table):
            phase("faiss")
            store.write_faiss(table)
    folders = with_folder(store, root, now_iso())
    with store.session() as s:
        store.set_meta(s, "dirty", "0")
        store.set_meta(s, "updated_at", now_iso())
        store.set_meta(s, FOLDERS_KEY, folders)
        s.commit()
    phase("done")


def _store_embedded(store: Store, batch: list[Embedded], report: IndexReport,
                    fail: Callable[[str, str], None]) -> None:
    """Write one batch of embedded photos (new rows, or updated rows whose generated caption is
    dropped) and commit it; report the failed ones through ``fail``."""
    ok = []
    for e in batch:
        if e.error is not None or e.vector is None:
            fail(e.todo.file.path, e.error or "not embedded")
        else:
            ok.append(e)
    if not ok:
        return
    with store.session() as s:
        rows = []
        for e in ok:
            f, rid = e.todo.file, e.todo.row_id
            vec = np.ascontiguousarray(e.vector, np.float32).tobytes()
            if rid is not None:
                row = s.get(Photo, rid)
                row.size, row.mtime, row.hash, row.width, row.height = f.size, f.mtime, e.hash, e.width, e.height
                row.ctime, row.inode = f.ctime, f.inode
                row.indexed_at, row.vector, row.phash = now_iso(), vec, e.phash
                s.execute(delete(TextRow).where(TextRow.photo_id == rid, TextRow.source == "generated"))
                s.execute(delete(PhotoInfo).where(PhotoInfo.photo_id == rid))  # read again: new content
                s.execute(delete(OcrText).where(OcrText.photo_id == rid))  # recognised again
                s.execute(delete(DetectedObjects).where(DetectedObjects.photo_id == rid))  # detected again
                report.updated += 1
            else:
                row = Photo(path=f.path, size=f.size, mtime=f.mtime, ctime=f.ctime, inode=f.inode, hash=e.hash,
                            width=e.width, height=e.height, indexed_at=now_iso(), vector=vec, phash=e.phash)
                s.add(row)
                report.added += 1
            rows.append((row, e.concepts))
        s.flush()  # new rows get their ids
        for row, probs in rows:
            if probs is not None:
                s.merge(concept_row(row.id, probs))
        phase("commit")
        s.commit()


def _enrich(store: Store, encoder, root: str, embed: Embedder, report: IndexReport, fail, captioner,
            captions_file, batch_size: int, on_error) -> None:
    """After embedding: concepts for photos without them, generated captions for photos without one
    (new, changed, and earlier --no-captions photos alike), and the captions file's texts."""
    report.concepts = add_missing_concepts(store, encoder, root, embed, fail)
    if captioner is not None:
        report.generated += _caption_uncaptioned(store, encoder, captioner, root, batch_size)
    if captions_file is not None:
        report.captions = _index_captions(store, encoder, root, captions_file, on_error)


def concept_row(photo_id: int, probs: np.ndarray) -> Concept:
    """The :class:`retrieval.store.database.Concept` row of a photo from its (1000,) ImageNet posteriors."""
    from retrieval.concepts.scoring import top_classes

    cls, p = top_classes(np.asarray(probs, np.float32)[None])
    return Concept(photo_id=int(photo_id), classes=cls[0].tobytes(), probs=p[0].astype(np.float16).tobytes())


def add_missing_concepts(store: Store, encoder, root: str, embed: Embedder, fail: Callable[[str, str], None]) -> int:
    """Concepts for photos under ``root`` that have none (indexed before the concept channel, or on a
    path without it): their files are decoded and run through the image model again; their vectors
    are left as they are (no re-embedding). Returns how many photos got concepts."""
    if not hasattr(encoder, "encode_images_and_concepts"):
        return 0
    with store.session() as s:
        have = select(Concept.photo_id)
        rows = [r for r in s.execute(select(Photo.id, Photo.path, Photo.size, Photo.mtime, Photo.hash)
                                     .where(Photo.id.not_in(have))).all() if is_under(r.path, root)]
    if not rows:
        return 0
    n = 0
    for batch in embed([Todo(FileInfo(r.path, r.size, r.mtime), r.hash, r.id) for r in rows]):
        with store.session() as s:
            for e in batch:
                if e.concepts is not None:
                    s.merge(concept_row(e.todo.row_id, e.concepts))
                    n += 1
                elif e.error:
                    fail(e.todo.file.path, f"no concepts ({e.error})")
            s.commit()
    return n


def uncaptioned_photos(store: Store, root: str) -> list[tuple[int, str, str]]:
    """(id, path, content hash) of the photos under ``root`` without a generated caption, by id."""
    with store.session() as s:
        have = select(TextRow.photo_id).where(TextRow.source == "generated", TextRow.photo_id.is_not(None))
        return [(i, p, h) for i, p, h in s.execute(select(Photo.id, Photo.path, Photo.hash)
                                                   .where(Photo.id.not_in(have)).order_by(Photo.id)).all()
                if is_under(p, root)]


def caption_inputs(store: Store, ids: list[int]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(the ids of ``ids`` still in the index, in that order; their (N, D) float32 stored vectors; their (N, 1000)
    float32 concept posteriors, from the stored concepts, zeros without them:
    :func:`retrieval.captioning.concept_words.stored_posteriors`)."""
    from retrieval.captioning.concept_words import stored_posteriors

    with store.session() as s:
        rows = {i: (v, c, p) for i, v, c, p in s.execute(
            select(Photo.id, Photo.vector, Concept.classes, Concept.probs)
            .outerjoin(Concept, Concept.photo_id == Photo.id).where(Photo.id.in_(list(ids)))).all()}
    kept = [i for i in ids if i in rows]
    vecs = [np.frombuffer(rows[i][0], np.float32) for i in kept]
    return (kept, np.stack(vecs) if kept else np.zeros((0, 0), np.float32),
            np.stack([stored_posteriors(*rows[i][1:]) for i in kept]) if kept else np.zeros((0, 1000), np.float32))


def _check_captioner(captioner, encoder) -> None:
    """Raise IndexingError when ``captioner`` reads another encoder's embeddings than ``encoder``'s."""
    if captioner is not None and getattr(captioner, "encoder_id", encoder.id) != encoder.id:
        raise IndexingError(f"the captioner was trained on encoder {captioner.encoder_id}, not {encoder.id}; "
                            "load_captioner(None, encoder.id, encoder=encoder) gives the one made for it")


def caption_photos(captioner, encoder, store: Store, photo_ids: list[int], vectors: np.ndarray,
                   concepts: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Generate the captions of indexed photos and embed them: the one place indexing calls the captioner.
    A pooled captioner decodes from the stored data alone (no decoding, no re-embedding); an attention
    captioner also reads the photos' spatial maps and stored objects
    (:func:`retrieval.indexing.region_captions.index_captions`).

    Args:
        captioner: a :class:`retrieval.captioning.model.Captioner` (or an attention captioner).
        encoder: the index's encoder (its ``encode_texts`` embeds the captions).
        store: the index (read only).
        photo_ids: the N photos' ids.
        vectors: (N, D) float32 stored image embeddings of the photos.
        concepts: (N, 1000) float32 ImageNet posteriors (the concept-word prior; zeros: none).

    Returns:
        (N captions, (N, D) float32 L2-normalised caption embeddings).
    """
    from retrieval.captioning.model import INDEX_BEAM
    from retrieval.indexing.region_captions import index_captions

    phase("caption")
    caps = index_captions(captioner, encoder, store, list(photo_ids), vectors, concepts, INDEX_BEAM)
    return caps, np.asarray(encoder.encode_texts(caps), np.float32)


def _caption_uncaptioned(store: Store, encoder, captioner, root: str, batch_size: int) -> int:
    """Generate captions for photos under ``root`` that have none (:func:`uncaptioned_photos`,
    :func:`caption_photos`) in this run; returns how many."""
    rows = uncaptioned_photos(store, root)
    n = 0
    step = max(batch_size, CAPTION_BATCH)
    for b in range(0, len(rows), step):
        chunk = rows[b : b + step]
        ids, vecs, posteriors = caption_inputs(store, [r[0] for r in chunk])  # none gone: the lock is held
        caps, cap_vecs = caption_photos(captioner, encoder, store, ids, vecs, posteriors)
        with store.session() as s:
            for (pid, *_), c, cv in zip(chunk, caps, cap_vecs):
                s.add(TextRow(photo_id=pid, text=c, source="generated",
                              vector=np.ascontiguousarray(cv, np.float32).tobytes()))
            phase("commit")
            s.commit()
        n += len(chunk)
    return n


def _export_fast_path(encoder) -> None:
    """Export the encoder to ONNX once per encoder id; a failure only costs speed."""
    import logging

    if not hasattr(encoder, "export_fast_path"):
        return
    try:
        encoder.export_fast_path()
    except Exception as e:  # noqa: BLE001
        logging.getLogger(__name__).warning("could not export the encoder to ONNX (%s); using torch", e)


def _index_captions(store: Store, encoder, root: str, captions_file, on_error) -> int:
    """Replace the captions-file texts of photos under ``root``; returns how many were indexed."""
    from retrieval.io.coco import load_coco_captions

    corpus = load_coco_captions(captions_file)
    base = root if os.path.isdir(root) else os.path.dirname(root)
    with store.session() as s:
        ids = {p: i for i, p in s.execute(select(Photo.id, Photo.path)).all() if is_under(p, root)}
        missing = set()
        pairs = []
        for c, pi in zip(corpus.captions, corpus.caption_photo):
            path = os.path.join(base, corpus.file_names[pi])
            pid = ids.get(path)
            if pid is None:
                missing.add(corpus.file_names[pi])
                continue
            pairs.append((pid, c))
        if missing and on_error:
            on_error(str(captions_file), f"{len(missing)} captioned photo(s) not in the index, e.g. "
                                         f"{sorted(missing)[0]!r}")
        vecs = encoder.encode_texts([c for _, c in pairs])
        if ids:
            idl = list(ids.values())
            for i in range(0, len(idl), 500):
                s.execute(delete(TextRow).where(TextRow.photo_id.in_(idl[i : i + 500]),
                                                TextRow.source == "captions"))
        for (pid, c), v in zip(pairs, vecs):
            s.add(TextRow(photo_id=pid, text=c, source="captions", vector=np.ascontiguousarray(v, np.float32).tobytes()))
        s.commit()
    return len(pairs)


__all__ = ["CAPTION_BATCH", "Embedded", "Embedder", "IndexReport", "caption_inputs", "caption_photos", "check_removals",
           "embed_locally", "index_folder", "open_for_write", "uncaptioned_photos"]
