"""Concurrency: two `retr index` runs on one index, searches during a run, `retr serve` under load.

1. Two runs at once: run A indexes the library into an index; run B (the same command) starts at a
   random point of A's run. One of them finishes; the other waits or refuses in one line; the
   index ends complete and sound (``PRAGMA integrity_check``).
2. Searches during a run: an index holding the demo photos gets the library added; meanwhile
   ``retr search --json`` runs again and again (bounded): each answers (exit 0, JSON).
3. ``retr serve`` on 127.0.0.1 under load while a run commits into its index: CLIENTS threads send
   a bounded number of requests each (word searches, photo uploads, thumbnails); every answer must
   be 2xx. Latency percentiles per kind of request.

Usage::

    python scripts/reliability/concurrency.py [--photos 300] [--pairs 5] [--clients 16] [--requests 25]
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import relib  # scripts/reliability/relib.py, beside this script


def start_index(lib: Path, ix: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen(relib.retr_cmd("index", lib, "--index", ix, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", env=relib.env())


def finish(p: subprocess.Popen, timeout: float = 900) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def two_runs(lib: Path, work: Path, delay: float) -> dict:
    """Run A, then run B on the same index ``delay`` s later; what each did."""
    ix = work / "index-two"
    shutil.rmtree(ix, ignore_errors=True)
    a = start_index(lib, ix)
    time.sleep(delay)
    b = start_index(lib, ix)
    (ra, _, ea), (rb, _, eb) = finish(a), finish(b)
    lines_b = [ln for ln in eb.splitlines() if ln.strip() and not ln.startswith("retr: embedded")]
    res = {"delay": delay, "exit_a": ra, "exit_b": rb, "b_lines": lines_b[-2:], "traceback": "Traceback" in ea + eb}
    res["integrity"] = relib.integrity(ix)
    res["photos"] = len(relib.snapshot(ix))
    # B either refused in one line (exit != 0, one line naming the other run) or ran after A (exit 0)
    refused = rb != 0 and len(lines_b) == 1 and "another" in lines_b[0]
    res["b_did"] = "refused" if refused else ("ran" if rb == 0 else "FAILED")
    res["ok"] = ra == 0 and res["b_did"] != "FAILED" and not res["traceback"] and res["integrity"] == "ok" \
        and res["photos"] == len(list(lib.iterdir()))
    return res


def searches_during_run(lib: Path, demo: Path, work: Path, max_searches: int) -> dict:
    ix = work / "index-search"
    shutil.rmtree(ix, ignore_errors=True)
    r0 = relib.retr("index", demo, "--index", ix)
    assert r0.returncode == 0, r0.stderr
    a = start_index(lib, ix)
    results, lat = [], []
    while a.poll() is None and len(results) < max_searches:
        t0 = time.monotonic()
        r = relib.retr("search", "two dogs play in the snow", "-k", "5", "--json", "--as-text", "--index", ix)
        lat.append(time.monotonic() - t0)
        try:
            ok = r.returncode == 0 and isinstance(json.loads(r.stdout), list) and "Traceback" not in r.stderr
        except ValueError:
            ok = False
        results.append((ok, r.returncode, r.stderr.strip()[-200:]))
    ra, _, ea = finish(a)
    bad = [x for x in results if not x[0]]
    return {"searches": len(results), "failed": len(bad), "examples": bad[:3], "index_exit": ra,
            "latency": relib.percentiles(lat), "ok": not bad and ra == 0 and len(results) > 0}


def serve_under_load(lib: Path, demo: Path, work: Path, clients: int, requests: int) -> dict:
    import httpx

    ix = work / "index-serve"
    shutil.rmtree(ix, ignore_errors=True)
    r0 = relib.retr("index", demo, "--index", ix)
    assert r0.returncode == 0, r0.stderr
    photos = sorted(demo.glob("*.jpg"))
    words = ["a dog", "people on a beach", "a cat on a sofa", "a man riding a bike", "children playing",
             "a red car", "snow", "kites in the sky", "two horses", "a cup of coffee"]
    lat: dict[str, list[float]] = {"search": [], "upload": [], "thumb": []}
    errors: list[str] = []
    lock = threading.Lock()
    with relib.Server(ix) as srv:
        ids = [h["photo_id"] for h in httpx.get(srv.url + "/api/search", params={"q": "a photo", "k": 50},
                                                timeout=60).json()["hits"]]
        run = start_index(lib, ix, "--batch-size", "8")

        def client(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=srv.url, timeout=120) as c:
                for _ in range(requests):
                    kind = rng.choice(["search", "search", "upload", "thumb", "thumb"])
                    t0 = time.monotonic()
                    try:
                        if kind == "search":
                            r = c.get("/api/search", params={"q": rng.choice(words), "k": 10})
                        elif kind == "upload":
                            p = rng.choice(photos)
                            r = c.post("/api/search/image", params={"k": 5},
                                       files={"file": (p.name, p.read_bytes(), "image/jpeg")})
                        else:
                            r = c.get(f"/api/photos/{rng.choice(ids)}/thumb")
                        code = r.status_code
                    except httpx.HTTPError as e:
                        code = f"{e.__class__.__name__}"
                    dt = time.monotonic() - t0
                    with lock:
                        lat[kind].append(dt)
                        if code != 200:
                            errors.append(f"{kind}: {code}")

        t0 = time.monotonic()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        wall = time.monotonic() - t0
        committing = run.poll() is None
        ra, _, ea = finish(run)
        rss = srv.rss_peak_mb()
    n = sum(len(v) for v in lat.values())
    return {"requests": n, "errors": len(errors), "error_examples": errors[:5], "wall": wall,
            "index_ran_throughout": committing, "index_exit": ra, "rss_peak_mb": rss,
            "latency": {k: relib.percentiles(v) for k, v in lat.items()}, "counts": {k: len(v) for k, v in lat.items()},
            "ok": not errors and ra == 0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=5, help="two-run trials")
    ap.add_argument("--searches", type=int, default=30, help="most searches during one run")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=25, help="requests per client")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/retr-concurrency"))
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    a.work.mkdir(parents=True, exist_ok=True)
    lib = relib.flickr_library(a.work / "library", a.photos) if a.photos else relib.demo_library(a.work / "library")
    demo = relib.demo_library(a.work / "demo")
    ok = True
    print("two runs: B starts after (s) | A exit | B | B's line | integrity | photos | ok")
    print("---|---|---|---|---|---|---")
    for _ in range(a.pairs):
        r = two_runs(lib, a.work, rng.uniform(0, 20))
        print(f"{r['delay']:.1f} | {r['exit_a']} | {r['b_did']} (exit {r['exit_b']}) | {' / '.join(r['b_lines'])} | "
              f"{r['integrity']} | {r['photos']} | {r['ok']}", flush=True)
        ok &= r["ok"]
    s = searches_during_run(lib, demo, a.work, a.searches)
    lp = s["latency"]
    print(f"\nsearches during a run: {s['searches'] - s['failed']} / {s['searches']} answered; latency p50 "
          f"{lp['p50']:.2f} s, p90 {lp['p90']:.2f} s (each a new process); ok {s['ok']}"
          + (f"\n  failed e.g. {s['examples']}" if s["failed"] else ""), flush=True)
    ok &= s["ok"]
    v = serve_under_load(lib, demo, a.work, a.clients, a.requests)
    print(f"\nretr serve, {a.clients} clients x {a.requests} requests while `retr index` commits "
          f"(run still going at the end: {v['index_ran_throughout']}): {v['requests'] - v['errors']} / {v['requests']} "
          f"answered 200 in {v['wall']:.1f} s; server peak RSS {v['rss_peak_mb']:.0f} MiB; ok {v['ok']}")
    print("request | n | p50 (ms) | p90 (ms) | p99 (ms)")
    print("---|---|---|---|---")
    for k, p in v["latency"].items():
        print(f"{k} | {v['counts'][k]} | {p['p50'] * 1000:.0f} | {p['p90'] * 1000:.0f} | {p['p99'] * 1000:.0f}")
    if v["errors"]:
        print(f"  errors e.g. {v['error_examples']}")
    ok &= v["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
