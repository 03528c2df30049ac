"""COCO detections of the concept-evaluation galleries (YOLOv3-tiny through the product's ONNX
export), cached beside ``concept_data``'s arrays, and how often the detector finds the objects that
the human captions name.

Per gallery the cache ``{gallery}-yolo{size}.npz`` holds every detection with score >= 0.05 after
class-wise NMS: ``photo`` (M,) int32 photo index (``concept_data``'s order), ``cls`` (M,) int16 COCO
class, ``score`` (M,) float32. The coverage table: an object is *named* in a photo when at least 3 of
its 5 captions contain one of its class's names (:func:`retrieval.detection.names.class_names`,
whole words); it is *found* when the detector reports that class at >= the score threshold.

Usage:
    python scripts/eval/detector_data.py [--size 320] [GALLERY ...]    # detect (cached) + coverage table
"""
from __future__ import annotations

import argparse
import json
import re
import sys

import numpy as np

import concept_data


def detections(name: str, size: int) -> dict:
    """The cached detections of gallery ``name`` at input ``size`` (computed on first use)."""
    path = concept_data.CACHE / f"{name}-yolo{size}.npz"
    if not path.is_file():
        from retrieval.detection.classes import COCO_CLASSES
        from retrieval.detection.yolo import ObjectDetector
        from retrieval.io.decode import load_image

        g = concept_data.load_gallery(name)
        _, img_dir = concept_data.gallery_files(name)
        det = ObjectDetector(size, threads=2, min_score=0.05)
        idx = {c: i for i, c in enumerate(COCO_CLASSES)}
        photo, cls, score = [], [], []
        files = list(g["file_names"])
        for b in range(0, len(files), 32):
            ims = [load_image(img_dir / f) for f in files[b : b + 32]]
            for k, ds in enumerate(det.detect(ims)):
                for d in ds:
                    photo.append(b + k)
                    cls.append(idx[d.label])
                    score.append(d.score)
            print(f"{name}: {b + len(ims)}/{len(files)}", file=sys.stderr, flush=True)
        np.savez(path, photo=np.array(photo, np.int32), cls=np.array(cls, np.int16), score=np.array(score, np.float32))
    z = np.load(path)
    return {k: z[k] for k in z.files}


def named_objects(captions: list[list[str]], min_captions: int = 3) -> list[set[int]]:
    """Per photo, the COCO classes named (a class name as whole words) in >= ``min_captions`` captions."""
    from retrieval.detection.names import class_names

    pats = [re.compile(r"\b(" + "|".join(re.escape(n) for n in class_names(c)) + r")\b") for c in range(80)]
    out = []
    for caps in captions:
        low = [c.lower() for c in caps]
        out.append({c for c, p in enumerate(pats) if sum(bool(p.search(t)) for t in low) >= min_captions})
    return out


def max_scores(d: dict, n_photos: int) -> np.ndarray:
    """(N, 80) float32: each photo's best score per COCO class (0 when not detected)."""
    out = np.zeros((n_photos, 80), np.float32)
    np.maximum.at(out, (d["photo"], d["cls"].astype(np.int64)), d["score"])
    return out


def object_arrays(name: str, size: int, n_photos: int) -> tuple[np.ndarray, np.ndarray] | None:
    """What ``retr index`` stores per photo, as (N, 80) best scores and counts
    (:func:`retrieval.detection.scoring.summarise`), or None when the gallery was not detected yet."""
    from retrieval.detection.scoring import COUNT_SCORE, STORE_SCORE

    if not (concept_data.CACHE / f"{name}-yolo{size}.npz").is_file():
        return None
    d = detections(name, size)
    best = max_scores(d, n_photos)
    counts = np.zeros((n_photos, 80), np.int16)
    ok = d["score"] >= COUNT_SCORE
    np.add.at(counts, (d["photo"][ok], d["cls"][ok].astype(np.int64)), 1)
    best[best < STORE_SCORE] = 0.0
    return best, np.where(best > 0, counts, 0).astype(np.int16)


def coverage(name: str, size: int, thresholds=(0.1, 0.25, 0.4)) -> list[str]:
    """Table rows: photos with a named object, and the share found at each score threshold."""
    g = concept_data.load_gallery(name)
    caps = json.loads(str(g["captions"]))
    named = named_objects(caps)
    best = max_scores(detections(name, size), len(caps))
    pairs = [(p, c) for p, s in enumerate(named) for c in s]
    photos = [p for p, s in enumerate(named) if s]
    rows = []
    for t in thresholds:
        found = sum(best[p, c] >= t for p, c in pairs)
        any_found = sum(any(best[p, c] >= t for c in named[p]) for p in photos)
        rows.append(f"| {name} | {size} | {t} | {len(photos)} | {any_found} ({any_found / max(len(photos), 1):.0%}) "
                    f"| {len(pairs)} | {found} ({found / max(len(pairs), 1):.0%}) |")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("galleries", nargs="*", default=["coco-mini", "flickr8k-dev"])
    a = ap.parse_args()
    print("| gallery | input | score >= | photos with a named object | ... one of them found | named (photo, object) pairs | found |")
    print("|---|---|---|---|---|---|---|")
    for gname in a.galleries:
        for row in coverage(gname, a.size):
            print(row)
