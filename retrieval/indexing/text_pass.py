"""The OCR pass of ``retr index``: reads the text in indexed photos that have not been read yet
(new ones, changed ones, and photos indexed with ``--no-ocr``), after they are embedded and
searchable. It is an enrichment pass (:mod:`retrieval.indexing.enrich`): resumable, each batch
committed on its own under the writer lock, the reading done without it.

The gate (:class:`retrieval.ocr.gate.TextGate`) looks at each photo's stored embedding; only the
photos it passes are decoded again (at up to :data:`OCR_SIDE` px) and read by the engine
(:class:`retrieval.ocr.engine.OcrEngine`). Every photo considered gets an ``ocr_texts`` row (empty
text when nothing was read, engine ``"skipped"`` when the gate skipped it), so none is considered
twice; a photo whose content changes loses its row and is read again.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from sqlalchemy import select

from retrieval.errors import DecodeError
from retrieval.indexing.enrich import LOCK_WAIT, EnrichmentPass, run_pass
from retrieval.indexing.plan import is_under
from retrieval.io.decode import DEFAULT_MAX_MEGAPIXELS, load_image
from retrieval.store.database import OcrText, Photo, Store

#: photos read per commit
OCR_BATCH = 4
#: photos are decoded for OCR with their longer side reduced towards this many pixels (JPEG draft)
OCR_SIDE = 1600
#: ``engine`` of a photo the gate skipped
SKIPPED = "skipped"


@dataclass
class TextReport:
    """What one OCR pass did (counts of photos)."""

    read: int = 0
    with_text: int = 0
    skipped: int = 0
    failed: int = 0
    #: photos the gate passed, to be read in this pass
    to_read: int = 0


def unread_photos(store: Store, root: str, *, skipped_too: bool = False) -> list[tuple[int, str, str, np.ndarray]]:
    """(id, path, content hash, (D,) float32 vector) of the photos under ``root`` without an ``ocr_texts`` row
    (with ``skipped_too``, also those whose row says the gate skipped them)."""
    done = select(OcrText.photo_id)
    if skipped_too:
        done = done.where(OcrText.engine != SKIPPED)
    with store.session() as s:
        return [(i, p, h, np.frombuffer(v, np.float32)) for i, p, h, v in
                s.execute(select(Photo.id, Photo.path, Photo.hash, Photo.vector).where(Photo.id.not_in(done))
                          .order_by(Photo.id)).all()
                if is_under(p, root)]


def text_pass(root: str, engine, gate, *, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
              on_error: Callable[[str, str], None] | None = None,
              report: TextReport | None = None) -> EnrichmentPass:
    """The OCR :class:`~retrieval.indexing.enrich.EnrichmentPass` over the unread photos under ``root``.

    Its items are ``(photo id, path, content hash, gate passed)``: one first batch of the photos the
    gate skips (stored as skipped, nothing decoded), then batches of :data:`OCR_BATCH` photos to read.

    Args:
        root: absolute folder (or file) the photos are under.
        engine: ``engine.recognise(PIL image) -> str`` and ``engine.name``.
        gate: ``gate.passes((N, D) vectors) -> (N,) bool``.
        on_error: ``(path, reason)`` for a photo that no longer decodes.
        report: counts to add to (a new :class:`TextReport` when None).
    """
    rep = report if report is not None else TextReport()

    read_all = getattr(gate, "threshold", 0) is None  # --ocr-all: also the photos an earlier gate skipped

    def pending(store: Store) -> list[list]:
        rows = unread_photos(store, root, skipped_too=read_all)
        if not rows:
            return []
        keep = gate.passes(np.stack([v for *_, v in rows]))
        items = [(pid, path, h, bool(k)) for (pid, path, h, _), k in zip(rows, keep)]
        todo = [it for it in items if it[3]]
        return [[it for it in items if not it[3]]] + [todo[b : b + OCR_BATCH] for b in range(0, len(todo), OCR_BATCH)]

    def work(batch: list) -> list:
        rep.skipped += sum(not it[3] for it in batch)
        return [_read(path, engine, max_megapixels, rep, on_error) if passed else "" for _, path, _, passed in batch]

    def save(store: Store, batch: list, texts: list) -> int:
        ids = [it[0] for it in batch]
        with store.session() as s:
            current = dict(s.execute(select(Photo.id, Photo.hash).where(Photo.id.in_(ids))).all())
            done = {r.photo_id: r for r in s.scalars(select(OcrText).where(OcrText.photo_id.in_(ids)))}
            n = 0
            for (pid, _, h, passed), text in zip(batch, texts):
                if text is None or current.get(pid) != h:  # gone or changed
                    continue
                row = done.get(pid)
                if row is None:
                    s.add(OcrText(photo_id=pid, text=text, engine=engine.name if passed else SKIPPED))
                elif passed and row.engine == SKIPPED:  # skipped by an earlier gate, read now (--ocr-all)
                    row.text, row.engine = text, engine.name
                else:  # read meanwhile
                    continue
                n += 1
            s.commit()
        return n

    return EnrichmentPass("text in photos", pending, work, save)


def _read(path: str, engine, max_megapixels: float, rep: TextReport, on_error) -> str | None:
    try:
        im = load_image(path, max_megapixels=max_megapixels, draft_size=(OCR_SIDE, OCR_SIDE))
    except DecodeError as e:
        rep.failed += 1
        if on_error:
            on_error(str(e.path), e.reason)
        return None
    text = engine.recognise(im)
    rep.read += 1
    rep.with_text += bool(text)
    return text


def read_text_in_folder(root: str | Path, index_dir: str | Path, engine, gate, *, db_url: str | None = None,
                        on_progress: Callable[[int, int], None] | None = None, lock_wait: float = LOCK_WAIT,
                        **kwargs) -> TextReport:
    """Read the text in the unread photos under ``root`` in the index at ``index_dir`` (:func:`text_pass`
    run by :func:`retrieval.indexing.enrich.run_pass`). ``on_progress(photos read, photos to read)``
    counts only the photos the gate passed; ``kwargs`` go to :func:`text_pass`.

    Raises:
        IndexingError: another ``retr index`` held the writer lock for longer than ``lock_wait``.
        StoreError: no index there, or it cannot be used.
        OcrUnavailable: the engine cannot start (the photos the gate skipped are stored as such).
        KeyboardInterrupt: passed on; what was read before is kept.
    """
    rep = TextReport()
    enrichment = text_pass(os.path.abspath(root), engine, gate, report=rep, **kwargs)
    pending = enrichment.pending

    def counted_pending(store: Store) -> list[list]:
        batches = pending(store)
        rep.to_read = sum(len(b) for b in batches[1:])
        return batches

    def progress(done: int, total: int) -> None:
        if on_progress and rep.to_read:
            on_progress(max(0, done - (total - rep.to_read)), rep.to_read)

    enrichment.pending = counted_pending
    run_pass(enrichment, index_dir, db_url=db_url, on_progress=progress, lock_wait=lock_wait)
    return rep


__all__ = ["OCR_BATCH", "OCR_SIDE", "SKIPPED", "TextReport", "read_text_in_folder", "text_pass", "unread_photos"]
