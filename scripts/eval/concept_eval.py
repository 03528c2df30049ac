"""Concept-query evaluation: mean P@5 and mAP@50 per gallery and per channel combination,
the no-match table, and Recall@K with the fused text -> image ranking.

Usage (from the repository root, after ``scripts/eval/concept_data.py`` or on first use):

    python scripts/eval/concept_eval.py ablation      # P@5 / mAP@50 table (Flickr8k dev, COCO-mini)
    python scripts/eval/concept_eval.py nomatch       # verdict on absent vs present subjects
    python scripts/eval/concept_eval.py recall        # Recall@K, both directions
    python scripts/eval/concept_eval.py verdict       # the "no good match" verdict's designs

Channel scores come from :mod:`retrieval.concepts` with the shipped fusion weights
(``retrieval/concepts/data/fusion.json``, fitted by ``scripts/eval/fit_fusion.py`` on held-out
Flickr8k train photos only).
"""
from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np

import concept_data
import concept_queries as cq
import detector_data

CHANNELS = ("embedding", "concepts", "caption", "objects")
#: the detector's input size for the objects channel ($RETR_EVAL_DETECTOR_SIZE)
DETECTOR_SIZE = int(os.environ.get("RETR_EVAL_DETECTOR_SIZE", "320"))


def text_encoder(encoder_id: str):
    from retrieval.encoders.onnx_runtime import OnnxTextEncoder, export_dir

    return OnnxTextEncoder(export_dir(encoder_id))


def matcher(encoder_id: str, **kw):
    from retrieval.concepts.scoring import ConceptMatcher
    from retrieval.encoders.onnx_runtime import CONCEPT_NAMES_FILE, export_dir

    return ConceptMatcher.load(export_dir(encoder_id) / CONCEPT_NAMES_FILE, **kw)


def object_matcher(encoder_id: str, **kw):
    """The detector channel's matcher (threshold default: the shipped fusion's ``object_threshold``)."""
    from retrieval.concepts.fusion import FusionWeights
    from retrieval.detection.scoring import load_object_matcher
    from retrieval.encoders.onnx_runtime import export_dir

    kw.setdefault("threshold", FusionWeights.load().object_threshold)
    return load_object_matcher(export_dir(encoder_id), **kw)


class Gallery:
    """A cached gallery with its channel scores for a list of queries."""

    def __init__(self, name: str):
        self.name = name
        g = concept_data.load_gallery(name)
        self.g = g
        self.captions = json.loads(str(g["captions"]))
        self.encoder_id = str(g["encoder_id"])
        from retrieval.concepts.scoring import top_classes

        self.classes, self.probs = top_classes(g["probs"].astype(np.float32))
        #: (N, 80) best detection scores and counts per COCO class, or None (gallery not detected)
        self.objects = detector_data.object_arrays(name, DETECTOR_SIZE, len(self.captions))

    def channel_scores(self, queries: list[str], m, om=None) -> dict[str, np.ndarray]:
        """{channel: (Q, N) float32} for the queries (``om``: the detector channel's
        :class:`retrieval.detection.scoring.ObjectMatcher`; default: one with the shipped threshold)."""
        from retrieval.concepts.scoring import concept_scores

        te = text_encoder(self.encoder_id)
        q, s = zip(*(te.encode_texts_and_sentences([t]) for t in queries))
        q, s = np.concatenate(q), np.concatenate(s)
        con = np.stack([concept_scores(m.class_weights(v), self.classes, self.probs) for v in s])
        strength = np.array([m.strength(v) for v in s], np.float32)
        out = {"embedding": q @ self.g["emb"].T, "concepts": con, "caption": q @ self.g["gen_emb"].T,
               "strength": strength}
        if self.objects is not None:
            out["objects"] = self.object_scores(queries, s, om or object_matcher(self.encoder_id))
        return out

    def sentences(self, queries: list[str]) -> np.ndarray:
        """(Q, 384) float32 sentence embeddings of the queries."""
        te = text_encoder(self.encoder_id)
        return np.concatenate([te.encode_texts_and_sentences([t])[1] for t in queries])

    def object_scores(self, queries: list[str], sentences: np.ndarray, om) -> np.ndarray:
        """(Q, N) float32 detector channel scores (:func:`retrieval.detection.scoring.object_scores`)."""
        from retrieval.detection.scoring import object_scores, query_count

        sc, cnt = self.objects
        return np.stack([object_scores(om.class_weights(v), sc, cnt, query_count(t), om.count_miss)
                         for t, v in zip(queries, sentences)])


