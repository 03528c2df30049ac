"""``retr serve``: a JSON HTTP API and a one-page web UI over an index.

A thin layer over the same Python API as the CLI (:class:`retrieval.search.Index`,
:func:`retrieval.io.decode.load_image`, :func:`retrieval.captioning.model.load_captioner`):

========================================  ==================================================
``GET  /``                                the page (``retrieval/static/index.html``)
``GET  /api/status``                      photo and text counts, encoder id, index folder
``GET  /api/search?q=&k=10&texts=false``  text -> photos (or -> captions with ``texts``)
``POST /api/search/image?k=&texts=``      an uploaded photo (multipart field ``file``) -> photos
``GET  /api/photos/{id}``                 one photo: path, size, captions (indexed and generated)
``GET  /api/photos/{id}/similar?k=``      "more like this": neighbours of an indexed photo
``GET  /api/photos/{id}/thumb``           JPEG thumbnail, at most 256 px a side
``GET  /api/photos/{id}/file``            the original file
``POST /api/caption?samples=0&beam=3``    describe an uploaded photo
``GET  /openapi.json``, ``/docs``          the OpenAPI schema and its browser
========================================  ==================================================

Errors are JSON ``{"error": message, "status": code}``: 400 for a bad query or
parameter, 404 for an unknown photo id or route, 413 for an upload over
:data:`MAX_UPLOAD_BYTES`, 415 for an upload that is not a readable image, 503
when a model cannot be loaded; never a traceback.

Security: no endpoint takes a filesystem path. Files are served only by photo
id, from the path the index database records for that id. Thumbnails are
cached under ``<index>/thumbs/`` (never in the photo folders), named by photo
id and content hash. With ``allowed_hosts`` (set by ``retr serve`` when it
binds a loopback address) requests whose ``Host`` header names another host
are refused, which defeats DNS-rebinding pages reading your photos.
"""
from __future__ import annotations

import io
import logging
import mimetypes
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Iterable

import numpy as np
from fastapi import FastAPI, File, Path as PathParam, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from retrieval import __version__
from retrieval.search import Hit, Index
from retrieval.errors import QueryError
from retrieval.store.database import Photo, TextRow
from retrieval.errors import StoreError

log = logging.getLogger("retr.serve")

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
#: Longest side of a thumbnail, in pixels.
THUMB_PX = 256
#: Largest accepted upload, in bytes.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: Hosts accepted by default when serving on a loopback address.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'")


class ApiError(Exception):
    """An error answered as JSON ``{"error": message, "status": status}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def _host_of(header: str) -> str:
    """``"127.0.0.1:8000"`` -> ``"127.0.0.1"``, ``"[::1]:8000"`` -> ``"[::1]"``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _Models:
    """The index, and the encoder and captioner loaded lazily, shared by all requests.

    Model calls are serialised with a lock: the server runs requests in a thread
    pool, and one model call at a time is both safe and as fast on a few cores.
    """

    def __init__(self, index: Index, captioner=None):
        self.index = index
        self._captioner = captioner
        self.lock = threading.Lock()

    def captioner(self):
        if self._captioner is None:
            from retrieval.captioning.model import load_captioner

            self._captioner = load_captioner(None, self.index.encoder.id)
        return self._captioner


