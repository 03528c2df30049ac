"""File paths whose bytes are not valid UTF-8: stored without loss, shown readably, given back exactly.

On POSIX a file name is bytes; Python reads a name that is not valid UTF-8 as a ``str`` with
lone surrogates (PEP 383, ``surrogateescape``: byte 0xff becomes U+DCFF), which neither SQLite's
nor PostgreSQL's text columns accept. Three forms of such a path:

- stored (:func:`to_db` / :func:`from_db`): a valid UTF-8 path is stored as it is; any other is
  stored as ``bytes:`` followed by its bytes, each undecodable byte written ``\\xHH`` and each
  backslash doubled (no absolute path starts with ``bytes:``, so the mapping is one-to-one);
- shown (:func:`display`): undecodable bytes as ``\\xHH`` (a terminal, a log line);
- in JSON (:func:`readable`, :func:`to_b64`): ``path`` with undecodable bytes replaced by U+FFFD,
  and ``path_b64``, the raw bytes in base64 (RFC 4648), which ``retr search b64:...`` takes back
  (:func:`from_query`).
"""
from __future__ import annotations

import base64
import binascii
import codecs

#: prefix of a stored path that is not valid UTF-8 (see :func:`to_db`)
STORED_BYTES_PREFIX = "bytes:"
#: prefix of a query naming a file by the base64 of its path's bytes (``retr search b64:...``)
QUERY_B64_PREFIX = "b64:"


def path_bytes(path: str) -> bytes:
    """The bytes of ``path``: UTF-8, surrogate escapes back to their bytes (as ``os.fsencode`` on a
    UTF-8 system, but the same whatever the locale, e.g. ``LC_ALL=C``)."""
    return path.encode("utf-8", "surrogateescape")


def bytes_path(raw: bytes) -> str:
    """The inverse of :func:`path_bytes`."""
    return raw.decode("utf-8", "surrogateescape")


def is_lossless_text(path: str) -> bool:
    """True when ``path`` is valid Unicode text (no surrogate escapes of undecodable bytes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_db(path: str) -> str:
    """The form of ``path`` stored in the database: valid UTF-8 text, one-to-one with the path's bytes."""
    if is_lossless_text(path) and not path.startswith(STORED_BYTES_PREFIX):
        return path
    raw = path_bytes(path).replace(b"\\", b"\\\\")
    return STORED_BYTES_PREFIX + raw.decode("utf-8", "backslashreplace")


def from_db(stored: str | None) -> str | None:
    """The path (``str``, surrogate-escaped where its bytes are not UTF-8) that :func:`to_db` stored."""
    if stored is None or not stored.startswith(STORED_BYTES_PREFIX):
        return stored
    raw, _ = codecs.escape_decode(stored[len(STORED_BYTES_PREFIX):].encode("utf-8"))
    return bytes_path(raw)


def display(path: str) -> str:
    """``path`` for a terminal or a log: undecodable bytes shown as ``\\xHH``."""
    if is_lossless_text(path):
        return path
    return path_bytes(path).decode("utf-8", "backslashreplace")


def readable(path: str | None) -> str | None:
    """``path`` as valid Unicode text for JSON: undecodable bytes replaced by U+FFFD (lossy: see :func:`to_b64`)."""
    if path is None or is_lossless_text(path):
        return path
    return path_bytes(path).decode("utf-8", "replace")


def to_b64(path: str | None) -> str | None:
    """The raw bytes of ``path`` in base64 (RFC 4648, standard alphabet): the lossless JSON form."""
    return None if path is None else base64.b64encode(path_bytes(path)).decode("ascii")


def from_query(query: str) -> str | None:
    """The path named by a ``b64:BASE64`` query (None when ``query`` is not of that form).

    Raises:
        ValueError: the part after ``b64:`` is not base64.
    """
    if not query.startswith(QUERY_B64_PREFIX):
        return None
    try:
        raw = base64.b64decode(query[len(QUERY_B64_PREFIX):].strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{query[:60]}: not base64 after {QUERY_B64_PREFIX!r} (give a path_b64 from --json)") from None
    return bytes_path(raw)
