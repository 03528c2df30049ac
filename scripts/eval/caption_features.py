"""Aligned embeddings and ImageNet posteriors of the caption evaluation photos (Flickr8k dev, COCO-mini).

    python scripts/eval/caption_features.py --preset fast [--data ../shared/data] [--out DIR]

One pass of the ONNX image path a photo (``encode_images_and_concepts``), written to
``DIR/<preset>-<set>.npz`` (``emb`` (N, D) float32, ``post`` (N, 1000) float16, ``files``),
read by ``scripts/eval/caption_objects_eval.py``.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

from retrieval.encoders.base import load_encoder
from retrieval.io.decode import load_image

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--preset", default="fast")
ap.add_argument("--out", default="cache/caption-eval")
a = ap.parse_args()
enc = load_encoder(a.preset)
sets = {"flickr8k-dev": (Path(a.data) / "flickr8k/captions_dev.json", Path(a.data) / "flickr8k/images"),
        "coco-mini": (Path(a.data) / "coco_mini/captions.json", Path(a.data) / "coco_mini/images")}
Path(a.out).mkdir(parents=True, exist_ok=True)
for name, (capf, imgs) in sets.items():
    out = Path(a.out) / f"{a.preset}-{name}.npz"
    if out.exists():
        continue
    files = [im["file_name"] for im in json.loads(capf.read_text())["images"]]
    t, embs, posts = time.time(), [], []
    for s in range(0, len(files), 32):
        e, p = enc.encode_images_and_concepts([load_image(imgs / f) for f in files[s : s + 32]])
        embs.append(e)
        posts.append(p)
    np.savez(out, emb=np.concatenate(embs).astype(np.float32), post=np.concatenate(posts).astype(np.float16),
             files=np.array(files))
    print(f"{out}: {len(files)} photos, {time.time() - t:.0f} s")
