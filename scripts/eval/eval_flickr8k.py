"""Dev-split Recall@K through the real CLI path, plus indexing throughput and cold-search time.

    python scripts/eval/eval_flickr8k.py [--data ../shared/data] [--split dev] [--runs 3]

1. Links the split's photos into a temporary folder and runs
   `retr index FOLDER --captions SPLIT.json --no-captions` (timed: photos/s end to end).
2. Reads the photo vectors and caption vectors back from the index that run wrote
   and computes Recall@1/5/10 both ways (1,000 photos as gallery, their captions as queries).
3. Times `retr search "a dog on a beach"` in a new process (median of --runs).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from retrieval.training.metrics import modality_gap, recall_at_k
from retrieval.store.database import Store, TextRow

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--split", default="dev")
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--encoder", default=None)
a = ap.parse_args()

f8 = Path(a.data).resolve() / "flickr8k"
coco = json.loads((f8 / f"captions_{a.split}.json").read_text())
retr = [sys.executable, "-m", "retrieval"]
with tempfile.TemporaryDirectory() as tmp:
    photos = Path(tmp) / "photos"
    photos.mkdir()
    for im in coco["images"]:
        os.symlink(f8 / "images" / im["file_name"], photos / im["file_name"])
    # warm-up: the first `retr index` of an encoder exports it to ONNX (once per machine); keep that out of the timing
    warm = subprocess.run(retr + ["index", str(photos / coco["images"][0]["file_name"]), "--index",
                                  str(Path(tmp) / "warm"), "--no-captions"] + (["--encoder", a.encoder] if a.encoder else []),
                          capture_output=True, text=True)
    if warm.returncode:
        sys.exit(warm.stderr)
    idx = Path(tmp) / "index"
    enc_args = ["--encoder", a.encoder] if a.encoder else []
    # 1) photos only: end-to-end indexing throughput (walk, hash, decode, embed, store)
    t = time.perf_counter()
    out = subprocess.run(retr + ["index", str(photos), "--index", str(idx), "--no-captions"] + enc_args,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode:
        sys.exit(out.stderr)
    print(out.stdout.strip())
    # 2) the split's captions, as texts of their (unchanged) photos
    t = time.perf_counter()
    out = subprocess.run(retr + ["index", str(photos), "--index", str(idx), "--no-captions", "--captions",
                                 str(f8 / f"captions_{a.split}.json")] + enc_args, capture_output=True, text=True)
    cap_wall = time.perf_counter() - t
    if out.returncode:
        sys.exit(out.stderr)
    print(out.stdout.strip())
    n = len(coco["images"])

    store = Store(idx)
    pid, pv = store.load_vectors("photos")
    tid, tv = store.load_vectors("texts")
    with store.session() as s:
        owner = dict(s.execute(__import__("sqlalchemy").select(TextRow.id, TextRow.photo_id)).all())
    row_of = {int(p): i for i, p in enumerate(pid)}
    cp = [row_of[owner[int(t)]] for t in tid]
    r = recall_at_k(pv, tv, cp)
    gap = modality_gap(pv, tv)

    def cold(env=None):
        ts = []
        for _ in range(a.runs):
            t = time.perf_counter()
            o = subprocess.run(retr + ["search", "a dog on a beach", "--index", str(idx), "-k", "5"],
                               capture_output=True, text=True, env=env)
            ts.append(time.perf_counter() - t)
            assert o.returncode == 0, o.stderr
        return ts

    times = cold()  # ONNX text path (exported by `retr index`)
    no_export = dict(os.environ, RETR_CACHE=str(Path(tmp) / "empty-cache"))
    torch_times = cold(no_export)  # baseline: the torch text path

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"\nmachine: {os.cpu_count()} cores, {cpu}")
print(f"command: python scripts/eval/eval_flickr8k.py --split {a.split}")
print(f"\nFlickr8k {a.split}: {n} photos (gallery), {len(tv)} captions (queries)")
print("| direction | R@1 | R@5 | R@10 |\n|---|---|---|---|")
for d, name in (("t2i", "text -> image"), ("i2t", "image -> text")):
    print(f"| {name} | {r[d][1]:.1f} | {r[d][5]:.1f} | {r[d][10]:.1f} |")
print(f"\nmodality gap (centroid distance): {gap:.3f}")
print(f"indexing photos: {n} photos in {wall:.1f} s wall = {n / wall:.1f} photos/s "
      f"(one `retr index --no-captions` process, start-up and model loading included)")
print(f"indexing captions: {len(tv)} captions in {cap_wall:.1f} s wall = {len(tv) / cap_wall:.0f} captions/s "
      f"(second `retr index --captions` run: photos unchanged)")
print(f"cold `retr search` (new process), ONNX text path: median {statistics.median(times):.2f} s over {a.runs} runs "
      f"({', '.join(f'{x:.2f}' for x in times)})")
print(f"cold `retr search` (new process), torch text path: median {statistics.median(torch_times):.2f} s "
      f"({', '.join(f'{x:.2f}' for x in torch_times)}); ratio {statistics.median(torch_times) / statistics.median(times):.1f}x")
