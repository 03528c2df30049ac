"""Measure the modality gap of the shipped encoder, to choose the noise of text-only (CapDec)
captioner pre-training, and the vocabulary size / dev out-of-vocabulary rate per min count.

    python scripts/train/captioner_noise_scale.py [--data ../shared/data] [--cache cache/features] [--corpus-captions 100000]

CapDec (Nukrai et al. 2022) adds N(0, 0.016) (std 0.126) to CLIP text embeddings; here the
noise std is read off the encoder's own gap: the per-dimension RMS of (photo embedding - caption
embedding) over paired dev data, where the photos are unseen by the alignment network.
"""
import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from captioner_data import corpus_for_pretraining
from retrieval.captioning.vocab import tokenize
from retrieval.io.coco import load_coco_captions
from retrieval.encoders.base import load_encoder
from retrieval.training.metrics import modality_gap
from retrieval.training.features import image_features, text_features

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--cache", default="cache/features")
ap.add_argument("--corpus-captions", type=int, default=100000)
a = ap.parse_args()
enc = load_encoder()
f8 = Path(a.data) / "flickr8k"
print("| split | modality gap (centroid distance) | paired cosine mean (std) | residual RMS per dim | mean ‖c - t‖ |")
print("|---|---|---|---|---|")
for split in ("train", "dev"):
    co = load_coco_captions(f8 / f"captions_{split}.json")
    c = enc.project_images(image_features(co, f8 / "images", enc.backbone_name, a.cache, flip=True)[0])
    t = enc.project_texts(text_features(co.captions, enc.text_name, a.cache))
    r = c[np.asarray(co.caption_photo)] - t
    cos = 1 - 0.5 * (r ** 2).sum(1)
    print(f"| {split} | {modality_gap(c, t):.3f} | {cos.mean():.3f} ({cos.std():.3f}) | {np.sqrt((r ** 2).mean()):.4f} "
          f"| {np.linalg.norm(r, axis=1).mean():.3f} |")
d = c.shape[1]
print("\nnoise std -> expected cosine(t, normalise(t + noise)):",
      ", ".join(f"{s}: {1 / np.sqrt(1 + d * s * s):.2f}" for s in (0.02, 0.03, 0.045, 0.06, 0.08)))
corpus = corpus_for_pretraining(Path(a.data), a.corpus_captions)
train = [x["caption"] for x in json.loads((f8 / "captions_train.json").read_text())["annotations"]]
dev = [w for x in json.loads((f8 / "captions_dev.json").read_text())["annotations"] for w in tokenize(x["caption"])]
cnt = Counter(w for x in corpus + train for w in tokenize(x))
tr = Counter(w for x in train for w in tokenize(x))
print("\n| vocabulary from | min count | words | dev tokens out of vocabulary |\n|---|---|---|---|")
for name, cn, mins in ((f"corpus ({len(corpus)}) + Flickr8k train", cnt, (3, 5, 10, 20)), ("Flickr8k train", tr, (5,))):
    for m in mins:
        v = {w for w, n in cn.items() if n >= m}
        print(f"| {name} | {m} | {len(v)} | {100 * sum(w not in v for w in dev) / len(dev):.1f}% |")
sys.stdout.flush()