def average_precision(order: np.ndarray, rel: set, cutoff: int = 50) -> float:
    """AP over the top ``cutoff`` results, normalised by min(#relevant, cutoff)."""
    hits, total = 0, 0.0
    for i, p in enumerate(order[:cutoff]):
        if int(p) in rel:
            hits += 1
            total += hits / (i + 1)
    return total / min(len(rel), cutoff) if rel else 0.0


def evaluate(scores: np.ndarray, rels: list[set]) -> tuple[float, float]:
    """(mean P@5, mean mAP@50) over queries of (Q, N) scores."""
    p5, ap = [], []
    for s, rel in zip(scores, rels):
        order = np.argsort(-s, kind="stable")
        p5.append(len(set(order[:5].tolist()) & rel) / 5)
        ap.append(average_precision(order, rel))
    return float(np.mean(p5)), float(np.mean(ap))


def query_sets(gal: Gallery, queries: dict) -> tuple[list[str], list[set], list[str], list[str]]:
    """(counted queries, their relevant sets, queries with 1-2 relevant photos, absent-subject queries)."""
    counted, rels, few, gone = [], [], [], []
    for q, groups in queries.items():
        r = set(cq.relevant(gal.captions, groups))
        if len(r) >= cq.MIN_RELEVANT:
            counted.append(q)
            rels.append(r)
        elif cq.absent(gal.captions, groups):
            gone.append(q)
        else:
            few.append(q)
    return counted, rels, few, gone


def learned_fusions(w) -> dict:
    """Small learned fusion models, fitted here on the held-out Flickr8k train photos and the training
    queries (never on the evaluation galleries): a multi-layer perceptron (scikit-learn, one hidden
    layer) on (embedding, concepts ** 0.5, concept strength) per (query, photo) pair, relevance as the
    label. {name: function(channel scores) -> (Q, N) scores}; empty without scikit-learn."""
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        print("scikit-learn is not installed: the learned fusion rows are left out", file=sys.stderr)
        return {}
    gal = Gallery("flickr8k-holdout")
    queries = list(cq.TRAIN_QUERIES)
    sc = gal.channel_scores(queries, matcher(gal.encoder_id, threshold=w.threshold, hypernym_weight=w.hypernym_weight))

    def feats(s):
        e = s["embedding"]
        st = np.broadcast_to(np.asarray(s["strength"])[:, None], e.shape)
        return np.stack([e, np.sqrt(np.maximum(s["concepts"], 0)), st], -1).reshape(-1, 3)

    y = np.zeros_like(sc["embedding"])
    for i, q in enumerate(queries):
        y[i, cq.relevant(gal.captions, cq.TRAIN_QUERIES[q])] = 1
    out = {}
    for h in (4, 8):
        mlp = MLPClassifier((h,), alpha=1e-3, max_iter=500, random_state=0).fit(feats(sc), y.ravel())
        out[f"learned: MLP, {h} hidden units"] = (
            lambda s, m=mlp: m.predict_proba(feats(s))[:, 1].reshape(s["embedding"].shape))
    return out


