"""Precompute and cache frozen backbone and sentence-encoder features for training.

The cache key is the content of the captions file, the image folder and the
encoder name, so a second training run over the same corpus reads features
from disk in seconds instead of re-running the CNN.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from retrieval.io.coco import CaptionCorpus
from retrieval.io.decode import load_image
from retrieval.errors import DecodeError

log = logging.getLogger(__name__)


def cache_key(*parts: str) -> str:
    """A 16-hex-digit SHA-1 key of ``parts`` (joined by NUL): the file name of a cached feature array."""
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:16]


def save_atomic(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` to ``path`` (.npy) through a temporary file renamed into place (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    tmp.replace(path)


def readable_photos(corpus: CaptionCorpus, image_dir: str | Path, cache_dir: str | Path | None = None,
                    on_skip: Callable[[str, str], None] | None = None) -> CaptionCorpus:
    """``corpus`` without the photos that cannot be decoded, and without their captions.

    Each photo is decoded as :func:`image_features` will decode it (:func:`~retrieval.io.decode.load_image`,
    in JPEG draft mode: fast, and a truncated file still fails); one that fails (missing,
    unreadable, empty, not an image, truncated, too large) is reported as ``on_skip(path, reason)``,
    the :class:`~retrieval.io.decode.DecodeError`'s path and one-line reason (what ``retr index``
    reports), and left out with its captions. Which photos failed is cached in ``cache_dir`` under a
    key of the folder and each file's name, size and times, so a second run over unchanged files
    decodes only the photos that failed last time (again: a cause such as an I/O error may have
    passed); a changed or added file is checked again. JPEGs are decoded at reduced scale, so a
    photo can still fail at full size (memory) in :func:`image_features`.

    Args:
        corpus: the photos (``file_names`` relative to ``image_dir``) and their captions.
        image_dir: folder of the photos.
        cache_dir: where to keep the outcome (``None``: check every time).
        on_skip: called once per photo left out (default: a logged warning).

    Returns:
        ``corpus`` itself when every photo decodes, else ``corpus.subset`` of the readable
        photos (re-indexed: row i of :func:`image_features` of the result is its ``file_names[i]``;
        photos without captions are kept).

    Raises:
        ValueError: ``corpus`` has photos and none of them can be decoded.
    """
    image_dir = Path(image_dir)
    stats = []
    for f in corpus.file_names:
        try:
            st = os.stat(image_dir / f)
            stats.append(f"{f}\x01{st.st_size}\x01{st.st_mtime_ns}\x01{st.st_ctime_ns}")
        except OSError:
            stats.append(f"{f}\x01-")
    cache = (Path(cache_dir) / f"readable-{cache_key('readable', str(image_dir.resolve()), *stats)}.json"
             if cache_dir else None)
    suspects: list[int] | None = None  # photos to decode: all, or only those that failed last time
    if cache and cache.exists():
        try:
            suspects = [int(i) for i in json.loads(cache.read_text())]
            if any(not 0 <= i < len(corpus.file_names) for i in suspects):
                suspects = None
        except (ValueError, TypeError, OSError):  # a damaged cache: check again
            suspects = None
    cached = suspects
    bad: list[tuple[int, str, str]] = []  # (photo index, path, reason)
    for i in range(len(corpus.file_names)) if suspects is None else suspects:
        try:  # a photo that failed last time is decoded again: its cause may have been passing (I/O, memory)
            load_image(image_dir / corpus.file_names[i], draft_size=(64, 64))
        except DecodeError as e:
            bad.append((i, e.path, e.reason))
    if cache and [i for i, _, _ in bad] != cached:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps([i for i, _, _ in bad]))
        tmp.replace(cache)
    for _, p, r in bad:
        (on_skip or (lambda p, r: log.warning("skipped %s: %s", p, r)))(p, r)
    if not bad:
        return corpus
    n = len(corpus.file_names)
    if len(bad) == n:
        raise ValueError(f"{image_dir}: none of the {n} photos of the captions file can be read")
    skip = {i for i, _, _ in bad}
    return corpus.subset([i for i in range(n) if i not in skip])


def image_features(corpus: CaptionCorpus, image_dir: str | Path, backbone_name: str,
                   cache_dir: str | Path | None, flip: bool = False, batch_size: int = 32,
                   progress=None) -> np.ndarray:
    """Backbone features of every photo of ``corpus``.

    Args:
        corpus: the photos (``file_names`` relative to ``image_dir``).
        image_dir: folder of the photos.
        backbone_name: see :func:`retrieval.encoders.backbones.available_backbones`.
        cache_dir: where to keep ``.npy`` caches (``None``: no cache).
        flip: also return features of the horizontally mirrored photo.
        progress: optional callable ``progress(done, total)``.

    Returns:
        (N, Di) float32 (or (2, N, Di) when ``flip``), row i for ``file_names[i]``;
        for a concatenation such as ``"efficientnet-lite0+efficientnet-lite2"`` the
        features of each backbone (each cached on its own) side by side.

    Raises:
        DecodeError: a photo cannot be decoded (training needs every photo: leave such photos
            out first with :func:`readable_photos`).
    """
    from PIL import ImageOps

    from retrieval.encoders.backbones import Backbone

    if "+" in backbone_name:
        parts = [image_features(corpus, image_dir, b, cache_dir, flip, batch_size, progress)
                 for b in backbone_name.split("+")]
        return np.concatenate(parts, axis=-1)

    image_dir = Path(image_dir)
    key = cache_key("img", backbone_name, str(image_dir.resolve()), "\n".join(corpus.file_names), str(flip))
    cache = Path(cache_dir) / f"img-{backbone_name}-{key}.npy" if cache_dir else None
    if cache and cache.exists():
        return np.load(cache)
    bb = Backbone(backbone_name)
    n = len(corpus.file_names)
    out = np.zeros(((2 if flip else 1), n, bb.spec.dim), np.float32)
    for s in range(0, n, batch_size):
        ims = [load_image(image_dir / f) for f in corpus.file_names[s : s + batch_size]]
        out[0, s : s + len(ims)] = bb.features_onnx(ims, batch_size)
        if flip:
            out[1, s : s + len(ims)] = bb.features_onnx([ImageOps.mirror(im) for im in ims], batch_size)
        if progress:
            progress(min(s + batch_size, n), n)
    res = out if flip else out[0]
    if cache:
        save_atomic(cache, res)
    return res


def text_features(texts: list[str], encoder_name: str, cache_dir: str | Path | None,
                  batch_size: int = 256) -> np.ndarray:
    """Sentence-encoder embeddings of ``texts``.

    Returns:
        (N, 384) float32, L2-normalised.
    """
    from retrieval.encoders.text import SentenceEncoder

    key = cache_key("txt", encoder_name, "\n".join(texts))
    cache = Path(cache_dir) / f"txt-{encoder_name}-{key}.npy" if cache_dir else None
    if cache and cache.exists():
        return np.load(cache)
    res = SentenceEncoder(encoder_name).embed(texts, batch_size)
    if cache:
        save_atomic(cache, res)
    return res
