"""Precompute and cache frozen backbone and sentence-encoder features for training.

The cache key is the content of the captions file, the image folder and the
encoder name, so a second training run over the same corpus reads features
from disk in seconds instead of re-running the CNN.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ..coco import CaptionCorpus
from ..decode import load_image

log = logging.getLogger(__name__)


def _key(*parts: str) -> str:
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:16]


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    tmp.replace(path)


def image_features(corpus: CaptionCorpus, image_dir: str | Path, backbone_name: str,
                   cache_dir: str | Path | None, flip: bool = False, batch_size: int = 32,
                   progress=None) -> np.ndarray:
    """Backbone features of every photo of ``corpus``.

    Args:
        corpus: the photos (``file_names`` relative to ``image_dir``).
        image_dir: folder of the photos.
        backbone_name: see :func:`retrieval.backbones.available_backbones`.
        cache_dir: where to keep ``.npy`` caches (``None``: no cache).
        flip: also return features of the horizontally mirrored photo.
        progress: optional callable ``progress(done, total)``.

    Returns:
        (N, Di) float32 (or (2, N, Di) when ``flip``), row i for ``file_names[i]``;
        for a concatenation such as ``"efficientnet-lite0+efficientnet-lite2"`` the
        features of each backbone (each cached on its own) side by side.

    Raises:
        DecodeError: a photo cannot be decoded (training needs every photo).
    """
    from PIL import ImageOps

    from ..backbones import Backbone

    if "+" in backbone_name:
        parts = [image_features(corpus, image_dir, b, cache_dir, flip, batch_size, progress)
                 for b in backbone_name.split("+")]
        return np.concatenate(parts, axis=-1)

    image_dir = Path(image_dir)
    key = _key("img", backbone_name, str(image_dir.resolve()), "\n".join(corpus.file_names), str(flip))
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
        _save_atomic(cache, res)
    return res


def text_features(texts: list[str], encoder_name: str, cache_dir: str | Path | None,
                  batch_size: int = 256) -> np.ndarray:
    """Sentence-encoder embeddings of ``texts``.

    Returns:
        (N, 384) float32, L2-normalised.
    """
    from ..text import SentenceEncoder

    key = _key("txt", encoder_name, "\n".join(texts))
    cache = Path(cache_dir) / f"txt-{encoder_name}-{key}.npy" if cache_dir else None
    if cache and cache.exists():
        return np.load(cache)
    res = SentenceEncoder(encoder_name).embed(texts, batch_size)
    if cache:
        _save_atomic(cache, res)
    return res
