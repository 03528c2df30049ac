"""`retr index --ray`: embedding on a local single-node Ray cluster gives the index a local run gives.

The cluster is the one `retr index --ray local --workers 2` starts inside the CLI process (two
CPUs, so two embedding actors). Ray is the optional extra ``retr[ray]`` (also in ``retr[test]``);
where it is not installed the cluster test is skipped with the reason, except under CI
(``$CI`` set), where it fails.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from conftest import DEMO, run_retr

PHOTOS = ("astronaut.jpg", "cat.jpg", "horses.jpg", "kites_beach.jpg", "rocket.jpg")
QUERIES = ("people flying kites on the beach", "a rocket on the launch pad", "a cat", "horses in a field")


def _ray_or_skip() -> None:
    missing = [m for m in ("ray", "pyarrow") if importlib.util.find_spec(m) is None]
    if missing:
        msg = f"the Ray test needs {', '.join(missing)}: pip install 'retr[ray]'"
        if os.environ.get("CI"):
            pytest.fail("CI is set, so the Ray test may not skip: " + msg, pytrace=False)
        pytest.skip(msg)


@pytest.fixture
def library(tmp_path):
    """Five demo photos and one photo cut short."""
    d = tmp_path / "library"
    d.mkdir()
    for n in PHOTOS:
        shutil.copy(DEMO / n, d / n)
    data = (DEMO / "eagle.jpg").read_bytes()
    (d / "broken.jpg").write_bytes(data[: len(data) // 3])
    return d


def _rows(idx) -> dict[str, tuple]:
    """path -> (hash, width, height, size, mtime, vector (D,) float32) of an index's photos."""
    from sqlalchemy import select

    from retrieval.store.database import Photo, Store

    st = Store(idx)
    try:
        with st.session() as s:
            return {r.path: (r.hash, r.width, r.height, r.size, r.mtime, np.frombuffer(r.vector, np.float32))
                    for r in s.execute(select(Photo)).scalars()}
    finally:
        st.close()


def _search(idx, query) -> list[dict]:
    return json.loads(run_retr("search", query, "--index", idx, "--json", "-k", "3", check=0).stdout)


