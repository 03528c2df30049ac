"""``retr serve``'s page, status and captioning routes."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import FileResponse

from retrieval import __version__
from retrieval.app.describe import attend_captions, photo_inputs
from retrieval.app.server.errors import ApiError
from retrieval.app.server.state import Served, read_upload, served

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
def page():
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


@router.get("/api/status", summary="Index status")
def status(st: Served = Depends(served)):
    """Photo count, text (caption) count, encoder id and the index folder."""
    r = st.index.reader
    return {"photos": r.count("photos"), "texts": r.count("texts"), "encoder": r.get_meta("encoder_id"),
            "index": str(st.index_dir), "version": __version__}


@router.post("/api/caption", summary="Describe an uploaded photo")
def caption(file: UploadFile = File(..., description="An image file."),
            samples: int = Query(0, ge=0, le=20, description="0: one caption by beam search; N: N sampled."),
            beam: int = Query(3, ge=1, le=10), seed: int | None = Query(None), st: Served = Depends(served)):
    """``{captions: [str]}``: one caption by beam search, or ``samples`` different ones."""
    im = read_upload(file)
    enc = st.encoder()
    try:
        with st.lock:
            cap = st.captioner()
            if getattr(cap, "needs_regions", False):  # an attention captioner: maps, concepts, objects
                caps = attend_captions(cap, photo_inputs(enc, im, True, st.objects), samples, seed, beam)
            else:
                emb = enc.encode_images([im])[0]
                caps = cap.sample(emb, samples, seed=seed) if samples else [cap.beam_search(emb, beam)]
    except ApiError:
        raise
    except Exception as e:  # noqa: BLE001 - CaptionerError and the like
        raise ApiError(503, f"captioner unavailable: {e}") from None
    return {"captions": caps}
