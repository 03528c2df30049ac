"""Fit the fusion weights and the match-score calibration on held-out Flickr8k train photos.

Data: the 487 Flickr8k train photos the shipped alignment heads held out (``flickr8k-holdout``
in ``concept_data.py``) and ``TRAIN_QUERIES`` of ``concept_queries.py`` (not the evaluation
queries); the evaluation galleries (Flickr8k dev, COCO-mini) are never read here.

1. Grid search of the concept matcher's threshold and hypernym weight and the channel weights,
   maximising mean mAP@50 over the training queries with >= 3 relevant photos (the "linear (grid)"
   row of the ablation; its matcher settings are kept).
2. The shipped fusion: a logistic regression of "this photo is relevant" on the default channels'
   scores (embedding, concepts ** 0.5) and the embedding times the query's concept strength (the
   query-dependent weight; the caption channel keeps its grid weight, for --channels) over every
   (training query, photo) pair, training queries with absent subjects included. Its coefficients,
   divided by the embedding's, are the fusion weights; the embedding's coefficient and the intercept are the calibration of the fused
   score (Platt 1999), so ranking and match probability come from one model.
3. The "no good match" threshold on the best photo's calibrated probability: the one that
   maximises balanced accuracy between training cases whose subject is present (>= 1 relevant
   photo) and absent (no caption names it): each training query on the held-out gallery, on that
   gallery without the photos that name its subject, and on random sub-galleries
   (:func:`verdict_threshold`).

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


def logistic_fusion(sc: dict, y: np.ndarray, w: FusionWeights) -> tuple[FusionWeights, np.ndarray, float]:
    """The shipped fusion, in place on ``w``: a logistic regression of relevance ``y`` (Q, N) on the
    embedding, the square-rooted concept score, the embedding times the query's concept strength
    (the query-dependent weight) and, when the gallery has detections, the detector channel's object
    score; its coefficients over the embedding's are the fusion weights.
    Also fits the plain linear logistic fusion (embedding and concepts only), for the ablation.

    Returns:
        ((the linear fusion's weights, its calibration), the shipped fit's (3,) coefficients, its intercept).
    """
    e, c = sc["embedding"].ravel(), np.sqrt(np.maximum(sc["concepts"], 0)).ravel()
    s = np.broadcast_to(sc["strength"][:, None], sc["embedding"].shape).ravel()
    lin, lin_b = fit_logistic_multi(np.stack([e, c], 1), y.ravel())
    linear = FusionWeights(**{**w.to_dict(), "concepts": float(lin[1] / lin[0]), "strength": 0.0, "method": "linear"})
    linear_cal = Calibration(float(lin[0]), float(lin_b))
    cols = [e, c, s * e] + ([sc["objects"].ravel()] if "objects" in sc else [])
    coef, intercept = fit_logistic_multi(np.stack(cols, 1), y.ravel())
    w.concepts, w.strength, w.method = float(coef[1] / coef[0]), float(-coef[2] / coef[0]), "query-dependent"
    w.objects = float(coef[3] / coef[0]) if "objects" in sc else 0.0
    print(f"logistic fusion: coefficients {coef}, intercept {intercept:.3f} -> {w}", file=sys.stderr)
    return (linear, linear_cal), coef, float(intercept)


def object_threshold(gal, queries, sc, y, w, counted, rels):
    """:func:`logistic_fusion`, with the detector channel when the gallery has detections: its matcher
    threshold is the one (of 0.4, 0.5, 0.6) whose fitted fusion has the best mAP@50 on the training
    queries (set on ``w``). Returns (what :func:`logistic_fusion` returns..., the channel scores used)."""
    if "objects" not in sc:
        return (*logistic_fusion(sc, y, w), sc)
    from concept_eval import object_matcher

    sentences, best = gal.sentences(queries), None
    for thr in (0.4, 0.5, 0.6):
        trial_sc = {**sc, "objects": gal.object_scores(queries, sentences, object_matcher(gal.encoder_id, threshold=thr))}
        trial = FusionWeights(**{**w.to_dict(), "object_threshold": thr})
        fitted = logistic_fusion(trial_sc, y, trial)
        p5, ap = evaluate(fuse({k: v[counted] for k, v in trial_sc.items()}, trial, DEFAULT_CHANNELS), rels)
        print(f"object threshold {thr}: mAP@50 {ap:.3f}, P@5 {p5:.3f}", file=sys.stderr)
        if best is None or ap > best[0]:
            best = (ap, fitted, trial_sc, trial)
    _, fitted, sc, trial = best
    for k, v in trial.to_dict().items():
        setattr(w, k, v)
    return (*fitted, sc)


#: sizes of the random sub-galleries the verdict's threshold is also fitted on (a library may be small)
SUBSET_SIZES = (11, 11, 11, 11, 30, 30, 30, 100, 100, 250)


def verdict_cases(gal, queries: list[str], seed: int = 0) -> list[tuple[int, np.ndarray, bool]]:
    """Training cases of the "no good match" verdict: each training query on the held-out gallery, on
    that gallery without the photos any caption of which names the query's subject (the subject made
    absent), and on random sub-galleries of :data:`SUBSET_SIZES` photos (with and without the subject).
    A case's subject is present with >= 1 relevant photo, absent when no caption names it; cases where
    it is only named in passing (1 caption of a photo) are left out.

    Returns:
        [(query index, (M,) photo indices, present)].
    """
    n = len(gal.captions)
    rng = np.random.default_rng(seed)
    subsets = [np.arange(n)] + [rng.choice(n, k, replace=False) for k in SUBSET_SIZES]
    cases = []
    for i, q in enumerate(queries):
        named = np.array([any(cq.caption_names(c, cq.TRAIN_QUERIES[q]) for c in caps) for caps in gal.captions])
        rel = np.isin(np.arange(n), cq.relevant(gal.captions, cq.TRAIN_QUERIES[q]))
        for sub in subsets:
            for keep in (sub, sub[~named[sub]]):
                if rel[keep].any() or not named[keep].any():
                    cases.append((i, keep, bool(rel[keep].any())))
    return cases


def best_threshold(p: np.ndarray, present: np.ndarray) -> tuple[float, float]:
    """(balanced accuracy, threshold): the threshold on ``p`` that best separates absent (p < t: the
    verdict fires) from present (p >= t) cases."""
    p, present = np.asarray(p), np.asarray(present, bool)
    return max((0.5 * ((p[~present] < t).mean() + (p[present] >= t).mean()), float(t)) for t in np.unique(np.round(p, 3)))


def verdict_threshold(gal, queries: list[str], fused: np.ndarray, cal: Calibration):
    """The "no good match" threshold on the best photo's match over :func:`verdict_cases`.

    Args:
        gal: the held-out training gallery; queries: its training queries; fused: (Q, N) fused scores.

    Returns:
        (balanced accuracy, threshold, number of cases).
    """
    cases = verdict_cases(gal, queries)
    top = cal.probability(np.array([fused[i, keep].max() for i, keep, _ in cases]))
    acc, t = best_threshold(top, [c[2] for c in cases])
    return float(acc), t, len(cases)


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
    (linear, linear_cal), coef, intercept, sc = object_threshold(gal, queries, sc, y, w, counted, rels)
    sub = {k: v[counted] for k, v in sc.items()}
    linear_cal.no_match = verdict_threshold(gal, queries, fuse(sc, linear, DEFAULT_CHANNELS), linear_cal)[1]
    lp5, lap = evaluate(fuse(sub, w, DEFAULT_CHANNELS), rels)
    print(f"logistic fusion on training queries: mAP@50 {lap:.3f}, P@5 {lp5:.3f}", file=sys.stderr)
    fused = fuse(sc, w, DEFAULT_CHANNELS)
    cal = Calibration(float(coef[0]), float(intercept))
    acc, t, n_cases = verdict_threshold(gal, queries, fused, cal)
    cal.no_match = float(t)
    print(f"calibration {cal}; no-match threshold {t:.3f} (balanced accuracy {acc:.3f} on {n_cases} training "
          "cases)", file=sys.stderr)
    FUSION_FILE.write_text(json.dumps({
        "source": "scripts/eval/fit_fusion.py on the 487 held-out Flickr8k train photos and TRAIN_QUERIES",
        "weights": w.to_dict(), "calibration": cal.to_dict(), "grid_weights": grid.to_dict(),
        "linear_weights": linear.to_dict(), "linear_calibration": linear_cal.to_dict(),
        "train": {"map50": round(lap, 4), "p5": round(lp5, 4), "grid_map50": round(ap, 4), "grid_p5": round(p5, 4),
                  "queries": len(counted),
                  "absent_queries": int(absent.sum()), "verdict_cases": n_cases,
                  "balanced_accuracy": round(float(acc), 4)},
    }, indent=1) + "\n")
    print(f"wrote {FUSION_FILE}")


if __name__ == "__main__":
    main()
