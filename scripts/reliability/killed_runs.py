"""Killed runs: SIGKILL `retr index` inside each phase, then check the index and resume.

A traced, uninterrupted run (``RETR_TRACE_PHASES=1``: ``retr-phase: NAME T`` lines on stderr, see
``retrieval/trace.py``) gives the reference index and, for each phase (decode, embed, commit, caption,
faiss), the times its markers appear and the gap to the next marker. Each trial then starts a fresh
run on an empty index, waits for a randomly chosen occurrence of the target phase's marker, sleeps a
random offset within that occurrence's calibrated length, and sends SIGKILL. The phase recorded is
the last marker the run wrote before the kill. After the kill:

* ``PRAGMA integrity_check`` is ``ok``;
* ``retr search`` answers (exit 0, JSON);
* ``retr index`` again finishes, with the same photos and generated captions as the reference run and
  every vector within 1e-5 of it in cosine, and search answers again.

Usage::

    python scripts/reliability/killed_runs.py [--photos 300] [--kills 50] [--seed 0] [--work DIR]

Prints one line per trial and a table: kills tried / survived per phase.
"""
from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import relib  # scripts/reliability/relib.py, beside this script

PHASES = ("decode", "embed", "commit", "caption", "faiss")


def parse_trace(stderr: str) -> list[tuple[str, float]]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("retr-phase: "):
            _, name, t = line.split()
            out.append((name, float(t)))
    return out


def calibrate(lib: Path, ix: Path, extra: list[str]) -> tuple[list[tuple[str, float]], float]:
    """An uninterrupted traced run into ``ix``: (markers, wall seconds)."""
    shutil.rmtree(ix, ignore_errors=True)
    t0 = time.monotonic()
    r = relib.retr("index", lib, "--index", ix, *extra, extra_env={"RETR_TRACE_PHASES": 1})
    if r.returncode != 0:
        raise SystemExit(f"reference run failed: {r.stderr[-500:]}")
    return parse_trace(r.stderr), time.monotonic() - t0


def occurrences(trace: list[tuple[str, float]], phase: str) -> list[tuple[int, float]]:
    """(occurrence number, seconds to the next marker) of each marker of ``phase``."""
    out, k = [], 0
    for i, (name, t) in enumerate(trace):
        if name == phase:
            nxt = trace[i + 1][1] if i + 1 < len(trace) else t + 0.05
            out.append((k, max(nxt - t, 0.001)))
            k += 1
    return out


def kill_run(lib: Path, ix: Path, extra: list[str], phase: str, occurrence: int, offset: float,
             timeout: float = 600) -> tuple[str | None, float]:
    """Start a traced run into ``ix``; SIGKILL it ``offset`` s after the ``occurrence``-th ``phase`` marker.

    Returns (last marker written before the kill, or None when the run ended first; seconds since start)."""
    p = subprocess.Popen(relib.retr_cmd("index", lib, "--index", ix, *extra), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, errors="replace",
                         env=relib.env(RETR_TRACE_PHASES=1))
    state = {"last": None, "seen": 0}
    hit = threading.Event()

    def read():
        for line in p.stderr:
            if line.startswith("retr-phase: "):
                name = line.split()[1]
                state["last"] = name
                if name == phase:
                    if state["seen"] == occurrence:
                        hit.set()
                    state["seen"] += 1

    th = threading.Thread(target=read, daemon=True)
    th.start()
    t0 = time.monotonic()
    while not hit.is_set() and p.poll() is None and time.monotonic() - t0 < timeout:
        hit.wait(0.005)
    if hit.is_set():
        time.sleep(offset)
    killed = p.poll() is None
    if killed:
        last = state["last"]
        p.send_signal(signal.SIGKILL)
    p.wait()
    th.join(5)
    return (last if killed else None), time.monotonic() - t0


def trial(lib, ix, extra, ref, phase, occ, offset) -> dict:
    shutil.rmtree(ix, ignore_errors=True)
    killed_in, at = kill_run(lib, ix, extra, phase, occ, offset)
    res = {"target": phase, "occurrence": occ, "offset": offset, "phase": killed_in, "at": at}
    if killed_in is None:
        res["outcome"] = "not killed (run ended first)"
        return res
    problems = []
    if (ix / "retr.sqlite").exists():
        ic = relib.integrity(ix)
        if ic != "ok":
            problems.append(f"integrity_check: {ic}")
        ok, why = relib.search_ok(ix)
        if not ok:
            problems.append(f"search after kill: {why}")
    r = relib.retr("index", lib, "--index", ix, *extra)
    if r.returncode != 0:
        problems.append(f"resume exit {r.returncode}: {r.stderr.strip()[-300:]}")
    else:
        problems += relib.compare(relib.snapshot(ix), ref)
        ic = relib.integrity(ix)
        if ic != "ok":
            problems.append(f"integrity_check after resume: {ic}")
        ok, why = relib.search_ok(ix)
        if not ok:
            problems.append(f"search after resume: {why}")
    res["problems"] = problems
    res["outcome"] = "survived" if not problems else "FAILED"
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=300, help="Flickr8k dev photos in the library (0: the demo photos)")
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--work", type=Path, default=Path("/tmp/retr-killed-runs"))
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    a.work.mkdir(parents=True, exist_ok=True)
    lib = (relib.flickr_library(a.work / "library", a.photos) if a.photos
           else relib.demo_library(a.work / "library"))
    extra = ["--batch-size", str(a.batch_size)]
    trace, wall = calibrate(lib, a.work / "reference", extra)
    ref = relib.snapshot(a.work / "reference")
    counts = Counter(n for n, _ in trace)
    print(f"library: {len(ref)} photos; reference run {wall:.1f} s; markers: {dict(counts)}", flush=True)
    results = []
    for i in range(a.kills):
        phase = PHASES[i % len(PHASES)]
        occ, gap = rng.choice(occurrences(trace, phase))
        offset = rng.uniform(0, gap)
        r = trial(lib, a.work / "index", extra, ref, phase, occ, offset)
        results.append(r)
        print(f"{i + 1:3d} target {phase:7s} #{occ:<2d} +{offset * 1000:7.1f} ms  killed in {r['phase'] or '-':7s} "
              f"at {r['at']:5.1f} s: {r['outcome']}" + "".join(f"\n      {p}" for p in r.get("problems", [])[:5]),
              flush=True)
    tried = [r for r in results if r["phase"] is not None]
    print("\nphase (last marker before the kill) | killed | survived")
    print("---|---|---")
    for ph in sorted({r["phase"] for r in tried}):
        rs = [r for r in tried if r["phase"] == ph]
        print(f"{ph} | {len(rs)} | {sum(r['outcome'] == 'survived' for r in rs)}")
    surv = sum(r["outcome"] == "survived" for r in tried)
    print(f"**all** | {len(tried)} | {surv}")
    print(f"(runs that ended before the kill: {len(results) - len(tried)})")
    return 0 if surv == len(tried) else 1


if __name__ == "__main__":
    sys.exit(main())
