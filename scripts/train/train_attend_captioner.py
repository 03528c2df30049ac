"""Train the attention captioner (retrieval/captioning/attend.py) in two resumable stages:

    python scripts/train/train_attend_captioner.py pretrain --ckpt pre.ckpt --set steps=1000
    python scripts/train/train_attend_captioner.py finetune --ckpt ft.ckpt --init pre.ckpt --feats FEATS \
        --out retrieval/weights/captioner-attend-fast.pt --set steps=1000

``pretrain``: text-only on the caption corpus (``data/captions/corpus.tsv.gz`` less the Flickr8k dev
photos' and COCO-mini's captions; scripts/train/attend_data.py). ``finetune``: Flickr8k train photos
(their regions, aligned embedding, ImageNet posteriors and detections from the feature cache
``--feats``), with corpus rehearsal. Either stage, killed, goes on from its ``--ckpt`` when run again.
``--set use_regions=0`` / ``use_concepts=0`` and no ``--init`` give the ablation rows.
"""
import argparse
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from attend_data import MAX_LEN, corpus_arrays
from retrieval.captioning.attend import AttendCVAE
from retrieval.training.attend_captioner import AttendConfig, TextData, fit

LICENCE = ("Flickr8k train split photos and captions (Hodosh et al. 2013, research use only) and the text corpus's "
           "Flickr30k (Young et al. 2014, research use only) and COCO (Lin et al. 2014, CC BY 4.0) captions: "
           "research use only")

ap = argparse.ArgumentParser()
ap.add_argument("stage", choices=["pretrain", "finetune"])
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--corpus-cache", default="cache/attend-corpus.npz")
ap.add_argument("--feats", default="cache/feats")
ap.add_argument("--preset", default="fast")
ap.add_argument("--ckpt", required=True)
ap.add_argument("--init", default=None, help="a pretrain checkpoint to fine-tune")
ap.add_argument("--out", default=None, help="write the shipped (float16) captioner here at the end")
ap.add_argument("--set", action="append", default=[], help="AttendConfig field=value")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--copy-shift", type=float, default=3.0, help="decode-time copy gate shift written into --out")
a = ap.parse_args()
torch.set_num_threads(a.threads)
cfg = AttendConfig()
types = {f.name: f.type for f in fields(AttendConfig)}
for kv in a.set:
    k, v = kv.split("=", 1)
    setattr(cfg, k, bool(int(v)) if types[k] in (bool, "bool") else type(getattr(cfg, k))(v))
print("config:", cfg, flush=True)
vocab, tokens = corpus_arrays(Path(a.data), Path(a.corpus_cache))
text = TextData(tokens, vocab)
photos = None
encoder_id = None
if a.stage == "finetune":
    from retrieval.training.caption_feats import flickr_train
    photos, encoder_id = flickr_train(Path(a.data), Path(a.feats), a.preset, vocab, MAX_LEN)
    print(f"{len(photos.c)} photos, {len(photos.tokens)} captions, regions {photos.regions.shape}", flush=True)
net = AttendCVAE(len(vocab), region_dim=photos.regions.shape[-1] if photos else 1280)
if a.init and not Path(a.ckpt).is_file():
    st = torch.load(a.init, map_location="cpu", weights_only=False)
    missing = net.load_state_dict(st["net"], strict=False)
    print("initialised from", a.init, missing, flush=True)
t0 = time.time()
net = fit(net, cfg, Path(a.ckpt), text if (a.stage == "pretrain" or cfg.rehearsal > 0) else None, photos,
          log=lambda s: print(s, flush=True))
print(f"done in {time.time() - t0:.0f} s", flush=True)
if a.out:
    from retrieval.captioning.attend_captioner import save_attend_captioner
    save_attend_captioner(net, vocab, a.out, encoder_id, MAX_LEN, card={"train_data": LICENCE, "config": asdict(cfg),
                                                                     "preset": a.preset, "init": a.init},
                          copy_shift=a.copy_shift)
