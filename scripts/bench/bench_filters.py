"""Filtered search and the cold ``retr search`` with the query features on (parser, spelling).

Builds a SYNTHETIC index folder of ``--n`` photos (random unit vectors of the default encoder's
dimension, written straight into ``retr.sqlite`` with a ``photo_metadata`` row each, dates spread
evenly over ten years; the FAISS file built by ``Store.write_faiss`` as ``retr index`` does), then:

- warm: ``Index.search_vector`` median latency (ms, one query at a time) without a filter and with
  date filters keeping about 1 %, 10 % and 50 % of the photos, each as a ratio to the unfiltered one,
  and the part of it spent in the SQL pre-filter (``photo_ids_where``);
- cold (``--cold``): ``python -m retrieval search`` in a new process, median wall time of ``--runs``
  runs, for plain words, words with a parsed year ("... 2023"), and words with a typo.

Run from the repository root (the package importable): ``python scripts/bench/bench_filters.py --n 100000 --cold``;
at 1,000,000 photos (4.3 GB of database, ~10 min to build on 2 busy cores with ``--index-type ivf``; the
``auto`` type's HNSW graph takes about an hour there): ``nice python scripts/bench/bench_filters.py --n 1000000
--index-type ivf --keep /tmp/retr-1m`` (``--keep``: build into that folder once, reuse it on later runs).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchlib import load_line, machine_line


def build(folder: Path, n: int, seed: int = 0, index_type: str = "auto") -> None:
    """An index folder of ``n`` synthetic photos with dates over 2015-2024."""
    from retrieval.encoders.base import load_encoder
    from retrieval.store.database import Store

    enc = load_encoder()
    st = Store(folder, create=True)
    with st.session() as s:
        for k, v in (("encoder_id", enc.id), ("encoder_spec", "default"), ("dim", str(enc.dim)),
                     ("index_type", index_type), ("dirty", "0")):
            st.set_meta(s, k, v)
        s.commit()
    st.close()
    rng = np.random.default_rng(seed)
    start = dt.datetime(2015, 1, 1)
    span = (dt.datetime(2025, 1, 1) - start).total_seconds()
    con = sqlite3.connect(folder / "retr.sqlite")
    for b in range(0, n, 20_000):
        m = min(20_000, n - b)
        v = rng.standard_normal((m, enc.dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        ids = range(b + 1, b + m + 1)
        con.executemany("INSERT INTO photos (id, path, size, mtime, hash, width, height, indexed_at, vector) "
                        "VALUES (?, ?, 1, 0, ?, 1, 1, '', ?)",
                        [(i, f"/photos/{i // 1000}/{i}.jpg", f"{i:064x}", v[j].tobytes()) for j, i in enumerate(ids)])
        taken = [(start + dt.timedelta(seconds=span * (i - 1) / n)).isoformat(timespec="seconds") for i in ids]
        con.executemany("INSERT INTO photo_metadata (photo_id, taken, taken_source) VALUES (?, ?, 'exif')",
                        list(zip(ids, taken)))
        con.commit()
    con.close()
    st = Store(folder)
    st.write_faiss("photos")
    st.write_faiss("texts")
    st.close()


def warm(folder: Path, queries: int) -> list[tuple[str, float, float, float, int | None]]:
    """(filter, median ms of ``Index.search_vector``, of reading the filter's ids alone, of reading them
    and searching among them (the narrow-filter path, for every filter), photos kept) per filter."""
    from retrieval.query.filters import Filters
    from retrieval.search import Index
    from retrieval.store.faiss_file import read_faiss
    from retrieval.store.subset import search_subset

    ix = Index(folder)
    index, _ = read_faiss(ix.reader, "photos")  # a second copy, for the narrow-filter path
    rng = np.random.default_rng(1)
    qs = rng.standard_normal((queries, ix.reader.dim())).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    cases = [("none", None), ("1% (5 weeks)", Filters(since="2020-01-01", until="2020-02-06")),
             ("10% (1 year)", Filters(since="2020-01-01", until="2021-01-01")),
             ("50% (5 years)", Filters(since="2020-01-01", until="2025-01-01"))]
    for _, f in cases:  # load the FAISS file, warm the caches
        ix.search_vector(qs[0], 10, filters=f)
    ts = {name: ([], [], []) for name, _ in cases}
    for q in qs:  # the cases interleaved, query by query: a busy machine's load shifts alike on all
        for name, f in cases:
            t = time.perf_counter()
            ix.search_vector(q, 10, filters=f)
            ts[name][0].append(time.perf_counter() - t)
            if f:
                t = time.perf_counter()
                allowed = ix.reader.photo_ids_where(*f.sql(), with_paths=bool(f.folder))
                ts[name][1].append(time.perf_counter() - t)
                search_subset(ix.reader, index, q, 10, allowed)
                ts[name][2].append(time.perf_counter() - t)
    out = []
    for name, f in cases:
        ix.search_vector(qs[0], 10, filters=f)
        out.append((name, *(statistics.median(x) * 1000 if x else 0.0 for x in ts[name]), ix.matched))
    return out


def cold(folder: Path, runs: int) -> list[tuple[str, float]]:
    out = []
    env = dict(os.environ, PYTHONPATH=str(Path.cwd()))
    for name, q, extra in (("--literal (no parsing, no spelling): baseline", "a dog on the beach", ["--literal"]),
                           ("plain words", "a dog on the beach", []),
                           ("parsed year", "a dog on the beach 2023", []),
                           ("typo corrected", "a dog on the beahc", [])):
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "retrieval", "search", q, "--index", str(folder), *extra],
                               capture_output=True, text=True, env=env)
            ts.append(time.perf_counter() - t)
            assert p.returncode == 0, p.stderr
        out.append((name, statistics.median(ts)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--cold", action="store_true", help="also time cold `retr search` processes")
    ap.add_argument("--cold-n", type=int, default=10_000, help="photos in the cold-search index")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--index-type", default="auto", help="FAISS type of the synthetic index (auto, flat, hnsw, ivf)")
    ap.add_argument("--keep", type=Path, help="build the index in this folder, or reuse the one built there")
    a = ap.parse_args()
    print(machine_line())
    print(load_line())
    with tempfile.TemporaryDirectory(prefix="retr-bench-filters-") as tmp:
        folder = a.keep or Path(tmp) / f"n{a.n}"
        if (folder / "photos.faiss").exists():
            print(f"reusing the synthetic index in {folder}")
        else:
            t = time.perf_counter()
            build(folder, a.n, index_type=a.index_type)
            print(f"built {a.n} synthetic photos ({a.index_type}) in {time.perf_counter() - t:.0f} s")
        rows = warm(folder, a.queries)
        base = rows[0][1]
        print(f"\nwarm search_vector, k=10, {a.n} photos ({a.index_type}), median of {a.queries} queries")
        print("| filter keeps | photos kept | retr's search ms | x unfiltered | reading the ids ms | reading the ids "
              "+ searching among them ms |\n|---|---:|---:|---:|---:|---:|")
        for name, ms, sql_ms, first_ms, kept in rows:
            print(f"| {name} | {kept if kept is not None else a.n} | {ms:.1f} | {ms / base:.2f} | "
                  + (f"{sql_ms:.1f} | {first_ms:.1f} |" if kept is not None else "- | - |"))
        if a.cold:
            small = Path(tmp) / f"n{a.cold_n}"
            build(small, a.cold_n)
            print(f"\ncold `retr search` (new process), {a.cold_n} photos, median of {a.runs}")
            print("| query | s | x baseline |\n|---|---:|---:|")
            rows = cold(small, a.runs)
            for name, s in rows:
                print(f"| {name} | {s:.2f} | {s / rows[0][1]:.2f} |")


if __name__ == "__main__":
    main()
