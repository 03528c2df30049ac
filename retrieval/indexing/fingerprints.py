"""Perceptual hashes of indexed photos that lack one (indexed before hashes were kept, or on a
Ray cluster): computed by decoding the photo again, never re-embedding it.

The hashes feed ``retr duplicates`` (:mod:`retrieval.duplicates`).
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from PIL import Image
from sqlalchemy import select, update

from retrieval.errors import DecodeError
from retrieval.indexing.plan import is_under
from retrieval.io.decode import DEFAULT_MAX_MEGAPIXELS, load_image
from retrieval.io.phash import perceptual_hash
from retrieval.store.database import Photo, Store

#: photos hashed per commit
HASH_BATCH = 256
#: the decoding size hint of the indexer (a JPEG is decoded at a reduced DCT scale at least this big)
DRAFT_SIZE = (320, 320)

log = logging.getLogger(__name__)


def hash_or_blank(image: Image.Image) -> str:
    """:func:`retrieval.io.phash.perceptual_hash` of ``image``, or ``""`` when it cannot be computed."""
    try:
        return perceptual_hash(image)
    except Exception as e:  # noqa: BLE001 - a hash only serves duplicates; the photo is still indexed
        log.debug("no perceptual hash: %s", e)
        return ""


def file_hash(path: str, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> str:
    """The perceptual hash of the photo at ``path`` decoded as the indexer decodes it; ``""`` when it
    cannot be decoded (never raises)."""
    try:
        return hash_or_blank(load_image(path, max_megapixels=max_megapixels, draft_size=DRAFT_SIZE))
    except DecodeError:
        return ""


def fill_perceptual_hashes(store: Store, root: str, *, workers: int = 2,
                           max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> int:
    """Compute and store the perceptual hash of every photo under ``root`` that has none
    (``phash`` NULL), ``workers`` threads decoding, one commit per :data:`HASH_BATCH` photos.

    Returns:
        the number of photos hashed (an undecodable one gets ``""`` and is not tried again).
    """
    with store.session() as s:
        rows = [(i, p) for i, p in s.execute(select(Photo.id, Photo.path).where(Photo.phash.is_(None))).all()
                if is_under(p, root)]
    if not rows:
        return 0
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for b in range(0, len(rows), HASH_BATCH):
            chunk = rows[b : b + HASH_BATCH]
            hashes = list(pool.map(lambda r: file_hash(r[1], max_megapixels), chunk))
            with store.session() as s:
                for (pid, _), h in zip(chunk, hashes):
                    s.execute(update(Photo).where(Photo.id == pid).values(phash=h))
                s.commit()
    return len(rows)


__all__ = ["DRAFT_SIZE", "HASH_BATCH", "file_hash", "fill_perceptual_hashes", "hash_or_blank"]
