"""Image features of the captioning photos (Flickr8k train and dev, COCO-mini), one pass a photo.

    python scripts/eval/caption_features.py --preset fast [--data ../shared/data] [--out DIR]
    python scripts/eval/caption_features.py --preset fast --sets flickr8k-train,flickr8k-dev,coco-mini \\
        --regions --objects [--flip] --out DIR

Writes ``DIR/<preset>-<set>.npz``: ``files`` (N,) in the order of the set's captions JSON,
``emb`` (N, D) float32 aligned embeddings (what the captioner conditions on), ``post`` (N, 1000)
float16 ImageNet posteriors (the backbones' mean softmax), ``top_classes`` (N, 10) int16 and
``top_probs`` (N, 10) float32 (the top classes as an index stores them,
:func:`retrieval.concepts.scoring.top_classes`). Without ``--regions`` the ONNX image path embeds
(as ``retr index``); read by ``scripts/eval/caption_objects_eval.py``.

``--regions`` (torch, float32) adds ``pooled`` (N, sum of backbone dims) float32 and
``region_counts`` (K,) to the npz, and ``DIR/<preset>-<set>-regions.npy``: (N, R, 1280) float16
spatial maps (``np.load(..., mmap_mode="r")``; R = sum of ``region_counts``, backbones in preset
order, regions row-major; their mean over each backbone's regions is ``pooled``). ``--flip``: also
``-regions-flip.npy`` of the horizontally mirrored photos (train set only).
``--objects``: ``DIR/objects-<set>.npz``, YOLOv3-tiny at 320 px through ONNX Runtime as ``retr
index`` runs it: ``files``; every detection with score >= 0.25 as ``det_photo`` (M,) int32,
``det_class`` (M,) int16 (COCO class index), ``det_score`` (M,) float32, ``det_box`` (M, 4)
float32 (x0, y0, x1, y1 as fractions of width and height); and the rows an index stores
(:func:`retrieval.detection.scoring.summarise`) as ``obj_photo``, ``obj_class``, ``obj_score``,
``obj_count``. Existing files are kept (delete one to redo it).
"""
import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import ImageOps

from retrieval.concepts.scoring import top_classes
from retrieval.encoders.base import load_encoder
from retrieval.io.decode import load_image

SETS = {"flickr8k-train": ("flickr8k/captions_train.json", "flickr8k/images"),
        "flickr8k-dev": ("flickr8k/captions_dev.json", "flickr8k/images"),
        "coco-mini": ("coco_mini/captions.json", "coco_mini/images")}
BATCH = 32


def set_files(data: Path, name: str) -> tuple[list[str], Path]:
    capf, imgs = SETS[name]
    return [im["file_name"] for im in json.loads((data / capf).read_text())["images"]], data / imgs


def batches(files, imgs):
    for s in range(0, len(files), BATCH):
        yield s, [load_image(imgs / f) for f in files[s : s + BATCH]]


def concept_arrays(embs, posts) -> dict:
    post = np.concatenate(posts).astype(np.float32)
    cls, p = top_classes(post)
    return {"emb": np.concatenate(embs).astype(np.float32), "post": post.astype(np.float16),
            "top_classes": cls, "top_probs": p}


def write_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def embed_set(enc, files, imgs, out: Path) -> None:
    """The ONNX image path (as an index runs it): embeddings and posteriors."""
    embs, posts = [], []
    for _, photos in batches(files, imgs):
        e, p = enc.encode_images_and_concepts(photos)
        embs.append(e)
        posts.append(p)
    write_npz(out, files=np.array(files), **concept_arrays(embs, posts))


def open_maps(enc, files, path: str):
    return np.lib.format.open_memmap(path, "w+", np.float16, (len(files), sum(enc.region_counts), 1280))


def close_maps(maps, tmp: str, path: str) -> None:
    maps.flush()
    del maps
    os.replace(tmp, path)


def flip_set(enc, files, imgs, path: str) -> None:
    """Spatial maps of the horizontally mirrored photos (augmentation), float16."""
    maps = open_maps(enc, files, path + ".tmp.npy")
    for s, photos in batches(files, imgs):
        maps[s : s + len(photos)] = enc.backbone.spatial_features([ImageOps.mirror(im) for im in photos])
    close_maps(maps, path + ".tmp.npy", path)


