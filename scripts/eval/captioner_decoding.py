"""Decoding and re-ranking of the VAE captioner on Flickr8k dev: no training.

    python scripts/eval/captioner_decoding.py [--data ../shared/data] [--cache cache/features]
        [--captioner PATH] [--max-photos N] [--no-meteor] [--decodes decodes.pkl] [--out docs/captioner_decoding.md]

For every dev photo it runs beam search at widths 3, 5 and 8 (the finished hypotheses with their
summed log-probabilities, so every length normalisation is one re-ordering of the same search),
draws 5 and 10 latent samples (z ~ p(z | c), nucleus p = 0.9, seed = photo index), and scores
each candidate pool with:

* length normalisation (``power``: logp / len^a; ``gnmt``: Wu et al. 2016) of the beam list;
* ``mbr``: consensus CIDEr-D of each candidate against the other candidates (minimum Bayes risk,
  Kumar & Byrne 2004; consensus re-ranking, Devlin et al. 2015), with uniform n-gram weights
  (``mbr``, what works for one photo alone) or document frequencies over the dev pools
  (``mbr-idf``, a batch of photos);
* ``align``: cosine of the candidate's aligned text embedding with the photo's (the alignment network);
* ``emb-cons``: mean cosine of the candidate's text embedding with the others' (``retr caption --rerank consensus``);
* ``mix``: normalised log p(caption | c, z = prior mean) + lambda * consensus CIDEr-D.

Every caption is scored against the dev references with pycocoevalcap (BLEU-1..4, METEOR,
ROUGE-L, CIDEr). CPU time (``time.process_time``, one torch thread) of each step is measured
per photo; a decoding's ms/photo is the sum of its steps. Everything is chosen on dev: the
Flickr8k test split is not in the shared data.
"""
import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch

from retrieval.training.caption_metrics import caption_tokens, caption_scores, diversity
from retrieval.captioning.decoding import length_normalise
from retrieval.captioning.model import load_captioner
from retrieval.captioning.rerank import cider_against, consensus_cider, document_frequencies
from retrieval.captioning.vocab import detokenize
from retrieval.encoders.base import load_encoder
from retrieval.training.pipeline import image_features, load_coco_captions

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--cache", default="cache/features")
ap.add_argument("--encoder", default=None)
ap.add_argument("--captioner", default=None)
ap.add_argument("--max-photos", type=int, default=None)
ap.add_argument("--no-meteor", action="store_true")
ap.add_argument("--decodes", default=None, help="pickle of the decoded candidates: reused if it exists, else written")
ap.add_argument("--out", default=None, help="write the markdown table here")
ap.add_argument("--knn", type=int, nargs="*", default=[],
                help="also score candidates by CIDEr-D against the captions of the K nearest Flickr8k train photos")
ap.add_argument("--meteor-for", nargs="*", default=None,
                help="METEOR only for rows whose 'candidates | selection' contains one of these strings")
a = ap.parse_args()
torch.set_num_threads(1)
f8 = Path(a.data) / "flickr8k"
enc = load_encoder(a.encoder)
cap = load_captioner(a.captioner, enc.id, pooled=True)
corpus = load_coco_captions(f8 / "captions_dev.json")
if a.max_photos:
    corpus = corpus.subset(np.arange(min(a.max_photos, len(corpus.file_names))))
emb = enc.project_images(image_features(corpus, f8 / "images", enc.backbone_name, a.cache, flip=True)[0])
refs = {i: [] for i in range(len(emb))}
for c, p in zip(corpus.captions, corpus.caption_photo):
    refs[p].append(c)
photos = [i for i in refs if refs[i]]
BEAMS, SAMPLES = (3, 5, 8), (5, 10)
pt = time.process_time

# ---- 1. decode (cached) -------------------------------------------------------------------------
if a.decodes and Path(a.decodes).exists():
    D = pickle.load(open(a.decodes, "rb"))
