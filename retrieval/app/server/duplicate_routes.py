"""``retr serve``'s duplicates view: groups of near-identical photos (:mod:`retrieval.duplicates`), read
from the index alone. Nothing is ever deleted or moved."""
from __future__ import annotations

import os

from fastapi import APIRouter, Depends, Query

from retrieval.app.server.state import Served, served
from retrieval.duplicates import DEFAULT_THRESHOLD, find_duplicates
from retrieval.io import paths

router = APIRouter()


@router.get("/api/duplicates", summary="Groups of near-duplicate photos")
def duplicates(threshold: float = Query(DEFAULT_THRESHOLD, ge=-1.0, le=1.0, description="Cosine similarity of "
                                        "the embeddings from which photos may be near-duplicates; higher finds "
                                        "fewer, closer copies."),
               st: Served = Depends(served)):
    """``{threshold, unhashed, groups}`` as ``retr duplicates --json``: ``groups[i]`` has ``kind``
    (``near-duplicate`` or ``burst``) and ``photos``, the first one the group's reference, each with
    ``photo_id``, ``path`` (readable), ``path_b64``, ``name``, ``similarity`` (cosine to the first) and
    ``hash_distance`` (perceptual-hash bits of 64 from the first; null when unknown). ``unhashed``: photos
    without a perceptual hash yet (the embeddings alone decide for them). Read-only."""
    with st.lock:
        groups, unhashed = find_duplicates(st.index.reader, threshold)
    return {"threshold": threshold, "unhashed": unhashed,
            "groups": [{"kind": g.kind, "photos": [
                {"photo_id": m.photo_id, "path": paths.readable(m.path), "path_b64": paths.to_b64(m.path),
                 "name": paths.readable(os.path.basename(m.path)), "similarity": m.similarity,
                 "hash_distance": m.hash_distance} for m in g.photos]} for g in groups]}
