"""The ``--scale`` section of ``scripts/bench/bench_search.py``: retr's own ``Index`` at 1k..1M photos.

Gallery (REALISTIC SYNTHETIC): photo embeddings sampled from a model fitted to real ones: the
Flickr8k photos' cached EfficientNet-Lite0 features (dev + train, ``--features``) mapped through
the shipped alignment network's image head; PCA to 128 dimensions (94% of the variance), a
full-covariance GaussianMixture(32) there, plus Gaussian noise of the per-dimension residual
spread in the other dimensions, L2-normalised. Seen from the queries it resembles real photo
vectors (mean top-1 cosine printed next to the real dev gallery's); a diagonal mixture in the
original 512 dimensions (the older section) is much farther from the queries, an unrealistically
hard case for approximate search.

Queries: ``--queries`` captions drawn from the 226,885-caption corpus (``--corpus``), embedded
with the shipped encoder (sentence encoder + the alignment network's text head): text queries
against image vectors, as ``retr search "words"``.

Each size gets a real index folder (``retr.sqlite`` with N photo rows written directly, then
``Store.write_faiss`` builds the FAISS file from the database, as ``retr index`` does at its end:
the photo-decoding part of indexing is measured by bench_index.py, not here). Every step runs in
its own child process (clean peak RSS): the FAISS build per index type; ``Index(folder)`` +
``search_vector`` one query at a time (retr's warm path: FAISS candidates, exact re-ranking from
the database, path lookup); the exact top-10 for Recall@10; and the rclip way (all vectors in one
numpy array, ``argsort`` of the scores).
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
K = 10
PCA_DIMS = 128
COMPONENTS = 32


def _status(key: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    return _status("VmRSS")


def peak_mb() -> float:
    """Peak RSS of this process (VmHWM; ru_maxrss would carry the parent's peak across fork+exec)."""
    return _status("VmHWM")


# -- the gallery model --------------------------------------------------------------------------

def fit_model(real: np.ndarray, seed: int) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    pca = PCA(PCA_DIMS, random_state=seed).fit(real)
    z = pca.transform(real)
    resid = real - pca.inverse_transform(z)
    g = GaussianMixture(COMPONENTS, covariance_type="full", random_state=seed, reg_covar=1e-4, max_iter=60).fit(z)
    return {"pca_components": pca.components_.astype(np.float32), "pca_mean": pca.mean_.astype(np.float32),
            "explained": float(pca.explained_variance_ratio_.sum()), "weights": g.weights_,
            "means": g.means_.astype(np.float32), "chol": np.linalg.cholesky(g.covariances_).astype(np.float32),
            "resid_sd": resid.std(0).astype(np.float32)}


def sample(m: dict, n: int, seed: int, start: int = 0, chunk: int = 50_000):
    """Yield (start, (c, D) float32 L2-normalised) chunks of n vectors from the model; deterministic per chunk."""
    w = m["weights"] / m["weights"].sum()
    for s in range(start, n, chunk):
        e = min(n, s + chunk)
        rng = np.random.default_rng([seed, s])
        comp = rng.choice(len(w), e - s, p=w)
        eps = rng.standard_normal((e - s, m["means"].shape[1]), dtype=np.float32)
        z = np.empty_like(eps)
        for c in np.unique(comp):
            sel = comp == c
            z[sel] = m["means"][c] + eps[sel] @ m["chol"][c].T
        x = m["pca_mean"] + z @ m["pca_components"]
        x += rng.standard_normal(x.shape, dtype=np.float32) * m["resid_sd"]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield s, x.astype(np.float32)


def _model(npz: str) -> dict:
    return dict(np.load(npz))


# -- children --------------------------------------------------------------------------------------

def child(step: str, npz: str, n: int, seed: int) -> dict:
    d = Path(os.environ["SCALE_DIR"])
    kind = os.environ.get("SCALE_TYPE", "auto")
    Q = np.load(npz)["queries"]
    if step == "make":
        from retrieval.store.database import Store, now_iso

        t = time.perf_counter()
        st = Store(d, create=True)
        with st.session() as s:
            st.set_meta(s, "encoder_id", "synthetic-gallery@1")
            st.set_meta(s, "dim", str(Q.shape[1]))
            s.commit()
        st.close()
        import sqlite3

        con = sqlite3.connect(d / "retr.sqlite")
        now = now_iso()
        for s0, x in sample(_model(npz), n, seed):
            con.executemany("INSERT INTO photos (id, path, size, mtime, hash, width, height, indexed_at, vector) "
                            "VALUES (?, ?, 1000000, 0.0, ?, 640, 480, ?, ?)",
                            ((s0 + i + 1, f"/photos/{(s0 + i) // 1000:04d}/{s0 + i:07d}.jpg", f"{s0 + i:064x}", now,
                              x[i].tobytes()) for i in range(len(x))))
            con.commit()
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('dirty', '0')")
        con.commit()
        con.close()
        return {"make_s": time.perf_counter() - t, "db_bytes": sum(p.stat().st_size for p in d.glob("retr.sqlite*"))}
    if step == "build":
        from retrieval.store.blas import import_faiss

        import_faiss()  # in the baseline; OPENBLAS_CORETYPE as retr sets it

        from retrieval.store.database import Store

        st = Store(d)
        base = rss_mb()
        with st.session() as s:
            st.set_meta(s, "index_type", kind)
            s.commit()
        t = time.perf_counter()
        st.write_faiss("photos")
        st.write_faiss("texts")
        return {"build_s": time.perf_counter() - t, "base_rss_mb": base, "peak_rss_mb": peak_mb(),
                "faiss_bytes": (d / "photos.faiss").stat().st_size}
    if step == "exact":
        from retrieval.store.queries import open_sqlite_reader

        r = open_sqlite_reader(d)
        best_s = np.full((len(Q), K), -np.inf, np.float32)
        best_i = np.zeros((len(Q), K), np.int64)
        for ids, v in r.iter_vectors("photos", 50_000):
            S = np.concatenate([best_s, Q @ v.T], axis=1)
            I = np.concatenate([best_i, np.broadcast_to(ids, (len(Q), len(ids)))], axis=1)
            top = np.argpartition(-S, K - 1, axis=1)[:, :K]
            best_s, best_i = np.take_along_axis(S, top, 1), np.take_along_axis(I, top, 1)
        np.save(d / "exact.npy", best_i)
        return {}
    exact = np.load(d / "exact.npy")
    if step == "numpy":  # what rclip does: every vector in one array, scores, full sort
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # one query at a time: one thread (as retr's FAISS search; see ann.candidates)
        base = rss_mb()
        t = time.perf_counter()
        ids, G = _load_all(d)
        load_s = time.perf_counter() - t
        ts, cs, found = [], [], []
        for j, q in enumerate(np.concatenate([Q[:3], Q])):
            t, c = time.perf_counter(), time.thread_time()
            top = np.argsort(-(G @ q))[:K]
            if j >= 3:
                ts.append((time.perf_counter() - t) * 1000)
                cs.append((time.thread_time() - c) * 1000)
                found.append(ids[top])
        return {"load_s": load_s, "lat": _lat(ts, cs), "recall": _recall(found, exact), "base_rss_mb": base,
                "rss_mb": rss_mb(), "peak_rss_mb": peak_mb()}
    if step == "search":
        from retrieval.store.blas import import_faiss

        import_faiss()

        from retrieval.search import Index

        base = rss_mb()
        t = time.perf_counter()
        ix = Index(d)
        ix.search_vector(Q[0], K)  # loads the FAISS file
        open_s = time.perf_counter() - t
        for q in Q[:3]:
            ix.search_vector(q, K)
        ts, cs, found = [], [], []
        for q in Q:
            t, c = time.perf_counter(), time.thread_time()
            hits = ix.search_vector(q, K)
            ts.append((time.perf_counter() - t) * 1000)
            cs.append((time.thread_time() - c) * 1000)
            found.append(np.array([h.id for h in hits]))
        from retrieval.store import ann

        return {"open_s": open_s, "lat": _lat(ts, cs), "recall": _recall(found, exact), "base_rss_mb": base,
                "rss_mb": rss_mb(), "peak_rss_mb": peak_mb(), "kind": ann.kind_of(ix._index("photos")),
                "rebuilt": ix.rebuilt}
    raise SystemExit(f"unknown step {step}")


def _load_all(d: Path):
    from retrieval.store.queries import open_sqlite_reader

    r = open_sqlite_reader(d)
    n, dim = r.count("photos"), r.dim()
    ids, G = np.empty(n, np.int64), np.empty((n, dim), np.float32)
    i = 0
    for ci, cv in r.iter_vectors("photos", 50_000):
        ids[i : i + len(ci)], G[i : i + len(ci)] = ci, cv
        i += len(ci)
    return ids, G


def _lat(ts, cs=None):
    """Wall-clock median/p95 ms, and the median CPU time of the querying thread (``cpu_ms``: on a busy
    machine the wall clock also counts the time the process waits for a core)."""
    out = {"median_ms": statistics.median(ts), "p95_ms": float(np.percentile(ts, 95))}
    if cs:
        out["cpu_ms"] = statistics.median(cs)
    return out


def _recall(found, exact) -> float:
    return float(np.mean([len(set(map(int, f)) & set(map(int, e))) / K for f, e in zip(found, exact)]))


# -- parent ------------------------------------------------------------------------------------------

def prepare(a, tmp: Path) -> tuple[Path, dict]:
    from retrieval.encoders.base import load_encoder

    enc = load_encoder()
    bb = enc.id.split("-")[1] + "-" + enc.id.split("-")[2] if enc.id.startswith("retr-") else ""
    files = sorted(glob.glob(os.path.join(a.features, f"img-{bb}-*.npy")))
    feats = [np.load(f, mmap_mode="r") for f in files]
    feats = [f[0] if f.ndim == 3 else f for f in feats]
    if not feats:
        sys.exit(f"no cached {bb} features in {a.features} (run scripts/train/extract_features.py)")
    real = np.concatenate([enc.project_images(np.asarray(f, np.float32)) for f in feats]).astype(np.float32)
    dev = next((enc.project_images(np.asarray(f, np.float32)) for f in feats if len(f) == 1000), real[:1000])
    with gzip.open(a.corpus, "rt", encoding="utf-8") as fh:
        next(fh)
        caps = [line.rstrip("\n").split("\t")[2] for line in fh]
    rng = np.random.default_rng(a.seed)
    qs = [caps[i] for i in rng.choice(len(caps), a.queries, replace=False)]
    Q = enc.encode_texts(qs).astype(np.float32)
    t = time.perf_counter()
    m = fit_model(real, a.seed)
    fit_s = time.perf_counter() - t
    npz = tmp / "scale.npz"
    np.savez(npz, queries=Q, **m)
    syn = next(sample(m, len(dev), a.seed + 1))[1]

    def sim(G):
        S = Q @ G.T
        top = -np.sort(-S, axis=1)
        return float(top[:, 0].mean()), float(top[:, K - 1].mean())

    return npz, {"n_real": len(real), "files": [os.path.basename(f) for f in files], "n_caps": len(caps),
                 "fit_s": fit_s, "explained": m["explained"], "sim_real": sim(dev), "sim_syn": sim(syn),
                 "encoder": enc.id}


def run(a, run_worker) -> None:
    import tempfile

    from benchlib import load_line, machine_line

    sizes = [int(x) for x in a.scale.split(",") if x]
    types = [t for t in a.scale_types.split(",") if t]
    print(f"command: python scripts/bench/bench_search.py --scale {a.scale} --scale-types {a.scale_types} "
          f"--queries {a.queries}{' --scale-only' if a.scale_only else ''}")
    print(machine_line())
    print(f"at the start: {load_line()}")
    t0 = time.perf_counter()
    rows = []
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="retr-bench-scale-", dir=os.environ.get("BENCH_TMP")) as t:
        tmp = Path(t)
        npz, info = prepare(a, tmp)
        print(f"gallery model: PCA {PCA_DIMS} dims ({info['explained']:.1%} of the variance) + full-covariance "
              f"GaussianMixture({COMPONENTS}) + residual noise, fitted in {info['fit_s']:.0f} s to {info['n_real']} real "
              f"photo vectors ({', '.join(info['files'])} through the alignment image head of {info['encoder']})")
        print(f"queries: {a.queries} captions drawn from the {info['n_caps']}-caption corpus, embedded with the "
              f"shipped encoder (text head): text -> image")
        print(f"seen from the queries, mean top-1 / top-10th cosine: real dev 1k gallery {info['sim_real'][0]:.3f} / "
              f"{info['sim_real'][1]:.3f}, synthetic 1k {info['sim_syn'][0]:.3f} / {info['sim_syn'][1]:.3f}")

        def step(name, n, d, kind="auto"):
            r = run_worker(f"scale-{name}", npz, n, a.seed, {"SCALE_DIR": str(d), "SCALE_TYPE": kind})
            loads.append(os.getloadavg()[0])
            return r

        for n in sizes:
            d = tmp / f"idx-{n}"
            mk = step("make", n, d)
            step("exact", n, d)
            npy = step("numpy", n, d)
            rows.append({"n": n, "method": "numpy + argsort (rclip's way), 1 thread", "build_s": npy["load_s"],
                         "bytes": 4 * 512, "lat": npy["lat"], "recall": npy["recall"], "rss": npy["rss_mb"],
                         "peak": npy["peak_rss_mb"], "db_bytes": mk["db_bytes"] / n, "load": os.getloadavg()[0]})
            for kind in types + ["auto"]:
                if kind == "flat" and n > 100_000:
                    continue
                if kind == "auto":
                    from retrieval.store import ann

                    if ann.resolve("auto", n) in types:
                        continue  # already measured under its own name
                b = step("build", n, d, kind)
                s = step("search", n, d, kind)
                rows.append({"n": n, "method": f"retr `Index.search_vector`, {s['kind']}" + (" (auto)" if kind == "auto"
                             else ""), "build_s": b["build_s"], "build_peak": b["peak_rss_mb"],
                             "bytes": b["faiss_bytes"] / n, "lat": s["lat"], "recall": s["recall"], "rss": s["rss_mb"],
                             "peak": s["peak_rss_mb"], "open_s": s["open_s"], "db_bytes": mk["db_bytes"] / n,
                             "load": os.getloadavg()[0], "kind": s["kind"], "rebuilt": s["rebuilt"]})
                print(f"  {n}: {rows[-1]['method']} {s['lat']['median_ms']:.2f} ms (CPU {s['lat']['cpu_ms']:.2f}) R@10 {s['recall']:.3f} "
                      f"({time.perf_counter() - t0:.0f} s so far, load {os.getloadavg()[0]:.1f})", file=sys.stderr,
                      flush=True)
            shutil.rmtree(d, ignore_errors=True)

    report(rows, a.queries, a.scale_plot)
    if os.environ.get("BENCH_JSON"):
        Path(os.environ["BENCH_JSON"]).write_text(json.dumps(rows, indent=1))
    print(f"load average during the section: median {statistics.median(loads):.1f}, max {max(loads):.1f}; "
          f"total {time.perf_counter() - t0:.0f} s; at the end: {load_line()}")