else:
    D = {"beam": {b: {} for b in BEAMS}, "samples": {k: {} for k in SAMPLES}, "ms": {}}
    t_all = time.time()
    for b in BEAMS:
        t = pt()
        for i in photos:
            D["beam"][b][i] = [(detokenize(cap._words(q)), s, len(q) + 1) for q, s in cap.beam_hypotheses(emb[i], b)]
        D["ms"][f"beam{b}"] = 1000 * (pt() - t) / len(photos)
        print(f"beam {b}: {D['ms'][f'beam{b}']:.1f} ms/photo", file=sys.stderr, flush=True)
    for k in SAMPLES:
        t = pt()
        for i in photos:
            D["samples"][k][i] = cap.sample(emb[i], k, seed=i)
        D["ms"][f"samples{k}"] = 1000 * (pt() - t) / len(photos)
        print(f"{k} samples: {D['ms'][f'samples{k}']:.1f} ms/photo", file=sys.stderr, flush=True)
    # every distinct candidate of a photo: its log-likelihood (z = prior mean) and aligned text embedding
    D["ll"], D["temb"] = {}, {}
    t_ll = t_te = 0.0
    n_c = 0
    for i in photos:
        cands = sorted({s for b in BEAMS for s, _, _ in D["beam"][b][i]} | {s for k in SAMPLES for s in D["samples"][k][i]})
        t = pt()
        lp, ln = cap.log_likelihood(emb[i], cands)
        t_ll += pt() - t
        t = pt()
        te = np.asarray(enc.encode_texts(cands), np.float32)
        t_te += pt() - t
        n_c += len(cands)
        D["ll"][i] = {s: (float(x), int(n)) for s, x, n in zip(cands, lp, ln)}
        D["temb"][i] = {s: e for s, e in zip(cands, te)}
    D["ms"]["ll_per_cand"] = 1000 * t_ll / n_c
    D["ms"]["text_per_cand"] = 1000 * t_te / n_c
    print(f"log-likelihood {D['ms']['ll_per_cand']:.2f} ms, text embedding {D['ms']['text_per_cand']:.2f} ms "
          f"a candidate ({n_c / len(photos):.1f} candidates a photo); decoding {time.time() - t_all:.0f} s",
          file=sys.stderr, flush=True)
    if a.decodes:
        pickle.dump(D, open(a.decodes, "wb"))


# ---- 2. pools and selectors ---------------------------------------------------------------------
def nbest(i, b, form="power", alpha=0.7):
    """The distinct sentences of beam b, best first by the given length normalisation."""
    best = {}
    for s, lp, n in D["beam"][b][i]:
        v = length_normalise(lp, n, alpha, form)
        if s not in best or v > best[s]:
            best[s] = v
    return sorted(best, key=lambda s: -best[s])


POOLS = {  # name -> (candidates of photo i, cost steps)
    "beam 5 n-best": (lambda i: nbest(i, 5), ["beam5"]),
    "beam 8 n-best": (lambda i: nbest(i, 8), ["beam8"]),
    "5 samples": (lambda i: D["samples"][5][i], ["samples5"]),
    "10 samples": (lambda i: D["samples"][10][i], ["samples10"]),
    "beam 5 + 5 samples": (lambda i: nbest(i, 5) + D["samples"][5][i], ["beam5", "samples5"]),
    "beam 8 + 10 samples": (lambda i: nbest(i, 8) + D["samples"][10][i], ["beam8", "samples10"]),
}
pool_c = {name: {i: f(i) for i in photos} for name, (f, _) in POOLS.items()}
df_pools = {name: document_frequencies([pool_c[name][i] for i in photos]) for name in POOLS}
ms_cider = {}


def sel_mbr(name, idf=False):
    t = pt()
    out = {}
    df, nd = df_pools[name] if idf else (None, None)
    for i in photos:
        c = pool_c[name][i]
        out[i] = c[int(np.argmax(consensus_cider(c, df, nd)))]
    ms_cider[(name, idf)] = 1000 * (pt() - t) / len(photos)
    return out


