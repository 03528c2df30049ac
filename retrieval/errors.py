"""retr's errors: one family under :class:`RetrError`, so an entry point catches them all at once.

Each carries a one-line message saying what is wrong and, where it can, what to do.
"""
from __future__ import annotations

from pathlib import Path


class RetrError(Exception):
    """Base class of every error retr raises on purpose (bad input, a missing or incompatible index)."""


class StoreError(RetrError):
    """The index cannot be opened or used; the message says what to do."""


class EncoderError(RetrError):
    """An encoder cannot be loaded (missing or invalid weights file)."""


class IndexingError(RetrError):
    """The run cannot start (bad folder, locked or incompatible index)."""


class CaptionerError(RetrError):
    """The captioner cannot be loaded or does not match the encoder."""


class QueryError(RetrError, ValueError):
    """A query that cannot be answered (empty text, a file that is not an image, k < 1)."""


class IndexTypeError(RetrError, ValueError):
    """An unknown index type name."""


class DecodeError(RetrError):
    """A file could not be decoded as an image.

    Attributes:
        path: the file that failed.
        reason: one line saying why (no traceback).
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # one line, whatever the decoder's message
        super().__init__(f"{self.path}: {self.reason}")
