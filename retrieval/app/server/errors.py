"""How ``retr serve`` answers errors (always JSON ``{"error": message, "status": code}``, never a
traceback) and the headers and Host check every response goes through."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("retr.serve")

#: The page's Content-Security-Policy: nothing is loaded from elsewhere.
CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")


class ApiError(Exception):
    """An error answered as JSON ``{"error": message, "status": status}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JSONResponse:
    """The JSON answer of an error."""
    return JSONResponse({"error": message, "status": status}, status_code=status)


def host_of(header: str) -> str:
    """``"127.0.0.1:8000"`` -> ``"127.0.0.1"``, ``"[::1]:8000"`` -> ``"[::1]"``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


async def _api_error(request: Request, exc: ApiError):
    return error_response(exc.status, exc.message)


async def _http_error(request: Request, exc: StarletteHTTPException):
    msg = exc.detail if isinstance(exc.detail, str) else "error"
    if exc.status_code == 404:
        msg = f"not found: {request.url.path}"
    return error_response(exc.status_code, msg)


async def _validation_error(request: Request, exc: RequestValidationError):
    errs = exc.errors()
    if any(e.get("loc", ("",))[0] == "path" for e in errs):
        return error_response(404, "not found: photo ids are whole numbers")
    parts = []
    for e in errs:
        loc = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return error_response(400, "; ".join(parts) or "bad request")


async def _internal_error(request: Request, exc: Exception):
    log.error("%s %s failed: %s: %s", request.method, request.url.path, exc.__class__.__name__, exc)
    return error_response(500, f"internal error ({exc.__class__.__name__})")


def install_error_handlers(app: FastAPI) -> None:
    """Answer :class:`ApiError`, HTTP errors (404: the path), validation errors (400; a bad photo id: 404)
    and anything unexpected (500, logged) as JSON."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)


def install_guard(app: FastAPI, hosts: set[str] | None) -> None:
    """Refuse (400) requests whose ``Host`` header names none of ``hosts`` (None: any host), which
    defeats DNS-rebinding pages; add nosniff, no-referrer and :data:`CSP` headers to every response."""

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if hosts is not None and host_of(request.headers.get("host", "")) not in hosts:
            return error_response(400, "invalid Host header")
        resp = await call_next(request)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("Content-Security-Policy", CSP)
        return resp