def sel_align(name):
    return {i: max(pool_c[name][i], key=lambda s: float(D["temb"][i][s] @ emb[i])) for i in photos}


def sel_embcons(name):
    out = {}
    for i in photos:
        c = pool_c[name][i]
        t = np.stack([D["temb"][i][s] for s in c])
        sim = t @ t.T
        out[i] = c[int(np.argmax(sim.sum(1) - np.diag(sim)))]
    return out


cons_cache = {}


def sel_mix(name, lam, form, alpha):
    out = {}
    for i in photos:
        c = pool_c[name][i]
        if (name, i) not in cons_cache:
            cons_cache[(name, i)] = consensus_cider(c)
        lp = np.array([length_normalise(*D["ll"][i][s], alpha, form) for s in c])
        out[i] = c[int(np.argmax(lp + lam * cons_cache[(name, i)]))]
    return out


rows = []  # (decoding, candidates, selection, hyps, ms, pool name or None)
for b in BEAMS:
    for form, alpha in [("power", 0.0), ("power", 0.7), ("power", 1.0), ("gnmt", 0.6), ("gnmt", 1.0)]:
        lpname = "none" if alpha == 0 else f"{form} {alpha:g}"
        rows.append((f"beam {b}", f"length penalty {lpname}", {i: nbest(i, b, form, alpha)[0] for i in photos},
                     D["ms"][f"beam{b}"], None))
for name, (_, steps) in POOLS.items():
    base = sum(D["ms"][s] for s in steps)
    n_avg = np.mean([len(pool_c[name][i]) for i in photos])
    h = sel_mbr(name)
    rows.append((name, "MBR consensus CIDEr-D (uniform idf)", h, base + ms_cider[(name, False)], name))
    h = sel_mbr(name, idf=True)
    rows.append((name, "MBR consensus CIDEr-D (dev idf, batch)", h, base + ms_cider[(name, True)], name))
    te = n_avg * D["ms"]["text_per_cand"]
    rows.append((name, "alignment score", sel_align(name), base + te, name))
    rows.append((name, "embedding consensus", sel_embcons(name), base + te, name))
    for lam in (0.1, 0.3, 1.0):
        rows.append((name, f"mix: gnmt-1 logp + {lam:g} x MBR", sel_mix(name, lam, "gnmt", 1.0),
                     base + ms_cider[(name, False)] + n_avg * D["ms"]["ll_per_cand"], name))
    if name.startswith("5") or name.startswith("10"):
        rows.append((name, "log-likelihood (gnmt 1)", sel_mix(name, 0.0, "gnmt", 1.0),
                     base + n_avg * D["ms"]["ll_per_cand"], name))

