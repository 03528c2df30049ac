"""Fit the fusion weights and the match-score calibration on held-out Flickr8k train photos.

Data: the 487 Flickr8k train photos the shipped alignment heads held out (``flickr8k-holdout``
in ``concept_data.py``) and ``TRAIN_QUERIES`` of ``concept_queries.py`` (not the evaluation
queries); the evaluation galleries (Flickr8k dev, COCO-mini) are never read here.

1. Grid search of the concept matcher's threshold and hypernym weight and the channel weights,
   maximising mean mAP@50 over the training queries with >= 3 relevant photos (the "linear (grid)"
   row of the ablation; its matcher settings are kept).
2. The shipped fusion: a logistic regression of "this photo is relevant" on the default channels'
   scores (embedding, concepts ** 0.5; the caption channel keeps its grid weight, for --channels) over every (training query, photo) pair, training
   queries with absent subjects included. Its coefficients, divided by the embedding's, are the
   linear weights; the embedding's coefficient and the intercept are the calibration of the fused
   score (Platt 1999), so ranking and match probability come from one model.
3. The "no good match" threshold on the best photo's calibrated probability: the one that
   maximises balanced accuracy between training queries whose subject is present (>= 1 relevant
   photo) and absent (no caption names it).

Writes ``retrieval/concepts/data/fusion.json``.
Usage: python scripts/eval/fit_fusion.py
"""
from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

import concept_queries as cq
from concept_eval import Gallery, evaluate, matcher

from retrieval.concepts.calibration import Calibration, fit_logistic_multi
from retrieval.concepts.fusion import CHANNELS, DEFAULT_CHANNELS, FUSION_FILE, FusionWeights, fuse


def main() -> None:
    gal = Gallery("flickr8k-holdout")
    queries = list(cq.TRAIN_QUERIES)
    rel_all = [set(cq.relevant(gal.captions, cq.TRAIN_QUERIES[q])) for q in queries]
    absent = np.array([cq.absent(gal.captions, cq.TRAIN_QUERIES[q]) for q in queries])
    counted = [i for i, r in enumerate(rel_all) if len(r) >= cq.MIN_RELEVANT]
    print(f"{len(queries)} training queries: {len(counted)} with >= 3 relevant photos, {absent.sum()} absent",
          file=sys.stderr)
    best = None
    for thr, hw in itertools.product((0.4, 0.45, 0.5, 0.55, 0.6), (0.9, 1.0)):
        m = matcher(gal.encoder_id, threshold=thr, hypernym_weight=hw)
        sc = gal.channel_scores(queries, m)
        sub = {k: v[counted] for k, v in sc.items()}
        rels = [rel_all[i] for i in counted]
        for a, b, s in itertools.product((0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2), (0.0, 0.1, 0.2, 0.3, 0.5), (0.0,)):
            w = FusionWeights(concepts=a, caption=b, strength=s, threshold=thr, hypernym_weight=hw)
            p5, ap = evaluate(fuse(sub, w, CHANNELS), rels)
            if best is None or ap > best[0]:
                best = (ap, p5, w, sc)
    ap, p5, w, sc = best
    print(f"best on training queries: mAP@50 {ap:.3f}, P@5 {p5:.3f}, {w}", file=sys.stderr)
    # query-dependent strength, on top of the best linear weights
    sub = {k: v[counted] for k, v in sc.items()}
    rels = [rel_all[i] for i in counted]
    qd = max(((evaluate(fuse(sub, FusionWeights(**{**w.to_dict(), "strength": s}), CHANNELS, "query-dependent"),
                        rels)[1], s) for s in (0.0, 0.2, 0.4, 0.6, 0.8)))
    w.strength = qd[1]
    print(f"query-dependent: best strength {qd[1]} (mAP@50 {qd[0]:.3f})", file=sys.stderr)
    grid = FusionWeights(**w.to_dict())
    y = np.zeros_like(sc["embedding"])
    for i, r in enumerate(rel_all):
        y[i, list(r)] = 1.0
    feats = np.stack([sc["embedding"].ravel(), np.sqrt(np.maximum(sc["concepts"], 0)).ravel()], 1)
    coef, intercept = fit_logistic_multi(feats, y.ravel())
    w.concepts, w.strength = float(coef[1] / coef[0]), 0.0
    print(f"logistic fusion: coefficients {coef}, intercept {intercept:.3f} -> {w}", file=sys.stderr)
    lp5, lap = evaluate(fuse(sub, w, DEFAULT_CHANNELS), rels)
    print(f"logistic fusion on training queries: mAP@50 {lap:.3f}, P@5 {lp5:.3f}", file=sys.stderr)
    fused = fuse(sc, w, DEFAULT_CHANNELS)
    cal = Calibration(float(coef[0]), float(intercept))
    top = cal.probability(fused.max(1))
    present = np.array([len(r) > 0 for r in rel_all])
    cands = np.unique(np.round(top, 3))
    bal = [(0.5 * ((top[absent] < t).mean() + (top[present] >= t).mean()), t) for t in cands]
    acc, t = max(bal)
    cal.no_match = float(t)
    print(f"calibration {cal}; no-match threshold {t:.3f} (balanced accuracy {acc:.3f} on training queries)",
          file=sys.stderr)
    FUSION_FILE.write_text(json.dumps({
        "source": "scripts/eval/fit_fusion.py on the 487 held-out Flickr8k train photos and TRAIN_QUERIES",
        "weights": w.to_dict(), "calibration": cal.to_dict(), "grid_weights": grid.to_dict(),
        "train": {"map50": round(lap, 4), "p5": round(lp5, 4), "grid_map50": round(ap, 4), "grid_p5": round(p5, 4),
                  "queries": len(counted),
                  "absent_queries": int(absent.sum()), "balanced_accuracy": round(float(acc), 4)},
    }, indent=1) + "\n")
    print(f"wrote {FUSION_FILE}")


if __name__ == "__main__":
    main()
