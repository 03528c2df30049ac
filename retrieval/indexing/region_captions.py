"""Index-time captions from an attention captioner (one with ``needs_regions``): it reads the photos' spatial
maps, which the index does not keep, so the photos are decoded and run through the image model again
(one run gives the maps and fresh ImageNet posteriors), with the COCO objects the detector pass stored
(none yet for a photo the pass has not reached). A pooled captioner decodes from the stored vectors and
concepts alone, as before.
"""
from __future__ import annotations

import numpy as np
from sqlalchemy import select

from retrieval.errors import DecodeError
from retrieval.io.decode import DEFAULT_MAX_MEGAPIXELS, load_image
from retrieval.store.database import DetectedObjects, Photo, Store

#: photos decoded, run through the image model and captioned at a time (their images and spatial maps
#: are what the pass holds in memory: 64 photos' maps are 16 MB)
REGION_CHUNK = 64


def stored_objects(store: Store, photo_ids: list[int]) -> dict[int, list[tuple[int, float]]]:
    """``{photo id: [(COCO class index, best score)], best first}`` of the photos with an ``objects`` row."""
    with store.session() as s:
        rows = s.execute(select(DetectedObjects.photo_id, DetectedObjects.classes, DetectedObjects.scores)
                         .where(DetectedObjects.photo_id.in_(list(photo_ids)))).all()
    return {int(pid): [(int(c), float(p)) for c, p in zip(np.frombuffer(cls, np.int16), np.frombuffer(sc, np.float16))]
            for pid, cls, sc in rows}


def photo_images(store: Store, photo_ids: list[int], max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> dict:
    """``{photo id: RGB PIL image}`` of the photos whose files decode (decoded as the indexer does:
    JPEG draft near 320 px); a photo gone or unreadable is left out (it is captioned without regions)."""
    with store.session() as s:
        paths = dict(s.execute(select(Photo.id, Photo.path).where(Photo.id.in_(list(photo_ids)))).all())
    out = {}
    for pid in photo_ids:
        try:
            out[pid] = load_image(paths[pid], max_megapixels=max_megapixels, draft_size=(320, 320))
        except (KeyError, OSError, DecodeError):
            continue
    return out


def index_captions(captioner, encoder, store: Store, photo_ids: list[int], vectors: np.ndarray,
                   posteriors: np.ndarray, beam: int) -> list[str]:
    """The caption ``retr index`` stores for each photo.

    Args:
        captioner: a pooled :class:`retrieval.captioning.model.Captioner` (decodes ``vectors`` and
            ``posteriors``) or an attention captioner (``needs_regions``: also the spatial maps and objects).
        encoder: the index's encoder (its ``encode_images_concepts_and_regions``).
        store: the index (photo paths, stored objects).
        photo_ids: N photo ids; vectors: (N, D) float32 stored embeddings; posteriors: (N, 1000)
            float32 stored ImageNet posteriors (zeros: none).
        beam: beam width.

    Returns:
        N captions, in order.
    """
    vectors, posteriors = np.asarray(vectors, np.float32), np.asarray(posteriors, np.float32)
    if not getattr(captioner, "needs_regions", False):
        return captioner.beam_search_batch(vectors, beam, concepts=posteriors)
    objects = stored_objects(store, photo_ids)
    caps: list[str | None] = [None] * len(photo_ids)
    for start in range(0, len(photo_ids), REGION_CHUNK):  # a chunk's images and maps at a time: bounded memory
        images = photo_images(store, photo_ids[start : start + REGION_CHUNK])
        ok = [i for i in range(start, min(start + REGION_CHUNK, len(photo_ids))) if photo_ids[i] in images]
        if not ok:
            continue
        _, post, regions = encoder.encode_images_concepts_and_regions([images[photo_ids[i]] for i in ok])
        for i, c in zip(ok, captioner.caption_embeddings(vectors[ok], beam, concepts=post, regions=regions,
                                                         objects=[objects.get(photo_ids[i], []) for i in ok])):
            caps[i] = c
    rest = [i for i in range(len(photo_ids)) if caps[i] is None]
    if rest:  # files gone or unreadable since they were embedded: from the stored data alone
        for i, c in zip(rest, captioner.caption_embeddings(vectors[rest], beam, concepts=posteriors[rest],
                                                           objects=[objects.get(photo_ids[i], []) for i in rest])):
            caps[i] = c
    return caps
