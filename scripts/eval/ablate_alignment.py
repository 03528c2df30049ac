"""Ablation of the alignment network: backbones, heads and objectives, on Flickr8k.

    python scripts/eval/ablate_alignment.py [--rows all|NAME,NAME] [--seeds 0] [--data ../shared/data]

Each row trains alignment heads on the cached frozen features of the Flickr8k train
split (early stopping on 8% of the *train* photos) and reports dev Recall@K (1,000
photos as gallery, 4,999 captions as queries) and the modality gap. Results are
appended to docs/ablation_alignment.jsonl (rows already there are not re-run) and
the table docs/ablation_alignment.md is rewritten from it. First run extracts
backbone features (minutes per backbone); each row then takes 2-5 minutes on a quiet
2-core machine (10-20 on a busy one).

``--from-checkpoint ROW=PATH`` fills a row from a checkpoint that
``scripts/train/train_default_encoder.py`` trained with that row's backbone and settings
(same function, seed 0), instead of training it a second time: the shipped presets.

Rows named ``BASE+flip-tta`` (see ``TTA``) need no training of their own: they are the
model of row BASE, evaluated with flip test-time augmentation (each dev photo embedded
as it is and mirrored, the two unit embeddings averaged and renormalised); they are
written whenever BASE is trained or filled from a checkpoint.
"""
import argparse
import json
import os
import platform
import time
from pathlib import Path

from retrieval.io.coco import load_coco_captions
from retrieval.training.metrics import modality_gap, recall_at_k
from retrieval.training.align import AlignConfig, embed_features, train_alignment
from retrieval.training.features import image_features, text_features

L0, L1, L2 = "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"
MN = "mobilenet-v2"
L02M = f"{L0}+{L2}+{MN}"
#: the training of the rows measured before text dropout and multi-caption batches were
#: options: one dropout for both heads, one caption drawn per photo per step
OLD = dict(text_dropout=-1.0, captions_per_photo=1)
#: name -> (backbone, AlignConfig overrides, what it tests)
ROWS = {
    "linear-infonce": (L0, dict(OLD, hidden=0), "linear heads, symmetric InfoNCE (CLIP)"),
    "mlp-infonce": (L0, dict(OLD), "linear + residual MLP heads, InfoNCE (the previous `fast` recipe)"),
    "mlp-hinge": (L0, dict(OLD, loss="hinge"), "hardest-negative hinge only (VSE++)"),
    "mlp-infonce+hinge": (L0, dict(OLD, loss="infonce+hinge"), "InfoNCE + hardest-negative hinge"),
    "mlp-infonce+adv": (L0, dict(OLD, adversarial=0.1), "InfoNCE + adversarial modality loss (ACMR; heads trained by domain confusion)"),
    "mlp-infonce+adv-reversal": (L0, dict(OLD, adversarial=0.1, adv_mode="reversal"),
                                 "InfoNCE + adversarial modality loss (ACMR; gradient reversal)"),
    "lite2-mlp-infonce": (L2, dict(OLD), "EfficientNet-Lite2 alone"),
    "lite0+lite2-mlp-infonce": (f"{L0}+{L2}", dict(OLD), "Lite0 + Lite2 features concatenated"),
    "lite0+lite2-infonce+hinge": (f"{L0}+{L2}", dict(OLD, loss="infonce+hinge"), "concat + InfoNCE + hinge"),
    "lite0+lite2-infonce+adv": (f"{L0}+{L2}", dict(OLD, adversarial=0.1), "concat + InfoNCE + adversarial"),
    "lite0+lite1+lite2-mlp-infonce": (f"{L0}+{L1}+{L2}", dict(OLD), "Lite0 + Lite1 + Lite2 concatenated"),
    "mnv2-mlp-infonce": (MN, dict(OLD), "MobileNetV2 alone (Sandler et al. 2018; ImageNet mean/std inside its module)"),
    "lite0+mnv2-mlp-infonce": (f"{L0}+{MN}", dict(OLD), "Lite0 + MobileNetV2 concatenated"),
    "lite0+lite2+mnv2-mlp-infonce": (L02M, dict(OLD), "Lite0 + Lite2 + MobileNetV2 concatenated, input dropout 0.5"),
    "lite0+lite2+mnv2-dropout0.7": (L02M, dict(OLD, dropout=0.7), "Lite0 + Lite2 + MobileNetV2, input dropout 0.7"),
    "lite0+lite2+mnv2-dropout0.8": (L02M, dict(OLD, dropout=0.8), "Lite0 + Lite2 + MobileNetV2, input dropout 0.8"),
    "mlp-infonce-k5": (L0, dict(text_dropout=-1.0), "multi-caption batches: all 5 captions of each photo, multi-positive InfoNCE"),
    "mlp-infonce-k5-tdrop0.3": (L0, dict(text_dropout=0.3), "the row above, text-head input dropout 0.3 (image 0.5)"),
    "mlp-infonce-k5-tdrop0.1": (L0, {}, "the row above, text-head input dropout 0.1 (shipped `fast`)"),
    "lite0+lite2+mnv2-k5-tdrop0.3": (L02M, dict(dropout=0.7, text_dropout=0.3), "Lite0 + Lite2 + MobileNetV2, image dropout 0.7, text dropout 0.3, 5 captions a photo"),
    "lite0+lite2+mnv2-k5-tdrop0.1": (L02M, dict(dropout=0.7, text_dropout=0.1), "the row above, text dropout 0.1 (shipped `best`)"),
}
#: flip test-time augmentation rows: evaluation-only variants of a trained row
TTA = {f"{base}+flip-tta": base for base in ("lite0+lite2-mlp-infonce", "lite0+lite2+mnv2-mlp-infonce",
                                            "lite0+lite2+mnv2-dropout0.7", "lite0+lite2+mnv2-dropout0.8",
                                            "lite0+lite2+mnv2-k5-tdrop0.1")}
