"""The detector pass of ``retr index``: runs the COCO detector (:mod:`retrieval.detection.yolo`) over
indexed photos that have not been through it (new ones, changed ones, and photos indexed before
the detector channel or with ``--no-objects``), after they are embedded and searchable.

It is an enrichment pass (:mod:`retrieval.indexing.enrich`): the detecting is done without the
writer lock, each batch committed on its own under it; an interrupted pass keeps what it did and
the next ``retr index`` goes on from there; ``retr status`` says how many photos have been through
it. Every photo considered gets an ``objects`` row (empty when nothing was found); a photo whose
content changes loses its row and is detected again.
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
from retrieval.store.database import DetectedObjects, Photo, Store

#: photos detected per ONNX Runtime batch and per commit
OBJECT_BATCH = 16
#: photos are decoded with their longer side reduced towards this many pixels (JPEG draft) first
DECODE_SIDE = 640


@dataclass
class ObjectReport:
    """What one detector pass did (counts of photos)."""

    detected: int = 0
    with_objects: int = 0
    failed: int = 0


def undetected_photos(store: Store, root: str) -> list[tuple[int, str, str]]:
    """(id, path, content hash) of the photos under ``root`` without an ``objects`` row, by id."""
    done = select(DetectedObjects.photo_id)
    with store.session() as s:
        return [(i, p, h) for i, p, h in s.execute(select(Photo.id, Photo.path, Photo.hash)
                                                   .where(Photo.id.not_in(done)).order_by(Photo.id)).all()
                if is_under(p, root)]


def object_row(photo_id: int, detections) -> DetectedObjects:
    """The ``objects`` row of one photo from its detections (:func:`retrieval.detection.scoring.summarise`)."""
    from retrieval.detection.scoring import summarise

    rows = summarise(detections)
    return DetectedObjects(photo_id=int(photo_id), classes=np.array([r[0] for r in rows], np.int16).tobytes(),
                           scores=np.array([r[1] for r in rows], np.float16).tobytes(),
                           counts=np.array([min(r[2], 255) for r in rows], np.uint8).tobytes())


def object_pass(root: str, detector, *, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                on_error: Callable[[str, str], None] | None = None,
                report: ObjectReport | None = None) -> EnrichmentPass:
    """The detector :class:`~retrieval.indexing.enrich.EnrichmentPass` over the photos under ``root``
    not yet through it; items ``(photo id, path, content hash)``, :data:`OBJECT_BATCH` a batch.

    Args:
        root: absolute folder (or file) the photos are under.
        detector: ``detector.detect(list of PIL images) -> list of lists of Detection``
            (:class:`retrieval.detection.yolo.ObjectDetector`).
        on_error: ``(path, reason)`` for a photo that no longer decodes (it keeps no row: tried again later).
        report: counts to add to (a new :class:`ObjectReport` when None).
    """
    rep = report if report is not None else ObjectReport()

    def pending(store: Store) -> list[list]:
        rows = undetected_photos(store, root)
        return [rows[b : b + OBJECT_BATCH] for b in range(0, len(rows), OBJECT_BATCH)]

    def work(batch: list) -> list:
        ims = [_decode(path, max_megapixels, rep, on_error) for _, path, _ in batch]
        found = iter(detector.detect([im for im in ims if im is not None]) if any(im is not None for im in ims) else [])
        return [None if im is None else next(found) for im in ims]

    def save(store: Store, batch: list, results: list) -> int:
        ids = [it[0] for it in batch]
        with store.session() as s:
            current = dict(s.execute(select(Photo.id, Photo.hash).where(Photo.id.in_(ids))).all())
            done = set(s.scalars(select(DetectedObjects.photo_id).where(DetectedObjects.photo_id.in_(ids))))
            n = 0
            for (pid, _, h), dets in zip(batch, results):
                if dets is not None and current.get(pid) == h and pid not in done:  # not gone, changed or done
                    s.add(object_row(pid, dets))
                    rep.detected += 1
                    rep.with_objects += bool(dets)
                    n += 1
            s.commit()
        return n

    return EnrichmentPass("objects in photos", pending, work, save)


def _decode(path: str, max_megapixels: float, rep: ObjectReport, on_error):
    try:
        return load_image(path, max_megapixels=max_megapixels, draft_size=(DECODE_SIDE, DECODE_SIDE))
    except DecodeError as e:
        rep.failed += 1
        if on_error:
            on_error(str(e.path), f"objects not detected ({e.reason})")
        return None


def detect_objects_in_folder(root: str | Path, index_dir: str | Path, detector, *, db_url: str | None = None,
                             on_progress: Callable[[int, int], None] | None = None, lock_wait: float = LOCK_WAIT,
                             **kwargs) -> ObjectReport:
    """Detect the objects of the photos under ``root`` not yet through the detector, in the index at
    ``index_dir`` (:func:`object_pass` run by :func:`retrieval.indexing.enrich.run_pass`);
    ``on_progress(photos done, photos to do)``; ``kwargs`` go to :func:`object_pass`.

    Raises:
        IndexingError: another ``retr index`` held the writer lock for longer than ``lock_wait``.
        StoreError: no index there, or it cannot be used.
        KeyboardInterrupt: passed on; the batches committed before are kept.
    """
    rep = ObjectReport()
    run_pass(object_pass(os.path.abspath(root), detector, report=rep, **kwargs), index_dir, db_url=db_url,
             on_progress=on_progress, lock_wait=lock_wait)
    return rep


__all__ = ["OBJECT_BATCH", "ObjectReport", "detect_objects_in_folder", "object_pass", "object_row",
           "undetected_photos"]
