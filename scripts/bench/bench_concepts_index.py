"""What the concept channel costs ``retr index``: photos/s and peak RSS against a baseline tree, in one run.

    python scripts/bench/bench_concepts_index.py --baseline-ref REF [-n 500] [--runs 2] [--data ../shared/data]

REF is a commit from before the concept channel; it is extracted with ``git archive`` into a temporary
folder and run with the same Python. Rows (each ``python -m retrieval index PHOTOS --index TMP`` in a
fresh process into a fresh index, start-up, imports and model loading included, captions on; the
ONNX exports are made by a warm-up run of each tree first, in separate caches):

  baseline: REF's ``retr index``;
  concepts: this tree's ``retr index`` (embedding + ImageNet posteriors + concepts table);
  enrich:   this tree's ``retr index`` on an index REF built (concepts only, no re-embedding).

Rounds interleave the rows so a change in the machine's load hits them alike; medians are printed,
with ratios against the baseline.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
from benchlib import load_line, machine_line, ratio_table, run_child as run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-ref", required=True)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="retr-bench-concepts-"))
    try:
        base = tmp / "baseline"
        base.mkdir()
        arc = subprocess.run(["git", "-C", str(ROOT), "archive", a.baseline_ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=arc, check=True)
        dev = json.loads((Path(a.data) / "flickr8k" / "captions_dev.json").read_text())
        photos = tmp / "photos"
        photos.mkdir()
        for im in dev["images"][: a.n]:
            shutil.copy(Path(a.data) / "flickr8k" / "images" / im["file_name"], photos)
        envs = {}
        for name, tree in (("baseline", base), ("concepts", ROOT)):
            e = dict(os.environ, PYTHONPATH=str(tree), RETR_CACHE=str(tmp / f"cache-{name}"))
            e.pop("RETR_INDEX", None)
            envs[name] = e
            run([sys.executable, "-m", "retrieval", "index", str(photos / im["file_name"]), "--index",
                 str(tmp / f"warm-{name}")], e)  # exports once
        rows = {"baseline": [], "concepts": [], "enrich": []}
        for r in range(a.runs):
            for name in ("baseline", "concepts"):
                idx = tmp / f"idx-{name}-{r}"
                rows[name].append(run([sys.executable, "-m", "retrieval", "index", str(photos), "--index", str(idx)],
                                      envs[name]))
            rows["enrich"].append(run([sys.executable, "-m", "retrieval", "index", str(photos), "--index",
                                       str(tmp / f"idx-baseline-{r}")], envs["concepts"]))
        print(machine_line())
        print(load_line())
        print(f"{a.n} Flickr8k dev photos, captions on, median of {a.runs} runs; baseline {a.baseline_ref}")
        ratio_table(rows, a.n, "baseline")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
