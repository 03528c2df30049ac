"""retr: offline-first image-text search.

Python API (imports are lazy, so ``import retrieval`` is cheap)::

    from retrieval import index_folder, Index, load_encoder, load_captioner
    report = index_folder("photos/", "index/")
    for hit in Index("index/").search("a dog on a beach", k=5):
        print(hit.score, hit.path)
"""
from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "index_folder": "indexing.indexer",
    "IndexReport": "indexing.indexer",
    "IndexingError": "errors",
    "index_folder_ray": "indexing.distributed",
    "Index": "search",
    "Hit": "search",
    "QueryError": "errors",
    "StoreError": "errors",
    "load_encoder": "encoders.base",
    "Encoder": "encoders.base",
    "AlignedEncoder": "encoders.base",
    "EncoderError": "errors",
    "load_captioner": "captioning.model",
    "Captioner": "captioning.model",
    "CaptionerError": "errors",
    "RetrError": "errors",
    "load_image": "io.decode",
    "DecodeError": "errors",
    "load_coco_captions": "io.coco",
    "recall_at_k": "training.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"retrieval.{mod}"), name)
