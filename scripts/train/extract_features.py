"""Cache frozen backbone and text features of a COCO-captions corpus.

    python scripts/train/extract_features.py ../shared/data/flickr8k/captions_train.json \
        --images ../shared/data/flickr8k/images --backbone efficientnet-lite0 [--flip]
"""
import argparse
import time

from retrieval.io.coco import load_coco_captions
from retrieval.training.features import image_features, text_features

ap = argparse.ArgumentParser()
ap.add_argument("captions")
ap.add_argument("--images", required=True)
ap.add_argument("--backbone", default="efficientnet-lite0")
ap.add_argument("--text", default="all-MiniLM-L6-v2")
ap.add_argument("--flip", action="store_true")
ap.add_argument("--cache", default="cache/features")
a = ap.parse_args()
c = load_coco_captions(a.captions)
t = time.time()
tf = text_features(c.captions, a.text, a.cache)
print(f"text {tf.shape} in {time.time() - t:.0f}s", flush=True)
t = time.time()
last = [0]


def prog(d, n):
    if d - last[0] >= 512 or d == n:
        last[0] = d
        print(f"  {d}/{n} photos, {d / (time.time() - t):.1f}/s", flush=True)


f = image_features(c, a.images, a.backbone, a.cache, flip=a.flip, progress=prog)
print(f"images {f.shape} in {time.time() - t:.0f}s")
