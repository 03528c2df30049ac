"""Train the shipped VAE captioner on Flickr8k train (photo embeddings from the shipped encoder)
and report dev caption metrics.

    python scripts/train_default_captioner.py [--data ../shared/data] [--out retrieval/weights/captioner-default.pt]
"""
import argparse
import json
from pathlib import Path

import numpy as np

from retrieval.caption_metrics import caption_scores, diversity
from retrieval.captioner import Captioner
from retrieval.coco import load_coco_captions
from retrieval.encoder import load_encoder
from retrieval.training.captioner import CaptionerConfig, save_captioner, train_captioner
from retrieval.training.features import image_features, text_features

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
cap = Captioner(a.out)
dimg = image_features(dev, f8 / "images", enc.backbone_name, a.cache, flip=True)[0]
demb = enc.project_images(dimg)[: a.eval_photos]
refs = {i: [] for i in range(len(demb))}
for c, p in zip(dev.captions, dev.caption_photo):
    if p < len(demb):
        refs[p].append(c)
hyps = {i: cap.beam_search(e) for i, e in enumerate(demb)}
samples = {i: cap.sample(e, 5, seed=i) for i, e in enumerate(demb)}
scores = caption_scores(refs, hyps)
div = diversity(samples)
oracle = {}
print(json.dumps({"beam": scores, "diversity": div}, indent=1))
for i in range(3):
    print(dev.file_names[i], "|", hyps[i], "|", samples[i][:3], "| ref:", refs[i][0])