def region_set(enc, files, imgs, out: Path) -> None:
    """Torch float32: spatial maps (float16 on disk), pooled features, embeddings, posteriors."""
    counts = enc.region_counts
    base = out.with_suffix("")
    maps = open_maps(enc, files, f"{base}-regions.tmp.npy")
    embs, posts, pooled = [], [], []
    bounds = np.cumsum([0] + counts)
    t = time.time()
    for s, photos in batches(files, imgs):
        e, p, m = enc.encode_images_concepts_and_regions(photos)
        maps[s : s + len(photos)] = m
        pooled.append(np.concatenate([m[:, a:b].mean(1) for a, b in zip(bounds[:-1], bounds[1:])], axis=1))
        embs.append(e)
        posts.append(p)
        if (s // BATCH) % 20 == 0:
            print(f"  {s + len(photos)}/{len(files)} photos, {(s + len(photos)) / (time.time() - t):.1f}/s", flush=True)
    close_maps(maps, f"{base}-regions.tmp.npy", f"{base}-regions.npy")
    write_npz(out, files=np.array(files), pooled=np.concatenate(pooled).astype(np.float32),
              region_counts=np.array(counts), **concept_arrays(embs, posts))


def object_set(files, imgs, out: Path) -> None:
    """YOLOv3-tiny detections and the rows an index stores."""
    from retrieval.detection.classes import COCO_CLASSES
    from retrieval.detection.scoring import summarise
    from retrieval.detection.yolo import ObjectDetector

    det, idx = ObjectDetector(threads=1), {c: i for i, c in enumerate(COCO_CLASSES)}
    d_rows, o_rows = [], []
    for s, photos in batches(files, imgs):
        for k, found in enumerate(det.detect(photos)):
            d_rows += [(s + k, idx[d.label], d.score, *d.box) for d in found]
            o_rows += [(s + k, c, sc, n) for c, sc, n in summarise(found)]
    d = np.array(d_rows, np.float64).reshape(-1, 7)
    o = np.array(o_rows, np.float64).reshape(-1, 4)
    write_npz(out, files=np.array(files), det_photo=d[:, 0].astype(np.int32), det_class=d[:, 1].astype(np.int16),
              det_score=d[:, 2].astype(np.float32), det_box=d[:, 3:].astype(np.float32),
              obj_photo=o[:, 0].astype(np.int32), obj_class=o[:, 1].astype(np.int16),
              obj_score=o[:, 2].astype(np.float32), obj_count=o[:, 3].astype(np.int16))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--out", default="cache/caption-eval")
    ap.add_argument("--sets", default="flickr8k-dev,coco-mini")
    ap.add_argument("--regions", action="store_true", help="spatial maps and pooled features (torch)")
    ap.add_argument("--flip", action="store_true", help="with --regions: mirrored train photos' maps too")
    ap.add_argument("--objects", action="store_true", help="YOLOv3-tiny detections (objects-<set>.npz)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    enc = load_encoder(a.preset, runtime="torch" if a.regions else "auto")
    if not a.regions:
        enc.export_fast_path()
    Path(a.out).mkdir(parents=True, exist_ok=True)
    for name in a.sets.split(","):
        files, imgs = set_files(Path(a.data), name)
        jobs = {Path(a.out) / f"{a.preset}-{name}.npz": "features"}
        if a.objects:
            jobs[Path(a.out) / f"objects-{name}.npz"] = "objects"
        if a.regions and a.flip and name.endswith("train"):
            jobs[Path(a.out) / f"{a.preset}-{name}-regions-flip.npy"] = "flip"
        for out, job in jobs.items():
            if out.exists():
                continue
            t = time.time()
            if job == "objects":
                object_set(files, imgs, out)
            elif job == "flip":
                flip_set(enc, files, imgs, str(out))
            elif a.regions:
                region_set(enc, files, imgs, out)
            else:
                embed_set(enc, files, imgs, out)
            print(f"{out}: {len(files)} photos, {time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
