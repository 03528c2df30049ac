"""Embed a photo library on a Ray cluster: ``retr index PATH --ray ADDRESS``.

The driver (this process) walks the folder and decides what to embed exactly as a local
``retr index`` does (:func:`retrieval.indexing.indexer.index_folder`: new and changed files only,
moved files found again by content hash, removed ones deleted). Only the embedding runs on
the cluster, with Ray Data:

1. the photos to embed become a dataset of rows ``(i, path, hash, size, mtime)``, in blocks;
2. ``map_batches`` runs :class:`EmbedPhotos` on a pool of actors, one CPU and one encoder
   each (loaded once per actor with :func:`retrieval.encoders.base.load_encoder` from the spec the
   index records); each actor hashes, decodes and embeds its rows with
   :func:`retrieval.indexing.indexer.embed_locally`, the local indexer's own step;
3. the results are written as Parquet **vector shards** (one file per block, rows
   ``i, path, hash, size, mtime, width, height, vector, error``; ``vector`` is a
   ``fixed_size_list<float32>[D]``) into the shards folder;
4. the driver merges the shards: every row into the database (one commit per shard, the
   same rows as a local run), failures reported one line each; the FAISS files are then
   rebuilt from the database by the store, and the shards folder is deleted.

Ray is an optional dependency (``pip install 'retr[ray]'``), imported only here and only
when a run has photos to embed. Photos (and the shards folder) must be at the same paths
on every node, e.g. on a shared filesystem.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from retrieval.io.decode import DEFAULT_MAX_MEGAPIXELS
from retrieval.io.files import FileInfo
from retrieval.io.paths import from_db, to_db
from retrieval.indexing.indexer import Embedded, IndexReport, embed_locally, index_folder
from retrieval.indexing.plan import Todo
from retrieval.errors import IndexingError

#: What ``--ray`` needs, said when it is missing.
INSTALL_HINT = "pip install 'retr[ray]' (Ray Data, ray[data]>=2.9)"
#: Largest number of photos in one block of the dataset (and so in one vector shard).
MAX_SHARD_ROWS = 4096
#: Columns of a vector shard, in order.
#: ImageNet-1k: the width of a shard's ``concepts`` column (:mod:`retrieval.concepts`)
N_CLASSES = 1000
SHARD_COLUMNS = ("i", "path", "hash", "size", "mtime", "width", "height", "vector", "concepts", "error")


def require_ray() -> None:
    """Check that Ray Data can be imported (without importing it).

    Raises:
        IndexingError: Ray is not installed (one line, with the install command).
    """
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("pyarrow") is None:
        raise IndexingError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}")


def connect(address: str = "local", num_cpus: int | None = None) -> dict:
    """Start or join a Ray cluster for this process, with Ray's own logs kept quiet.

    Args:
        address: ``"local"`` starts a single-node cluster inside this process (stopped by
            :func:`disconnect`); ``"auto"`` joins the cluster that ``ray start`` began on
            this machine; ``"HOST:PORT"`` joins the cluster whose head is there (GCS port,
            6379 by default); ``"ray://HOST:10001"`` connects through Ray Client.
        num_cpus: CPUs of a ``"local"`` cluster (default: all of this machine's); ignored
            when joining (the cluster has its own).

    Returns:
        ``{"address": str, "nodes": int, "cpus": int, "owned": bool}`` of the cluster; ``owned``
        is false when this process was already connected (then that session is used, and
        :func:`disconnect` is the caller's business).

    Raises:
        IndexingError: Ray is not installed, or the cluster cannot be reached.
    """
    require_ray()
    if address not in ("local", "auto"):
        _check_reachable(address)
    if address != "local" and "RAY_AUTH_MODE" not in os.environ and _have_auth_token():
        # `ray start` (recent Ray) turns on token authentication by default with the token in
        # ~/.ray/auth_token, but a joining driver only sends it in token mode (read at import)
        os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise IndexingError(f"--ray needs Ray, which cannot be imported ({e}): {INSTALL_HINT}") from None
    owned = not ray.is_initialized()  # a caller's own ray.init() session is used as it is, and kept
    kw = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        if owned and address == "local":
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, **kw)
        elif owned:
            ray.init(address=address, **kw)
    except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError...: one line
        raise IndexingError(f"cannot reach the Ray cluster at {address!r} ({_first_line(e)})") from None
    for name in ("ray", "ray.data", "ray.util"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    res = ray.cluster_resources()
    return {"address": address, "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "cpus": int(res.get("CPU", 0)), "owned": owned}


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast (Ray itself retries for minutes) when ``HOST:PORT`` or ``ray://HOST:PORT``
    does not accept a TCP connection; other address forms are left to Ray.

    Raises:
        IndexingError: nothing listens there.
    """
    import socket

    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise IndexingError(f"cannot reach the Ray cluster at {address!r} ({e.strerror or e})") from None


def _have_auth_token() -> bool:
    """Whether a Ray authentication token is at hand (``$RAY_AUTH_TOKEN``, ``$RAY_AUTH_TOKEN_PATH``,
    or ``~/.ray/auth_token``, where ``ray start`` and ``ray get-auth-token --generate`` put it)."""
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").is_file())


def disconnect() -> None:
    """Leave the cluster (and stop it, if :func:`connect` started it with ``"local"``)."""
    if importlib.util.find_spec("ray") is None:
        return
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return lines[0] if lines else e.__class__.__name__


def _export_once(encoder) -> None:
    """Export ``encoder`` to ONNX on this node if it is not yet (under a file lock, since
    several actors of one node may start together); a failure only costs speed."""
    if not hasattr(encoder, "export_fast_path") or getattr(encoder, "runtime", "auto") == "torch":
        return
    from filelock import FileLock

    from retrieval.encoders import onnx_runtime

    if onnx_runtime.export_is_current(encoder.id):
        return
    lock_dir = onnx_runtime.cache_root() / "onnx"
    lock_dir.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(lock_dir / ".export.lock")):
            encoder.export_fast_path()
    except Exception as e:  # noqa: BLE001
        logging.getLogger(__name__).warning("could not export the encoder to ONNX (%s); using torch", e)


class EmbedPhotos:
    """Ray Data UDF: embeds a batch of photo rows on a worker, with one encoder per actor.

    Args:
        encoder_spec: what :func:`retrieval.encoders.base.load_encoder` loads (the index's
            ``encoder_spec``: ``"default"``, a checkpoint path, ``"hf:..."``).
        encoder_id: the driver's encoder id; a worker whose encoder differs (another retr or
            checkpoint installed there) refuses to start rather than mix vectors.
        batch_size: photos per encoder batch.
        max_megapixels: larger images are refused (an ``error`` row).

    Raises:
        RuntimeError: the worker's encoder is not the driver's.
    """

    def __init__(self, encoder_spec: str, encoder_id: str, batch_size: int = 32,
                 max_megapixels: float = DEFAULT_MAX_MEGAPIXELS):
        from retrieval.encoders.base import load_encoder

        self.encoder = load_encoder(encoder_spec)
        if self.encoder.id != encoder_id:
            raise RuntimeError(f"this worker's encoder is {self.encoder.id}, the driver's {encoder_id}: install the "
                               f"same retr (and checkpoint) on every node")
        _export_once(self.encoder)
        self.batch_size = batch_size
        self.max_megapixels = max_megapixels

    def __call__(self, batch):
        """``batch``: a ``pyarrow.Table`` with columns ``i, path, hash, size, mtime`` (``hash``
        ``""`` when not known). Returns a ``pyarrow.Table`` with :data:`SHARD_COLUMNS`;
        a failed photo has a zero vector and a one-line ``error``."""
        import pyarrow as pa

        cols = batch.to_pydict()
        todo = [Todo(FileInfo(from_db(p), s, m), h or None) for p, s, m, h in
                zip(cols["path"], cols["size"], cols["mtime"], cols["hash"])]
        out: list[Embedded] = []
        for part in embed_locally(todo, self.encoder, batch_size=self.batch_size, workers=1,
                                  max_megapixels=self.max_megapixels):
            out.extend(part)
        dim = self.encoder.dim
        vecs = np.zeros((len(out), dim), np.float32)
        probs = np.zeros((len(out), N_CLASSES), np.float32)  # all zero: no concepts (failed, or none given)
        for j, e in enumerate(out):
            if e.vector is not None and e.error is None:
                vecs[j] = e.vector
                if e.concepts is not None:
                    probs[j] = e.concepts
        return pa.table({
            "i": pa.array(cols["i"], pa.int64()),
            "path": pa.array(cols["path"], pa.string()),
            "hash": pa.array([e.hash for e in out], pa.string()),
            "size": pa.array(cols["size"], pa.int64()),
            "mtime": pa.array(cols["mtime"], pa.float64()),
            "width": pa.array([e.width for e in out], pa.int32()),
            "height": pa.array([e.height for e in out], pa.int32()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), pa.float32()), dim),
            "concepts": pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1), pa.float32()), N_CLASSES),
            "error": pa.array([e.error if e.error is not None else (None if e.vector is not None else "not embedded")
                               for e in out], pa.string()),
        })


