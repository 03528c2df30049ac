"""Walk folders for image files and fingerprint them (no decoding here)."""
from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

#: File extensions indexed, matched case-insensitively.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff",
                              ".heic", ".heif", ".avif"})
#: Folders that hold OS or NAS clutter (thumbnails, metadata), never photos of the user's.
CLUTTER_DIRS = frozenset({"@eaDir", "__MACOSX", "$RECYCLE.BIN", "System Volume Information", ".Trashes",
                          ".thumbnails", "#recycle", "@Recycle"})
#: Files that mark a folder as a retr index (its database, its FAISS file when the tables are
#: in a server database): such a folder, anyone's, is never walked (its thumbnails are no photos).
INDEX_MARKERS = ("retr.sqlite", "photos.faiss")
#: Files that are OS clutter even when they carry an image extension.
CLUTTER_FILES = frozenset({"Thumbs.db", ".DS_Store", "desktop.ini"})


@dataclass(frozen=True)
class FileInfo:
    """A candidate image file found by :func:`walk_images`.

    Attributes:
        path: absolute path (symlinks in folder names kept as walked).
        size: bytes.
        mtime: modification time, seconds since the epoch (float).
        ctime: inode change time (POSIX; creation time on Windows), seconds since the epoch, or
            None when not known; with ``inode``, tells a file written over another of the same
            name, size and mtime (as file-syncing tools do).
        inode: the file's inode (file index on Windows), or None when not known.
    """

    path: str
    size: int
    mtime: float
    ctime: float | None = None
    inode: int | None = None

    @classmethod
    def from_stat(cls, path: str, st: os.stat_result) -> "FileInfo":
        """The FileInfo of ``path`` from its ``os.stat`` result."""
        return cls(path, st.st_size, st.st_mtime, st.st_ctime, st.st_ino or None)


def is_image_name(name: str) -> bool:
    """True if ``name`` ends with an image extension (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_skipped(name: str, rel: str, include_hidden: bool, exclude: tuple[str, ...], is_dir: bool) -> bool:
    """Whether the walk leaves out an entry.

    Hidden names (starting with ``.``) unless ``include_hidden``; OS clutter
    (:data:`CLUTTER_DIRS`, :data:`CLUTTER_FILES`, macOS ``._*`` resource forks)
    always; and any entry whose name or path relative to the walked root matches
    a glob in ``exclude``.
    """
    if (name in CLUTTER_DIRS if is_dir else (name in CLUTTER_FILES or name.startswith("._"))):
        return True
    if name.startswith(".") and not include_hidden:
        return True
    return any(fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(rel, pat) for pat in exclude)


def is_index_folder(path: str | Path) -> bool:
    """True when ``path`` is a retr index folder (holds one of :data:`INDEX_MARKERS`)."""
    return any(os.path.isfile(os.path.join(path, m)) for m in INDEX_MARKERS)


def walk_images(
    root: str | Path,
    *,
    skip_dirs: tuple[str | Path, ...] = (),
    include_hidden: bool = False,
    exclude: tuple[str, ...] = (),
    on_error=None,
) -> Iterator[FileInfo]:
    """Yield image files under ``root`` (recursively, sorted, deterministic).

    Symlinked folders are followed, each real folder at most once (no loops). Folders that are
    retr indexes (:func:`is_index_folder`, whoever made them) are not entered.

    Args:
        root: a folder, or a single image file.
        skip_dirs: folders never entered (e.g. the index folder itself).
        include_hidden: also walk hidden files and folders (names starting with ``.``).
        exclude: glob patterns matched against names and root-relative paths
            (``"*.png"``, ``"raw/*"``, ``"tmp"``).
        on_error: called as ``on_error(path, reason)`` for a folder or file that
            cannot be read; the walk goes on.

    Yields:
        :class:`FileInfo` per image file.
    """
    root = Path(root).absolute()
    skip = {os.path.realpath(d) for d in skip_dirs}
    if root.is_file():
        yield FileInfo.from_stat(str(root), root.stat())
        return
    seen_real: set[str] = set()
    stack = [str(root)]
    while stack:
        d = stack.pop()
        real = os.path.realpath(d)
        if real in seen_real or real in skip:
            continue
        seen_real.add(real)
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            if on_error:
                on_error(d, f"cannot read folder ({e.strerror or e})")
            continue
        subdirs = []
        for e in entries:
            rel = os.path.relpath(e.path, root)
            try:
                is_dir = e.is_dir()
                if is_skipped(e.name, rel, include_hidden, exclude, is_dir):
                    continue
                if is_dir:
                    if not is_index_folder(e.path):
                        subdirs.append(e.path)
                elif e.is_file() and is_image_name(e.name):
                    yield FileInfo.from_stat(e.path, e.stat())
            except OSError as err:
                if on_error:
                    on_error(e.path, f"cannot stat ({err.strerror or err})")
        stack.extend(reversed(subdirs))


def content_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """BLAKE2b-128 hex digest of the file's bytes.

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()