def ablation(galleries=("flickr8k-dev", "coco-mini")) -> None:
    from retrieval.concepts.fusion import DEFAULT_CHANNELS, FusionWeights, fuse

    w = FusionWeights.load()
    print(f"fusion: {w}")
    learned = learned_fusions(w)
    print("| channels | " + " | ".join(f"{g} P@5 | {g} mAP@50" for g in galleries) + " |")
    print("|---|" + "---|---|" * len(galleries))
    rows = {}
    for g in galleries:
        gal = Gallery(g)
        m = matcher(gal.encoder_id, threshold=w.threshold, hypernym_weight=w.hypernym_weight)
        qs, rels, few, gone = query_sets(gal, cq.QUERIES)
        sc = gal.channel_scores(qs, m)
        print(f"{g}: {len(qs)} queries counted; 1-2 relevant: {few}; absent: {gone}", file=sys.stderr)
        for n in range(1, 4):
            for combo in itertools.combinations(CHANNELS, n):
                rows.setdefault(combo, []).append(evaluate(fuse(sc, w, combo), rels))
        rows.setdefault(("default: " + " + ".join(DEFAULT_CHANNELS) + " (query-dependent logistic fusion)",), []).append(
            evaluate(fuse(sc, w, DEFAULT_CHANNELS), rels))
        lin = FusionWeights.load(which="linear_weights")
        rows.setdefault(("embedding + concepts (linear logistic fusion)",), []).append(
            evaluate(fuse(sc, lin, DEFAULT_CHANNELS), rels))
        rows.setdefault(("embedding + concepts (reciprocal-rank fusion)",), []).append(
            evaluate(fuse(sc, w, ("embedding", "concepts"), "rrf"), rels))
        for name, model in learned.items():
            rows.setdefault((f"embedding + concepts ({name})",), []).append(evaluate(model(sc), rels))
        grid = FusionWeights.load(which="grid_weights")
        rows.setdefault(("all (linear, grid-searched weights)",), []).append(evaluate(fuse(sc, grid, CHANNELS), rels))
        rows.setdefault(("all (reciprocal-rank fusion)",), []).append(evaluate(fuse(sc, w, CHANNELS, "rrf"), rels))
        if os.environ.get("PER_QUERY"):
            base, full = fuse(sc, w, ("embedding",)), fuse(sc, w, DEFAULT_CHANNELS)
            for i, q in enumerate(qs):
                print(f"  {g} {q!r}: {evaluate(base[i:i+1], rels[i:i+1])} -> {evaluate(full[i:i+1], rels[i:i+1])} "
                      f"({len(rels[i])} relevant)", file=sys.stderr)
    for combo, vals in rows.items():
        print(f"| {' + '.join(combo)} | " + " | ".join(f"{p:.3f} | {a:.3f}" for p, a in vals) + " |")


def recall(galleries=("flickr8k-dev", "coco-mini")) -> None:
    """Recall@1/5/10 with every human caption as a query: text -> image by the embedding alone and by
    the fused default; image -> text by the embedding (the concept channel ranks photos, not texts)."""
    from retrieval.concepts.fusion import DEFAULT_CHANNELS, FusionWeights, fuse
    from retrieval.concepts.scoring import concept_scores
    from retrieval.training.metrics import recall_at_k

    w = FusionWeights.load()
    print("| gallery | ranking | t2i R@1 | R@5 | R@10 | i2t R@1 | R@5 | R@10 |")
    print("|---|---|---|---|---|---|---|---|")
    for g in galleries:
        gal = Gallery(g)
        m = matcher(gal.encoder_id, threshold=w.threshold, hypernym_weight=w.hypernym_weight)
        caps = [c for cs in gal.captions for c in cs]
        te = text_encoder(gal.encoder_id)
        q, s = [], []
        for b in range(0, len(caps), 256):  # one batch per length-sorted chunk: pad within a chunk only
            qq, ss = te.encode_texts_and_sentences(caps[b : b + 256])
            q.append(qq)
            s.append(ss)
        q, s = np.concatenate(q), np.concatenate(s)
        cp = np.array([i for i, cs in enumerate(gal.captions) for _ in cs])
        r = recall_at_k(gal.g["emb"], q, cp)
        sc = {"embedding": q @ gal.g["emb"].T, "caption": q @ gal.g["gen_emb"].T,
              "concepts": np.stack([concept_scores(m.class_weights(v), gal.classes, gal.probs) for v in s]),
              "strength": np.array([m.strength(v) for v in s], np.float32)}
        if gal.objects is not None:
            sc["objects"] = gal.object_scores(caps, s, object_matcher(gal.encoder_id))
        fused = fuse(sc, w, DEFAULT_CHANNELS)
        ranks = (fused > fused[np.arange(len(cp)), cp][:, None]).sum(1)
        t2i = {k: 100.0 * float((ranks < k).mean()) for k in (1, 5, 10)}
        i2t = r["i2t"]
        print(f"| {g} | embedding | " + " | ".join(f"{r['t2i'][k]:.1f}" for k in (1, 5, 10)) + " | "
              + " | ".join(f"{i2t[k]:.1f}" for k in (1, 5, 10)) + " |")
        print(f"| {g} | fused (default) | " + " | ".join(f"{t2i[k]:.1f}" for k in (1, 5, 10)) + " | "
              + " | ".join(f"{i2t[k]:.1f}" for k in (1, 5, 10)) + " |")