def read_shard(path: str | Path) -> dict:
    """One vector shard as numpy: ``{"i": (N,) int64, "path": list[str], "hash": list[str|None],
    "size": (N,) int64, "mtime": (N,) float64, "width"/"height": (N,) int32,
    "vector": (N, D) float32, "concepts": (N, 1000) float32 ImageNet posteriors (a zero row: none;
    None for a shard without the column), "error": list[str|None]}``.

    Raises:
        OSError: the file cannot be read as Parquet.
    """
    import pyarrow.parquet as pq

    t = pq.read_table(str(path))
    col = t.column("vector").combine_chunks()
    dim = col.type.list_size
    out = {name: t.column(name).to_pylist() for name in ("path", "hash", "error")}
    out["path"] = [from_db(p) for p in out["path"]]
    for name, dtype in (("i", np.int64), ("size", np.int64), ("mtime", np.float64), ("width", np.int32),
                        ("height", np.int32)):
        out[name] = np.asarray(t.column(name).to_numpy(), dtype)
    out["vector"] = np.asarray(col.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(len(t), dim)
    out["concepts"] = None
    if "concepts" in t.column_names:  # shards of workers without the concept channel have none
        c = t.column("concepts").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        out["concepts"] = np.asarray(c, np.float32).reshape(len(t), N_CLASSES)
    return out


def embed_on_ray(todo: list[Todo], encoder, shards_dir: str | Path, *, address: str = "local",
                 num_cpus: int | None = None, batch_size: int = 32,
                 max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                 on_cluster=None) -> Iterator[list[Embedded]]:
    """Embed ``todo`` on a Ray cluster, write vector shards, and yield them back one shard at a time.

    The cluster is started or joined (:func:`connect`) only when ``todo`` is not empty, and
    left once the shards are written. The shards go into a new ``run-*`` folder under
    ``shards_dir``, deleted when they are merged (an interrupted run leaves it behind).

    Args:
        todo: photos to embed (a missing ``hash`` is computed on the worker).
        encoder: the driver's encoder; workers load the same one from its ``spec``.
        shards_dir: folder for the vector shards (every node must see it at this path).
        address, num_cpus: see :func:`connect`.
        batch_size: photos per encoder batch on a worker.
        max_megapixels: larger images are refused.
        on_cluster: called with :func:`connect`'s dict once the cluster is reached.

    Yields:
        a list of :class:`Embedded` per shard; together every item of ``todo`` exactly once
        (one that no shard holds is an ``error`` item).

    Raises:
        IndexingError: Ray is missing, the cluster cannot be reached, the encoder cannot be
            rebuilt on a worker (no ``spec``), or the Ray job failed.
    """
    if not todo:
        return
    spec = getattr(encoder, "spec", None)
    if not spec:
        raise IndexingError(f"encoder {encoder.id} has no spec that workers could load it from; --ray needs "
                            f"the built-in encoder, a checkpoint file, or hf:PATH_OR_NAME")
    shards_dir = Path(shards_dir).absolute()
    info = connect(address, num_cpus)
    if on_cluster:
        on_cluster(info)
    try:
        import pyarrow as pa
        import ray.data

        run_dir = shards_dir / f"run-{uuid.uuid4().hex[:12]}"
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        actors = max(1, info["cpus"])
        rows = min(MAX_SHARD_ROWS, max(1, math.ceil(len(todo) / (2 * actors))))
        table = pa.table({
            "i": pa.array(range(len(todo)), pa.int64()),
            "path": pa.array([to_db(t.file.path) for t in todo], pa.string()),  # Arrow strings are UTF-8
            "hash": pa.array([t.hash or "" for t in todo], pa.string()),
            "size": pa.array([t.file.size for t in todo], pa.int64()),
            "mtime": pa.array([t.file.mtime for t in todo], pa.float64()),
        })
        blocks = [table.slice(o, rows) for o in range(0, len(todo), rows)]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Ray's deprecation notices about its own arguments
                # a call gets up to 8 encoder batches, so that decoding overlaps embedding
                ds = ray.data.from_arrow(blocks).map_batches(
                    EmbedPhotos, batch_format="pyarrow", batch_size=min(rows, 8 * max(1, batch_size)),
                    fn_constructor_kwargs=dict(encoder_spec=spec, encoder_id=encoder.id, batch_size=batch_size,
                                               max_megapixels=max_megapixels),
                    compute=ray.data.ActorPoolStrategy(min_size=1, max_size=min(actors, len(blocks))),
                    num_cpus=1, max_restarts=0)
                ds.write_parquet(str(run_dir))
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - a failed job is one line, not Ray's traceback
            raise IndexingError(f"the Ray job failed ({_first_line(e)})") from None
    finally:
        if info["owned"]:
            disconnect()

    seen = set()
    for f in sorted(run_dir.glob("*.parquet")):
        shard = read_shard(f)
        batch = []
        for j, i in enumerate(shard["i"]):
            if i in seen or not 0 <= i < len(todo):
                continue
            seen.add(int(i))
            err = shard["error"][j]
            probs = None if err or shard["concepts"] is None else shard["concepts"][j]
            batch.append(Embedded(todo[i], hash=shard["hash"][j], width=int(shard["width"][j]),
                                  height=int(shard["height"][j]), vector=None if err else shard["vector"][j],
                                  error=err, concepts=probs if probs is not None and probs.any() else None))
        yield batch
    lost = [Embedded(t, error="not embedded: no vector shard holds it") for i, t in enumerate(todo) if i not in seen]
    if lost:
        yield lost
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        shards_dir.rmdir()  # only if no other run's shards are there
    except OSError:
        pass


#: In the index folder: the photos a ``--ray`` run could not embed, not sent to the cluster again
#: until they change (JSON ``{"max_megapixels": MP, "files": [[path, size, mtime, reason], ...]}``).
FAILED_FILE = "ray-failed.json"


def _key(t: Todo) -> tuple[str, int, float]:
    return (t.file.path, t.file.size, t.file.mtime)


def _read_failed(path: Path, max_megapixels: float) -> dict[tuple[str, int, float], str]:
    """The failures a previous run recorded, if made with the same ``max_megapixels`` (else none)."""
    try:
        data = json.loads(path.read_text())
        if data.get("max_megapixels") != max_megapixels:
            return {}
        return {(p, int(sz), float(mt)): str(why) for p, sz, mt, why in data["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write_failed(path: Path, failed: dict[tuple[str, int, float], str], max_megapixels: float) -> None:
    if not failed:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"max_megapixels": max_megapixels,
                               "files": [[p, sz, mt, why] for (p, sz, mt), why in sorted(failed.items())]}))
    os.replace(tmp, path)