ROWS = {k: v for name, row in ROWS.items()  # each flip-TTA row right after its base row in the table
        for k, v in [(name, row)] + [(t, (row[0], row[1], "the row above, flip test-time augmentation (dev photo "
                                          "and its mirror image, embeddings averaged)")) for t, b in TTA.items() if b == name]}



def dev_records(name, seed, bb, over, di_views, dt, caption_photo, extra):
    """The row's record and, when ``name`` has a flip-TTA row, that row's record.

    ``di_views``: (2, N, D) unit embeddings of the dev photos as they are and mirrored.
    """
    import numpy as np

    out = []
    views = {name: di_views[0]}
    for tta, base in TTA.items():
        if base == name:
            m = di_views.mean(0)
            views[tta] = m / np.linalg.norm(m, axis=1, keepdims=True)
    for row, di in views.items():
        r = recall_at_k(di, dt, caption_photo)
        out.append({"row": row, "seed": seed, "backbone": bb, "config": over, "t2i": r["t2i"], "i2t": r["i2t"],
                    "gap": round(modality_gap(di, dt), 4), **extra})
    return out


ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--cache", default="cache/features")
ap.add_argument("--rows", default="all")
ap.add_argument("--seeds", default="0", help="comma-separated seeds; the table shows their mean")
ap.add_argument("--out", default="docs/ablation_alignment")
ap.add_argument("--from-checkpoint", action="append", default=[], metavar="ROW=PATH")
a = ap.parse_args()

f8 = Path(a.data) / "flickr8k"
train = load_coco_captions(f8 / "captions_train.json")
dev = load_coco_captions(f8 / "captions_dev.json")
ttxt = text_features(train.captions, "all-MiniLM-L6-v2", a.cache)
dtxt = text_features(dev.captions, "all-MiniLM-L6-v2", a.cache)
log = Path(a.out + ".jsonl")
done = {(r["row"], r["seed"]) for r in map(json.loads, log.read_text().splitlines())} if log.exists() else set()
names = [n for n in ROWS if n not in TTA] if a.rows == "all" else a.rows.split(",")
bad = [n for n in names if n not in ROWS or n in TTA]
if bad:
    raise SystemExit(f"unknown or evaluation-only row {bad[0]!r} (flip-TTA rows come with their base row)")


