"""``retr serve``: a JSON HTTP API and a one-page web UI over an index.

A thin layer over the same Python API as the CLI (:class:`retrieval.search.Index` and its reader,
:func:`retrieval.io.decode.load_image`, :func:`retrieval.captioning.model.load_captioner`); the routes
are in :mod:`~retrieval.app.server.page_routes`, :mod:`~retrieval.app.server.search_routes` and
:mod:`~retrieval.app.server.photo_routes`, what they share in :mod:`~retrieval.app.server.state`:

========================================  ==================================================
``GET  /``                                the page (``retrieval/app/static/index.html``)
``GET  /api/status``                      photo and text counts, encoder id, index folder
``GET  /api/search?q=&k=10&texts=false``  text -> photos (or -> captions with ``texts``)
``POST /api/search/image?k=&texts=``      an uploaded photo (multipart field ``file``) -> photos
``GET  /api/photos/{id}``                 one photo: path, size, captions (indexed and generated)
``GET  /api/photos/{id}/similar?k=``      "more like this": neighbours of an indexed photo
``GET  /api/photos/{id}/thumb``           JPEG thumbnail, at most 256 px a side
``GET  /api/photos/{id}/file``            the original file
``POST /api/caption?samples=0&beam=3``    describe an uploaded photo
``GET  /openapi.json``, ``/docs``          the OpenAPI schema and its browser (Swagger UI)
``GET  /redoc``                           the same schema as one ReDoc page
``GET  /static-offline-docs/...``         Swagger UI's and ReDoc's scripts, served from the
                                          ``fastapi-offline`` package (no CDN: works offline)
========================================  ==================================================

Errors are JSON ``{"error": message, "status": code}``: 400 for a bad query or
parameter, 404 for an unknown photo id or route, 413 for an upload over
:data:`retrieval.app.server.state.MAX_UPLOAD_BYTES` or ``UPLOAD_MAX_MEGAPIXELS``, 415 for an upload that is not a readable image, 503
when a model cannot be loaded; never a traceback.

Security: no endpoint takes a filesystem path. Files are served only by photo
id, from the path the index database records for that id. Thumbnails are
cached under ``<index>/thumbs/`` (never in the photo folders), named by photo
id and content hash. With ``allowed_hosts`` (set by ``retr serve`` when it
binds a loopback address) requests whose ``Host`` header names another host
are refused, which defeats DNS-rebinding pages reading your photos.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from retrieval import __version__
from retrieval.app.server import duplicate_routes, page_routes, photo_routes, search_routes
from retrieval.app.server.errors import install_error_handlers, install_guard
from retrieval.app.server.state import Served
from retrieval.search import Index

#: Hosts accepted by default when serving on a loopback address.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
#: Where the API documentation pages' scripts and styles are served from (the ``fastapi-offline``
#: package's copies of Swagger UI and ReDoc, instead of FastAPI's default CDN).
DOCS_ASSETS_URL = "/static-offline-docs"


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
    app = FastAPIOffline(title="retr", version=__version__, static_url=DOCS_ASSETS_URL,
                         description="Offline image-text search over one index. Files are served only by photo id.")
    app.state.index = ix
    app.state.served = Served(index_dir, ix, captioner)
    install_error_handlers(app)
    install_guard(app, None if allowed_hosts is None else {h.lower() for h in allowed_hosts})
    for routes in (page_routes, search_routes, photo_routes, duplicate_routes):
        app.include_router(routes.router)
    return app
