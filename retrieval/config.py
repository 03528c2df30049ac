"""Where things live: the index folder by default."""
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
