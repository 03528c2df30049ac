"""The OCR pass of ``retr index``: reads the text in indexed photos that have not been read yet
(new ones, changed ones, and photos indexed with ``--no-ocr``), after they are embedded.

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
from retrieval.indexing.indexer import writer_lock
from retrieval.indexing.plan import is_under
from retrieval.io.decode import DEFAULT_MAX_MEGAPIXELS, load_image
from retrieval.store.database import OcrText, Photo, Store

#: photos read per commit
OCR_BATCH = 16
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


def unread_photos(store: Store, root: str) -> list[tuple[int, str, np.ndarray]]:
    """(id, path, (D,) float32 vector) of the photos under ``root`` without an ``ocr_texts`` row."""
    done = select(OcrText.photo_id)
    with store.session() as s:
        return [(i, p, np.frombuffer(v, np.float32)) for i, p, v in
                s.execute(select(Photo.id, Photo.path, Photo.vector).where(Photo.id.not_in(done))).all()
                if is_under(p, root)]


def read_text_in_photos(store: Store, root: str, engine, gate, *, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                        on_error: Callable[[str, str], None] | None = None,
                        on_progress: Callable[[int, int], None] | None = None) -> TextReport:
    """Run the gate and the OCR engine over the unread photos under ``root`` and store what they read.

    Args:
        store: the index (the caller holds its writer lock).
        root: absolute folder (or file) the photos are under.
        engine: ``engine.recognise(PIL image) -> str`` and ``engine.name``.
        gate: ``gate.passes((N, D) vectors) -> (N,) bool``.
        on_error, on_progress: as for :func:`retrieval.indexing.indexer.index_folder` (progress over read photos).

    Returns:
        :class:`TextReport`.
    """
    rows = unread_photos(store, root)
    rep = TextReport()
    if not rows:
        return rep
    keep = gate.passes(np.stack([v for _, _, v in rows]))
    with store.session() as s:
        for (pid, _, _), k in zip(rows, keep):
            if not k:
                s.add(OcrText(photo_id=pid, text="", engine=SKIPPED))
        s.commit()
    rep.skipped = int((~keep).sum())
    todo = [(pid, path) for (pid, path, _), k in zip(rows, keep) if k]
    for b in range(0, len(todo), OCR_BATCH):
        found = [(pid, _read(path, engine, max_megapixels, rep, on_error)) for pid, path in todo[b : b + OCR_BATCH]]
        with store.session() as s:
            for pid, text in found:
                if text is not None:
                    s.add(OcrText(photo_id=pid, text=text, engine=engine.name))
            s.commit()
        if on_progress:
            on_progress(min(b + OCR_BATCH, len(todo)), len(todo))
    return rep


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
                        **kwargs) -> TextReport:
    """:func:`read_text_in_photos` over the index at ``index_dir``, holding its writer lock.

    Raises:
        IndexingError: another ``retr index`` holds the lock.
        StoreError: no index there, or it cannot be used.
    """
    index_dir = Path(index_dir).absolute()
    with writer_lock(index_dir):
        store = Store(index_dir, db_url=db_url)
        try:
            return read_text_in_photos(store, os.path.abspath(root), engine, gate, **kwargs)
        finally:
            store.close()


__all__ = ["OCR_BATCH", "OCR_SIDE", "SKIPPED", "TextReport", "read_text_in_folder", "read_text_in_photos",
           "unread_photos"]