def report(rows: list[dict], queries: int, plot_path: str | None) -> None:
    """The scale table (markdown) and the PNG, from the rows of one or more runs (``BENCH_JSON`` files)."""
    rows = sorted(rows, key=lambda r: (r["n"], not r["method"].startswith("numpy")))
    print(f"\nretr `Index` at scale: REALISTIC SYNTHETIC galleries (see above), {queries} corpus-caption queries one at "
          f"a time, top-{K}; Recall@10 against the exact top-10; each step in its own process")
    print("| photos | method | FAISS build (s) [rclip: load] | build peak RSS (MB) | FAISS bytes/photo | "
          "DB bytes/photo | search RSS (MB) | search peak RSS (MB) | median ms/query (wall) | p95 ms (wall) | "
          "median CPU ms/query | Recall@10 | vs numpy (CPU) | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ref = {r["n"]: r["lat"]["cpu_ms"] for r in rows if r["method"].startswith("numpy")}
    for r in rows:
        print(f"| {r['n']:,} | {r['method']} | {r['build_s']:.1f} | {r.get('build_peak', float('nan')):.0f} | "
              f"{r['bytes']:.0f} | {r['db_bytes']:.0f} | {r['rss']:.0f} | {r['peak']:.0f} | {r['lat']['median_ms']:.2f} | "
              f"{r['lat']['p95_ms']:.2f} | {r['lat']['cpu_ms']:.2f} | {r['recall']:.3f} | "
              f"{ref[r['n']] / r['lat']['cpu_ms']:.1f}x | "
              f"{r['load']:.1f} |")
    if plot_path:
        print(plot(Path(plot_path), rows))


def plot(path: Path, rows: list[dict]) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plot"
    fig, axs = plt.subplots(1, 3, figsize=(15, 4.5))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for i, m in enumerate(methods):
        rs = [r for r in rows if r["method"] == m]
        ns = [r["n"] for r in rs]
        axs[0].plot(ns, [r["lat"]["cpu_ms"] for r in rs], marker="o", label=m, color=f"C{i}")
        axs[1].plot(ns, [r["peak"] for r in rs], marker="o", label=m, color=f"C{i}")
        if not m.startswith("numpy"):
            axs[2].plot(ns, [r["build_s"] for r in rs], marker="o", label=m, color=f"C{i}")
    for ax, yl in zip(axs, ("median CPU ms per query (warm)", "peak RSS of the search process (MB)",
                            "FAISS build from stored vectors (s)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("photos (realistic synthetic gallery)")
        ax.set_ylabel(yl)
        ax.grid(True, which="both", alpha=0.3)
    axs[0].axhline(5, color="grey", ls=":", lw=1)
    axs[1].axhline(2048, color="grey", ls=":", lw=1)
    axs[0].legend(fontsize=7)
    fig.suptitle(f"retr search and index build vs library size ({os.cpu_count()} CPU cores, shared machine)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return f"plot written: {path}"


# -- cold search -----------------------------------------------------------------------------------

COLD_QUERY = "a dog on a beach"
#: words written in some of the cold index's photos (their OCR text), for the text-in-photos path
OCR_WORDS = ("open sale", "exit", "coffee bar", "platform 9", "stop")


def cold_index(d: Path, n: int, enc) -> None:
    """An index folder of ``n`` synthetic photos with every feature ``retr search`` reads: random unit
    photo vectors (the shipped encoder's id and dimension), a date taken (``photo_metadata``, spread
    over 2015-2024, a place for one in ten), stored concepts (10 random ImageNet classes and their
    posteriors), a generated caption with its vector (``texts``), and the text-in-photos pass done
    (``ocr_texts``: one photo in twenty has words in :data:`OCR_WORDS`, the rest judged text-free);
    FAISS files written by ``Store.write_faiss`` as ``retr index`` does."""
    import datetime as dt
    import sqlite3

    from retrieval.store.database import Store, now_iso

    st = Store(d, create=True)
    with st.session() as s:
        for k, v in (("encoder_id", enc.id), ("encoder_spec", "default"), ("dim", str(enc.dim))):
            st.set_meta(s, k, v)
        s.commit()
    st.close()
    rng = np.random.default_rng(0)
    v = rng.standard_normal((n, enc.dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    cap = rng.standard_normal((n, enc.dim), dtype=np.float32)
    cap /= np.linalg.norm(cap, axis=1, keepdims=True)
    con = sqlite3.connect(d / "retr.sqlite")
    now, start = now_iso(), dt.datetime(2015, 1, 1)
    con.executemany("INSERT INTO photos (id, path, size, mtime, hash, width, height, indexed_at, vector) "
                    "VALUES (?, ?, 1000000, 0.0, ?, 640, 480, ?, ?)",
                    ((i + 1, f"/photos/{i:07d}.jpg", f"{i:064x}", now, v[i].tobytes()) for i in range(n)))
    con.executemany("INSERT INTO photo_metadata (photo_id, taken, taken_source, place, place_key) VALUES (?, ?, "
                    "'exif', ?, ?)", ((i + 1, (start + dt.timedelta(hours=8.76 * i * 10_000 / n)).isoformat(),
                                       *(("Oslo, Norway", "|oslo|norway|no|") if i % 10 == 0 else (None, None)))
                                      for i in range(n)))
    classes = np.stack([rng.choice(1000, 10, replace=False) for _ in range(n)]).astype(np.int16)
    probs = np.sort(rng.dirichlet(np.full(10, 0.3), n), axis=1)[:, ::-1].astype(np.float16)
    con.executemany("INSERT INTO concepts (photo_id, classes, probs) VALUES (?, ?, ?)",
                    ((i + 1, classes[i].tobytes(), probs[i].tobytes()) for i in range(n)))
    con.executemany("INSERT INTO texts (photo_id, text, source, vector) VALUES (?, ?, 'generated', ?)",
                    ((i + 1, f"A photo number {i}.", cap[i].tobytes()) for i in range(n)))
    con.executemany("INSERT INTO ocr_texts (photo_id, text, engine) VALUES (?, ?, ?)",
                    ((i + 1, *((OCR_WORDS[i % len(OCR_WORDS)], "rapidocr") if i % 20 == 0 else ("", "skipped")))
                     for i in range(n)))
    con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('dirty', '0')")
    con.commit()
    con.close()
    st = Store(d)
    st.write_faiss("photos")
    st.write_faiss("texts")
    st.close()


def cold_variants(d: Path, tmp: Path, enc) -> list[tuple[str, list[str], dict, Path | None]]:
    """(name, command, extra environment, file removed before each run) of each timed variant."""
    from retrieval.encoders import onnx_runtime

    opt = onnx_runtime.export_dir(enc.id) / (Path(onnx_runtime.MODEL_FILE).stem + ".opt.onnx")
    empty = tmp / "empty-cache"
    empty.mkdir(exist_ok=True)
    py = sys.executable
    index = ["--index", str(d), "-k", "10"]
    args = ["search", COLD_QUERY, *index]
    typer_code = ("import sys; sys.argv = ['retr'] + sys.argv[1:]; from retrieval.app.commands import app; app()")
    return [
        ("interpreter start-up only: `python -c pass`", [py, "-c", "pass"], {}, None),
        ("imports only: numpy, faiss, onnxruntime, tokenizers", [py, "-c", "import numpy, faiss, onnxruntime, "
                                                                 "tokenizers"], {}, None),
        ("**retr search (every channel: parser, spelling, embedding + concepts + caption fusion, text in photos)**",
         [py, "-m", "retrieval", *args], {}, None),
        (f'with a parsed filter: "{COLD_QUERY} 2023"', [py, "-m", "retrieval", "search", COLD_QUERY + " 2023", *index],
         {}, None),
        ('with a typo corrected: "a dog on a beahc"', [py, "-m", "retrieval", "search", "a dog on a beahc", *index],
         {}, None),
        (f'words written in photos: "{OCR_WORDS[0]}" (text-in-photos fusion)',
         [py, "-m", "retrieval", "search", OCR_WORDS[0], *index], {}, None),
        ("`--literal` (no parser, no spelling)", [py, "-m", "retrieval", *args, "--literal"], {}, None),
        ("without the argv fast path (the Typer app parses: +Typer, Click, pydantic)",
         [py, "-c", typer_code, *args], {}, None),
        ("without the stdlib-sqlite3 reader (SQLAlchemy Store: `RETR_DB=sqlite:///...`)",
         [py, "-m", "retrieval", *args], {"RETR_DB": f"sqlite:///{d / 'retr.sqlite'}"}, None),
        ("without the cached optimised ONNX graph (first search after an export: optimise + save)",
         [py, "-m", "retrieval", *args], {}, opt),
        ("torch path (no ONNX export: sentence-transformers + torch)", [py, "-m", "retrieval", *args],
         {"RETR_CACHE": str(empty)}, None),
    ]


def time_variants(variants, runs: int) -> tuple[dict, dict, list[float]]:
    """Run every variant ``runs + 1`` times, interleaved (run 0 warms the file cache and writes the
    ``.pyc`` files): ({name: wall seconds}, {name: CPU seconds of the child}, load averages seen)."""
    import subprocess

    times = {v[0]: [] for v in variants}
    cpu = {v[0]: [] for v in variants}
    loads = []
    for r in range(runs + 1):
        for name, cmd, env, remove in variants:
            if remove is not None and remove.exists():
                remove.unlink()
            e = dict(os.environ)
            e.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed retr has its .pyc files: no compiling
            e.update(env)
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=e, cwd=ROOT)
            err = p.stderr.read()
            _, status, ru = os.wait4(p.pid, 0)
            w = time.perf_counter() - t0
            if os.waitstatus_to_exitcode(status):
                sys.exit(f"{name} failed: {err[-2000:].decode(errors='replace')}")
            if r:
                times[name].append(w)
                cpu[name].append(ru.ru_utime + ru.ru_stime)
            loads.append(os.getloadavg()[0])
    return times, cpu, loads


def cold(a) -> None:
    """``retr search "a dog on a beach"`` in a new process on a full-feature index of --cold N photos
    (:func:`cold_index`): the default path, other kinds of query, and, in the same run (interleaved),
    the default with one speed-up at a time undone."""
    import tempfile

    from benchlib import load_line, machine_line

    from retrieval.encoders import onnx_runtime
    from retrieval.encoders.base import load_encoder

    n = a.cold
    print(f"command: python scripts/bench/bench_search.py --cold {n} --cold-runs {a.cold_runs}")
    print(machine_line())
    print(f"at the start: {load_line()}")
    enc = load_encoder()
    if not onnx_runtime.has_export(enc.id):
        enc.export_fast_path()
    with tempfile.TemporaryDirectory(prefix="retr-bench-cold-") as t:
        d = Path(t) / "index"
        cold_index(d, n, enc)
        variants = cold_variants(d, Path(t), enc)
        times, cpu, loads = time_variants(variants, a.cold_runs)
    print(f"\nCold `retr search \"{COLD_QUERY}\" -k 10` in a new process, index of {n:,} photos with every feature "
          f"(random unit vectors with the shipped encoder's id, dates, places, concepts, generated captions, text in "
          f"photos; flat FAISS); median of {a.cold_runs} runs, variants interleaved")
    print("(CPU = user + system seconds of the child, all its threads: on a machine this busy the wall clock mostly "
          "measures waiting for a core)")
    print("| variant | median wall (s) | runs (s) | median CPU (s) | CPU vs retr search |\n|---|---|---|---|---|")
    ref = statistics.median(cpu[variants[2][0]])
    for name, *_ in variants:
        med, c = statistics.median(times[name]), statistics.median(cpu[name])
        print(f"| {name} | {med:.2f} | {', '.join(f'{x:.2f}' for x in times[name])} | {c:.2f} | {c - ref:+.2f} s |")
    print(f"load average during the runs: median {statistics.median(loads):.1f}, max {max(loads):.1f}; "
          f"at the end: {load_line()}")


# -- OpenBLAS kernels ---------------------------------------------------------------------------------

BLAS_CORETYPES = ("", "Haswell", "SkylakeX", "Zen", "Sandybridge")


def blas_child(n: int, nq: int) -> dict:
    """Flat FAISS search of nq random queries over n random vectors in one call (BLAS sgemm path), 1 thread."""
    import faiss
    from threadpoolctl import threadpool_info

    faiss.omp_set_num_threads(1)
    kern = [i.get("architecture") for i in threadpool_info() if "faiss" in i.get("filepath", "")]
    rng = np.random.default_rng(0)
    G = rng.standard_normal((n, 512), dtype=np.float32)
    Q = rng.standard_normal((nq, 512), dtype=np.float32)
    ix = faiss.IndexFlatIP(512)
    ix.add(G)
    ix.search(Q[:50], K)
    ts = []
    for _ in range(3):
        t = time.perf_counter()
        ix.search(Q, K)
        ts.append(time.perf_counter() - t)
    return {"kernel": ",".join(k for k in kern if k), "s": min(ts)}


def blas(a) -> None:
    """Each OPENBLAS_CORETYPE in its own child (set before faiss loads), rounds interleaved; and what
    retrieval.store.blas picks on this CPU."""
    import subprocess

    from benchlib import load_line, machine_line

    from retrieval.store.blas import choose_coretype, cpu_flags

    n, nq = 10_000, 1_000
    print(f"command: python scripts/bench/bench_search.py --blas --blas-rounds {a.blas_rounds}")
    print(machine_line())
    print(f"at the start: {load_line()}")
    res = {ct: [] for ct in BLAS_CORETYPES}
    kern = {}
    for _ in range(a.blas_rounds):
        for ct in BLAS_CORETYPES:
            env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
            if ct:
                env["OPENBLAS_CORETYPE"] = ct
            p = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "bench_search.py"),
                                "--_blas_child"], capture_output=True, text=True, env=env, cwd=ROOT)
            r = json.loads(p.stdout.strip().splitlines()[-1])
            res[ct].append(r["s"] * 1000)
            kern[ct] = r["kernel"]
    base = statistics.median(res[""])
    print(f"\nFAISS flat search, {nq} queries x {n} vectors (D=512) in one call, 1 OpenMP thread; best of 3 calls "
          f"per child, median over {a.blas_rounds} interleaved rounds")
    print("| OPENBLAS_CORETYPE | kernel (threadpoolctl) | ms | rounds (ms) | speed vs unset |\n|---|---|---|---|---|")
    for ct in BLAS_CORETYPES:
        m = statistics.median(res[ct])
        print(f"| {ct or '(unset)'} | {kern[ct]} | {m:.0f} | {', '.join(f'{x:.0f}' for x in res[ct])} | "
              f"{base / m:.2f}x |")
    print(f"retrieval.store.blas picks {choose_coretype(cpu_flags())!r} on this CPU (avx512f/bw/dq/vl -> SkylakeX, "
          f"avx2+fma -> Haswell)")
    print(f"at the end: {load_line()}")
