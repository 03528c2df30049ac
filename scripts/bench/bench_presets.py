"""The presets' Pareto table: dev Recall@1 against indexing photos/s.

    python scripts/bench/bench_presets.py [--data ../shared/data] [-n 300] [--runs 3]

For each preset (``fast``, ``best``) it runs the real CLI,
``python -m retrieval index FOLDER --index TMP --no-captions --encoder PRESET``, over
the first N Flickr8k dev photos into a fresh index (interpreter start-up, imports and
model loading included; the one-time ONNX export is done by an untimed warm-up run), and
reports the median photos/s over --runs. Recall@1 is read from the preset's checkpoint,
where ``scripts/train/train_default_encoder.py`` recorded it on the full dev split (1,000
photos, 4,999 captions). Both presets run in the same session, so their ratio holds even
when the machine is busy; the load average is printed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
from benchlib import load_line, machine_line

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("-n", type=int, default=300)
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--presets", default="fast,best")
a = ap.parse_args()

import torch  # noqa: E402

from retrieval.io.coco import load_coco_captions  # noqa: E402
from retrieval.encoders.base import PRESETS  # noqa: E402

f8 = Path(a.data) / "flickr8k"
dev = load_coco_captions(f8 / "captions_dev.json")
tmp = Path(tempfile.mkdtemp(prefix="retr-bench-presets-"))
photos = tmp / "photos"
photos.mkdir()
for f in dev.file_names[: a.n]:
    shutil.copy(f8 / "images" / f, photos / Path(f).name)
env = dict(os.environ, RETR_CACHE=os.environ.get("RETR_CACHE", str(tmp / "cache")))

print(f"$ python scripts/bench/bench_presets.py -n {a.n} --runs {a.runs}")
print(machine_line())
rows = []
for preset in a.presets.split(","):
    card = torch.load(PRESETS[preset], map_location="cpu", weights_only=True)["config"]
    r = card["card"].get("dev_recall", {})
    cmd = [sys.executable, "-m", "retrieval", "index", str(photos), "--no-captions", "--encoder", preset]
    subprocess.run(cmd + ["--index", str(tmp / "warm")], env=env, check=True, capture_output=True)
    shutil.rmtree(tmp / "warm")
    rates = []
    for i in range(a.runs):
        t = time.perf_counter()
        subprocess.run(cmd + ["--index", str(tmp / f"idx-{preset}-{i}")], env=env, check=True, capture_output=True)
        rates.append(a.n / (time.perf_counter() - t))
    rows.append((preset, card["backbone"], r, statistics.median(rates)))
    print(load_line(), flush=True)

print()
print("| preset | backbone(s) | t2i R@1 | i2t R@1 | t2i R@10 | photos/s (CLI, median) | vs fast |")
print("|---|---|---|---|---|---|---|")
base = rows[0][3]
for preset, bb, r, rate in rows:
    g = lambda d, k: r.get(d, {}).get(k, r.get(d, {}).get(str(k), float("nan")))  # noqa: E731
    print(f"| {preset} | {bb} | {g('t2i', 1):.1f} | {g('i2t', 1):.1f} | {g('t2i', 10):.1f} | {rate:.1f} | "
          f"{rate / base:.2f}x |")
shutil.rmtree(tmp, ignore_errors=True)