def test_ray_index_equals_local_index_and_is_incremental(library, tmp_path):
    _ray_or_skip()
    local, dist = tmp_path / "local", tmp_path / "ray"
    run_retr("index", library, "--index", local, "--no-captions", check=0)
    p = run_retr("index", library, "--index", dist, "--no-captions", "--ray", "local", "--workers", "2",
                 "--index-type", "ivf", check=0)
    assert "added 5, updated 0, moved 0, removed 0, unchanged 0, failed 1" in p.stdout, p.stdout + p.stderr
    assert "embedding on the Ray cluster local: 1 node(s), 2 CPUs" in p.stderr, p.stderr
    bad = [line for line in p.stderr.splitlines() if "broken.jpg" in line]
    assert len(bad) == 1 and bad[0].startswith(f"retr: skipped {library / 'broken.jpg'}: truncated"), p.stderr
    assert all(line.startswith("retr: ") for line in p.stderr.splitlines()), p.stderr  # Ray's own logs are quiet
    assert not (dist / "shards").exists()  # merged and deleted
    from retrieval.store import ann
    from retrieval.search import Index

    ix = Index(dist)  # the shards were merged into an IVF index trained on a sample of the vectors
    assert ix.reader.get_meta("index_type") == "ivf" and ann.kind_of(ix._index("photos")) == "ivf"

    # the same rows and vectors as a local run, and so the same search results
    a, b = _rows(local), _rows(dist)
    assert sorted(a) == sorted(b) == sorted(str(library / n) for n in PHOTOS)
    for path in a:
        assert a[path][:5] == b[path][:5], path
        np.testing.assert_allclose(a[path][5], b[path][5], atol=1e-4, err_msg=path)
    for q in (*QUERIES, str(library / "cat.jpg")):
        ha, hb = _search(local, q), _search(dist, q)
        assert [h["path"] for h in ha] == [h["path"] for h in hb], q
        assert np.allclose([h["score"] for h in ha], [h["score"] for h in hb], atol=1e-3), q

    # a second run embeds nothing and starts no cluster: a moved photo is found by its hash, the
    # broken one is reported again from the last run's record; captions come from stored vectors
    (library / "sub").mkdir()
    (library / "cat.jpg").rename(library / "sub" / "cat.jpg")
    p = run_retr("index", library, "--index", dist, "--ray", "local", "--workers", "2", check=0)
    assert "added 0, updated 0, moved 1, removed 0, unchanged 4, failed 1" in p.stdout, p.stdout + p.stderr
    assert "Ray cluster" not in p.stderr and "embedded 0/1, skipped 1" in p.stderr, p.stderr
    assert [line for line in p.stderr.splitlines() if "broken.jpg" in line] == bad
    hits = _search(dist, str(library / "sub" / "cat.jpg"))
    assert hits[0]["path"] == str(library / "sub" / "cat.jpg") and hits[0]["score"] > 0.99
    assert hits[0]["text"]  # its generated caption


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def head_node():
    """A one-node cluster started the way a real one is (`ray start --head`); yields HOST:PORT."""
    _ray_or_skip()
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="rt-")  # short: Ray's socket paths live under it
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    log = open(os.path.join(tmp, "head.log"), "w")
    proc = subprocess.Popen([ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "2",
                             "--include-dashboard", "false", "--temp-dir", tmp, "--block"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, open(log.name).read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                assert time.time() < deadline, "ray start --head did not listen within 120 s"
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the group: ray start and every process it began
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_ray_index_joins_a_running_cluster(library, tmp_path, head_node):
    """`retr index --ray HOST:PORT` joins a cluster begun by `ray start --head` (token auth included)."""
    idx = tmp_path / "idx"
    p = run_retr("index", library, "--index", idx, "--no-captions", "--ray", head_node, check=0)
    assert "added 5, updated 0, moved 0, removed 0, unchanged 0, failed 1" in p.stdout, p.stdout + p.stderr
    assert f"embedding on the Ray cluster {head_node}: 1 node(s), 2 CPUs" in p.stderr, p.stderr
    assert _search(idx, "a rocket on the launch pad")[0]["path"] == str(library / "rocket.jpg")


def test_unreachable_cluster_is_one_line(library, tmp_path):
    _ray_or_skip()
    p = run_retr("index", library, "--index", tmp_path / "idx", "--no-captions", "--ray", f"127.0.0.1:{_free_port()}")
    assert p.returncode == 1 and p.stderr.strip().splitlines()[-1].startswith("retr: cannot reach the Ray cluster at")
    assert "Traceback" not in p.stderr


def test_without_ray_the_error_is_one_line(library, tmp_path, monkeypatch):
    """Ray missing: `require_ray` says how to install it; Ray that cannot be imported is one line too."""
    from retrieval.indexing import distributed
    from retrieval.errors import IndexingError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(IndexingError, match=r"--ray needs Ray, which is not installed: pip install 'retr\[ray\]'"):
        distributed.require_ray()
    monkeypatch.undo()

    fake = tmp_path / "fake"
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text("raise ImportError('ray is broken here')\n")
    (fake / "pyarrow").mkdir(parents=True)
    (fake / "pyarrow" / "__init__.py").write_text("")
    env = {"PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    p = run_retr("index", library, "--index", tmp_path / "idx", "--no-captions", "--ray", "local", env=env)
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stderr.strip().splitlines()[-1] == ("retr: --ray needs Ray, which cannot be imported (ray is broken "
                                                 "here): pip install 'retr[ray]' (Ray Data, ray[data]>=2.9)"), p.stderr
    assert "Traceback" not in p.stderr
