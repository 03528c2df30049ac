"""Indexing throughput: the obvious one-photo-at-a-time loop versus retr's path, and the real CLI.

    python scripts/bench_index.py [--data ../shared/data] [-n 300] [--runs 3] [--big 60]

Rows (photos/s, median of --runs; each row runs in its own child process, whose peak RSS
is read with os.wait4):

  (a) the obvious way: torch path (``load_encoder(runtime="torch")``), ``load_image`` then
      ``encode_images([im])`` per photo;
  (b) torch path, batches of 32;
  (c) retr's path: ONNX Runtime (``load_encoder()`` once the export exists), batches of 32,
      decoded with ``draft_size=(320, 320)`` as the indexer does;
  (d) the real CLI end to end, ``python -m retrieval.cli index FOLDER --index TMP --no-captions``
      into a fresh index each run (interpreter start-up, imports and model loading included);
  (e) the same CLI on 12-megapixel JPEGs made for the benchmark (N --big dev photos upscaled to
      4000x3000, quality 90), plus decode-only photos/s for those files with and without
      JPEG draft mode (``load_image(p, draft_size=(320, 320))``).

(a)-(c) time only the decode+embed loop, after loading the model and a warm-up batch.
The ONNX export (``$RETR_CACHE``, made once by the first ``retr index``) is done by a
warm-up CLI run before any timing.
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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import load_line, machine_line  # noqa: E402

DRAFT = (320, 320)


def run_child(cmd: list[str], env: dict | None = None) -> tuple[float, float, str, str]:
    """Run ``cmd``; returns (wall seconds, peak RSS of the child in MB, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        so, se = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if p.returncode:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{se[-3000:]}")
    return wall, ru.ru_maxrss / 1024, so, se  # Linux: ru_maxrss in KiB


# -- child side: one mode, --runs timed passes over the photos ------------------------------

def child(mode: str, list_file: str, runs: int, batch: int) -> None:
    paths = Path(list_file).read_text().split("\n")
    from retrieval.decode import load_image

    if mode in ("decode_full", "decode_draft"):
        draft = DRAFT if mode == "decode_draft" else None
        load_image(paths[0], draft_size=draft)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            for p in paths:
                load_image(p, draft_size=draft)
            times.append(time.perf_counter() - t)
        print(json.dumps({"times": times, "runtime": "-"}))
        return

    from retrieval.encoder import load_encoder

    enc = load_encoder(runtime="torch" if mode.startswith("torch") else "auto")
    runtime = "onnxruntime" if enc._onnx() is not None else "torch"
    if mode == "onnx_batched" and runtime != "onnxruntime":
        sys.exit("no ONNX export found (the warm-up `retr index` should have made it)")
    draft = DRAFT if mode == "onnx_batched" else None
    enc.encode_images([load_image(p, draft_size=draft) for p in paths[:2]])  # warm-up: trace / session init
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        if mode == "torch_single":
            for p in paths:
                enc.encode_images([load_image(p)])
        else:
            for i in range(0, len(paths), batch):
                enc.encode_images([load_image(p, draft_size=draft) for p in paths[i : i + batch]])
        times.append(time.perf_counter() - t)
    print(json.dumps({"times": times, "runtime": runtime}))


# -- parent side ---------------------------------------------------------------------------

def in_process_row(mode: str, paths: list[Path], runs: int, batch: int, tmp: Path) -> dict:
    lst = tmp / f"{mode}.txt"
    lst.write_text("\n".join(str(p) for p in paths))
    _, rss, out, _ = run_child([sys.executable, str(Path(__file__).resolve()), "--_child", mode, str(lst),
                                "--runs", str(runs), "--batch", str(batch)])
    r = json.loads(out.strip().splitlines()[-1])
    return {"times": r["times"], "rss": rss, "n": len(paths), "runtime": r["runtime"]}


def cli_row(folder: Path, n: int, runs: int, tmp: Path, name: str) -> dict:
    times, rss = [], []
    for i in range(runs):
        idx = tmp / f"index-{name}-{i}"
        w, m, out, _ = run_child([sys.executable, "-m", "retrieval.cli", "index", str(folder), "--index", str(idx),
                                  "--no-captions"])
        if f"added {n}," not in out:
            sys.exit(f"unexpected CLI output: {out!r}")
        times.append(w)
        rss.append(m)
    return {"times": times, "rss": max(rss), "n": n, "runtime": "onnxruntime"}


def make_big(src: list[Path], dst: Path) -> list[Path]:
    """Upscale real photos to 12-megapixel JPEGs (4000x3000, or 3000x4000 for portrait), quality 90."""
    from PIL import Image

    dst.mkdir()
    out = []
    for p in src:
        with Image.open(p) as im:
            im = im.convert("RGB")
            size = (3000, 4000) if im.height > im.width else (4000, 3000)
            q = dst / p.name
            im.resize(size, Image.BICUBIC).save(q, "JPEG", quality=90)
        out.append(q)
    return out


def fmt_row(label: str, r: dict, base: float | None, base_name: str = "(a)") -> str:
    rate = r["n"] / statistics.median(r["times"])
    runs = ", ".join(f"{t:.2f}" for t in r["times"])
    ratio = "1.0x" if not base else (f"{rate / base:.1f}x" if rate >= base else f"{rate / base:.2f}x")
    return f"| {label} | {rate:.1f} | {runs} | {ratio} | {r['rss']:.0f} |", rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder holding flickr8k/")
    ap.add_argument("-n", type=int, default=300, help="dev photos for rows (a)-(d)")
    ap.add_argument("--big", type=int, default=60, help="photos upscaled to 12 MP for row (e)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--memory", default="", help="comma list of library sizes (e.g. 1000,3000: dev photos, then "
                    "train photos) each indexed once by the CLI: peak RSS, photos/s, index bytes per photo")
    ap.add_argument("--memory-only", action="store_true", help="run only the --memory section")
    ap.add_argument("--_child", nargs=2, metavar=("MODE", "LIST"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._child:
        return child(a._child[0], a._child[1], a.runs, a.batch)
    if a.memory:
        memory_section(a)
        if a.memory_only:
            return

    f8 = Path(a.data).resolve() / "flickr8k"
    coco = json.loads((f8 / "captions_dev.json").read_text())
    names = [im["file_name"] for im in coco["images"]]
    src = [f8 / "images" / n for n in names[: a.n]]
    print(f"command: python scripts/bench_index.py -n {a.n} --big {a.big} --runs {a.runs} --batch {a.batch}")
    print(machine_line())
    print(f"at the start: {load_line()}")
    print(f"RETR_CACHE={os.environ.get('RETR_CACHE', '(unset: platform cache folder)')}")
    with tempfile.TemporaryDirectory(prefix="retr-bench-") as t:
        tmp = Path(t)
        photos = tmp / "photos"
        photos.mkdir()
        for p in src:
            os.symlink(p, photos / p.name)
        # warm-up: makes the ONNX export if missing (once per machine) and warms the file cache
        w, _, _, _ = run_child([sys.executable, "-m", "retrieval.cli", "index", str(src[0]), "--index",
                                str(tmp / "warm"), "--no-captions"])
        print(f"warm-up `retr index` of 1 photo (ONNX export if missing): {w:.1f} s, not counted")

        rows = {}
        rows["a"] = in_process_row("torch_single", src, a.runs, a.batch, tmp)
        rows["b"] = in_process_row("torch_batched", src, a.runs, a.batch, tmp)
        rows["c"] = in_process_row("onnx_batched", src, a.runs, a.batch, tmp)
        rows["d"] = cli_row(photos, len(src), a.runs, tmp, "small")
        one = tmp / "one"
        one.mkdir()
        os.symlink(src[0], one / src[0].name)
        rows["d1"] = cli_row(one, 1, a.runs, tmp, "one")

        big = make_big(src[: a.big] if a.big <= len(src) else [f8 / "images" / n for n in names[: a.big]],
                       tmp / "big")
        big_mb = sum(p.stat().st_size for p in big) / len(big) / 1e6
        rows["e"] = cli_row(tmp / "big", len(big), a.runs, tmp, "big")
        rows["full"] = in_process_row("decode_full", big, a.runs, a.batch, tmp)
        rows["draft"] = in_process_row("decode_draft", big, a.runs, a.batch, tmp)

    n = len(src)
    print(f"\nIndexing throughput, {n} Flickr8k dev photos (~256 px JPEGs); photos/s = median of {a.runs} runs")
    print("| path | photos/s | runs (s) | vs (a) | peak RSS (MB) |\n|---|---|---|---|---|")
    line, base = fmt_row("(a) torch, one photo at a time (`load_image` + `encode_images([im])`)", rows["a"], None)
    print(line)
    print(fmt_row(f"(b) torch, batches of {a.batch}", rows["b"], base)[0])
    print(fmt_row(f"(c) retr's path: ONNX Runtime, batches of {a.batch}", rows["c"], base)[0])
    print(fmt_row("(d) `retr index FOLDER --no-captions` (CLI, new process, start-up included)", rows["d"], base)[0])
    print(fmt_row(f"(e) the same CLI on {len(big)} 12-MP JPEGs (4000x3000, q90, {big_mb:.1f} MB each)",
                  rows["e"], base)[0])
    d1 = statistics.median(rows["d1"]["times"])
    print(f"\nfixed cost of one CLI run (start-up, imports, model loading, index write), `retr index` of 1 photo: "
          f"median {d1:.2f} s ({', '.join(f'{x:.2f}' for x in rows['d1']['times'])}); peak RSS {rows['d1']['rss']:.0f} MB")
    print(f"(a)-(c) time the decode+embed loop only (model loaded, one warm-up batch); "
          f"(c) runs on {rows['c']['runtime']}, (a)/(b) on {rows['a']['runtime']}")

    print(f"\nDecode only, the {len(big)} 12-MP JPEGs (made for this benchmark by upscaling real photos); "
          f"photos/s = median of {a.runs} runs")
    print("| decode | photos/s | runs (s) | vs full decode | peak RSS (MB) |\n|---|---|---|---|---|")
    line, fb = fmt_row("`load_image(p)`: full 12-MP decode", rows["full"], None)
    print(line)
    print(fmt_row(f"`load_image(p, draft_size={DRAFT})`: JPEG draft mode (DCT scaling)", rows["draft"], fb)[0])
    print(f"\nat the end: {load_line()}")


def memory_section(a) -> None:
    """Peak RSS of `retr index` versus library size: does it grow with the number of photos?"""
    f8 = Path(a.data).resolve() / "flickr8k"
    names = []
    for split in ("dev", "train"):
        names += [f8 / "images" / im["file_name"] for im in json.loads((f8 / f"captions_{split}.json").read_text())["images"]]
    sizes = [int(x) for x in a.memory.split(",") if x]
    print(f"command: python scripts/bench_index.py --memory {a.memory}{' --memory-only' if a.memory_only else ''}")
    print(machine_line())
    print(f"at the start: {load_line()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="retr-bench-mem-") as t:
        tmp = Path(t)
        w, _, _, _ = run_child([sys.executable, "-m", "retrieval.cli", "index", str(names[0]), "--index",
                                str(tmp / "warm"), "--no-captions"])
        for n in sizes:
            photos = tmp / f"photos-{n}"
            photos.mkdir()
            for p in names[:n]:
                os.symlink(p, photos / p.name)
            idx = tmp / f"index-{n}"
            la = os.getloadavg()[0]
            w, m, out, _ = run_child([sys.executable, "-m", "retrieval.cli", "index", str(photos), "--index", str(idx),
                                      "--no-captions"])
            if f"added {n}," not in out:
                sys.exit(f"unexpected CLI output: {out!r}")
            files = {p.name: p.stat().st_size for p in idx.iterdir() if p.is_file()}
            rows.append((n, w, m, files, la, os.getloadavg()[0]))
            shutil.rmtree(photos)
    print(f"\n`retr index FOLDER --no-captions` (new index, default settings) versus library size; one run each")
    print("| photos | wall (s) | photos/s | peak RSS (MB) | index bytes/photo (all files) | retr.sqlite | "
          "photos.faiss | load avg before / after |\n|---|---|---|---|---|---|---|---|")
    for n, w, m, files, la, lb in rows:
        db = sum(v for k, v in files.items() if k.startswith("retr.sqlite"))
        print(f"| {n:,} | {w:.1f} | {n / w:.1f} | {m:.0f} | {sum(files.values()) / n:.0f} | {db / n:.0f} | "
              f"{files.get('photos.faiss', 0) / n:.0f} | {la:.1f} / {lb:.1f} |")
    print(f"at the end: {load_line()}\n")


if __name__ == "__main__":
    main()
