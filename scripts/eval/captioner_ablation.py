"""Rows of the captioner ablation table (docs/captioner_ablation.md): dev metrics of captioner
checkpoints under several decoding settings.

    python scripts/eval/captioner_ablation.py LABEL=CKPT [LABEL=CKPT ...] [--decode 3,0.7,none] [--decode 5,0.7,alignment]
           [--data ../shared/data] [--cache cache/features] [--json results.jsonl]

``--decode BEAM,LENGTH_PENALTY,RERANK`` (RERANK: none, or alignment = of the beam's hypotheses
the one the alignment network puts closest to the photo); diversity (5 latent samples a photo,
nucleus p = 0.9) is measured with the first setting only. Every figure is on the Flickr8k dev
split (1,000 photos); the KL and cross-entropy are the negative-ELBO terms on the dev
(photo, caption) pairs.
"""
import argparse
import json
import time
from pathlib import Path

import torch

from retrieval.captioning.model import load_captioner
from retrieval.encoders.base import load_encoder
from retrieval.training.pipeline import evaluate_captioner

ap = argparse.ArgumentParser()
ap.add_argument("models", nargs="+", help="LABEL=CHECKPOINT")
ap.add_argument("--decode", action="append", default=None)
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--cache", default="cache/features")
ap.add_argument("--json", default=None, help="append each result as a JSON line here")
ap.add_argument("--max-photos", type=int, default=None)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--no-diversity", action="store_true", help="skip the latent samples (diversity, oracle)")
a = ap.parse_args()
torch.set_num_threads(a.threads)
f8 = Path(a.data) / "flickr8k"
enc = load_encoder()
decodes = a.decode or ["3,0.7,none"]
keys = ["BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
print("| model | beam | length penalty | re-rank | " + " | ".join(keys)
      + " | Div-1 | Div-2 | mBLEU-4 | oracle CIDEr | dev CE/token | dev KL |")
print("|" + "---|" * (len(keys) + 10))
for spec in a.models:
    label, path = spec.split("=", 1)
    cap = load_captioner(path, enc.id, pooled=True)
    for j, d in enumerate(decodes):
        beam, lp, rr = d.split(",")
        t0 = time.time()
        r = evaluate_captioner(f8 / "captions_dev.json", f8 / "images", encoder=enc, captioner=cap,
                               beam=int(beam), length_penalty=float(lp), rerank=None if rr == "none" else rr,
                               cache_dir=a.cache, max_photos=a.max_photos, diversity_samples=j == 0 and not a.no_diversity)
        dv = r.get("diversity")
        div = (f"{dv['Div-1']:.2f} | {dv['Div-2']:.2f} | {dv['mBLEU-4']:.2f} | {r['oracle_CIDEr']:.1f}" if dv
               else "| | |")
        print(f"| {label} | {beam} | {lp} | {rr} | " + " | ".join(f"{r['beam'][k]:.1f}" for k in keys)
              + f" | {div} | {r['ce_per_token']:.3f} | {r['kl']:.2f} |", flush=True)
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps({"label": label, "checkpoint": path, "decode": d, "seconds": round(time.time() - t0),
                                    **{k: r[k] for k in r if k != "examples"}, "examples": r["examples"]}) + "\n")
