"""Train the shipped VAE captioner on Flickr8k train (photo embeddings from the shipped encoder)
and report dev caption metrics.

    python scripts/train_default_captioner.py [--data ../shared/data] [--out retrieval/weights/captioner-default.pt]

(`python scripts/eval_captioner.py` evaluates a trained captioner without retraining.)
"""
import argparse
import json
from pathlib import Path

import numpy as np

from retrieval.captioner import Captioner
from retrieval.coco import load_coco_captions
from retrieval.encoder import load_encoder
from retrieval.training.captioner import CaptionerConfig, save_captioner, train_captioner
from retrieval.training.features import image_features, text_features
from retrieval.training.pipeline import evaluate_captioner

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--encoder", default=None)
ap.add_argument("--out", default="retrieval/weights/captioner-default.pt")
ap.add_argument("--cache", default="cache/features")
ap.add_argument("--eval-photos", type=int, default=1000)
ap.add_argument("--set", action="append", default=[], help="override CaptionerConfig field, e.g. --set z_dim=16")
a = ap.parse_args()

enc = load_encoder(a.encoder)
f8 = Path(a.data) / "flickr8k"
train = load_coco_captions(f8 / "captions_train.json")
dev = load_coco_captions(f8 / "captions_dev.json")
timg = image_features(train, f8 / "images", enc.backbone_name, a.cache, flip=True)
ttxt = text_features(train.captions, enc.text_name, a.cache)
cond = np.stack([enc.project_images(v) for v in timg])
temb = enc.project_texts(ttxt)
cfg = CaptionerConfig()
for kv in a.set:
    k, v = kv.split("=", 1)
    setattr(cfg, k, type(getattr(cfg, k))(v))
print("config:", cfg, flush=True)
net, vocab, info = train_captioner(cond, temb, train.captions, train.caption_photo, cfg,
                                   progress=lambda e, i: print(i, flush=True))
print(info)
save_captioner(net, vocab, a.out, enc.id, cfg.max_len,
               card={"train_data": "Flickr8k train split captions (Hodosh et al. 2013), research use only",
                     "train_info": info, "config": cfg.__dict__})
r = evaluate_captioner(f8 / "captions_dev.json", f8 / "images", encoder=enc, captioner=Captioner(a.out),
                       max_photos=a.eval_photos, cache_dir=a.cache)
print(json.dumps({k: r[k] for k in ("beam", "diversity", "oracle_CIDEr")}, indent=1))
for e in r["examples"]:
    print(e["file"], "|", e["beam"], "|", e["samples"], "| ref:", e["reference"])
