"""What ``retr``'s two entry points share, without Typer: logging set-up, one-line output and
``retr search`` itself (:func:`run_search`), answered by :mod:`retrieval.app.cli` directly and by the
Typer app of :mod:`retrieval.app.commands` when its own parser takes the arguments."""
from __future__ import annotations

import os
import sys


def plain(s: str) -> str:
    """One line per result: bytes of a name that are not UTF-8 shown as ``\\xHH``, control characters
    (a newline in a file name) escaped; --json is exact."""
    from retrieval.io.paths import display

    s = display(s)
    return s if s.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def stdout_is_utf8() -> bool:
    """True when stdout takes any text (UTF-8); else JSON output uses ASCII escapes."""
    enc = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    return enc in ("utf8", "utf8sig")


def escape_unshowable_output() -> None:
    """On a terminal (or pipe) whose encoding is not UTF-8 (``PYTHONIOENCODING=ascii``, ``LC_ALL=C``
    with ``PYTHONUTF8=0``), write what it cannot show as backslash escapes instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a stream that cannot be reconfigured
                pass


def setup_logging() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, format="retr: warning: %(message)s")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def write_line(msg: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    if stream is None:  # started with that stream closed (`>&-`): nothing to write to
        return
    stream.write(msg + "\n")
    stream.flush()


def local_index_hint() -> str:
    """When the current folder holds an index of the old default place (``./index``), how to use
    it or move it to the default place ('' otherwise)."""
    from pathlib import Path

    from retrieval.config import default_index_dir
    from retrieval.store.layout import DB_NAME

    if not (Path("index") / DB_NAME).is_file():
        return ""
    return (f"; ./index holds an index: name it with --index ./index (or RETR_INDEX), or move it to the "
            f"default place: mv ./index {default_index_dir()}")


def run_search(query: str, k: int = 10, as_text: bool = False, texts: bool = False, as_json: bool = False,
               index_dir=None, db: str | None = None, echo=None, after: str | None = None,
               before: str | None = None, folder: str | None = None, camera: str | None = None,
               place: str | None = None, sort: str = "score", literal: bool = False, add=(), subtract=(),
               text_only: bool = False, channels: str | None = None, min_score: float | None = None,
               max_megapixels: float = 200.0) -> int:
    """``retr search``: print the hits; returns the exit status (0, 1: no index/bad query, 2: bad
    -k, a bad date or --sort).

    Dates and places in the words are parsed into filters unless ``literal``
    (:mod:`retrieval.query.understand`); the filters ``after`` ... ``place`` are those of
    :meth:`retrieval.query.filters.Filters.from_options`; ``add``/``subtract`` steer the query
    (:mod:`retrieval.query.operators`). ``channels``: comma-separated channels to fuse for words
    (default: :data:`retrieval.concepts.fusion.DEFAULT_CHANNELS`); ``min_score``: leave out hits whose
    match (the calibrated probability, or the score where there is none) is below it. A word query whose
    best photo is unlikely to match gets one line on stderr: ``no good match for ...``.
    ``echo(msg)`` writes a line to stdout (``echo(msg, err=True)`` to stderr).
    """
    echo = echo or write_line
    setup_logging()
    from retrieval.config import default_index_dir, is_default_index
    from retrieval.errors import EncoderError, QueryError, StoreError
    from retrieval.query.filters import Filters
    from retrieval.search import Index

    def err(msg):
        echo(f"retr: {msg}", err=True)

    try:
        if k < 1:
            raise ValueError(f"-k must be at least 1 (got {k})")
        if sort not in ("score", "date"):
            raise ValueError(f"--sort must be score or date, not {sort!r}")
        given = Filters.from_options(after, before, folder, camera, place)
    except ValueError as e:
        err(str(e))
        return 2
    try:
        ix = Index(default_index_dir(index_dir), db_url=db)
        asked = understood_query(query, ix, given, literal or texts)
        if asked.parsed:
            err(asked.line())
        chans = tuple(c.strip() for c in channels.split(",") if c.strip()) if channels else None
        hits = ix.search(asked.text, k=k, texts=texts, as_text=as_text, filters=asked.filters or None, sort=sort,
                         add=add, subtract=subtract, text_only=text_only, channels=chans,
                         max_megapixels=max_megapixels)
    except (QueryError, StoreError, EncoderError) as e:
        err(str(e) + (local_index_hint() if isinstance(e, StoreError) and is_default_index(index_dir) else ""))
        return 1
    print_hits(ix, hits, asked, texts=texts, as_json=as_json, dated=sort == "date", echo=echo, text_only=text_only,
               min_score=min_score)
    return 0


def understood_query(query: str, ix, given, literal: bool, files: bool = True):
    """:func:`retrieval.query.understand.understand` with the index's place names and texts, and the
    text encoder's word list (its tokenizer's whole-word tokens, when it has one)."""
    from retrieval.query.understand import understand

    def vocabulary(word: str) -> bool:
        tok = getattr(ix.text_encoder, "tokenizer", None)
        return tok is not None and tok.token_to_id(word) is not None

    return understand(str(query), given, literal=literal, places=ix.reader.place_names, vocabulary=vocabulary,
                      in_texts=ix.reader.text_contains, files=files)


def print_hits(ix, hits, asked, *, texts: bool, as_json: bool, dated: bool, echo, text_only: bool = False,
               min_score: float | None = None) -> None:
    """Print ``hits`` (``match TAB path``, the score where a hit has no calibrated match; with ``dated``
    ``score TAB taken TAB path``; ``--texts``: ``score TAB caption TAB path``; ``--json``: one array) and
    the one-line notes on stderr (the "no good match" verdict among them); ``min_score`` leaves out
    hits whose match (else score) is lower."""
    import json

    def err(msg):
        echo(f"retr: {msg}", err=True)

    if ix.rebuilt:
        err("warning: the vector index was out of date (an interrupted or running `retr index`) or damaged, "
            "and was rebuilt in memory from the database; a finished `retr index` saves it")
    for note in ix.notes:
        err(f"note: {note}")
    if not hits and ix.matched == 0:
        err(f"no photo matches the filters ({asked.filters.describe()})")
    elif not hits:
        err("no captions in this index (index with --captions, or without --no-captions)" if texts
            else "no photo's recognised text holds those words (OCR runs at `retr index` unless --no-ocr)"
            if text_only else "the index has no photos")
    elif ix.no_match:
        err(f"no good match for {asked.text!r} (best match {hits[0].match:.2f}); the results below are the nearest")
    if min_score is not None:
        hits = [h for h in hits if (h.match if h.match is not None else h.score) >= min_score]
    if as_json:
        echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=not stdout_is_utf8()))
        return
    for h in hits:
        mark = "\t(missing: no longer on disk)" if h.missing else ""
        if texts:
            echo(f"{h.score:.3f}\t{plain(h.text)}\t{plain(h.path or '')}{mark}")
        elif dated:
            echo(f"{h.score:.3f}\t{h.taken or '-'}\t{plain(h.path)}{mark}")
        else:
            echo(f"{h.match if h.match is not None else h.score:.3f}\t{plain(h.path)}{mark}")
