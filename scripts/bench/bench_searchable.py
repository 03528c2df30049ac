"""Time the default `retr index` end to end on Flickr8k dev photos: seconds until its summary line
(every photo searchable), seconds until its later passes (text in photos, objects) end, and the
peak RSS of the process.

    python scripts/bench/bench_searchable.py [--data ../shared/data] [-n 1000] [-- extra retr index options]

One warm-up run first (ONNX exports into $RETR_CACHE), then one timed run into a fresh index,
start-up included; the photos are copied into a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_index(lib: Path, idx: Path, extra: list[str], env: dict) -> tuple[float, float, float]:
    """(seconds until searchable, seconds in all, peak RSS in MB) of one `retr index` run."""
    t0, searchable = time.time(), float("nan")
    cmd = [sys.executable, "-m", "retrieval", "index", str(lib), "--index", str(idx), *extra]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    for line in p.stdout:
        if line.startswith("added ") and searchable != searchable:
            searchable = time.time() - t0
    _, _, ru = os.wait4(p.pid, 0)
    return searchable, time.time() - t0, ru.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("extra", nargs="*", help="options passed to retr index (after --)")
    a = ap.parse_args()
    flickr = Path(a.data) / "flickr8k"
    photos = json.loads((flickr / "captions_dev.json").read_text())["images"][: a.n]
    tmp = Path(tempfile.mkdtemp())
    lib = tmp / "photos"
    lib.mkdir()
    for im in photos:
        shutil.copy(flickr / "images" / im["file_name"], lib / im["file_name"])
    env = dict(os.environ, PYTHONPATH=str(ROOT), RETR_HOME=str(tmp / "home"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    run_index(lib, tmp / "warm", a.extra, env)
    s, total, rss = run_index(lib, tmp / "index", a.extra, env)
    print(f"retr index {' '.join(a.extra)}: {len(photos)} photos searchable in {s:.1f} s ({len(photos) / s:.1f} "
          f"photos/s, start-up included); all passes {total:.1f} s; peak RSS {rss:.0f} MB")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
