"""Caption metrics of the shipped (or a given) captioner on the Flickr8k dev split.

    python scripts/eval_captioner.py [--data ../shared/data] [--captioner PATH] [--encoder PATH]

Beam search (width 3) gives the best caption: BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap;
METEOR needs Java). Five latent samples a photo give Div-1, Div-2, mBLEU-4 and oracle CIDEr.
"""
import argparse
import json
import os
import time
from pathlib import Path

from retrieval.captioner import load_captioner
from retrieval.encoder import load_encoder
from retrieval.training.pipeline import evaluate_captioner

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--encoder", default=None)
ap.add_argument("--captioner", default=None)
ap.add_argument("--cache", default="cache/features")
ap.add_argument("--max-photos", type=int, default=None)
a = ap.parse_args()
f8 = Path(a.data) / "flickr8k"
enc = load_encoder(a.encoder)
t = time.time()
r = evaluate_captioner(f8 / "captions_dev.json", f8 / "images", encoder=enc,
                       captioner=load_captioner(a.captioner, enc.id), max_photos=a.max_photos, cache_dir=a.cache)
print(f"command: python scripts/eval_captioner.py  ({os.cpu_count()} cores, {time.time() - t:.0f} s)")
print(f"Flickr8k dev: {r['photos']} photos, beam 3; diversity over 5 samples a photo\n")
keys = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
print("| " + " | ".join(keys) + " | Div-1 | Div-2 | mBLEU-4 | oracle CIDEr (best of 5) |")
print("|" + "---|" * (len(keys) + 4))
d = r["diversity"]
print("| " + " | ".join(f"{r['beam'][k]:.1f}" for k in keys)
      + f" | {d['Div-1']:.2f} | {d['Div-2']:.2f} | {d['mBLEU-4']:.2f} | {r['oracle_CIDEr']:.1f} |")
print(json.dumps(r["examples"], indent=1))
