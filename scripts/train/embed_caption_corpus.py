"""Embed the text-only caption corpus with the frozen sentence encoder (MiniLM) once, into the
feature cache, keyed as :func:`retrieval.training.features.text_features` keys it.

    python scripts/train/embed_caption_corpus.py [--data ../shared/data] [--cache cache/features] [--max-captions N]

Captions of the Flickr8k dev photos (which the corpus holds, through Flickr8k and Flickr30k)
are dropped first, so that dev metrics stay clean. Sentences are batched by length
(less padding): about 8 ms a caption on one busy CPU core.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from captioner_data import corpus_for_pretraining
from retrieval.training.features import cache_key, save_atomic
from retrieval.encoders.text import SentenceEncoder

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--cache", default="cache/features")
ap.add_argument("--max-captions", type=int, default=None)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--text-encoder", default="all-MiniLM-L6-v2")
a = ap.parse_args()
torch.set_num_threads(a.threads)
caps = corpus_for_pretraining(Path(a.data), a.max_captions)  # noqa: E402
cache = Path(a.cache) / f"txt-{a.text_encoder}-{cache_key('txt', a.text_encoder, chr(10).join(caps))}.npy"
print(len(caps), "captions ->", cache, flush=True)
if cache.exists():
    raise SystemExit("already cached")
se = SentenceEncoder(a.text_encoder)
order = np.argsort([len(c) for c in caps], kind="stable")
out = np.zeros((len(caps), se.dim), np.float32)
t0 = time.time()
step = 4096
for s in range(0, len(order), step):
    idx = order[s : s + step]
    out[idx] = se.embed([caps[i] for i in idx], 128)
    print(f"{s + len(idx)}/{len(caps)} {time.time() - t0:.0f} s", flush=True)
save_atomic(cache, out)
print("done", time.time() - t0)
