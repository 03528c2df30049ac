"""Build the caption bank the shipped captioner re-ranks its beam with (docs/captioner_decoding.md):

    python scripts/train/build_caption_bank.py [--data ../shared/data] [--cache cache/features] [--encoder PATH]
        [--out retrieval/weights/caption-bank-default.npz]

The Flickr8k *train* photos' aligned image embeddings (the encoder's image head on the cached
backbone features, float16) and their captions: the photos and captions the shipped captioner
was trained on, so no dev or test photo is in it. Licence as the weights (research use only).
"""
import argparse
from pathlib import Path

import numpy as np

from retrieval.captioning.bank import CaptionBank
from retrieval.io.coco import load_coco_captions
from retrieval.encoders.base import load_encoder
from retrieval.training.features import image_features

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--cache", default="cache/features")
ap.add_argument("--encoder", default=None)
ap.add_argument("--out", default="retrieval/weights/caption-bank-default.npz")
a = ap.parse_args()
f8 = Path(a.data) / "flickr8k"
enc = load_encoder(a.encoder)
tr = load_coco_captions(f8 / "captions_train.json")
emb = np.asarray(enc.project_images(image_features(tr, f8 / "images", enc.backbone_name, a.cache, flip=True)[0]),
                 np.float32)
caps = [" ".join(c.split()) for c in tr.captions]
CaptionBank.save(a.out, emb, caps, tr.caption_photo, enc.id)
b = CaptionBank(a.out)
print(f"{a.out}: {len(b.emb)} photos, {len(b.captions)} captions, encoder {b.encoder_id}, "
      f"{Path(a.out).stat().st_size / 1e6:.1f} MB")
