"""Walk folders for image files and fingerprint them (no decoding here)."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

#: File extensions indexed, matched case-insensitively.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


@dataclass(frozen=True)
class FileInfo:
    """A candidate image file found by :func:`walk_images`.

    Attributes:
        path: absolute path (symlinks in folder names kept as walked).
        size: bytes.
        mtime: modification time, seconds since the epoch (float).
    """

    path: str
    size: int
    mtime: float


def is_image_name(name: str) -> bool:
    """True if ``name`` ends with an image extension (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def walk_images(
    root: str | Path,
    *,
    skip_dirs: tuple[str | Path, ...] = (),
    on_error=None,
) -> Iterator[FileInfo]:
    """Yield image files under ``root`` (recursively, sorted, deterministic).

    Args:
        root: a folder, or a single image file.
        skip_dirs: folders never entered (e.g. the index folder itself).
        on_error: called as ``on_error(path, reason)`` for a folder or file that
            cannot be read; the walk goes on.

    Yields:
        :class:`FileInfo` per image file.
    """
    root = Path(root).absolute()
    skip = {os.path.realpath(d) for d in skip_dirs}
    if root.is_file():
        st = root.stat()
        yield FileInfo(str(root), st.st_size, st.st_mtime)
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
            try:
                if e.is_dir():
                    subdirs.append(e.path)
                elif e.is_file() and is_image_name(e.name):
                    st = e.stat()
                    yield FileInfo(e.path, st.st_size, st.st_mtime)
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
