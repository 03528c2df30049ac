"""The metadata step of ``retr index``: read the EXIF (date taken, camera, lens, GPS) of every
photo under the walked folder that has no :class:`retrieval.store.database.PhotoInfo` row yet
(new and changed photos, and photos indexed before metadata was read), and name the place of
each GPS position; no photo is decoded or embedded again."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from retrieval.indexing.plan import is_under
from retrieval.io.exif import read_metadata
from retrieval.io.places import places_of
from retrieval.store.database import Photo, Store
from retrieval.store.database import PhotoInfo

#: Photos read and committed together.
METADATA_BATCH = 500


def unread_photos(store: Store, root: str) -> list[tuple[int, str, float]]:
    """(id, path, mtime) of the photos under ``root`` without a metadata row."""
    have = select(PhotoInfo.photo_id)
    with store.session() as s:
        rows = s.execute(select(Photo.id, Photo.path, Photo.mtime).where(Photo.id.not_in(have))).all()
    return [(i, p, m) for i, p, m in rows if is_under(p, root)]


def add_missing_metadata(store: Store, root: str, workers: int = 2) -> int:
    """Read and store the metadata of the photos under ``root`` that have none; returns how many.

    A file that cannot be read, or broken EXIF, gives a row with empty fields (the date taken
    falls back to the file's modification time), so it is not read again on every run.
    """
    todo = unread_photos(store, root)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for b in range(0, len(todo), METADATA_BATCH):
            chunk = todo[b : b + METADATA_BATCH]
            mds = list(pool.map(lambda r: read_metadata(r[1], r[2]), chunk))
            located = [i for i, md in enumerate(mds) if md.latitude is not None]
            places = dict(zip(located, places_of([(mds[i].latitude, mds[i].longitude) for i in located])))
            with store.session() as s:
                for i, ((pid, _, _), md) in enumerate(zip(chunk, mds)):
                    place = places.get(i)
                    s.add(PhotoInfo(photo_id=pid, taken=md.taken, taken_offset=md.taken_offset,
                                    taken_source=md.taken_source, camera_make=md.camera_make,
                                    camera_model=md.camera_model, lens=md.lens, latitude=md.latitude,
                                    longitude=md.longitude, place=place.name if place else None,
                                    place_key=place.key if place else None))
                s.commit()
    return len(todo)
