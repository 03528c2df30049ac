"""The incremental plan of ``retr index``: which photos to embed, move, touch or remove.

:func:`plan` compares the photos an index holds with the files a walk found; it reads no photo
and writes nothing (hashing goes through the ``hash_file`` it is given), so it is tested
without any photo.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

from retrieval.io.files import FileInfo, content_hash


class Known(Protocol):
    """A photo row the index holds (``id``, ``path``, ``size`` in bytes, ``mtime`` and ``ctime`` in seconds,
    ``inode``, content ``hash``; ctime and inode None for rows indexed before they were recorded)."""

    id: int
    path: str
    size: int
    mtime: float
    ctime: float | None
    inode: int | None
    hash: str


@dataclass
class Todo:
    """A photo file to embed: a new one, or a changed one whose row is updated.

    Attributes:
        file: the file as walked (path, size, mtime are stored with the row).
        hash: its content hash, or None when not read yet (the embedder hashes it).
        row_id: the row of the same path to update; None for a new photo.
    """

    file: FileInfo
    hash: str | None = None
    row_id: int | None = None


@dataclass
class Plan:
    """What one run does to the index before embedding.

    Attributes:
        todo: photos to embed (new, or changed content).
        moves: (row id, file): a photo found at a new path with the bytes of one that is gone.
        touch: (row id, file): same path and bytes, new mtime, ctime or inode (the row's are updated).
        gone: rows under the walked root whose file is no longer there (removed).
        unchanged: photos left as they are (touched ones included).
        failures: (path, reason) of files that could not be read for hashing.
        found: how many image files the walk found (0: nothing to index there).
        back: (tombstone id, file, hash): a new file with the bytes of a photo removed earlier
            (:class:`retrieval.store.database.Tombstone`): it returns without embedding.
    """

    todo: list[Todo] = field(default_factory=list)
    moves: list[tuple[int, FileInfo]] = field(default_factory=list)
    touch: list[tuple[int, FileInfo]] = field(default_factory=list)
    gone: list = field(default_factory=list)
    unchanged: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    back: list[tuple[int, FileInfo, str]] = field(default_factory=list)
    found: int = 0


def is_under(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or inside it (absolute paths)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def plan(existing: Mapping[str, Known], found: list[FileInfo], root: str, *,
         hash_file: Callable[[str], str] = content_hash, defer_hashes: bool = False,
         tombstones: Mapping[str, int] | None = None) -> Plan:
    """Compare the index's photos with the walked files.

    A file whose size, mtime, ctime and inode match its row is unchanged (not read; a row without ctime and
    inode, from an older retr, is touched to record them). Otherwise (written over with the same name, size
    and mtime: another inode or ctime, as file-syncing tools notice) it is hashed:
    same bytes -> touched; bytes of a photo that is gone -> moved (its vector is kept); else it is
    embedded (a new row, or its row updated). With ``defer_hashes`` and nothing gone, a new file
    is left for the embedder to hash (no file can then be a moved one, so it is read once).

    Args:
        existing: {path: row} of the photos in the index.
        found: the files the walk of ``root`` found (absolute paths).
        root: the walked folder (or file); rows outside it are never gone.
        hash_file: content hash of a path; ``OSError`` makes the file a failure.
        defer_hashes: see above.
        tombstones: {content hash: tombstone id} of photos removed earlier; a new file with one of
            these hashes comes back (``back``) instead of being embedded.

    Returns:
        :class:`Plan`.
    """
    seen = {f.path for f in found}
    gone = {p: r for p, r in existing.items() if is_under(p, root) and p not in seen}
    by_hash: dict[str, list] = {}
    for r in gone.values():
        by_hash.setdefault(r.hash, []).append(r)
    out = Plan(found=len(found))
    tombs = dict(tombstones or {})
    for f in found:
        r = existing.get(f.path)
        if r is not None and r.size == f.size and r.mtime == f.mtime:
            if r.inode is None or f.inode is None or (r.inode == f.inode and r.ctime == f.ctime):
                if r.inode is None and f.inode is not None:
                    out.touch.append((r.id, f))  # indexed before inodes were recorded
                out.unchanged += 1
                continue
        if r is None and defer_hashes and not gone and not tombs:
            out.todo.append(Todo(f))
            continue
        try:
            h = hash_file(f.path)
        except OSError as e:
            out.failures.append((f.path, f"cannot read file ({e.strerror or e})"))
            continue
        if r is not None and r.hash == h:
            out.touch.append((r.id, f))
            out.unchanged += 1
        elif r is None and by_hash.get(h):
            old = by_hash[h].pop()
            del gone[old.path]
            out.moves.append((old.id, f))
        elif r is None and h in tombs:
            out.back.append((tombs.pop(h), f, h))
        else:
            out.todo.append(Todo(f, h, r.id if r is not None else None))
    out.gone = list(gone.values())
    return out
