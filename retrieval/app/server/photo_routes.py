"""``retr serve``'s routes of one indexed photo: its record, its neighbours, its thumbnail, its file.
Files are served only by photo id, from the path the index records for that id."""
from __future__ import annotations

import io
import mimetypes
import os
import re
import threading

from fastapi import APIRouter, Depends, Path as PathParam, Query
from fastapi.responses import FileResponse, Response

from retrieval.app.server.errors import ApiError, log
from retrieval.app.server.state import DECODE_SLOTS, MAX_PHOTO_ID, Served, served
from retrieval.errors import DecodeError
from retrieval.io import paths

#: Longest side of a thumbnail, in pixels.
THUMB_PX = 256

router = APIRouter()


@router.get("/api/photos/{photo_id}", summary="One photo and its captions")
def photo(photo_id: int = PathParam(..., ge=0, le=MAX_PHOTO_ID), st: Served = Depends(served)):
    """Path, name, width and height (px, upright), size (bytes), mtime, content hash,
    when indexed, ``captions``: ``[{id, text, source}]`` (``captions`` or ``generated``; the text read in the
    photo is the last, source ``text in photo``), ``ocr_text`` (None when OCR has not read the photo),
    ``concepts`` (its ImageNet classes, ``[{label, synset, p}]``) and ``objects`` (the COCO objects detected
    in it, ``[{label, score, count}]``), each None until ``retr index`` has computed them."""
    from retrieval.concepts.scoring import concept_labels
    from retrieval.detection.channel import object_labels

    row = st.photo(photo_id)
    _, cls, probs = st.index.reader.concept_rows([photo_id])
    objects = st.index.reader.object_rows([photo_id])
    caps = st.index.reader.photo_texts(photo_id)
    ocr = st.index.reader.ocr_text(photo_id)
    read = [{"id": None, "text": ocr, "source": "text in photo"}] if ocr else []
    return {"id": row["id"], "path": paths.readable(row["path"]), "path_b64": paths.to_b64(row["path"]),
            "name": paths.readable(os.path.basename(row["path"])), "width": row["width"],
            "height": row["height"], "size": row["size"], "mtime": row["mtime"], "hash": row["hash"],
            "indexed_at": row["indexed_at"], "ocr_text": ocr,
            "concepts": concept_labels(cls[0], probs[0]) if len(cls) else None,
            "objects": object_labels(*objects[0][1:]) if objects else None,
            "captions": [{"id": i, "text": t, "source": s} for i, t, s in caps] + read}


@router.get("/api/photos/{photo_id}/similar", summary="More like this")
def similar(photo_id: int = PathParam(..., ge=0, le=MAX_PHOTO_ID), k: int = Query(10, ge=1, le=10000),
            texts: bool = Query(False), st: Served = Depends(served)):
    """Neighbours of an indexed photo's stored vector (the photo itself comes first)."""
    return {"photo_id": photo_id, "hits": st.search(st.photo(photo_id)["vector"], k, texts)}


@router.get("/api/photos/{photo_id}/thumb", summary="Thumbnail (JPEG)")
def thumb(photo_id: int = PathParam(..., ge=0, le=MAX_PHOTO_ID), st: Served = Depends(served)):
    """A JPEG at most 256 px a side, made once and cached under ``<index>/thumbs/``."""
    row = st.photo(photo_id)
    key = re.sub(r"[^0-9a-f]", "", (row["hash"] or "").lower())[:32] or "nohash"
    cached = st.thumbs_dir / f"{row['id']}-{key}.jpg"
    headers = {"Cache-Control": "private, max-age=86400"}
    if cached.is_file():
        return FileResponse(cached, media_type="image/jpeg", headers=headers)
    data = make_thumbnail(row["path"])
    try:
        st.thumbs_dir.mkdir(exist_ok=True)
        for old in st.thumbs_dir.glob(f"{row['id']}-*.jpg"):  # the same id with an older hash
            old.unlink(missing_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, cached)
    except OSError as e:  # a read-only index folder: serve it uncached
        log.warning("cannot cache thumbnail in %s: %s", st.thumbs_dir, e)
    return Response(data, media_type="image/jpeg", headers=headers)


@router.get("/api/photos/{photo_id}/file", summary="The original file")
def original(photo_id: int = PathParam(..., ge=0, le=MAX_PHOTO_ID), st: Served = Depends(served)):
    """The photo's file as indexed, looked up by id; 404 when it is gone from disk."""
    path = st.photo(photo_id)["path"]
    if not os.path.isfile(path):
        raise ApiError(404, f"photo {photo_id} is no longer on disk; run `retr index` again")
    mt = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return FileResponse(path, media_type=mt, headers={"Cache-Control": "private, max-age=3600"})


def make_thumbnail(path: str) -> bytes:
    """JPEG bytes of the photo at ``path``, at most :data:`THUMB_PX` a side; ApiError 404 if unreadable."""
    from PIL import Image

    from retrieval.io.decode import load_image

    try:
        with DECODE_SLOTS:
            im = load_image(path, draft_size=(THUMB_PX, THUMB_PX))
    except DecodeError as e:
        raise ApiError(404, f"photo file cannot be read: {e.reason}") from None
    im.thumbnail((THUMB_PX, THUMB_PX), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85, optimize=True)
    return buf.getvalue()
