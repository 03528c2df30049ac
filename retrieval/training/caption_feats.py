"""Photo features of the attention captioner's training and evaluation (scripts/train/train_attend_captioner.py,
scripts/eval/eval_attend_captioner.py), from the feature cache
written by ``scripts/eval/caption_features.py --regions --objects`` (its README describes the files):
``<preset>-<set>.npz`` (files, emb, post), ``<preset>-<set>-regions.npy`` (N, R, 1280) float16 and
``objects-<set>.npz`` (the detections an index stores: obj_photo, obj_class, obj_score)."""
import json
from pathlib import Path

import numpy as np

from retrieval.captioning.concept_input import photo_concepts
from retrieval.io.coco import load_coco_captions
from retrieval.training.attend_captioner import PhotoData
from retrieval.training.captioner import encode_captions

CAPTIONS = {"flickr8k-train": "flickr8k/captions_train.json", "flickr8k-dev": "flickr8k/captions_dev.json",
            "coco-mini": "coco_mini/captions.json"}


def load_set(feats: Path, preset: str, name: str, regions: bool = True) -> dict:
    """A set's features: files, emb (N, D) f32, post (N, 1000) f32, regions (N, R, F) f16 or None,
    objects (per photo, [(COCO class, score)])."""
    f = np.load(feats / f"{preset}-{name}.npz")
    out = {"files": [str(x) for x in f["files"]], "emb": f["emb"].astype(np.float32),
           "post": f["post"].astype(np.float32), "regions": None}
    if regions:
        out["regions"] = np.load(feats / f"{preset}-{name}-regions.npy", mmap_mode="r")
    objs = [[] for _ in out["files"]]
    op = feats / f"objects-{name}.npz"
    if op.is_file():
        o = np.load(op)
        assert [str(x) for x in o["files"]] == out["files"], f"{op}: other photos than {preset}-{name}"
        for p, c, s in zip(o["obj_photo"], o["obj_class"], o["obj_score"]):
            objs[int(p)].append((int(c), float(s)))
    out["objects"] = objs
    return out


def references(data: Path, name: str, files: list[str]) -> dict:
    """{file: [human captions]} of a set."""
    d = json.loads((data / CAPTIONS[name]).read_text())
    by_id = {im["id"]: im["file_name"] for im in d["images"]}
    refs = {fn: [] for fn in files}
    for an in d["annotations"]:
        refs[by_id[an["image_id"]]].append(an["caption"])
    return refs


def flickr_train(data: Path, feats: Path, preset: str, vocab: list[str], max_len: int):
    """(:class:`PhotoData` of the Flickr8k train photos, id of the ``preset``'s encoder) with their concepts."""
    s = load_set(feats, preset, "flickr8k-train")
    train = load_coco_captions(data / CAPTIONS["flickr8k-train"])
    assert list(train.file_names) == s["files"], "feature rows and captions_train.json images differ"
    ids, conf = photo_concepts(s["post"], s["objects"], vocab)
    from retrieval.encoders.base import load_encoder

    enc = load_encoder(preset).id  # the features' encoder: the captioner decodes its embeddings only
    return PhotoData(s["emb"], np.ascontiguousarray(s["regions"]), ids, conf,
                     encode_captions(list(train.captions), vocab, max_len), np.asarray(train.caption_photo)), enc