def create_app(index_dir: str | Path, *, encoder=None, captioner=None,
               allowed_hosts: Iterable[str] | None = None, db_url: str | None = None) -> FastAPI:
    """Build the web app over the index at ``index_dir``.

    Args:
        index_dir: an index folder written by ``retr index``.
        encoder: use this encoder instead of loading the one the index records
            (must have the same id); mostly for tests.
        captioner: use this captioner for ``/api/caption`` (default: the shipped
            one, loaded on first use).
        allowed_hosts: if given, only requests whose ``Host`` header names one of
            these hosts (port ignored) are answered; others get 400.
        db_url: SQLAlchemy URL of the database holding the index's tables; None:
            ``$RETR_DB`` if set, else ``index_dir/retr.sqlite`` (as for ``retr index``).

    Returns:
        a :class:`fastapi.FastAPI` application (serve it with uvicorn).

    Raises:
        StoreError: no index there, or it is corrupt or of another format.
    """
    index_dir = Path(index_dir).resolve()
    ix = Index(index_dir, encoder=encoder, db_url=db_url)
    models = _Models(ix, captioner)
    thumbs_dir = index_dir / "thumbs"
    hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    app = FastAPI(title="retr", version=__version__,
                  description="Offline image-text search over one index. Files are served only by photo id.")
    app.state.index = ix

    # -- errors and headers --------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        msg = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404:
            msg = f"not found: {request.url.path}"
        return _error(exc.status_code, msg)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        if any(e.get("loc", ("",))[0] == "path" for e in errs):
            return _error(404, "not found: photo ids are whole numbers")
        parts = []
        for e in errs:
            loc = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
            parts.append(f"{loc}: {e.get('msg', 'invalid')}")
        return _error(400, "; ".join(parts) or "bad request")

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception):
        log.error("%s %s failed: %s: %s", request.method, request.url.path, exc.__class__.__name__, exc)
        return _error(500, f"internal error ({exc.__class__.__name__})")

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if hosts is not None and _host_of(request.headers.get("host", "")) not in hosts:
            return _error(400, "invalid Host header")
        resp = await call_next(request)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("Content-Security-Policy", _CSP)
        return resp

    # -- helpers -------------------------------------------------------------
    def photo_row(photo_id: int) -> Photo:
        with ix.store.session() as s:
            row = s.get(Photo, photo_id)
            if row is None:
                raise ApiError(404, f"no photo with id {photo_id} in the index")
            s.expunge(row)
            return row

    def hits_json(hits: list[Hit]) -> list[dict]:
        """Hits as JSON; every hit gets ``photo_id`` (for text hits: the photo the caption belongs to)."""
        text_photo = {}
        text_ids = [h.id for h in hits if h.kind == "text"]
        if text_ids:
            with ix.store.session() as s:
                text_photo = dict(s.execute(select(TextRow.id, TextRow.photo_id).where(TextRow.id.in_(text_ids))).all())
        out = []
        for h in hits:
            pid = text_photo.get(h.id) if h.kind == "text" else h.id
            out.append({"score": round(float(h.score), 4), "id": h.id, "photo_id": pid, "kind": h.kind,
                        "path": h.path, "name": os.path.basename(h.path) if h.path else None,
                        "text": h.text, "source": h.source})
        return out

    def run_search(vec_or_query, k: int, texts: bool) -> list[dict]:
        try:
            with models.lock:
                if isinstance(vec_or_query, np.ndarray):
                    hits = ix.search_vector(vec_or_query, k, texts)
                else:
                    hits = ix.search(vec_or_query, k=k, texts=texts)
        except QueryError as e:
            raise ApiError(400, str(e)) from None
        except StoreError as e:
            raise ApiError(503, str(e)) from None
        return hits_json(hits)

    def read_upload(file: UploadFile):
        """Decode an upload into an RGB PIL image with :func:`retrieval.io.decode.load_image`, through a
        temporary file (never in the photo folders). Raises ApiError 413 or 415."""
        from retrieval.io.decode import load_image
        from retrieval.errors import DecodeError

        ctype = (file.content_type or "").split(";")[0].strip().lower()
        if ctype and not (ctype.startswith("image/") or ctype == "application/octet-stream"):
            raise ApiError(415, f"upload is {ctype}, not an image")
        fd, tmp = tempfile.mkstemp(prefix="retr-upload-")
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := file.file.read(1 << 20):
                    size += len(chunk)
                    if size > MAX_UPLOAD_BYTES:
                        raise ApiError(413, f"upload larger than {MAX_UPLOAD_BYTES // (1 << 20)} MiB")
                    out.write(chunk)
            try:
                return load_image(tmp)
            except DecodeError as e:
                raise ApiError(415, f"upload is not a readable image ({e.reason})") from None
        finally:
            os.unlink(tmp)

    def encoder_or_503():
        try:
            return ix.encoder
        except Exception as e:  # noqa: BLE001 - EncoderError, StoreError, a broken install
            raise ApiError(503, f"encoder unavailable: {e}") from None

    # -- routes --------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/api/status", summary="Index status")
    def status():
        """Photo count, text (caption) count, encoder id and the index folder."""
        return {"photos": ix.store.count("photos"), "texts": ix.store.count("texts"),
                "encoder": ix.store.get_meta("encoder_id"), "index": str(index_dir), "version": __version__}

    @app.get("/api/search", summary="Search by words")
    def search_text(q: str = Query(..., max_length=4096, description="Words."),
                    k: int = Query(10, ge=1, le=10000, description="Number of results."),
                    texts: bool = Query(False, description="Search indexed captions instead of photos.")):
        """Photos (or captions, with ``texts``) best first, as ``{query, hits}``; ``hits[i]`` has
        ``score`` (cosine in [-1, 1]), ``id``, ``photo_id``, ``kind``, ``path``, ``name``, ``text``, ``source``.
        The query is always words: a query that names a file is not read."""
        if not q.strip():
            raise ApiError(400, "empty query: give some words")
        try:
            with models.lock:
                vec = ix.text_encoder.encode_texts([q])[0]
        except Exception as e:  # noqa: BLE001
            raise ApiError(503, f"text encoder unavailable: {e}") from None
        return {"query": q, "hits": run_search(vec, k, texts)}

    @app.post("/api/search/image", summary="Search by an uploaded photo")
    def search_image(file: UploadFile = File(..., description="An image file."),
                     k: int = Query(10, ge=1, le=10000), texts: bool = Query(False)):
        """Photos (or captions, with ``texts``) closest to the uploaded photo, as ``{hits}``."""
        im = read_upload(file)
        encoder_or_503()
        return {"hits": run_search(im, k, texts)}

    @app.get("/api/photos/{photo_id}", summary="One photo and its captions")
    def photo(photo_id: int = PathParam(..., ge=0)):
        """Path, name, width and height (px, upright), size (bytes), mtime, content hash,
        when indexed, and ``captions``: ``[{id, text, source}]`` (``captions`` or ``generated``)."""
        row = photo_row(photo_id)
        with ix.store.session() as s:
            caps = s.execute(select(TextRow.id, TextRow.text, TextRow.source)
                             .where(TextRow.photo_id == photo_id).order_by(TextRow.id)).all()
        return {"id": row.id, "path": row.path, "name": os.path.basename(row.path), "width": row.width,
                "height": row.height, "size": row.size, "mtime": row.mtime, "hash": row.hash,
                "indexed_at": row.indexed_at,
                "captions": [{"id": c.id, "text": c.text, "source": c.source} for c in caps]}

    @app.get("/api/photos/{photo_id}/similar", summary="More like this")
    def similar(photo_id: int = PathParam(..., ge=0), k: int = Query(10, ge=1, le=10000),
                texts: bool = Query(False)):
        """Neighbours of an indexed photo's stored vector (the photo itself comes first)."""
        row = photo_row(photo_id)
        vec = np.frombuffer(row.vector, np.float32)
        return {"photo_id": photo_id, "hits": run_search(vec, k, texts)}

    @app.get("/api/photos/{photo_id}/thumb", summary="Thumbnail (JPEG)")
    def thumb(photo_id: int = PathParam(..., ge=0)):
        """A JPEG at most 256 px a side, made once and cached under ``<index>/thumbs/``."""
        row = photo_row(photo_id)
        key = re.sub(r"[^0-9a-f]", "", (row.hash or "").lower())[:32] or "nohash"
        cached = thumbs_dir / f"{row.id}-{key}.jpg"
        headers = {"Cache-Control": "private, max-age=86400"}
        if cached.is_file():
            return FileResponse(cached, media_type="image/jpeg", headers=headers)
        data = make_thumbnail(row.path)
        try:
            thumbs_dir.mkdir(exist_ok=True)
            for old in thumbs_dir.glob(f"{row.id}-*.jpg"):  # the same id with an older hash
                old.unlink(missing_ok=True)
            tmp = cached.with_name(f".{cached.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, cached)
        except OSError as e:  # a read-only index folder: serve it uncached
            log.warning("cannot cache thumbnail in %s: %s", thumbs_dir, e)
        return Response(data, media_type="image/jpeg", headers=headers)

    @app.get("/api/photos/{photo_id}/file", summary="The original file")
    def original(photo_id: int = PathParam(..., ge=0)):
        """The photo's file as indexed, looked up by id; 404 when it is gone from disk."""
        row = photo_row(photo_id)
        if not os.path.isfile(row.path):
            raise ApiError(404, f"photo {photo_id} is no longer on disk; run `retr index` again")
        mt = mimetypes.guess_type(row.path)[0] or "application/octet-stream"
        return FileResponse(row.path, media_type=mt, headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/caption", summary="Describe an uploaded photo")
    def caption(file: UploadFile = File(..., description="An image file."),
                samples: int = Query(0, ge=0, le=20, description="0: one caption by beam search; N: N sampled."),
                beam: int = Query(3, ge=1, le=10), seed: int | None = Query(None)):
        """``{captions: [str]}``: one caption by beam search, or ``samples`` different ones."""
        im = read_upload(file)
        enc = encoder_or_503()
        try:
            with models.lock:
                cap = models.captioner()
                emb = enc.encode_images([im])[0]
                caps = cap.sample(emb, samples, seed=seed) if samples else [cap.beam_search(emb, beam)]
        except ApiError:
            raise
        except Exception as e:  # noqa: BLE001 - CaptionerError and the like
            raise ApiError(503, f"captioner unavailable: {e}") from None
        return {"captions": caps}

    def make_thumbnail(path: str) -> bytes:
        from PIL import Image

        from retrieval.io.decode import load_image

        from retrieval.errors import DecodeError

        try:
            im = load_image(path, draft_size=(THUMB_PX, THUMB_PX))
        except DecodeError as e:
            raise ApiError(404, f"photo file cannot be read: {e.reason}") from None
        im.thumbnail((THUMB_PX, THUMB_PX), Image.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=85, optimize=True)
        return buf.getvalue()

    return app
