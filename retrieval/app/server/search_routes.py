"""``retr serve``'s search routes: by words, and by an uploaded photo."""
from __future__ import annotations

from fastapi import APIRouter, Depends, File, Query, UploadFile

from retrieval.app.server.errors import ApiError
from retrieval.app.server.state import Served, read_upload, served

router = APIRouter()


@router.get("/api/search", summary="Search by words")
def search_text(q: str = Query(..., max_length=4096, description="Words."),
                k: int = Query(10, ge=1, le=10000, description="Number of results."),
                texts: bool = Query(False, description="Search indexed captions instead of photos."),
                st: Served = Depends(served)):
    """Photos (or captions, with ``texts``) best first, as ``{query, hits}``; ``hits[i]`` has
    ``score`` (cosine in [-1, 1]), ``id``, ``photo_id``, ``kind``, ``path``, ``name``, ``text``, ``source``.
    The query is always words: a query that names a file is not read."""
    if not q.strip():
        raise ApiError(400, "empty query: give some words")
    try:
        with st.lock:
            vec = st.index.text_encoder.encode_texts([q])[0]
    except Exception as e:  # noqa: BLE001
        raise ApiError(503, f"text encoder unavailable: {e}") from None
    return {"query": q, "hits": st.search(vec, k, texts)}


@router.post("/api/search/image", summary="Search by an uploaded photo")
def search_image(file: UploadFile = File(..., description="An image file."),
                 k: int = Query(10, ge=1, le=10000), texts: bool = Query(False), st: Served = Depends(served)):
    """Photos (or captions, with ``texts``) closest to the uploaded photo, as ``{hits}``."""
    im = read_upload(file)
    st.encoder()
    return {"hits": st.search(im, k, texts)}
