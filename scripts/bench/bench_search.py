"""Warm search latency and memory versus gallery size: numpy brute force, FAISS flat, FAISS HNSW.

    python scripts/bench/bench_search.py [--data ../shared/data] [--max 100000] [--queries 200]
    python scripts/bench/bench_search.py --max 1000000      # adds the 1M gallery (HNSW build: long)

Scale sections (see scripts/bench/scale_bench.py and docs/bench.md):

    python scripts/bench/bench_search.py --scale 1000,10000,30000,100000 --scale-only   # retr's Index at scale
    python scripts/bench/bench_search.py --scale-from A.json,B.json                      # one table + PNG from saved runs
    python scripts/bench/bench_search.py --cold 10000                                    # cold `retr search`, step by step
    python scripts/bench/bench_search.py --blas                                          # OPENBLAS_CORETYPE kernels

The section below uses a diagonal Gaussian mixture, an unrealistically hard gallery:

Gallery: the 1,000 Flickr8k dev photos are indexed once with ``index_folder`` and their
vectors read back (``Store.load_vectors("photos")``). Larger galleries are SYNTHETIC:
vectors sampled from a diagonal Gaussian mixture (sklearn ``GaussianMixture``, --components)
fitted to those real photo embeddings, then L2-normalised. The real 1k gallery is measured
too, next to a synthetic 1k one, so the two can be compared.

Queries: --queries real captions from captions_dev.json embedded with the index's encoder
(text queries against image vectors, as ``retr search "words"`` does).

Methods, each gallery size and method in its own child process (clean RSS; the exact top-10
for Recall@10 is computed in another one, so that numpy's BLAS threads never run next to
FAISS's OpenMP threads, which on 2 cores distorts timings), one query at a
time (median and p95 ms per query over all queries, after 3 warm-up queries):

  numpy + argsort      ``scores = G @ q; np.argsort(-scores)[:10]`` (a full sort, what rclip does)
  numpy + argpartition the same with a top-k partial sort (for where the time goes)
  FAISS flat           ``IndexIDMap(IndexFlatIP)``, retr's index
  FAISS HNSW           ``IndexHNSWFlat(M=32)``, inner product, efSearch 64 and 128; Recall@10
                       against the exact top-10

Then FAISS flat with all queries in one ``search`` call (BLAS path), in child processes with and
without ``OPENBLAS_CORETYPE`` set before faiss is imported: faiss-cpu's bundled OpenBLAS does
not recognise this CPU and falls back to a generic kernel (checked with threadpoolctl).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
from benchlib import load_line, machine_line

K = 10
M_HNSW = 32
EFS = (64, 128)


def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def size_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


# -- gallery ---------------------------------------------------------------------------------

def sample_gallery(params: dict, n: int, seed: int) -> np.ndarray:
    """n vectors from the fitted diagonal mixture, L2-normalised, float32 (sampled in chunks)."""
    rng = np.random.default_rng(seed)
    w, mu, var = params["weights"], params["means"].astype(np.float32), params["covariances"].astype(np.float32)
    sd = np.sqrt(var)
    out = np.empty((n, mu.shape[1]), np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        c = rng.choice(len(w), e - s, p=w / w.sum())
        x = rng.standard_normal((e - s, mu.shape[1]), dtype=np.float32)
        x *= sd[c]
        x += mu[c]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s:e] = x
    return out


def load_gallery(npz: str, n: int, seed: int) -> np.ndarray:
    d = dict(np.load(npz))
    if n < 0:  # the real photo vectors
        return np.ascontiguousarray(d["real"], np.float32)
    return sample_gallery(d, n, seed)


def time_queries(fn, Q: np.ndarray) -> list[float]:
    for q in Q[:3]:
        fn(q)
    ts = []
    for q in Q:
        t = time.perf_counter()
        fn(q)
        ts.append((time.perf_counter() - t) * 1000)
    return ts


def lat(ts: list[float]) -> dict:
    return {"median_ms": statistics.median(ts), "p95_ms": float(np.percentile(ts, 95))}


def exact_topk(G: np.ndarray, Q: np.ndarray) -> np.ndarray:
    out = []
    for b in range(0, len(Q), 25):  # 25 queries at a time: bounded memory at 1M vectors
        S = Q[b : b + 25] @ G.T
        out.append(np.argpartition(-S, K - 1, axis=1)[:, :K])
    return np.concatenate(out)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(e)) / K for f, e in zip(found, exact)]))


def file_bytes(index, n: int, tmpdir: str) -> float:
    import faiss

    p = os.path.join(tmpdir, f"idx-{os.getpid()}.faiss")
    faiss.write_index(index, p)
    b = os.path.getsize(p)
    os.unlink(p)
    return b / n


# -- child side --------------------------------------------------------------------------------

def worker(method: str, npz: str, n: int, seed: int, tmpdir: str) -> dict:
    Q = np.load(npz)["queries"]
    if method == "baseline":
        return {"method": method, "baseline_rss_mb": rss_mb()}
    if method != "numpy":
        import faiss  # noqa: F401 - imported before the gallery exists, so its RSS is in the baseline
    base = rss_mb()
    G = load_gallery(npz, n, seed)
    N, D = G.shape
    res = {"method": method, "n": N, "baseline_rss_mb": base}
    exact_file = os.path.join(tmpdir, f"exact-{n}.npy")
    if method == "exact":  # ground truth, in its own process: no numpy BLAS threads next to faiss's OpenMP ones
        np.save(exact_file, exact_topk(G, Q))
        return res
    exact = np.load(exact_file) if method != "numpy" else None
    if method == "numpy":
        res["rss_mb"] = rss_mb()
        res["bytes_per_vector"] = G.nbytes / N
        res["build_s"] = 0.0
        res["argsort"] = lat(time_queries(lambda q: np.argsort(-(G @ q))[:K], Q))
        res["matmul_only"] = lat(time_queries(lambda q: G @ q, Q))

        def top_k(q):
            s = G @ q
            i = np.argpartition(-s, K - 1)[:K]
            return i[np.argsort(-s[i])]

        res["argpartition"] = lat(time_queries(top_k, Q))
    elif method == "flat":
        import faiss

        t = time.perf_counter()
        index = faiss.IndexIDMap(faiss.IndexFlatIP(D))
        index.add_with_ids(G, np.arange(N, dtype=np.int64))
        res["build_s"] = time.perf_counter() - t
        del G
        gc.collect()
        res["rss_mb"] = rss_mb()
        res["bytes_per_vector"] = file_bytes(index, N, tmpdir)
        res["single"] = lat(time_queries(lambda q: index.search(q.reshape(1, -1), K), Q))
        res["recall"] = recall(index.search(Q, K)[1], exact)
    elif method == "hnsw":
        import faiss

        t = time.perf_counter()
        index = faiss.IndexHNSWFlat(D, M_HNSW, faiss.METRIC_INNER_PRODUCT)
        index.add(G)
        res["build_s"] = time.perf_counter() - t
        res["efConstruction"] = index.hnsw.efConstruction
        del G
        gc.collect()
        res["rss_mb"] = rss_mb()
        res["bytes_per_vector"] = file_bytes(index, N, tmpdir)
        for ef in EFS:
            index.hnsw.efSearch = ef
            res[f"ef{ef}"] = lat(time_queries(lambda q: index.search(q.reshape(1, -1), K), Q))
            res[f"ef{ef}"]["recall"] = recall(index.search(Q, K)[1], exact)
    elif method == "batched":
        import faiss
        from threadpoolctl import threadpool_info

        index = faiss.IndexIDMap(faiss.IndexFlatIP(D))
        index.add_with_ids(G, np.arange(N, dtype=np.int64))
        del G
        gc.collect()
        kern = [f"{i.get('internal_api')} {i.get('version')}: {i.get('architecture')}" for i in threadpool_info()
                if i.get("user_api") == "blas" and "faiss" in i.get("filepath", "")]
        res["kernel"] = "; ".join(kern) or "unknown"
        index.search(Q, K)  # warm-up
        ts = []
        for _ in range(int(os.environ.get("BENCH_BATCH_RUNS", "5"))):
            t = time.perf_counter()
            _, I = index.search(Q, K)
            ts.append((time.perf_counter() - t) * 1000)
        res["batch_ms"] = ts
        res["recall"] = recall(I, exact)
    res["peak_rss_mb"] = peak_mb()
    return res


# -- parent side -----------------------------------------------------------------------------

def run_worker(method: str, npz: Path, n: int, seed: int, env_extra: dict | None = None, runs: int = 5) -> dict:
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.update(env_extra or {})
    env["BENCH_BATCH_RUNS"] = str(runs)
    p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_worker", method, str(npz), str(n),
                        "--seed", str(seed)], capture_output=True, text=True, env=env, cwd=ROOT)
    if p.returncode:
        sys.exit(f"worker {method} n={n} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def prepare(a, tmp: Path) -> tuple[Path, dict]:
    """Index the dev photos, embed the queries, fit the mixture; returns (npz path, info)."""
    from retrieval.encoders.base import load_encoder
    from retrieval.indexing.indexer import index_folder
    from retrieval.search import Index
    from retrieval.store.database import Store

    f8 = Path(a.data).resolve() / "flickr8k"
    coco = json.loads((f8 / "captions_dev.json").read_text())
    photos = tmp / "photos"
    photos.mkdir()
    for im in coco["images"]:
        os.symlink(f8 / "images" / im["file_name"], photos / im["file_name"])
    enc = load_encoder()
    t = time.perf_counter()
    rep = index_folder(photos, tmp / "index", encoder=enc)
    index_s = time.perf_counter() - t
    _, real = Store(tmp / "index").load_vectors("photos")
    rng = np.random.default_rng(a.seed)
    caps = [coco["annotations"][i]["caption"] for i in rng.choice(len(coco["annotations"]), a.queries, replace=False)]
    Q = enc.encode_texts(caps).astype(np.float32)

    from sklearn.mixture import GaussianMixture

    t = time.perf_counter()
    gmm = GaussianMixture(a.components, covariance_type="diag", random_state=a.seed, reg_covar=1e-6).fit(real)
    fit_s = time.perf_counter() - t
    npz = tmp / "params.npz"
    np.savez(npz, weights=gmm.weights_, means=gmm.means_, covariances=gmm.covariances_, real=real, queries=Q)

    # retr's own warm query path on the real index (FAISS + SQLite lookup of the paths)
    idx = Index(tmp / "index", encoder=enc)
    ts = time_queries(lambda q: idx.search_vector(q, K), Q)
    # how alike are the real and synthetic 1k galleries, seen from the queries?
    syn = sample_gallery(dict(np.load(npz)), len(real), a.seed)
    sim = {}
    for name, G in (("real", real), ("synthetic", syn)):
        S = Q @ G.T
        top = -np.sort(-S, axis=1)
        sim[name] = (float(top[:, 0].mean()), float(top[:, K - 1].mean()), float(S.mean()),
                     float(np.mean(G @ G.mean(0) / np.linalg.norm(G.mean(0)))))
    info = {"n_real": len(real), "dim": real.shape[1], "index_s": index_s, "added": rep.added, "fit_s": fit_s,
            "retr_search_vector": lat(ts), "sim": sim, "encoder": enc.id}
    return npz, info


def plot(path: Path, sizes: list[int], rows: dict) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plot (pip install matplotlib)"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, ys in rows.items():
        ax.plot(sizes, ys, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gallery size (photos; >1k synthetic)")
    ax.set_ylabel("median ms per query (warm, one query)")
    ax.set_title(f"retr search latency vs gallery size ({os.cpu_count()} CPU cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return f"plot written: {path}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder holding flickr8k/")
    ap.add_argument("--max", type=int, default=100_000, help="largest gallery (1000000 adds the 1M gallery)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--components", type=int, default=16)
    ap.add_argument("--batch-runs", type=int, default=5, help="repeats of the batched search")
    ap.add_argument("--coretypes", default="Haswell,SkylakeX", help="OPENBLAS_CORETYPE values to try (comma list)")
    ap.add_argument("--plot", default=str(ROOT / "docs" / "search_scaling.png"), help="PNG path ('' for none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--_worker", nargs=3, metavar=("METHOD", "NPZ", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--scale", default="", help="comma list of sizes (e.g. 1000,10000,100000,1000000) for the "
                    "retr-Index-at-scale section (realistic synthetic galleries in real index folders); '' skips it")
    ap.add_argument("--scale-only", action="store_true", help="run only the --scale section")
    ap.add_argument("--scale-types", default="flat,hnsw,ivf", help="index types measured at each --scale size "
                    "(flat is skipped above 100k: 2 KB a photo in RAM)")
    ap.add_argument("--features", default=str(ROOT / "cache" / "features"),
                    help="cached backbone features of the Flickr8k photos (scripts/train/extract_features.py) used, with "
                    "the dev photos, to fit the realistic gallery model")
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "captions" / "corpus.tsv.gz"),
                    help="captions corpus (TSV: source, image, caption) the scale section's queries are drawn from")
    ap.add_argument("--scale-from", default="", help="comma list of JSON files saved by --scale runs "
                    "(BENCH_JSON=FILE): print their rows as one table and plot")
    ap.add_argument("--blas", action="store_true", help="compare OPENBLAS_CORETYPE kernels for batched flat search, "
                    "then exit")
    ap.add_argument("--blas-rounds", type=int, default=3)
    ap.add_argument("--_blas_child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cold", type=int, default=0, help="time a cold `retr search` on an index of this many photos "
                    "(and variants without each speed-up), then exit")
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--scale-plot", default=str(ROOT / "docs" / "scaling_curves.png"))
    a = ap.parse_args()
    if a._worker:
        m, npz, n = a._worker
        if m.startswith("scale-"):
            import scale_bench

            print(json.dumps(scale_bench.child(m[len("scale-"):], npz, int(n), a.seed)))
            return
        print(json.dumps(worker(m, npz, int(n), a.seed, os.path.dirname(npz))))
        return
    if a._blas_child or a.blas:
        import scale_bench

        if a._blas_child:
            print(json.dumps(scale_bench.blas_child(10_000, 1_000)))
        else:
            scale_bench.blas(a)
        return
    if a.scale_from:
        import scale_bench

        rows = [r for f in a.scale_from.split(",") for r in json.loads(Path(f).read_text())]
        print(f"command: python scripts/bench/bench_search.py --scale-from {a.scale_from}  (rows of earlier --scale runs)")
        scale_bench.report(rows, a.queries, a.scale_plot)
        return
    if a.cold:
        import scale_bench

        scale_bench.cold(a)
        return
    if a.scale:
        import scale_bench

        scale_bench.run(a, run_worker)
        if a.scale_only:
            return

    import faiss

    sizes = [s for s in (1_000, 10_000, 100_000, 1_000_000) if s <= a.max]
    print(f"command: python scripts/bench/bench_search.py --max {a.max} --queries {a.queries} --components {a.components}")
    print(machine_line())
    print(f"at the start: {load_line()}")
    print(f"numpy {np.__version__}, faiss {faiss.__version__} ({faiss.get_compile_options().strip()}), "
          f"OMP threads {faiss.omp_get_max_threads()}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="retr-bench-search-") as t:
        tmp = Path(t)
        npz, info = prepare(a, tmp)
        print(f"encoder {info['encoder']}, dim {info['dim']}; real gallery: {info['added']} Flickr8k dev photos "
              f"indexed with index_folder in {info['index_s']:.1f} s; queries: {a.queries} dev captions (text -> image)")
        print(f"synthetic galleries: diagonal GaussianMixture({a.components}) fitted to the {info['n_real']} real "
              f"photo vectors in {info['fit_s']:.1f} s, samples L2-normalised")
        base = run_worker("baseline", npz, 0, a.seed)  # imports only: the baseline RSS
        results = {}
        for n, label in [(-1, "1k real")] + [(s, f"{size_label(s)} synthetic") for s in sizes]:
            r = {m: run_worker(m, npz, n, a.seed) for m in ("exact", "numpy", "flat", "hnsw")}
            r["batched"] = {"default": run_worker("batched", npz, n, a.seed, runs=a.batch_runs)}
            for ct in [c for c in a.coretypes.split(",") if c]:
                r["batched"][ct] = run_worker("batched", npz, n, a.seed, {"OPENBLAS_CORETYPE": ct}, runs=a.batch_runs)
            results[label] = r
            print(f"  measured {label} ({time.perf_counter() - t0:.0f} s so far)", file=sys.stderr, flush=True)

    sim = info["sim"]
    print("\nReal vs synthetic 1k gallery, seen from the queries (cosine): "
          f"mean top-1 {sim['real'][0]:.3f} vs {sim['synthetic'][0]:.3f}, mean top-10th {sim['real'][1]:.3f} vs "
          f"{sim['synthetic'][1]:.3f}, mean over all pairs {sim['real'][2]:.3f} vs {sim['synthetic'][2]:.3f}; "
          f"mean cosine to the gallery centroid {sim['real'][3]:.3f} vs {sim['synthetic'][3]:.3f}")
    rs = info["retr_search_vector"]
    print(f"retr `Index.search_vector` on the real 1k index (FAISS flat + SQLite path lookup), warm: "
          f"median {rs['median_ms']:.3f} ms, p95 {rs['p95_ms']:.3f} ms per query")
    print(f"process RSS with only the imports (python + numpy): {base['baseline_rss_mb']:.0f} MB; "
          f"with faiss imported: {results[next(iter(results))]['flat']['baseline_rss_mb']:.0f} MB")

    print(f"\nWarm search latency, one query at a time ({a.queries} text queries, top-{K}); galleries above 1k "
          f"are SYNTHETIC (Gaussian mixture fitted to real photo vectors)")
    print("| gallery | method | build (s) | bytes/vector | process RSS (MB) | median ms/query | p95 ms | "
          "Recall@10 | speed vs numpy+argsort |")
    print("|---|---|---|---|---|---|---|---|---|")
    plot_rows = {"numpy + argsort": [], "numpy + argpartition": [], "FAISS flat": [],
                 f"FAISS HNSW ef{EFS[0]}": [], f"FAISS HNSW ef{EFS[1]}": [], "FAISS flat, batched (per query)": []}
    for label, r in results.items():
        npy = r["numpy"]
        ref = npy["argsort"]["median_ms"]

        def row(method, res, l, rec="1.000", build=None):
            b = res["build_s"] if build is None else build
            print(f"| {label} | {method} | {b:.2f} | {res['bytes_per_vector']:.0f} | {res['rss_mb']:.0f} | "
                  f"{l['median_ms']:.3f} | {l['p95_ms']:.3f} | {rec} | {ref / l['median_ms']:.1f}x |")

        row("numpy, full `argsort`", npy, npy["argsort"])
        row("numpy, `argpartition` top-10", npy, npy["argpartition"])
        print(f"| {label} | (numpy matmul alone) | - | - | - | {npy['matmul_only']['median_ms']:.3f} | "
              f"{npy['matmul_only']['p95_ms']:.3f} | - | {ref / npy['matmul_only']['median_ms']:.1f}x |")
        row("FAISS `IndexFlatIP` (retr)", r["flat"], r["flat"]["single"], f"{r['flat']['recall']:.3f}")
        for ef in EFS:
            h = r["hnsw"]
            row(f"FAISS HNSW M={M_HNSW}, efSearch {ef}", h, h[f"ef{ef}"], f"{h[f'ef{ef}']['recall']:.3f}",
                build=h["build_s"] if ef == EFS[0] else 0.0)
        if not label.endswith("real"):
            plot_rows["numpy + argsort"].append(ref)
            plot_rows["numpy + argpartition"].append(npy["argpartition"]["median_ms"])
            plot_rows["FAISS flat"].append(r["flat"]["single"]["median_ms"])
            for ef in EFS:
                plot_rows[f"FAISS HNSW ef{ef}"].append(r["hnsw"][f"ef{ef}"]["median_ms"])
            plot_rows["FAISS flat, batched (per query)"].append(
                statistics.median(r["batched"]["default"]["batch_ms"]) / a.queries)
    print(f"(HNSW efConstruction {results[next(iter(results))]['hnsw']['efConstruction']}; its build time is on the "
          f"efSearch {EFS[0]} row; RSS is that method's own child process after building, gallery copy freed for FAISS; "
          f"bytes/vector from the written index file)")

    print(f"\nFAISS flat, all {a.queries} queries in one `search` call (BLAS sgemm path), faiss's bundled OpenBLAS "
          f"kernel set with OPENBLAS_CORETYPE in the child's environment before `import faiss`; "
          f"median of {a.batch_runs} calls")
    print("| gallery | OPENBLAS_CORETYPE | kernel (threadpoolctl) | ms per batch | ms per query | "
          "vs unset | vs one-at-a-time flat | Recall@10 vs exact |")
    print("|---|---|---|---|---|---|---|---|")
    for label, r in results.items():
        d = statistics.median(r["batched"]["default"]["batch_ms"])
        single = r["flat"]["single"]["median_ms"]
        for ct, b in r["batched"].items():
            m = statistics.median(b["batch_ms"])
            print(f"| {label} | {'(unset)' if ct == 'default' else ct} | {b['kernel']} | {m:.2f} | "
                  f"{m / a.queries:.4f} | {d / m:.2f}x | {single / (m / a.queries):.1f}x | {b['recall']:.3f} |")
    if a.plot:
        print("\n" + plot(Path(a.plot), sizes, plot_rows))
    print(f"total wall time {time.perf_counter() - t0:.0f} s; at the end: {load_line()}")


if __name__ == "__main__":
    main()
