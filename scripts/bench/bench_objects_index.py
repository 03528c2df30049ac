"""What the detector channel costs ``retr index``: photos/s and peak RSS with and without it, in one run.

    python scripts/bench/bench_objects_index.py [-n 200] [--runs 2] [--data ../shared/data]

Rows (each ``python -m retrieval index PHOTOS --index TMP --no-ocr`` in a fresh process, start-up,
imports and model loading included, captions on; the ONNX exports are made by a warm-up run first):

  without: ``--no-objects`` into a new index (the photos are searchable at this rate either way:
           the detector pass runs after they are committed);
  with:    the default (embedding, captions, then the detector pass) into a new index;
  pass:    ``retr index`` again on the ``without`` index: the detector pass alone (no re-embedding).

A second table times the detector alone in this process (ONNX Runtime, batches of 16, one thread,
photos decoded once beforehand) at input 256, 320 and 416 against the image encoder on the same
photos. Rounds interleave the rows so a change in the machine's load hits them alike; medians, with
ratios against ``without`` (and against the image encoder).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
from benchlib import load_line, machine_line, ratio_table, run_child as run


def detector_table(photos: list[Path]) -> None:
    """Photos/s of the detector alone at three input sizes and of the image encoder, same photos."""
    from retrieval.detection.yolo import ObjectDetector
    from retrieval.encoders.base import load_encoder
    from retrieval.encoders.onnx_runtime import OnnxImageEncoder, export_dir
    from retrieval.io.decode import load_image

    ims = [load_image(p) for p in photos]
    enc = load_encoder()
    enc.export_fast_path()
    runs = {"image encoder (embedding + ImageNet)": lambda: OnnxImageEncoder(export_dir(enc.id)).encode_images(ims)}
    for size in (256, 320, 416):
        det = ObjectDetector(size)
        runs[f"detector at {size} px"] = lambda det=det: det.detect(ims)
    times = {k: [] for k in runs}
    for _ in range(2):
        for k, f in runs.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    base = min(times["image encoder (embedding + ImageNet)"])
    print("| model (one thread, batches, decoded photos) | photos/s | time vs image encoder |")
    print("|---|---|---|")
    for k, v in times.items():
        print(f"| {k} | {len(ims) / min(v):.1f} | {min(v) / base:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="retr-bench-objects-"))
    try:
        dev = json.loads((Path(a.data) / "flickr8k" / "captions_dev.json").read_text())
        photos = tmp / "photos"
        photos.mkdir()
        for im in dev["images"][: a.n]:
            shutil.copy(Path(a.data) / "flickr8k" / "images" / im["file_name"], photos)
        env = dict(os.environ, PYTHONPATH=str(ROOT), RETR_CACHE=str(tmp / "cache"))
        env.pop("RETR_INDEX", None)
        retr = [sys.executable, "-m", "retrieval", "index"]
        run(retr + [str(next(photos.iterdir())), "--index", str(tmp / "warm"), "--no-ocr"], env)  # exports once
        rows = {"without": [], "with": [], "pass": []}
        for r in range(a.runs):
            rows["without"].append(run(retr + [str(photos), "--index", str(tmp / f"a{r}"), "--no-ocr", "--no-objects"], env))
            rows["with"].append(run(retr + [str(photos), "--index", str(tmp / f"b{r}"), "--no-ocr"], env))
            rows["pass"].append(run(retr + [str(photos), "--index", str(tmp / f"a{r}"), "--no-ocr"], env))
        print(machine_line())
        print(load_line())
        print(f"{a.n} Flickr8k dev photos, captions on, OCR off, median of {a.runs} runs")
        ratio_table(rows, a.n, "without")
        os.environ["RETR_CACHE"] = str(tmp / "cache")
        detector_table(sorted(photos.iterdir())[:64])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
