"""Where things live (the index folder by default) and settings read from the environment."""
from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the index folder.
INDEX_ENV = "RETR_INDEX"
#: Environment variable naming retr's data folder (the default index lives in it).
HOME_ENV = "RETR_HOME"


def data_dir() -> Path:
    """retr's data folder: ``$RETR_HOME`` if set, else the user's data folder for retr
    (platformdirs: ``~/.local/share/retr`` on Linux, ``~/Library/Application Support/retr`` on
    macOS, ``%LOCALAPPDATA%\\retr`` on Windows; ``$XDG_DATA_HOME`` is honoured)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("retr", appauthor=False))


def default_index_dir(explicit: str | Path | None = None) -> Path:
    """The index folder: ``explicit`` if given, else ``$RETR_INDEX``, else ``index`` in
    :func:`data_dir` (one index for all of the user's photo folders, whatever the current folder)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(INDEX_ENV)
    return Path(env) if env else data_dir() / "index"


def is_default_index(explicit: str | Path | None = None) -> bool:
    """Whether neither ``explicit`` nor ``$RETR_INDEX`` names the index (the data folder's one is used)."""
    return not explicit and not os.environ.get(INDEX_ENV)


#: Environment variable choosing the image model's precision (see :func:`image_precision`).
PRECISION_ENV = "RETR_IMAGE_PRECISION"


def image_precision() -> str:
    """``"fp32"`` (default) or ``"int8"``: which exported image model embeds photos.

    ``RETR_IMAGE_PRECISION=int8`` selects the int8 model (about half the CPU per photo; dev
    Recall@K within 0.5 points of float32, but single rankings with a small margin can change,
    see docs/bench.md); ``fp32``, ``float32`` or unset selects float32 (case and surrounding
    spaces ignored).

    Raises:
        ValueError: any other value (a typo such as ``int-8`` must not silently mean float32).
    """
    raw = os.environ.get(PRECISION_ENV, "")
    v = raw.strip().lower()
    if v in ("", "fp32", "float32"):
        return "fp32"
    if v == "int8":
        return "int8"
    raise ValueError(f"{PRECISION_ENV}={raw!r}: choose fp32 or int8")


#: Environment variables overriding ``retr index --watch``'s timings (seconds; see
#: :class:`retrieval.indexing.watch.WatchSettings`): quiet time after the last event, and how long a
#: new photo's size and mtime must stay the same.
WATCH_ENV = {"debounce_s": "RETR_WATCH_DEBOUNCE", "stable_s": "RETR_WATCH_STABLE"}


def watch_timings() -> dict[str, float]:
    """The ``retr index --watch`` timings set in the environment (:data:`WATCH_ENV`), as keyword arguments
    of :class:`retrieval.indexing.watch.WatchSettings`.

    Raises:
        ValueError: a value that is not a number of seconds >= 0.
    """
    out = {}
    for key, env in WATCH_ENV.items():
        raw = os.environ.get(env, "").strip()
        if raw:
            try:
                out[key] = float(raw)
            except ValueError:
                raise ValueError(f"{env}={raw!r}: not a number of seconds") from None
            if not out[key] >= 0:
                raise ValueError(f"{env}={raw!r}: not a number of seconds >= 0")
    return out