def nomatch(galleries=("flickr8k-dev", "coco-mini", "flickr8k-holdout")) -> None:
    """How often the "no good match" verdict fires on queries whose subject is absent from the gallery
    (no caption names it) and, wrongly, on queries whose subject is present (>= 1 relevant photo)."""
    from retrieval.concepts.calibration import Calibration
    from retrieval.concepts.fusion import DEFAULT_CHANNELS, FusionWeights, fuse

    w, cal = FusionWeights.load(), Calibration.load()
    print(f"calibration: {cal}")
    print("| gallery | queries | absent: fires | present: fires (wrongly) | present with >= 3 relevant: fires |")
    print("|---|---|---|---|---|")
    for g in galleries:
        gal = Gallery(g)
        queries = cq.TRAIN_QUERIES if g == "flickr8k-holdout" else cq.QUERIES
        m = matcher(gal.encoder_id, threshold=w.threshold, hypernym_weight=w.hypernym_weight)
        qs = list(queries)
        rel = [cq.relevant(gal.captions, queries[q]) for q in qs]
        gone = np.array([cq.absent(gal.captions, queries[q]) for q in qs])
        fires = cal.probability(fuse(gal.channel_scores(qs, m), w, DEFAULT_CHANNELS).max(1)) < cal.no_match
        present = np.array([len(r) > 0 for r in rel])
        many = np.array([len(r) >= cq.MIN_RELEVANT for r in rel])
        print(f"| {g} | {'training' if g == 'flickr8k-holdout' else 'evaluation'} | "
              f"{fires[gone].sum()}/{gone.sum()} ({fires[gone].mean():.0%}) | "
              f"{fires[present].sum()}/{present.sum()} ({fires[present].mean():.0%}) | "
              f"{fires[many].sum()}/{many.sum()} ({fires[many].mean():.0%}) |")
        if os.environ.get("PER_QUERY"):
            print(f"  {g} fired, absent: {[q for q, f, a in zip(qs, fires, gone) if f and a]}; "
                  f"missed, absent: {[q for q, f, a in zip(qs, fires, gone) if not f and a]}; "
                  f"fired, present: {[q for q, f, p in zip(qs, fires, present) if f and p]}", file=sys.stderr)


def _verdict_inputs(sc: dict, fused: np.ndarray, cal, keep=None) -> dict[str, float]:
    """One case's candidate inputs of the verdict, at the best photo by ``fused`` (N,): the
    calibrated logit of its fused score, its concept evidence (square-rooted concept score), that
    times the query's concept strength, the z-score of its fused score among the gallery's, and the
    margin between it and the gallery's median fused score."""
    keep = np.arange(len(fused)) if keep is None else keep
    f, c = fused[keep], np.sqrt(np.maximum(sc["concepts"][keep], 0))
    j = int(np.argmax(f))
    return {"logit": cal.slope * f[j] + cal.intercept, "concept": c[j], "strength x concept": float(sc["strength"]) * c[j],
            "z-score": (f[j] - f.mean()) / (f.std() + 1e-6), "margin": f[j] - np.median(f)}


