"""Precision and recall of ``retr duplicates`` on edited copies of Flickr8k dev photos.

    python scripts/eval/duplicates.py [--data ../shared/data] [--per-scene 12] [--seed 0]

1. Picks ``--per-scene`` dev photos for each of ten kinds of scene (a word in the photo's first
   caption: dog, snow, beach, bike, water, ...): photos of one kind are the hard negatives.
2. Writes, for each photo, the original and ten edited copies: resized to 50% and 75%, recompressed
   as JPEG at quality 20, 40, 60 and 80, cropped by 5% and 10% (of each side's length, from a random
   corner), brightness +25% and -25%.
3. Indexes them with ``index_folder`` (the shipped encoder, no captions), then for each rule and
   threshold groups them with :func:`retrieval.duplicates.duplicate_pairs` and
   :func:`retrieval.duplicates.components`, and scores the groups pairwise: a pair of files from the
   same original is a positive; precision = true pairs / pairs grouped, recall = true pairs grouped /
   true pairs; recall per edit (original paired with that copy); false pairs among same-scene photos.
"""
import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from retrieval.duplicates import (DEFAULT_THRESHOLD, MAX_HASH_DISTANCE, SURE_HASH_DISTANCE, components,
                                  duplicate_pairs)
from retrieval.encoders.base import load_encoder
from retrieval.indexing.indexer import index_folder
from retrieval.store.database import Store

SCENES = ("dog", "snow", "beach", "bike", "water", "football", "climb", "crowd", "grass", "street")
EDITS = ("resize50", "resize75", "jpeg20", "jpeg40", "jpeg60", "jpeg80", "crop5", "crop10", "bright+25", "bright-25")


def edited(im: Image.Image, edit: str, rng: random.Random) -> tuple[Image.Image, int]:
    """(the edited copy, JPEG quality to save it at)."""
    w, h = im.size
    if edit.startswith("resize"):
        f = int(edit[6:]) / 100
        return im.resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS), 90
    if edit.startswith("jpeg"):
        return im, int(edit[4:])
    if edit.startswith("crop"):
        f = int(edit[4:]) / 100
        dx, dy = round(w * f), round(h * f)
        x0, y0 = rng.choice((0, dx)), rng.choice((0, dy))
        return im.crop((x0, y0, x0 + w - dx, y0 + h - dy)), 90
    f = 1 + int(edit[6:]) / 100
    return ImageEnhance.Brightness(im).enhance(f), 90


def build_set(data: Path, out: Path, per_scene: int, seed: int) -> tuple[list[str], list[str]]:
    """Write the photos; returns (scene of each source, source names)."""
    f8 = data / "flickr8k"
    coco = json.loads((f8 / "captions_dev.json").read_text())
    first = {}
    for a in coco["annotations"]:
        first.setdefault(a["image_id"], a["caption"].lower())
    rng = random.Random(seed)
    used, scenes, names = set(), [], []
    for scene in SCENES:
        cands = [im for im in coco["images"] if scene in first[im["id"]].split() and im["id"] not in used]
        for im in rng.sample(cands, min(per_scene, len(cands))):
            used.add(im["id"])
            scenes.append(scene)
            names.append(im["file_name"])
    for n, name in enumerate(names):
        im = Image.open(f8 / "images" / name).convert("RGB")
        im.save(out / f"s{n:03d}_original.jpg", quality=95)
        for e in EDITS:
            cp, q = edited(im, e, rng)
            cp.save(out / f"s{n:03d}_{e}.jpg", quality=q)
    return scenes, names


