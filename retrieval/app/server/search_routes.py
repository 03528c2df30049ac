"""``retr serve``'s search routes: by words, and by an uploaded photo."""
from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, File, Query, UploadFile

from retrieval.app.server.errors import ApiError
from retrieval.app.server.state import Served, read_upload, served
from retrieval.query.filters import Filters
from retrieval.app.console import understood_query

router = APIRouter()


def query_filters(after: Optional[str] = Query(None, description="Taken on or after: YYYY, YYYY-MM or YYYY-MM-DD."),
                  before: Optional[str] = Query(None, description="Taken before (its first day)."),
                  folder: Optional[str] = Query(None, description="In this folder or below: path, name or glob."),
                  camera: Optional[str] = Query(None, description="Camera make or model contains this."),
                  place: Optional[str] = Query(None, description="Taken in this city, region or country.")) -> Filters:
    """The search routes' metadata filters from their query parameters (a FastAPI dependency).

    Raises:
        ApiError: 400 for a date that cannot be read.
    """
    try:
        return Filters.from_options(after, before, folder, camera, place)
    except ValueError as e:
        raise ApiError(400, str(e)) from None


@router.get("/api/search", summary="Search by words")
def search_text(q: str = Query(..., max_length=4096, description="Words."),
                k: int = Query(10, ge=1, le=10000, description="Number of results."),
                texts: bool = Query(False, description="Search indexed captions instead of photos."),
                given: Filters = Depends(query_filters),
                sort: str = Query("score", pattern="^(score|date)$", description="score, or date (newest first)."),
                literal: bool = Query(False, description="Do not parse dates and places out of the words."),
                st: Served = Depends(served)):
    """Photos (or captions, with ``texts``) best first, as ``{query, understood, matched, hits, no_match,
    match_threshold}``;
    ``hits[i]`` has ``score`` (photos, without filters or date sort: the fused score of the aligned
    embedding and the ImageNet concepts; else the cosine), ``match`` (fused photo results: the
    calibrated probability in [0, 1] that the photo shows what the query asks for, else null),
    ``concepts``, ``id``, ``photo_id``, ``kind``, ``path`` (readable), ``path_b64``
    (the path's raw bytes, base64: docs/paths.md), ``name``, ``text``, ``source``, ``taken``,
    ``place``, ``camera``, ``missing`` (the file is no longer on disk). ``understood`` is what was searched (``searched "beach" from 2023-01-01 to
    2023-12-31``); ``matched`` how many photos passed the filters (null without filters); ``no_match``
    is true when even the best photo is unlikely to match; ``match_threshold`` the match at or above which a
    hit is a good match (null when the hits have no calibrated match). The query is always words: a query that
    names a file is not read."""
    if not q.strip():
        raise ApiError(400, "empty query: give some words")
    try:
        with st.lock:
            asked = understood_query(q, st.index, given, literal or texts, files=False)
    except Exception as e:  # noqa: BLE001
        raise ApiError(503, f"text encoder unavailable: {e}") from None
    hits, no_match, threshold = st.search_words(asked.text, k, texts, filters=asked.filters or None, sort=sort)
    return {"query": q, "understood": asked.line(), "matched": st.index.matched, "hits": hits,
            "no_match": no_match, "match_threshold": threshold}


@router.post("/api/search/image", summary="Search by an uploaded photo")
def search_image(file: UploadFile = File(..., description="An image file."),
                 k: int = Query(10, ge=1, le=10000), texts: bool = Query(False),
                 given: Filters = Depends(query_filters),
                 sort: str = Query("score", pattern="^(score|date)$", description="score, or date (newest first)."),
                 st: Served = Depends(served)):
    """Photos (or captions, with ``texts``) closest to the uploaded photo, as ``{hits, matched}``, among
    the photos that pass the filters (as for ``/api/search``)."""
    im = read_upload(file)
    st.encoder()
    return {"hits": st.search(im, k, texts, filters=given or None, sort=sort), "matched": st.index.matched}