def verdict(galleries=("flickr8k-dev", "coco-mini")) -> None:
    """The verdict's designs: the fusion under it, the training cases its threshold is fitted on
    (the 63 training queries on the held-out photos, or those plus the subject removed and random
    sub-galleries: ``fit_fusion.verdict_cases``), and its inputs (the best photo's match alone, or a
    logistic regression of presence on :func:`_verdict_inputs`, fitted on the same training cases)."""
    from fit_fusion import best_threshold, verdict_cases

    from retrieval.concepts.calibration import Calibration, fit_logistic_multi
    from retrieval.concepts.fusion import DEFAULT_CHANNELS, FusionWeights, fuse

    fusions = {"linear": (FusionWeights.load(which="linear_weights"), Calibration.load(which="linear_calibration")),
               "query-dependent": (FusionWeights.load(), Calibration.load())}
    designs = [("linear", "queries", ("logit",)), ("query-dependent", "queries", ("logit",)),
               ("linear", "cases", ("logit",)), ("query-dependent", "cases", ("logit",)),
               ("query-dependent", "cases", ("logit", "concept", "strength x concept")),
               ("query-dependent", "cases", ("logit", "z-score", "margin")),
               ("query-dependent", "cases", ("logit", "concept", "strength x concept", "z-score", "margin"))]
    hold = Gallery("flickr8k-holdout")
    tq = list(cq.TRAIN_QUERIES)
    w0 = fusions["linear"][0]
    m = matcher(hold.encoder_id, threshold=w0.threshold, hypernym_weight=w0.hypernym_weight)
    sc_h = hold.channel_scores(tq, m)
    evals = {}
    for g in galleries:
        gal = Gallery(g)
        qs = list(cq.QUERIES)
        sc = gal.channel_scores(qs, matcher(gal.encoder_id, threshold=w0.threshold, hypernym_weight=w0.hypernym_weight))
        evals[g] = (sc, np.array([cq.absent(gal.captions, cq.QUERIES[q]) for q in qs]),
                    np.array([len(cq.relevant(gal.captions, cq.QUERIES[q])) > 0 for q in qs]))
    all_cases = verdict_cases(hold, tq)
    query_cases = list({c[0]: c for c in reversed(all_cases) if len(c[1]) == len(hold.captions)}.values())
    print("| fusion | threshold fitted on | inputs | " + " | ".join(f"{g} absent: fires | {g} present: fires" for g in galleries) + " |")
    print("|---|---|---|" + "---|---|" * len(galleries))
    for fusion, cases_name, inputs in designs:
        w, cal = fusions[fusion]
        fused_h = fuse(sc_h, w, DEFAULT_CHANNELS)
        cases = all_cases if cases_name == "cases" else query_cases
        x = np.array([[_verdict_inputs({k: v[i] for k, v in sc_h.items()}, fused_h[i], cal, keep)[k] for k in inputs]
                      for i, keep, _ in cases])
        y = np.array([c[2] for c in cases], float)
        coef, b = (np.array([1.0]), 0.0) if inputs == ("logit",) else fit_logistic_multi(x, y)
        _, t = best_threshold(1 / (1 + np.exp(-(x @ coef + b))), y > 0)
        row = []
        for g, (sc, gone, present) in evals.items():
            fused = fuse(sc, w, DEFAULT_CHANNELS)
            x = np.array([[_verdict_inputs({k: v[i] for k, v in sc.items()}, fused[i], cal)[k] for k in inputs]
                          for i in range(len(fused))])
            fires = 1 / (1 + np.exp(-(x @ coef + b))) < t
            row += [f"{fires[gone].sum()}/{gone.sum()} ({fires[gone].mean():.0%})",
                    f"{fires[present].sum()}/{present.sum()} ({fires[present].mean():.0%})"]
        print(f"| {fusion} | {len(cases)} {'training queries' if cases_name == 'queries' else 'training cases'} | "
              f"{', '.join(inputs)} (threshold {t:.3f}) | " + " | ".join(row) + " |")


if __name__ == "__main__":
    {"ablation": ablation, "recall": recall, "nomatch": nomatch, "verdict": verdict}[sys.argv[1] if len(sys.argv) > 1 else "ablation"]()
