"""Captions in and out of domain: Flickr8k dev and COCO-mini, with object mentions and hallucination.

    python scripts/eval/caption_features.py --preset fast     # once a preset: embeddings + ImageNet posteriors
    python scripts/eval/caption_objects_eval.py --preset fast --prior 0 --prior 2,0.3 [--beam 5] [--samples 200]

For each set and each concept-word prior (``W,T``: weight W, threshold T of
:mod:`retrieval.captioning.concept_words`; ``0``: off, the captioner alone), the beam caption of
every photo gets BLEU-4, METEOR, CIDEr (pycocoevalcap) against its human captions, the
object-mention rate (photos whose human captions name a COCO class in >= 3 of 5: the share of
those (photo, class) pairs whose caption names it or a synonym; with and without "person"),
CHAIR-i and CHAIR-s (Rohrbach et al. 2018; the truth is the classes any human caption of the
photo names) and the objects a caption names. ``--samples N``: Div-1, Div-2, mBLEU-4 over 5
latent samples of the first N photos of each set. ms/photo: decoding only (CPU process time, batches of 64).
"""
import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from retrieval.captioning.model import Captioner, load_captioner
from retrieval.encoders.base import load_encoder
from retrieval.training.caption_metrics import caption_scores, diversity
from retrieval.training.caption_objects import object_scores

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--preset", default="fast")
ap.add_argument("--captioner", default=None)
ap.add_argument("--feats", default="cache/caption-eval")
ap.add_argument("--beam", type=int, default=5)
ap.add_argument("--prior", action="append", default=None, help="W,T or 0 (repeatable)")
ap.add_argument("--samples", type=int, default=0)
ap.add_argument("--no-meteor", action="store_true")
ap.add_argument("--sets", default="flickr8k-dev,coco-mini")
ap.add_argument("--no-novel", action="store_true", help="without the novel words (concept_words.add_novel_words)")
ap.add_argument("--examples", default=None, help="write every caption to this JSON file")
a = ap.parse_args()
refs_files = {"flickr8k-dev": Path(a.data) / "flickr8k/captions_dev.json",
              "coco-mini": Path(a.data) / "coco_mini/captions.json"}
enc = load_encoder(a.preset)
cap = load_captioner(a.captioner, enc.id, pooled=True)
if a.no_novel:
    cap = Captioner(cap.path, novel_words=False)
print(f"command: python scripts/eval/caption_objects_eval.py {' '.join(os.sys.argv[1:])}")
print(f"preset {a.preset}, captioner {cap.path.name} ({int(cap.novel.sum())} novel words), beam {a.beam}, length penalty power 0.7, no re-ranking\n")
print("| set | concept prior | BLEU-4 | METEOR | CIDEr | object mention | mention (no person) | CHAIR-i | CHAIR-s "
      "| objects/caption | Div-1 | Div-2 | mBLEU-4 | ms/photo |")
print("|" + "---|" * 14)
examples = {}
for name in a.sets.split(","):
    f = np.load(Path(a.feats) / f"{a.preset}-{name}.npz")
    emb, post, files = f["emb"].astype(np.float32), f["post"].astype(np.float32), list(f["files"])
    d = json.loads(refs_files[name].read_text())
    by_id = {im["id"]: im["file_name"] for im in d["images"]}
    refs = {fn: [] for fn in files}
    for an in d["annotations"]:
        refs[by_id[an["image_id"]]].append(an["caption"])
    for pr in a.prior or ["0"]:
        w, t = (0.0, 1.0) if pr == "0" else map(float, pr.split(","))
        cap.concept_weight, cap.concept_threshold = w, t
        t0, hyps = time.process_time(), []
        for s in range(0, len(emb), 64):
            hyps += cap.beam_search_batch(emb[s : s + 64], a.beam, concepts=post[s : s + 64] if w else None)
        ms = 1000 * (time.process_time() - t0) / len(emb)
        H = dict(zip(files, hyps))
        sc = caption_scores(refs, H, meteor=not a.no_meteor)
        ob = object_scores(refs, H)
        dv = ""
        if a.samples:
            smp = {fn: cap.sample(emb[i], 5, seed=i, concepts=post[i] if w else None)
                   for i, fn in enumerate(files[: a.samples])}
            dd = diversity(smp)
            dv = f"{dd['Div-1']:.2f} | {dd['Div-2']:.2f} | {dd['mBLEU-4']:.2f}"
        else:
            dv = " | | "
        print(f"| {name} | {pr if w else 'off'} | {sc['BLEU-4']:.1f} | {sc.get('METEOR', float('nan')):.1f} | "
              f"{sc['CIDEr']:.1f} | {ob['mention']:.3f} | {ob['mention_non_person']:.3f} | {ob['CHAIR-i']:.3f} | "
              f"{ob['CHAIR-s']:.3f} | {ob['objects_per_caption']:.2f} | {dv} | {ms:.0f} |", flush=True)
        examples[f"{name} {pr}"] = H
print(f"\n(object mention over {ob['salient_pairs']} salient (photo, class) pairs of the last set)")
if a.examples:
    Path(a.examples).write_text(json.dumps(examples, indent=0))
