"""Shared loading for the exploratory alignment scripts (run from the repo root, e.g.
``python experiments/mp.py l0,l2,mn --drop 0.7 --tdrop 0.1 --caps 5``).

Reads the cached features that ``scripts/eval/ablate_alignment.py`` writes (the hashes below are
their cache keys for ../shared/data/flickr8k); results are appended to
``$RETR_EXPLORE_OUT/results.jsonl``. Exploration only: the committed ablation table is
``scripts/eval/ablate_alignment.py``'s.
"""
import os; os.environ.setdefault("OMP_NUM_THREADS","1")
import sys, time, json, numpy as np, torch
from pathlib import Path
from retrieval.io.coco import load_coco_captions
from retrieval.training.metrics import recall_at_k
torch.set_num_threads(int(os.environ.get("T", "1")))
C = Path(os.environ.get('RETR_FEATURES', 'cache/features'))  # scripts/eval/ablate_alignment.py fills it
f8 = Path(os.environ.get('RETR_DATA', '../shared/data')) / 'flickr8k'
train = load_coco_captions(f8 / 'captions_train.json')
dev = load_coco_captions(f8 / 'captions_dev.json')
IMG = {'l0': ('737cda0cf18a2acf', '135b6fd9f52d9cba', 'efficientnet-lite0'),
       'l2': ('eb4539c44c693390', '6f247584f13e3c4e', 'efficientnet-lite2'),
       'mn': ('20e9d88f35241372', '52b625f962d46b78', 'mobilenet-v2')}
def _ld(n, i):
    if n in ('cls', 'prob'):
        return np.load(OUT / f'{n}_{("train","dev")[i]}.npy')
    if n == 'logp':
        return np.log(np.load(OUT / f'prob_{("train","dev")[i]}.npy') + 1e-6)
    return np.load(C / f'img-{IMG[n][2]}-{IMG[n][i]}.npy')
def img(names):
    tr = np.concatenate([_ld(n, 0) for n in names], -1)
    dv = np.concatenate([_ld(n, 1) for n in names], -1)
    return tr, dv
OUT = Path(os.environ.get('RETR_EXPLORE_OUT', '/tmp/retr-explore')); OUT.mkdir(parents=True, exist_ok=True)
ttxt = np.load(C / 'txt-all-MiniLM-L6-v2-79763a380674bb09.npy')
dtxt = np.load(C / 'txt-all-MiniLM-L6-v2-b91c2057e7911e3c.npy')
def report(tag, di, dt, extra=None):
    r = recall_at_k(di, dt, dev.caption_photo)
    rec = {'tag': tag, 't2i': r['t2i'], 'i2t': r['i2t'], **(extra or {})}
    print(f"{tag}: t2i {r['t2i'][1]:.1f}/{r['t2i'][5]:.1f}/{r['t2i'][10]:.1f}  i2t {r['i2t'][1]:.1f}/{r['i2t'][5]:.1f}/{r['i2t'][10]:.1f} {extra or ''}", flush=True)
    with open(OUT / 'results.jsonl', 'a') as f: f.write(json.dumps(rec) + '\n')
    return r
