"""Shared pieces of the reliability campaign (scripts/reliability/*.py and tests/test_reliability.py).

Everything drives retr as a user does, through ``python -m retrieval ...`` in a subprocess,
and reads an index's SQLite file only with the standard library's ``sqlite3`` (read-only),
so the campaign does not depend on retr's module layout.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEMO_PHOTOS = REPO / "data" / "photos"
FLICKR = REPO.parent / "shared" / "data" / "flickr8k"
if not FLICKR.is_dir():
    FLICKR = Path("/work/shared/data/flickr8k")


def env(**extra) -> dict:
    """The environment for a retr subprocess: this checkout first on PYTHONPATH, no colour."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("PYTHONUNBUFFERED", "1")
    e["NO_COLOR"] = "1"
    e.update({k: str(v) for k, v in extra.items()})
    return e


def retr_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "retrieval", *map(str, args)]


def retr(*args, timeout: float = 600, extra_env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """Run ``retr ARGS`` to the end; returns the CompletedProcess (text stdout/stderr)."""
    return subprocess.run(retr_cmd(*args), capture_output=True, text=True, errors="replace", timeout=timeout,
                          env=env(**(extra_env or {})), **kw)


def flickr_library(dst: Path, n: int) -> Path:
    """Copy the first ``n`` Flickr8k dev photos into ``dst`` (made once); returns ``dst``."""
    names = [im["file_name"] for im in json.loads((FLICKR / "captions_dev.json").read_text())["images"]][:n]
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (dst / name).exists():
            shutil.copy2(FLICKR / "images" / name, dst / name)
    return dst


def demo_library(dst: Path) -> Path:
    """A copy of the demo photos (data/photos) in ``dst``."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(DEMO_PHOTOS, dst)
    return dst


def db_file(index_dir: Path) -> Path:
    return Path(index_dir) / "retr.sqlite"


def integrity(index_dir: Path) -> str:
    """``PRAGMA integrity_check`` of the index database ('ok' when sound)."""
    con = sqlite3.connect(f"file:{db_file(index_dir)}?mode=ro", uri=True)
    try:
        return "; ".join(r[0] for r in con.execute("PRAGMA integrity_check").fetchall())
    finally:
        con.close()


def snapshot(index_dir: Path) -> dict:
    """What an index holds: {path: (generated captions as a sorted tuple, (D,) float32 vector)}."""
    con = sqlite3.connect(f"file:{db_file(index_dir)}?mode=ro", uri=True)
    try:
        caps: dict[int, list[str]] = {}
        for pid, text in con.execute("SELECT photo_id, text FROM texts WHERE source = 'generated'"):
            caps.setdefault(pid, []).append(text)
        return {p: (tuple(sorted(caps.get(i, []))), np.frombuffer(v, np.float32).copy())
                for i, p, v in con.execute("SELECT id, path, vector FROM photos")}
    finally:
        con.close()


def compare(got: dict, want: dict, tol: float = 1e-5) -> list[str]:
    """Differences between two :func:`snapshot` s: photos, captions, vectors (1 - cosine > tol)."""
    out = []
    if set(got) != set(want):
        out.append(f"photos differ: {len(set(want) - set(got))} missing, {len(set(got) - set(want))} extra")
    for p in set(got) & set(want):
        (gc, gv), (wc, wv) = got[p], want[p]
        if gc != wc:
            out.append(f"captions of {os.path.basename(p)}: {gc} != {wc}")
        cos = float(gv @ wv / (np.linalg.norm(gv) * np.linalg.norm(wv) + 1e-12))
        if 1 - cos > tol:
            out.append(f"vector of {os.path.basename(p)}: cosine {cos:.7f}")
    return out


def search_ok(index_dir: Path, query: str = "a dog runs on the grass", k: int = 5,
              timeout: float = 120) -> tuple[bool, str]:
    """``retr search --json`` answers (exit 0, valid JSON, every hit's path in the index)."""
    r = retr("search", query, "-k", k, "--json", "--as-text", "--index", index_dir, timeout=timeout)
    if r.returncode != 0:
        return False, f"exit {r.returncode}: {r.stderr.strip()[-300:]}"
    try:
        hits = json.loads(r.stdout)
    except ValueError:
        return False, f"not JSON: {r.stdout[:200]!r}"
    return True, f"{len(hits)} hits"


def percentiles(xs: list[float], ps=(50, 90, 99)) -> dict:
    if not xs:
        return {f"p{p}": float("nan") for p in ps}
    return {f"p{p}": float(np.percentile(xs, p)) for p in ps}


class Timer:
    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *a):
        self.s = time.monotonic() - self.t0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``retr serve --index IX --host 127.0.0.1 --port P`` in a subprocess, for ``with``."""

    def __init__(self, index_dir: Path, host: str = "127.0.0.1", ready_timeout: float = 120):
        self.index_dir, self.host, self.ready_timeout = index_dir, host, ready_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        import httpx

        self.proc = subprocess.Popen(retr_cmd("serve", "--index", self.index_dir, "--host", self.host,
                                              "--port", self.port), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace", env=env())
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.ready_timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"retr serve ended: {self.proc.stdout.read()[-500:]}")
            try:
                if httpx.get(self.url + "/api/status", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.proc.kill()
        raise RuntimeError("retr serve did not answer")

    def rss_peak_mb(self) -> float:
        """Peak resident memory of the server process (VmHWM), in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def __exit__(self, *a):
        import signal

        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.output = self.proc.stdout.read()


def synthetic_library(dst: Path, n: int, size: int = 160, seed: int = 0) -> Path:
    """``n`` distinct small JPEGs (random crops of the demo photos) in ``dst``: a library that needs
    no downloaded data."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    srcs = [Image.open(p).convert("RGB") for p in sorted(DEMO_PHOTOS.glob("*.jpg"))]
    dst.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = rng.choice(srcs)
        w, h = im.size
        cw, ch = rng.randint(w // 3, w), rng.randint(h // 3, h)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        im.crop((x, y, x + cw, y + ch)).resize((size, size)).save(dst / f"s{i:04d}.jpg", quality=85)
    return dst