def score(files: list[str], scenes: list[str], vecs, hashes, **rule) -> dict:
    """Pairwise precision/recall of the groups a rule makes."""
    src = np.array([int(Path(f).name[1:4]) for f in files])
    edit = [Path(f).stem.split("_", 1)[1] for f in files]
    i, j, _, _ = duplicate_pairs(vecs, hashes, **rule)
    label = np.full(len(files), -1)
    for g, comp in enumerate(components(len(files), i, j)):
        label[comp] = g
    same_group = lambda a, b: label[a] >= 0 and label[a] == label[b]  # noqa: E731
    grouped = sum(len(c) * (len(c) - 1) // 2 for c in components(len(files), i, j))
    by_src: dict[int, list[int]] = {}
    for a, s in enumerate(src):
        by_src.setdefault(int(s), []).append(a)
    true_pairs = sum(len(v) * (len(v) - 1) // 2 for v in by_src.values())
    tp = sum(1 for v in by_src.values() for x in range(len(v)) for y in range(x + 1, len(v)) if same_group(v[x], v[y]))
    of = {(int(src[a]), edit[a]): a for a in range(len(files))}
    per_edit = {e: float(np.mean([same_group(of[s, "original"], of[s, e]) for s in by_src])) for e in EDITS}
    false = grouped - tp
    scene_false = 0
    for comp in components(len(files), i, j):
        for x in range(len(comp)):
            for y in range(x + 1, len(comp)):
                a, b = comp[x], comp[y]
                if src[a] != src[b] and scenes[src[a]] == scenes[src[b]]:
                    scene_false += 1
    return {"precision": tp / grouped if grouped else 1.0, "recall": tp / true_pairs, "false_pairs": false,
            "same_scene_false": scene_false, "per_edit": per_edit}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--per-scene", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default=None, help="Also write the files' names, scenes, vectors and hashes to this .npz.")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        scenes, names = build_set(Path(a.data).resolve(), photos, a.per_scene, a.seed)
        t = time.perf_counter()
        rep = index_folder(photos, Path(tmp) / "index", encoder=load_encoder())
        print(f"{len(names)} photos x {len(EDITS) + 1} files: {rep.summary()} in {time.perf_counter() - t:.0f} s")
        store = Store(Path(tmp) / "index")
        ids, vecs = store.load_vectors("photos")
        info = store.photo_fingerprints()
        files = [info[int(k)][0] for k in ids]
        hashes = [info[int(k)][3] for k in ids]
        store.close()
        if a.save:
            np.savez(a.save, files=np.array(files), scenes=np.array(scenes), names=np.array(names), vecs=vecs,
                     hashes=np.array([h or "" for h in hashes]))
    rows = [("embedding only", dict(max_hash_distance=64, sure_hash_distance=-1), (0.80, 0.85, 0.88, 0.90, 0.92, 0.94)),
            ("hash only", dict(threshold=2.0), None),
            (f"both (hash <= {MAX_HASH_DISTANCE}, or <= {SURE_HASH_DISTANCE} alone)",
             dict(max_hash_distance=MAX_HASH_DISTANCE, sure_hash_distance=SURE_HASH_DISTANCE),
             (0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94)),
            ("both (hash <= 24, or <= 12 alone)", dict(max_hash_distance=24, sure_hash_distance=12),
             (0.80, 0.85, 0.90, 0.94))]
    print(f"default: threshold {DEFAULT_THRESHOLD}, hash <= {MAX_HASH_DISTANCE}, or <= {SURE_HASH_DISTANCE} alone\n")
    print("| rule | threshold | precision | recall | false pairs (same scene) | " + " | ".join(EDITS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(EDITS))
    for name, rule, ts in rows:
        if ts is None:
            sweep = [(f"hash <= {d}", dict(rule, sure_hash_distance=d)) for d in (6, 10, 12, 14, 18, 20)]
        else:
            sweep = [(f"{t:.2f}", dict(rule, threshold=t)) for t in ts]
        for label, r in sweep:
            s = score(files, scenes, vecs, hashes, **r)
            print(f"| {name} | {label} | {s['precision']:.3f} | {s['recall']:.3f} | {s['false_pairs']} "
                  f"({s['same_scene_false']}) | " + " | ".join(f"{s['per_edit'][e]:.2f}" for e in EDITS) + " |")


if __name__ == "__main__":
    main()
