"""Where things live (the index folder by default) and settings read from the environment."""
from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the index folder.
INDEX_ENV = "RETR_INDEX"


def default_index_dir(explicit: str | Path | None = None) -> Path:
    """The index folder: ``explicit`` if given, else ``$RETR_INDEX``, else ``./index``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(INDEX_ENV)
    return Path(env) if env else Path.cwd() / "index"


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