def index_folder_ray(root: str | Path, index_dir: str | Path, *, address: str = "local", num_cpus: int | None = None,
                     shards_dir: str | Path | None = None, encoder=None, batch_size: int = 32,
                     max_megapixels: float = DEFAULT_MAX_MEGAPIXELS, on_cluster=None, **kwargs) -> IndexReport:
    """:func:`retrieval.indexing.indexer.index_folder` with the embedding on a Ray cluster.

    Same arguments, result and incremental behaviour as ``index_folder`` (which it calls, with
    :func:`embed_on_ray` as its ``embed`` step and ``defer_hashes``, so a first run reads each
    new file only on a worker), plus: a photo that could not be embedded is recorded in
    ``index_dir/ray-failed.json`` and reported again by later runs without being sent to the
    cluster, until its size or mtime changes (or ``max_megapixels`` does), so that a run with
    nothing new to embed never starts the cluster.

    Args:
        address, num_cpus: the cluster (see :func:`connect`); it is reached only when there
            are photos to embed.
        shards_dir: folder for the vector shards (default ``index_dir/shards``); every node
            must see it at the same path.
        on_cluster: called with ``{"address", "nodes", "cpus"}`` once the cluster is reached.

    Raises:
        IndexingError: as ``index_folder``, and: Ray is not installed, the cluster cannot be
            reached, or the Ray job failed.
    """
    require_ray()
    if encoder is None:
        from retrieval.encoders.base import load_encoder

        encoder = load_encoder()
    shards = Path(shards_dir) if shards_dir is not None else Path(index_dir).absolute() / "shards"

    failed_file = Path(index_dir).absolute() / FAILED_FILE
    if kwargs.get("rebuild"):
        failed_file.unlink(missing_ok=True)

    def embed(todo: list[Todo]) -> Iterator[list[Embedded]]:
        if not todo:  # e.g. no photo lacks its concepts: keep the record, start no cluster
            return
        known = _read_failed(failed_file, max_megapixels)
        again = [t for t in todo if _key(t) in known]
        rest = [t for t in todo if _key(t) not in known]
        failed = {}
        if again:
            yield [Embedded(t, error=known[_key(t)]) for t in again]
            failed.update((_key(t), known[_key(t)]) for t in again)
        for batch in embed_on_ray(rest, encoder, shards, address=address, num_cpus=num_cpus, batch_size=batch_size,
                                  max_megapixels=max_megapixels, on_cluster=on_cluster):
            failed.update((_key(e.todo), e.error) for e in batch if e.error is not None)
            yield batch
        _write_failed(failed_file, failed, max_megapixels)

    return index_folder(root, index_dir, encoder=encoder, batch_size=batch_size, max_megapixels=max_megapixels,
                        embed=embed, defer_hashes=True, **kwargs)


__all__ = ["EmbedPhotos", "connect", "disconnect", "embed_on_ray", "index_folder_ray", "read_shard", "require_ray"]
