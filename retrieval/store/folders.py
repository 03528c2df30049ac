"""The photo folders an index holds: recorded in ``meta`` by each ``retr index`` run, counted
from the photos' paths (one index may hold any number of folders)."""
from __future__ import annotations

import json
import os

#: The ``meta`` key holding ``{folder: time of its last run (ISO 8601, UTC)}`` as JSON.
FOLDERS_KEY = "folders"


def recorded_folders(reader) -> dict[str, str]:
    """``{absolute folder (or file) path: last run, ISO 8601 UTC}`` of every ``retr index`` run
    recorded in the index (empty for an index made before folders were recorded, or damaged meta).

    Args:
        reader: a :class:`retrieval.store.queries.Queries` (its ``get_meta``).
    """
    try:
        d = json.loads(reader.get_meta(FOLDERS_KEY) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in d.items()} if isinstance(d, dict) else {}


def with_folder(reader, root: str, when: str) -> str:
    """The ``meta`` value recording a run over ``root`` at ``when`` beside the recorded ones (JSON text)."""
    d = recorded_folders(reader)
    d[os.path.abspath(root)] = when
    return json.dumps(dict(sorted(d.items())), ensure_ascii=False)


def photos_under(reader, root: str) -> int:
    """How many indexed photos lie at ``root`` or under it (a prefix match on the stored paths).

    Args:
        reader: a :class:`retrieval.store.queries.Queries`.
    """
    root = os.path.abspath(root)
    prefix = root.rstrip(os.sep) + os.sep
    return reader.count_photos_where("path = ? OR substr(path, 1, ?) = ?", (root, len(prefix), prefix))
