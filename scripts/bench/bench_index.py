"""Indexing throughput: the obvious one-photo-at-a-time loop versus retr's path, and the real CLI.

    python scripts/bench/bench_index.py [--data ../shared/data] [-n 300] [--runs 3] [--big 60]

Every row runs in its own child process, once per round; the rounds interleave all rows
(row 1, row 2, ..., row 1, row 2, ...) so that a change in the machine's load hits every row
alike. Each row reports the median over --runs of photos/s (wall clock) and of CPU seconds per
photo (user + system of the child, all its threads; for in-process rows only the timed loop).
Ratios are against (a), the obvious torch loop.

In-process rows time one pass over the photos after the model is loaded and one warm-up batch:

  (a) torch path (``load_encoder(runtime="torch")``): ``load_image`` then ``encode_images([im])``
      per photo, the obvious loop;
  (b) torch path, batches of --batch;
  (c*) the indexer's own step, ``retrieval.indexing.indexer.embed_locally`` (content hash, decode with JPEG
      draft mode, resize, embed) with 2 workers, for the ONNX Runtime image model in float32
      and int8, with the embedding either in the main thread (ONNX Runtime's default threads:
      how retr indexed before) or in the workers (one ONNX Runtime thread each: retr now);
  (k*) the generated caption of --caption-n photos from their vectors: the captioner's
      one-photo beam search (``Captioner.caption_embeddings``) versus the indexer's batched one
      (``Captioner.beam_search_batch``, same captions).

CLI rows run ``python -m retrieval index FOLDER --index TMP`` into a fresh index each run
(interpreter start-up, imports and model loading included): --no-captions on the dev photos
(float32, the default, and ``RETR_IMAGE_PRECISION=int8``), with captions, one photo (the fixed cost),
and --no-captions on 12-megapixel JPEGs made for the benchmark (--big dev photos upscaled to
4000x3000, quality 90). Decode-only rows time ``load_image`` on those 12-MP files with and
without JPEG draft mode, and ``content_hash``.

The ONNX export and its int8 model (``$RETR_CACHE``, made once by the first ``retr index``)
are made by a warm-up CLI run before any timing.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
from benchlib import load_line, machine_line

DRAFT = (320, 320)


def run_child(cmd: list[str], env: dict | None = None) -> tuple[float, float, str, str, float]:
    """Run ``cmd``; returns (wall seconds, peak RSS of the child in MB, stdout, stderr, CPU seconds)."""
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
    return wall, ru.ru_maxrss / 1024, so, se, ru.ru_utime + ru.ru_stime  # Linux: ru_maxrss in KiB


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- child side: one mode, one timed pass over the photos ------------------------------------

def child(mode: str, list_file: str, batch: int) -> None:
    """Print ``{"wall": s, "cpu": s}`` of one timed pass of ``mode`` over the listed photos."""
    paths = Path(list_file).read_text().split("\n")
    from retrieval.io.decode import load_image

    if mode in ("decode_full", "decode_draft", "hash"):
        from retrieval.io.files import content_hash

        draft = DRAFT if mode == "decode_draft" else None
        fn = (lambda p: content_hash(p)) if mode == "hash" else (lambda p: load_image(p, draft_size=draft))
        fn(paths[0])
        c, t = _cpu(), time.perf_counter()
        for p in paths:
            fn(p)
        print(json.dumps({"wall": time.perf_counter() - t, "cpu": _cpu() - c}))
        return

    from retrieval.encoders.base import load_encoder

    enc = load_encoder(runtime="torch" if mode.startswith("torch") else "auto")
    if mode.startswith("caption"):
        from retrieval.captioning.model import load_captioner
        cap = load_captioner(None, enc.id, pooled=True)
        vecs = enc.encode_images([load_image(p, draft_size=DRAFT) for p in paths])
        fn = cap.caption_embeddings if mode == "caption_single" else cap.beam_search_batch
        fn(vecs[:2])
        c, t = _cpu(), time.perf_counter()
        fn(vecs)
        print(json.dumps({"wall": time.perf_counter() - t, "cpu": _cpu() - c}))
        return
    if mode.startswith("torch"):
        enc.encode_images([load_image(p) for p in paths[:2]])  # warm-up
        c, t = _cpu(), time.perf_counter()
        if mode == "torch_single":
            for p in paths:
                enc.encode_images([load_image(p)])
        else:
            for i in range(0, len(paths), batch):
                enc.encode_images([load_image(p) for p in paths[i : i + batch]])
        print(json.dumps({"wall": time.perf_counter() - t, "cpu": _cpu() - c}))
        return

    # onnx_<fp32|int8>_<main|workers>: the indexer's embed_locally with that image model
    from retrieval.encoders import onnx_runtime
    from retrieval.io.files import FileInfo
    from retrieval.indexing.indexer import embed_locally
    from retrieval.indexing.plan import Todo

    _, precision, where = mode.split("_")
    if not onnx_runtime.has_export(enc.id):
        sys.exit("no ONNX export found (the warm-up `retr index` should have made it)")
    img = onnx_runtime.OnnxImageEncoder(onnx_runtime.export_dir(enc.id), precision=precision,
                                        threads=None if where == "main" else 1)
    assert img.precision == precision, img.precision

    class Enc:  # the image model alone; concurrent_images selects where embed_locally embeds
        concurrent_images = where == "workers"
        encode_images = staticmethod(img.encode_images)

    todo = [Todo(FileInfo(p, os.path.getsize(p), os.path.getmtime(p))) for p in paths]
    for _ in embed_locally(todo[:2], Enc(), batch_size=batch, workers=2):  # warm-up
        pass
    c, t = _cpu(), time.perf_counter()
    n = sum(sum(e.vector is not None for e in b) for b in embed_locally(todo, Enc(), batch_size=batch, workers=2))
    assert n == len(paths), n
    print(json.dumps({"wall": time.perf_counter() - t, "cpu": _cpu() - c}))


# -- parent side ---------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder holding flickr8k/")
    ap.add_argument("-n", type=int, default=300, help="dev photos for the dev-photo rows")
    ap.add_argument("--big", type=int, default=60, help="photos upscaled to 12 MP for the 12-MP rows")
    ap.add_argument("--caption-n", type=int, default=128, help="photos for the (k) captioning rows")
    ap.add_argument("--runs", type=int, default=3, help="rounds (every row once per round)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--memory", default="", help="comma list of library sizes (e.g. 1000,3000: dev photos, then "
                    "train photos) each indexed once by the CLI: peak RSS, photos/s, index bytes per photo")
    ap.add_argument("--memory-only", action="store_true", help="run only the --memory section")
    ap.add_argument("--_child", nargs=2, metavar=("MODE", "LIST"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._child:
        return child(a._child[0], a._child[1], a.batch)
    if a.memory:
        memory_section(a)
        if a.memory_only:
            return

    f8 = Path(a.data).resolve() / "flickr8k"
    coco = json.loads((f8 / "captions_dev.json").read_text())
    names = [im["file_name"] for im in coco["images"]]
    src = [f8 / "images" / n for n in names[: a.n]]
    print(f"command: python scripts/bench/bench_index.py -n {a.n} --big {a.big} --caption-n {a.caption_n} "
          f"--runs {a.runs} --batch {a.batch}")
    print(machine_line())
    print(f"at the start: {load_line()}")
    print(f"RETR_CACHE={os.environ.get('RETR_CACHE', '(unset: platform cache folder)')}")
    py, me = sys.executable, str(Path(__file__).resolve())
    env32 = dict(os.environ, RETR_IMAGE_PRECISION="fp32")
    env8 = dict(os.environ, RETR_IMAGE_PRECISION="int8")
    with tempfile.TemporaryDirectory(prefix="retr-bench-") as t:
        tmp = Path(t)
        photos = tmp / "photos"
        photos.mkdir()
        for p in src:
            os.symlink(p, photos / p.name)
        one = tmp / "one"
        one.mkdir()
        os.symlink(src[0], one / src[0].name)
        big_src = src[: a.big] if a.big <= len(src) else [f8 / "images" / n for n in names[: a.big]]
        big = make_big(big_src, tmp / "big")
        big_mb = sum(p.stat().st_size for p in big) / len(big) / 1e6
        lists = {}
        for name, ps in (("dev", src), ("big", big), ("cap", src[: a.caption_n])):
            lists[name] = tmp / f"{name}.txt"
            lists[name].write_text("\n".join(str(p) for p in ps))
        # warm-up: makes the ONNX export and its int8 model if missing and warms the file cache
        w, *_ = run_child([py, "-m", "retrieval", "index", str(src[0]), "--index", str(tmp / "warm"),
                           "--no-captions"], env=env8)
        print(f"warm-up `retr index` of 1 photo (ONNX export and int8 model if missing): {w:.1f} s, not counted")

        def inproc(mode, lst):
            def run(i):
                _, rss, out, _, _ = run_child([py, me, "--_child", mode, str(lists[lst]), "--batch", str(a.batch)])
                r = json.loads(out.strip().splitlines()[-1])
                return r["wall"], r["cpu"], rss
            return run

        def cli(folder, n, extra=(), env=None):
            def run(i):
                idx = tmp / f"index-{time.monotonic_ns()}"
                wall, rss, out, _, c = run_child([py, "-m", "retrieval", "index", str(folder), "--index", str(idx),
                                                  *extra], env=env)
                if f"added {n}," not in out:
                    sys.exit(f"unexpected CLI output: {out!r}")
                shutil.rmtree(idx)
                return wall, c, rss
            return run

        n, nb, nc = len(src), len(big), min(a.caption_n, len(src))
        b = a.batch
        rows = [  # (key, label, photos, runner)
            ("a", "(a) torch, one photo at a time (`load_image` + `encode_images([im])`)", n, inproc("torch_single", "dev")),
            ("b", f"(b) torch, batches of {b}", n, inproc("torch_batched", "dev")),
            ("c0", f"(c0) `embed_locally`, ONNX fp32, embedding in the main thread (ORT default threads): before", n,
             inproc("onnx_fp32_main", "dev")),
            ("c1", "(c1) `embed_locally`, ONNX fp32, embedding in the 2 workers (1 ORT thread each): **retr now**", n,
             inproc("onnx_fp32_workers", "dev")),
            ("c2", "(c2) `embed_locally`, ONNX int8, embedding in the main thread (ORT default threads)", n,
             inproc("onnx_int8_main", "dev")),
            ("c3", "(c3) `embed_locally`, ONNX int8, embedding in the 2 workers (`RETR_IMAGE_PRECISION=int8`)", n,
             inproc("onnx_int8_workers", "dev")),
            ("k0", f"(k0) generated captions of {nc} photos, one photo at a time (`caption_embeddings`): before", nc,
             inproc("caption_single", "cap")),
            ("k1", f"(k1) generated captions of {nc} photos, batched (`beam_search_batch`): retr now", nc,
             inproc("caption_batched", "cap")),
            ("d", "(d) `retr index FOLDER --no-captions` (CLI, new process, start-up included; fp32)", n,
             cli(photos, n, ["--no-captions"], env32)),
            ("d8", "(d8) the same with `RETR_IMAGE_PRECISION=int8`", n, cli(photos, n, ["--no-captions"], env8)),
            ("dc", "(dc) `retr index FOLDER` (with generated captions; fp32)", n, cli(photos, n, (), env32)),
            ("d1", "(d1) `retr index` of 1 photo (fixed cost: start-up, imports, models, index write)", 1,
             cli(one, 1, ["--no-captions"])),
            ("e", f"(e) `retr index --no-captions` on {nb} 12-MP JPEGs (4000x3000, q90, {big_mb:.1f} MB each; fp32)", nb,
             cli(tmp / "big", nb, ["--no-captions"], env32)),
            ("e8", "(e8) the same with `RETR_IMAGE_PRECISION=int8`", nb, cli(tmp / "big", nb, ["--no-captions"], env8)),
            ("full", f"decode only, {nb} 12-MP JPEGs: `load_image(p)`, full decode", nb, inproc("decode_full", "big")),
            ("draft", f"decode only, 12-MP: `load_image(p, draft_size={DRAFT})`, JPEG draft mode", nb,
             inproc("decode_draft", "big")),
            ("hash", "content hash only, 12-MP (`content_hash`, BLAKE2b of the file)", nb, inproc("hash", "big")),
        ]
        res = {k: [] for k, *_ in rows}
        loads = []
        for i in range(a.runs):
            for k, label, cnt, run in rows:
                loads.append(os.getloadavg()[0])
                res[k].append(run(i))
                print(f"round {i + 1}/{a.runs}: {k} {cnt / res[k][-1][0]:.1f} photos/s", file=sys.stderr, flush=True)

    print(f"\nIndexing throughput: {n} Flickr8k dev photos (~256x341 JPEGs), {nb} 12-MP JPEGs; median of {a.runs} "
          f"rounds, rows interleaved; CPU = user + system s of the process (all threads) per photo")
    print("| path | photos/s (wall) | CPU ms/photo | runs (s) | vs (a), wall | vs (a), CPU | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    base = None
    for k, label, cnt, _ in rows:
        walls = [r[0] for r in res[k]]
        cpus = [r[1] for r in res[k]]
        rate, cpp = cnt / statistics.median(walls), statistics.median(cpus) / cnt * 1e3
        if base is None:
            base = (rate, cpp)
        ratio = f"{rate / base[0]:.2f}x" if k not in ("full", "draft", "hash", "d1") else "-"
        cratio = f"{base[1] / cpp:.2f}x" if k not in ("full", "draft", "hash", "d1") else "-"
        print(f"| {label} | {rate:.1f} | {cpp:.2f} | {', '.join(f'{x:.2f}' for x in walls)} | {ratio} | {cratio} | "
              f"{max(r[2] for r in res[k]):.0f} |")
    d1 = statistics.median(r[0] for r in res["d1"])
    dw = statistics.median(r[0] for r in res["d"])
    print(f"\n(d) without the fixed cost of (d1): {n} photos in {dw - d1:.2f} s = {n / max(dw - d1, 1e-9):.1f} photos/s")
    print(f"load average (1 min) during the rows: median {statistics.median(loads):.1f}, max {max(loads):.1f}")
    print(f"at the end: {load_line()}")


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


def memory_section(a) -> None:
    """Peak RSS of `retr index` versus library size: does it grow with the number of photos?"""
    f8 = Path(a.data).resolve() / "flickr8k"
    names = []
    for split in ("dev", "train"):
        names += [f8 / "images" / im["file_name"] for im in json.loads((f8 / f"captions_{split}.json").read_text())["images"]]
    sizes = [int(x) for x in a.memory.split(",") if x]
    print(f"command: python scripts/bench/bench_index.py --memory {a.memory}{' --memory-only' if a.memory_only else ''}")
    print(machine_line())
    print(f"at the start: {load_line()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="retr-bench-mem-") as t:
        tmp = Path(t)
        w, *_ = run_child([sys.executable, "-m", "retrieval", "index", str(names[0]), "--index",
                                str(tmp / "warm"), "--no-captions"])
        for n in sizes:
            photos = tmp / f"photos-{n}"
            photos.mkdir()
            for p in names[:n]:
                os.symlink(p, photos / p.name)
            idx = tmp / f"index-{n}"
            la = os.getloadavg()[0]
            w, m, out, _, _ = run_child([sys.executable, "-m", "retrieval", "index", str(photos), "--index", str(idx),
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