if a.knn:  # consensus re-ranking against the captions of the nearest training photos (Devlin et al. 2015)
    tr = load_coco_captions(f8 / "captions_train.json")
    t = pt()
    tr_emb = enc.project_images(image_features(tr, f8 / "images", enc.backbone_name, a.cache, flip=True)[0])
    trefs = [[] for _ in tr.file_names]
    for c, p in zip(tr.captions, tr.caption_photo):
        trefs[p].append(c)
    df_tr = document_frequencies(trefs)
    t_setup = pt() - t
    print(f"train caption bank: {len(tr.file_names)} photos, set-up {t_setup:.1f} s CPU (once)", file=sys.stderr)
    for K in a.knn:
        nn_refs = {}
        t = pt()
        for i in photos:
            nn = np.argpartition(-(tr_emb @ emb[i]), K)[:K]
            nn_refs[i] = [c for j in nn for c in trefs[j]]
        t_nn = 1000 * (pt() - t) / len(photos)
        for name in ("beam 3 n-best", "beam 5 n-best", "beam 8 n-best", "beam 5 + 5 samples", "beam 8 + 10 samples"):
            if name not in POOLS:
                POOLS[name] = (lambda i: nbest(i, 3), ["beam3"])
                pool_c[name] = {i: nbest(i, 3) for i in photos}
            for idf in (True, False) if "n-best" in name else (True,):
                t = pt()
                dfx = df_tr if idf else (None, None)
                h = {i: pool_c[name][i][int(np.argmax(cider_against(pool_c[name][i], nn_refs[i], *dfx)))]
                     for i in photos}
                ms = t_nn + 1000 * (pt() - t) / len(photos) + sum(D["ms"][s] for s in POOLS[name][1])
                rows.append((name, f"CIDEr-D vs captions of {K} nearest train photos"
                             + ("" if idf else " (uniform idf)"), h, ms, name))
        t = pt()
        h = {i: nn_refs[i][int(np.argmax(consensus_cider(nn_refs[i], *df_tr)))] for i in photos}
        rows.append((f"captions of {K} nearest train photos (retrieval, no decoder)", "consensus CIDEr-D", h,
                     t_nn + 1000 * (pt() - t) / len(photos), None))

# ---- 3. metrics ---------------------------------------------------------------------------------
from pycocoevalcap.cider.cider import Cider  # noqa: E402

oracle, div = {}, {}
for name in POOLS:
    keys = [(i, j) for i in photos for j in range(len(pool_c[name][i]))]
    gts = {f"{i}#{j}": [caption_tokens(r) for r in refs[i]] for i, j in keys}
    res = {f"{i}#{j}": [caption_tokens(pool_c[name][i][j])] for i, j in keys}
    _, per = Cider().compute_score(gts, res)
    best = {}
    for (i, j), v in zip(keys, per):
        best[i] = max(best.get(i, -1), v)
    oracle[name] = 100 * float(np.mean(list(best.values())))
    if "samples" in name:
        k = 5 if "5 samples" in name else 10
        div[name] = diversity({i: D["samples"][k][i] for i in photos})

K = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
lines = ["| candidates | selection | " + " | ".join(K) + " | ms/photo (CPU) | Div-1 | Div-2 | mBLEU-4 | oracle CIDEr |",
         "|" + "---|" * (len(K) + 7)]
res_all = []
for dec, selname, hyps, ms, pool in rows:
    met = not a.no_meteor and (a.meteor_for is None or any(x in f"{dec} | {selname}" for x in a.meteor_for))
    s = caption_scores({i: refs[i] for i in photos}, hyps, meteor=met)
    d = div.get(pool, {})
    res_all.append((dec, selname, s, ms, pool))
    line = (f"| {dec} | {selname} | " + " | ".join(f"{s[k]:.1f}" if k in s else "-" for k in K) + f" | {ms:.0f} | "
            + (f"{d['Div-1']:.2f} | {d['Div-2']:.2f} | {d['mBLEU-4']:.2f}" if d else " | | ")
            + f" | {oracle[pool]:.1f} |" if pool else f"| {dec} | {selname} | "
            + " | ".join(f"{s[k]:.1f}" if k in s else "-" for k in K) + f" | {ms:.0f} | | | | |")
    lines.append(line)
    print(line, flush=True)
hdr = (f"command: python scripts/eval/captioner_decoding.py {' '.join(sys.argv[1:])}\n"
       f"Flickr8k dev: {len(photos)} photos; {os.cpu_count()} cores; CPU ms per photo = time.process_time, 1 torch thread; "
       f"log-likelihood {D['ms']['ll_per_cand']:.2f} ms and text embedding {D['ms']['text_per_cand']:.2f} ms a candidate\n")
if a.out:
    Path(a.out).write_text(hdr + "\n" + "\n".join(lines) + "\n")
pickle.dump(res_all, open(str(a.decodes or "decodes") + ".scores.pkl", "wb"))
