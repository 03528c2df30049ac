"""Captioners side by side on Flickr8k dev and COCO-mini, from the feature cache
(``scripts/eval/caption_features.py --regions --objects``):

    python scripts/eval/eval_attend_captioner.py --feats FEATS --preset fast \
        --captioner shipped=retrieval/weights/captioner-default.pt --captioner attend=PATH [--samples 100]

Per set and captioner: BLEU-4, METEOR, CIDEr (pycocoevalcap) of the beam-5 caption (length penalty
power 0.7, no re-ranking) against the human captions; object mention, CHAIR-i and CHAIR-s
(retrieval/training/caption_objects.py); Div-1, Div-2, mBLEU-4 over 5 samples of the first
``--samples`` photos; ms/photo: CPU process time of decoding alone, in batches of 64, and one photo
at a time (``1-photo``) over the first 50 photos. A pooled captioner (the shipped
:class:`retrieval.captioning.model.Captioner`) decodes from the aligned embedding alone
(``name:concepts`` adds its concept-word prior); an attention captioner reads regions, embedding
and concepts.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from retrieval.captioning.attend_captioner import AttendCaptioner
from retrieval.captioning.concept_words import CONCEPT_WEIGHT
from retrieval.captioning.first_backbone import first_backbone_view
from retrieval.captioning.model import Captioner
from retrieval.encoders.base import load_encoder
from retrieval.training.caption_metrics import caption_scores, diversity
from retrieval.training.caption_feats import load_set, references
from retrieval.training.caption_objects import object_scores

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--feats", default="cache/feats")
ap.add_argument("--preset", default="fast")
ap.add_argument("--captioner", action="append", required=True,
                help="NAME=PATH (NAME:concepts=PATH for the prior; NAME=first:PATH: a fast attention captioner "
                     "through the preset's first backbone)")
ap.add_argument("--sets", default="flickr8k-dev,coco-mini")
ap.add_argument("--samples", type=int, default=100)
ap.add_argument("--no-meteor", action="store_true")
ap.add_argument("--examples", default=None)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--no-regions", action="store_true", help="attention captioners decode without regions")
ap.add_argument("--no-concepts", action="store_true", help="attention captioners decode without concepts")
ap.add_argument("--length-penalty", type=float, default=0.7, help="attention captioners: beam length penalty power")
ap.add_argument("--copy-shift", type=float, default=None,
                help="attention captioners: copy gate logit shift (default: the checkpoint's)")
a = ap.parse_args()
torch.set_num_threads(a.threads)


def decoder(spec: str):
    name, path = spec.split("=", 1)
    first, path = path.startswith("first:"), path.removeprefix("first:")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if ck["config"].get("kind") == "attend":
        cap = AttendCaptioner(ck, path)
        if a.copy_shift is not None:
            cap.net.copy_shift = a.copy_shift
        if first:  # the fast captioner through the preset's first backbone (its leading regions)
            cap = first_backbone_view(cap, load_encoder(a.preset)) or cap
        reg = lambda s, i: None if a.no_regions else np.asarray(s["regions"][i], np.float32)  # noqa: E731
        post = lambda s, i: None if a.no_concepts else s["post"][i]  # noqa: E731
        obj = lambda s, i: None if a.no_concepts else s["objects"][i]  # noqa: E731
        beam = lambda s, i: cap.caption_batch(s["emb"][i], reg(s, i), post(s, i), obj(s, i), beam=5,  # noqa: E731
                                              length_penalty=a.length_penalty)
        samp = lambda s, i, seed: cap.sample(s["emb"][i], 5, seed=seed, concepts=post(s, i), regions=reg(s, i),  # noqa: E731
                                             objects=None if a.no_concepts else s["objects"][i])
        return name, beam, samp
    cap = Captioner(path)
    if name.endswith(":concepts"):
        cap.concept_weight = CONCEPT_WEIGHT
    use = cap.concept_weight > 0
    beam = lambda s, i: cap.beam_search_batch(s["emb"][i], 5, concepts=s["post"][i] if use else None)  # noqa: E731
    samp = lambda s, i, seed: cap.sample(s["emb"][i], 5, seed=seed, concepts=s["post"][i] if use else None)  # noqa: E731
    return name, beam, samp


decoders = [decoder(s) for s in a.captioner]
print(f"command: python scripts/eval/eval_attend_captioner.py {' '.join(sys.argv[1:])}\n")
print("| set | captioner | BLEU-4 | METEOR | CIDEr | object mention | mention (no person) | CHAIR-i | CHAIR-s "
      "| Div-1 | Div-2 | mBLEU-4 | ms/photo (batch 64) | ms/photo (1-photo) |")
print("|" + "---|" * 14)
examples = {}
for set_name in a.sets.split(","):
    s = load_set(Path(a.feats), a.preset, set_name)
    n = len(s["files"])
    refs = references(Path(a.data), set_name, s["files"])
    for name, beam, samp in decoders:
        t0, hyps = time.process_time(), []
        for b in range(0, n, 64):
            hyps += beam(s, slice(b, min(n, b + 64)))
        ms = 1000 * (time.process_time() - t0) / n
        t0 = time.process_time()
        for i in range(min(50, n)):
            beam(s, slice(i, i + 1))
        ms1 = 1000 * (time.process_time() - t0) / min(50, n)
        H = dict(zip(s["files"], hyps))
        sc, ob = caption_scores(refs, H, meteor=not a.no_meteor), object_scores(refs, H)
        dv = " | | "
        if a.samples:
            d = diversity({s["files"][i]: samp(s, i, i) for i in range(min(a.samples, n))})
            dv = f"{d['Div-1']:.2f} | {d['Div-2']:.2f} | {d['mBLEU-4']:.2f}"
        print(f"| {set_name} | {name} | {sc['BLEU-4']:.1f} | {sc.get('METEOR', float('nan')):.1f} | {sc['CIDEr']:.1f} | "
              f"{ob['mention']:.3f} | {ob['mention_non_person']:.3f} | {ob['CHAIR-i']:.3f} | {ob['CHAIR-s']:.3f} | "
              f"{dv} | {ms:.0f} | {ms1:.0f} |", flush=True)
        examples[f"{set_name} {name}"] = H
if a.examples:
    Path(a.examples).write_text(json.dumps(examples, indent=0))
