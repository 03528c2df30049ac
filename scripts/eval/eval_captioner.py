"""Caption metrics of the shipped (or a given) captioner on the Flickr8k dev split.

    python scripts/eval/eval_captioner.py [--data ../shared/data] [--captioner PATH] [--encoder PATH]
        [--beam K] [--rerank none|auto|neighbours|mbr|alignment] [--no-diversity]

Beam search (width 3, no re-ranking, unless --beam/--rerank say otherwise; ``--rerank auto``
is the default decoding of ``retr caption``) gives the best caption: BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap;
METEOR needs Java). Five latent samples a photo give Div-1, Div-2, mBLEU-4 and oracle CIDEr.
"""
import argparse
import json
import os
import time
from pathlib import Path

from retrieval.captioning.model import load_captioner
from retrieval.encoders.base import load_encoder
from retrieval.training.pipeline import evaluate_captioner

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--encoder", default=None)
ap.add_argument("--captioner", default=None)
ap.add_argument("--cache", default="cache/features")
ap.add_argument("--max-photos", type=int, default=None)
ap.add_argument("--beam", type=int, default=None, help="beam width [3; with --rerank auto|neighbours|mbr: the default]")
ap.add_argument("--rerank", default="none", choices=["none", "auto", "neighbours", "mbr", "alignment"])
ap.add_argument("--no-diversity", action="store_true", help="skip the sampled captions")
a = ap.parse_args()
rr = None if a.rerank == "none" else a.rerank
beam = a.beam or (None if rr in ("auto", "neighbours", "mbr") else 3)
f8 = Path(a.data) / "flickr8k"
enc = load_encoder(a.encoder)
t = time.time()
r = evaluate_captioner(f8 / "captions_dev.json", f8 / "images", encoder=enc,
                       captioner=load_captioner(a.captioner, enc.id, pooled=True), max_photos=a.max_photos, cache_dir=a.cache,
                       beam=beam, rerank=rr, diversity_samples=not a.no_diversity)
print(f"command: python scripts/eval/eval_captioner.py  ({os.cpu_count()} cores, {time.time() - t:.0f} s)")
print(f"Flickr8k dev: {r['photos']} photos, beam {beam or 'default'}, re-ranking {a.rerank}; "
      f"diversity over 5 samples a photo\n")
keys = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
print("| " + " | ".join(keys) + " | Div-1 | Div-2 | mBLEU-4 | oracle CIDEr (best of 5) |")
print("|" + "---|" * (len(keys) + 4))
d = r.get("diversity")
print("| " + " | ".join(f"{r['beam'][k]:.1f}" for k in keys)
      + (f" | {d['Div-1']:.2f} | {d['Div-2']:.2f} | {d['mBLEU-4']:.2f} | {r['oracle_CIDEr']:.1f} |" if d else " | | | | |"))
print(json.dumps(r["examples"], indent=1))
