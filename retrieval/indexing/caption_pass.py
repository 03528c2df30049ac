"""The caption pass of ``retr index``: generates a caption for the indexed photos that have none (new
ones, changed ones, and photos indexed with ``--no-captions``), after they are embedded and searchable.

It is an enrichment pass (:mod:`retrieval.indexing.enrich`): each batch is captioned
(:func:`retrieval.indexing.indexer.caption_photos`: a pooled captioner from the photos' stored vectors and
concepts alone; an attention captioner also decodes the photos again for their spatial maps,
:mod:`retrieval.indexing.region_captions`) without the writer lock and committed on its own under it; an interrupted pass keeps what it did and the
next ``retr index`` goes on from there; ``retr status`` says how many photos have their caption. Until a
photo has its caption, search ranks it without the caption (as a photo indexed with ``--no-captions``).
At the end the texts' search file is rewritten (in between, a search rebuilds it in memory).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from sqlalchemy import select

from retrieval.indexing.enrich import LOCK_WAIT, EnrichmentPass, run_pass
from retrieval.indexing.indexer import CAPTION_BATCH, caption_inputs, caption_photos, uncaptioned_photos
from retrieval.store.database import Photo, Store, TextRow


@dataclass
class CaptionReport:
    """What one caption pass did (counts of photos)."""

    generated: int = 0


def caption_pass(root: str, captioner, encoder, *, batch: int = CAPTION_BATCH,
                 report: CaptionReport | None = None) -> EnrichmentPass:
    """The caption :class:`~retrieval.indexing.enrich.EnrichmentPass` over the photos under ``root`` without a
    generated caption; items ``(photo id, path, content hash)``, ``batch`` a batch (the batched beam search is
    cheaper per photo in larger groups); each batch's vectors and concepts are read when it is worked on, so
    memory does not grow with the library.

    Args:
        root: absolute folder (or file) the photos are under.
        captioner: a :class:`retrieval.captioning.model.Captioner`.
        encoder: the index's encoder (embeds the captions).
        report: counts to add to (a new :class:`CaptionReport` when None).
    """
    rep = report if report is not None else CaptionReport()
    opened: list[Store] = []

    def pending(store: Store) -> list[list]:
        opened[:] = [store]  # work reads each batch's inputs from it (a read: no lock needed)
        rows = uncaptioned_photos(store, root)
        return [rows[b : b + batch] for b in range(0, len(rows), batch)]

    def work(items: list) -> list:
        kept, vectors, posteriors = caption_inputs(opened[0], [it[0] for it in items])  # a photo may be gone
        done = (dict(zip(kept, zip(*caption_photos(captioner, encoder, opened[0], kept, vectors, posteriors))))
                if kept else {})
        return [done.get(it[0]) for it in items]

    def save(store: Store, items: list, results: list) -> int:
        ids = [it[0] for it in items]
        with store.session() as s:
            current = dict(s.execute(select(Photo.id, Photo.hash).where(Photo.id.in_(ids))).all())
            done = set(s.scalars(select(TextRow.photo_id).where(TextRow.photo_id.in_(ids),
                                                                TextRow.source == "generated")))
            n = 0
            for (pid, _, h), result in zip(items, results):
                if result is not None and current.get(pid) == h and pid not in done:  # not gone, changed or
                    s.add(TextRow(photo_id=pid, text=result[0], source="generated",  # captioned meanwhile
                                  vector=np.ascontiguousarray(result[1], np.float32).tobytes()))
                    n += 1
            s.commit()
        rep.generated += n
        return n

    return EnrichmentPass("captions", pending, work, save, finish=lambda store: store.write_faiss("texts"))


def caption_folder(root: str | Path, index_dir: str | Path, captioner, encoder, *, db_url: str | None = None,
                   on_progress: Callable[[int, int], None] | None = None, lock_wait: float = LOCK_WAIT,
                   **kwargs) -> CaptionReport:
    """Generate the captions of the photos under ``root`` that have none, in the index at ``index_dir``
    (:func:`caption_pass` run by :func:`retrieval.indexing.enrich.run_pass`); ``on_progress(photos done,
    photos to do)``; ``kwargs`` go to :func:`caption_pass`.

    Raises:
        IndexingError: another ``retr index`` held the writer lock for longer than ``lock_wait``.
        StoreError: no index there, or it cannot be used.
        KeyboardInterrupt: passed on; the batches committed before are kept.
    """
    rep = CaptionReport()
    run_pass(caption_pass(os.path.abspath(root), captioner, encoder, report=rep, **kwargs), index_dir,
             db_url=db_url, on_progress=on_progress, lock_wait=lock_wait)
    return rep


__all__ = ["CaptionReport", "caption_folder", "caption_pass"]
