"""What every request of ``retr serve`` shares (:class:`Served`: the index, the models, one lock),
handed to the routes as a FastAPI dependency (:func:`served`). Every read goes through
:class:`retrieval.search.Index` and its reader, as ``retr search`` reads."""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import numpy as np
from fastapi import Request, UploadFile

from retrieval.app.describe import ObjectSource
from retrieval.app.server.errors import ApiError
from retrieval.io import paths
from retrieval.errors import DecodeError, QueryError, StoreError
from retrieval.search import Hit, Index

#: Largest accepted upload, in bytes.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: Largest accepted upload, in megapixels (its declared size, checked before any pixel is decoded:
#: a decompression bomb is refused with 413); decoding takes up to ~10 bytes a pixel.
UPLOAD_MAX_MEGAPIXELS = 50.0
#: Largest photo id (a 64-bit integer in SQLite and PostgreSQL): a larger one names no photo (404).
MAX_PHOTO_ID = 2**63 - 1
#: Images (uploads, thumbnails) decoded at once, whatever the number of clients: bounds the memory
#: decoding takes.
DECODE_SLOTS = threading.BoundedSemaphore(2)


class Served:
    """The index, and the encoder and captioner loaded lazily, shared by all requests.

    Model calls are serialised with :attr:`lock`: the server runs requests in a thread
    pool, and one model call at a time is both safe and as fast on a few cores.
    """

    def __init__(self, index_dir: Path, index: Index, captioner=None):
        self.index_dir = index_dir
        self.index = index
        self.thumbs_dir = index_dir / "thumbs"
        self._captioner = captioner
        #: the COCO detector, for an attention captioner's objects (opened on first use)
        self.objects = ObjectSource(threads=1)
        self.lock = threading.Lock()

    def captioner(self):
        if self._captioner is None:
            from retrieval.captioning.model import load_captioner

            self._captioner = load_captioner(None, self.index.encoder.id, encoder=self.index.encoder)
        return self._captioner

    def photo(self, photo_id: int) -> dict:
        """The photo's row (see :meth:`retrieval.store.queries.Queries.photo_record`); ApiError 404 if none."""
        rec = self.index.reader.photo_record(photo_id)
        if rec is None:
            raise ApiError(404, f"no photo with id {photo_id} in the index")
        return rec

    def search(self, vec_or_image, k: int, texts: bool, filters=None, sort: str = "score") -> list[dict]:
        """Hits (as :func:`hits_json`) for a (D,) vector or a PIL image, among the photos that pass
        ``filters`` (:class:`retrieval.query.filters.Filters`), sorted by ``sort``; ApiError 400 (bad query), 503."""
        try:
            with self.lock:
                if isinstance(vec_or_image, np.ndarray):
                    hits = self.index.search_vector(vec_or_image, k, texts, filters=filters, sort=sort)
                else:
                    hits = self.index.search(vec_or_image, k=k, texts=texts, filters=filters, sort=sort)
        except QueryError as e:
            raise ApiError(400, str(e)) from None
        except StoreError as e:
            raise ApiError(503, str(e)) from None
        return hits_json(hits)

    def search_words(self, q: str, k: int, texts: bool, filters=None,
                     sort: str = "score") -> tuple[list[dict], bool, float | None]:
        """(hits as :func:`hits_json`, the "no good match" verdict, the good-match threshold or None) for
        words, ranked by the fused channels (:meth:`retrieval.search.Index.search`), among the photos
        that pass ``filters``, sorted by ``sort``; ApiError 400 (bad query), 503."""
        try:
            with self.lock:
                hits = self.index.search(q, k=k, texts=texts, as_text=True, filters=filters, sort=sort)
                no_match, threshold = self.index.no_match, self.index.match_threshold
        except QueryError as e:
            raise ApiError(400, str(e)) from None
        except StoreError as e:
            raise ApiError(503, str(e)) from None
        except Exception as e:  # noqa: BLE001 - the text encoder cannot be loaded
            raise ApiError(503, f"text encoder unavailable: {e}") from None
        return hits_json(hits), no_match, threshold

    def encoder(self):
        """The index's encoder; ApiError 503 when it cannot be loaded."""
        try:
            return self.index.encoder
        except Exception as e:  # noqa: BLE001 - EncoderError, StoreError, a broken install
            raise ApiError(503, f"encoder unavailable: {e}") from None


def served(request: Request) -> Served:
    """FastAPI dependency: the app's :class:`Served`."""
    return request.app.state.served


def hits_json(hits: list[Hit]) -> list[dict]:
    """Hits as JSON; every hit has ``photo_id`` (for text hits: the photo the caption belongs to), and
    ``match`` (calibrated probability, or None), ``concepts`` and ``objects`` (or None) for fused word searches."""
    return [{"score": round(float(h.score), 4), "id": h.id, "photo_id": h.photo_id, "kind": h.kind,
             "path": paths.readable(h.path), "path_b64": paths.to_b64(h.path),
             "name": paths.readable(os.path.basename(h.path)) if h.path else None, "text": h.text,
             "source": h.source, "taken": h.taken, "place": h.place, "camera": h.camera,
             "match": None if h.match is None else round(float(h.match), 4), "concepts": h.concepts,
             "objects": h.objects, "missing": h.missing} for h in hits]


def read_upload(file: UploadFile):
    """Decode an upload into an RGB PIL image with :func:`retrieval.io.decode.load_image`, through a
    temporary file (never in the photo folders). Raises ApiError 413 or 415."""
    from retrieval.io.decode import load_image

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
            with DECODE_SLOTS:  # draft_size: a JPEG is decoded as retr index decodes it
                return load_image(tmp, max_megapixels=UPLOAD_MAX_MEGAPIXELS, draft_size=(320, 320))
        except DecodeError as e:
            if e.reason.startswith("image too large"):
                raise ApiError(413, f"upload is an image over {UPLOAD_MAX_MEGAPIXELS:g} megapixels") from None
            raise ApiError(415, f"upload is not a readable image ({e.reason})") from None
    finally:
        os.unlink(tmp)
