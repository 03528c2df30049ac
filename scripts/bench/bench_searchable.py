"""Time the default `retr index` end to end on Flickr8k dev photos: seconds until its summary line
(every photo searchable), seconds until its later passes (captions, text in photos, objects) end, and
the peak RSS of the process.

    python scripts/bench/bench_searchable.py [--data ../shared/data] [-n 1000] [--baseline-tree PATH]
        [--rounds R] [-- extra retr index options]

One warm-up run of each checkout first, on 32 of the photos (ONNX exports into $RETR_CACHE), then timed runs into fresh indexes, start-up
included; the photos are copied into a temporary folder. With ``--baseline-tree`` (another checkout
of retr, e.g. ``git worktree add /tmp/base COMMIT``), that checkout's `retr index` runs too, its runs
interleaved with this one's (R rounds of one each), and the table gives medians and ratios: timings on
a busy machine are comparable only within one run of this script.
"""
from __future__ import annotations

import argparse
import json
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


def run_index(lib: Path, idx: Path, extra: list[str], env: dict, tree: Path = ROOT) -> tuple[float, float, float]:
    """(seconds until searchable, seconds in all, peak RSS in MB) of one `retr index` run of the checkout ``tree``."""
    t0, searchable = time.time(), float("nan")
    cmd = [sys.executable, "-m", "retrieval", "index", str(lib), "--index", str(idx), *extra]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tree)
    for line in p.stdout:
        if line.startswith("added ") and searchable != searchable:
            searchable = time.time() - t0
    _, _, ru = os.wait4(p.pid, 0)
    return searchable, time.time() - t0, ru.ru_maxrss / 1024


def row(label: str, runs: list[tuple[float, float, float]], n: int, base: list | None) -> str:
    """One markdown table row: medians over ``runs`` of (searchable s, all passes s, peak RSS MB), with
    ratios against the ``base`` runs (photos/s until searchable, and peak RSS)."""
    s, t, m = (statistics.median(r[i] for r in runs) for i in range(3))
    bs, _, bm = (statistics.median(r[i] for r in base) for i in range(3)) if base else (s, t, m)
    return f"| {label} | {s:.1f} | {n / s:.1f} | {t:.1f} | {m:.0f} | {bs / s:.2f} | {m / bm:.2f} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--baseline-tree", type=Path, help="another checkout of retr to compare with, runs interleaved")
    ap.add_argument("--rounds", type=int, default=1, help="timed runs of each tree")
    ap.add_argument("extra", nargs="*", help="options passed to retr index (after --)")
    a = ap.parse_args()
    flickr = Path(a.data) / "flickr8k"
    photos = json.loads((flickr / "captions_dev.json").read_text())["images"][: a.n]
    tmp = Path(tempfile.mkdtemp())
    lib = tmp / "photos"
    lib.mkdir()
    (tmp / "few").mkdir()
    for i, im in enumerate(photos):
        shutil.copy(flickr / "images" / im["file_name"], lib / im["file_name"])
        if i < 32:
            shutil.copy(flickr / "images" / im["file_name"], tmp / "few" / im["file_name"])
    trees = {"this": ROOT} | ({"baseline": a.baseline_tree.resolve()} if a.baseline_tree else {})
    envs = {k: dict(os.environ, PYTHONPATH=str(t), RETR_HOME=str(tmp / "home")) for k, t in trees.items()}
    for e in envs.values():
        e.pop("PYTHONDONTWRITEBYTECODE", None)
    print(machine_line())
    print(load_line())
    for k in trees:
        run_index(tmp / "few", tmp / f"warm-{k}", a.extra, envs[k], trees[k])
    runs: dict[str, list] = {k: [] for k in trees}
    for r in range(a.rounds):
        for k in (list(trees)[::-1] if r % 2 else list(trees)):  # alternate which tree goes first
            runs[k].append(run_index(lib, tmp / f"index-{k}-{r}", a.extra, envs[k], trees[k]))
            s, total, rss = runs[k][-1]
            print(f"{k} ({trees[k]}): retr index {' '.join(a.extra)}: {len(photos)} photos searchable in {s:.1f} s "
                  f"({len(photos) / s:.1f} photos/s, start-up included); all passes {total:.1f} s; "
                  f"peak RSS {rss:.0f} MB", flush=True)
    print(load_line())
    print(f"\n| tree | searchable s | photos/s until searchable | all passes s | peak RSS MB | photos/s vs "
          f"{'baseline' if a.baseline_tree else 'this'} | RSS vs {'baseline' if a.baseline_tree else 'this'} |")
    print("|---|---|---|---|---|---|---|")
    for k in trees:
        print(row(k, runs[k], len(photos), runs.get("baseline")))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