def write(rec):
    print(json.dumps(rec), flush=True)
    with log.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    done.add((rec["row"], rec["seed"]))


for spec in a.from_checkpoint:
    import torch

    from retrieval.encoders.base import load_encoder

    name, path = spec.split("=", 1)
    bb, over, _ = ROWS[name]
    enc = load_encoder(path, runtime="torch")
    ck = torch.load(path, map_location="cpu", weights_only=True)["config"]["card"]
    cfg = ck["align_config"]
    assert enc.backbone_name == bb and all(cfg[k] == v for k, v in over.items()) and cfg["seed"] == 0, spec
    dimg = image_features(dev, f8 / "images", bb, a.cache, flip=True)
    import numpy as np

    di_views, dt = np.stack([enc.project_images(v) for v in dimg]), enc.project_texts(dtxt)
    for rec in dev_records(name, 0, bb, over, di_views, dt, dev.caption_photo,
                           {"epoch": ck["train_info"]["epoch"], "seconds": ck["train_info"]["seconds"],
                            "load": None, "checkpoint": Path(path).name}):
        if (rec["row"], 0) not in done:  # a row already measured (e.g. by training it here) is kept
            write(rec)
for name in names if not a.from_checkpoint else []:
    bb, over, _ = ROWS[name]
    for seed in map(int, a.seeds.split(",")):
        if (name, seed) in done:
            continue
        timg = image_features(train, f8 / "images", bb, a.cache, flip=True)
        dimg = image_features(dev, f8 / "images", bb, a.cache, flip=True)
        cfg = AlignConfig(seed=seed, **over)
        t = time.time()
        model, info = train_alignment(timg, ttxt, train.caption_photo, cfg)
        import numpy as np

        di_views = np.stack([embed_features(model, v)[0] for v in dimg])
        dt = embed_features(model, None, dtxt)[1]
        for rec in dev_records(name, seed, bb, over, di_views, dt, dev.caption_photo,
                               {"epoch": info["epoch"], "seconds": round(time.time() - t),
                                "load": round(os.getloadavg()[0], 1)}):
            write(rec)

recs = [json.loads(x) for x in log.read_text().splitlines()]
lines = ["# Alignment ablation (Flickr8k dev, 1K protocol)", "",
         f"Made by `python scripts/eval/ablate_alignment.py` on {platform.node() or 'this machine'} "
         f"({os.cpu_count()} cores). Frozen backbone + frozen all-MiniLM-L6-v2 features (train photos "
         "and their mirror images), heads trained on Flickr8k train (6,091 photos), early stopping on 8% "
         "of train; dev = 1,000 photos as gallery, 4,999 captions as queries. Mean over the seeds run; "
         "R@1 of a row run with several seeds is mean ± standard deviation over them: the seed alone "
         "moves R@1 by 1-3 points, so a difference between two one-seed rows smaller than that is not "
         "evidence. Modality gap: distance between the mean image and mean text "
         "embedding (Liang et al. 2022). train s: wall seconds of the training run, taken while other "
         "jobs loaded the machine (load average 5-13): not a speed figure.", "",
         "| row | what | seeds | t2i R@1 | R@5 | R@10 | i2t R@1 | R@5 | R@10 | gap | train s |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
for name in ROWS:
    rs = [r for r in recs if r["row"] == name]
    if not rs:
        continue
    def cell(d, k):  # mean over seeds; R@1 of several seeds also gets its standard deviation
        v = [r[d][str(k)] if str(k) in r[d] else r[d][k] for r in rs]
        mu = sum(v) / len(v)
        if k != 1 or len(v) < 2:
            return f"{mu:.1f}"
        return f"{mu:.1f} ± {(sum((x - mu) ** 2 for x in v) / (len(v) - 1)) ** 0.5:.1f}"

    lines.append(f"| {name} | {ROWS[name][2]} | {len(rs)} | " + " | ".join(
        cell(d, k) for d in ("t2i", "i2t") for k in (1, 5, 10))
        + f" | {sum(r['gap'] for r in rs) / len(rs):.3f} | {sum(r['seconds'] for r in rs) / len(rs):.0f} |")
Path(a.out + ".md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
