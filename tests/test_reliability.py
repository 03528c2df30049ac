"""Reliability campaign, short versions (the long ones, with the figures in docs/reliability.md,
are scripts/reliability/*.py): killed runs, a full disk, fuzzed names and files, concurrency,
and the server as an attack surface. Everything runs retr as a user does (``python -m retrieval``)."""
from __future__ import annotations

import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "reliability"))
import relib  # noqa: E402


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The demo photos and an uninterrupted, traced index of them (batches of 4): (library, index, trace)."""
    import killed_runs

    work = tmp_path_factory.mktemp("reliability")
    lib = relib.demo_library(work / "library")
    trace, _ = killed_runs.calibrate(lib, work / "reference", ["--batch-size", "4"])
    return lib, work / "reference", trace


# -- killed runs --------------------------------------------------------------------------------
def test_a_run_killed_while_embedding_leaves_a_sound_index_and_resumes_to_the_same_one(reference, tmp_path):
    import killed_runs

    lib, ref_ix, trace = reference
    phase = "embed"  # scripts/reliability/killed_runs.py kills in every phase
    rng = random.Random(phase)
    occ, gap = rng.choice(killed_runs.occurrences(trace, phase))
    r = killed_runs.trial(lib, tmp_path / "index", ["--batch-size", "4"], relib.snapshot(ref_ix), phase, occ,
                          rng.uniform(0, min(gap, 0.5)))
    if r["phase"] is None:
        pytest.skip(f"the run ended before the kill in {phase}")
    assert r["outcome"] == "survived", r


# -- a full disk --------------------------------------------------------------------------------
def test_a_full_disk_ends_the_run_in_one_line_and_keeps_the_previous_index(reference, tmp_path):
    import full_disk

    lib, ref_ix, _ = reference
    mnt = tmp_path / "mnt"
    why = full_disk.mount_tmpfs(mnt, "700k")
    if why:
        pytest.skip(f"cannot mount a tmpfs here ({why})")
    try:
        ix = mnt / "index"
        shutil.copytree(ref_ix, ix)  # the previous index, 11 photos
        before = relib.snapshot(ix)
        big = relib.synthetic_library(tmp_path / "big", 150)
        r = relib.retr("index", big, "--index", ix, "--batch-size", "16")
        lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("retr: embedded ")]
        assert r.returncode != 0, "the run should have filled the disk"
        assert "Traceback" not in r.stderr
        assert len(lines) == 1 and "disk is full" in lines[0] and str(ix) in lines[0], lines
        assert relib.integrity(ix) == "ok"
        after = relib.snapshot(ix)
        assert not relib.compare({p: after[p] for p in before if p in after}, before)
        assert set(before) <= set(after)
        assert relib.search_ok(ix)[0]
    finally:
        full_disk.umount(mnt)


# -- fuzzed names and files -----------------------------------------------------------------------
def test_odd_utf8_names_are_all_indexed(tmp_path):
    import fuzz_files

    names = fuzz_files.hypothesis_names(25, 1, True) + fuzz_files.special_names()
    r = fuzz_files.run_names(tmp_path, "utf8", names, (relib.DEMO_PHOTOS / "cat.jpg").read_bytes())
    assert r["ok"], r


def test_names_that_are_not_utf8_are_all_indexed(tmp_path):
    import fuzz_files

    r = fuzz_files.run_names(tmp_path, "not-utf8", fuzz_files.hypothesis_names(10, 1, False),
                             (relib.DEMO_PHOTOS / "cat.jpg").read_bytes())
    if any("surrogates not allowed" in ln for ln in r["stderr_tail"]):
        pytest.xfail("known failure: a name that is not UTF-8 stops retr index")
    assert r["ok"], r


def test_mutated_image_files_give_one_line_each_and_every_good_file_is_indexed(tmp_path):
    import fuzz_files

    m = fuzz_files.run_mutants(tmp_path, 120, seed=1, per_file_limit=10.0, timeout=600)
    assert "hang" not in m, m
    assert m["ok"], {k: m[k] for k in ("exit", "traceback", "good_missing", "neither", "both", "multi",
                                        "max_file_s", "other_lines")}
    assert m["skipped"] > 0 and m["indexed"] > len(m["good_missing"])


# -- concurrency --------------------------------------------------------------------------------
def test_a_second_run_refuses_searches_answer_and_the_server_serves_while_a_run_commits(reference, tmp_path):
    import httpx

    lib, ref_ix, _ = reference
    big = relib.synthetic_library(tmp_path / "big", 60)
    ix = tmp_path / "index"
    shutil.copytree(ref_ix, ix)
    photos = sorted(lib.glob("*.jpg"))
    errors, lat = [], []
    with relib.Server(ix) as srv:
        a = subprocess.Popen(relib.retr_cmd("index", big, "--index", ix, "--batch-size", "2", "--workers", "1"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=relib.env(RETR_TRACE_PHASES=1))
        # wait until A holds the lock and has committed a batch
        for line in a.stderr:
            if line.startswith("retr-phase: commit"):
                break
        drain = threading.Thread(target=a.stderr.read, daemon=True)
        drain.start()
        b = relib.retr("index", big, "--index", ix)
        s = relib.retr("search", "a dog", "-k", "3", "--json", "--as-text", "--index", ix)

        def client(i):
            with httpx.Client(base_url=srv.url, timeout=120) as c:
                for j in range(4):
                    t0 = time.monotonic()
                    if j % 3 == 0:
                        r = c.get("/api/search", params={"q": "people on a beach", "k": 5})
                    elif j % 3 == 1:
                        p = photos[(i + j) % len(photos)]
                        r = c.post("/api/search/image", files={"file": (p.name, p.read_bytes(), "image/jpeg")})
                    else:
                        r = c.get(f"/api/photos/{1 + (i + j) % len(photos)}/thumb")
                    lat.append(time.monotonic() - t0)
                    if r.status_code != 200:
                        errors.append((r.request.url.path, r.status_code, r.text[:200]))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        running = a.poll() is None
        assert a.wait(600) == 0
    b_lines = [ln for ln in b.stderr.splitlines() if ln.strip()]
    if running:  # B met A's lock (A was still running when B tried)
        assert b.returncode != 0 and len(b_lines) == 1 and "another `retr index`" in b_lines[0], b.stderr
    assert s.returncode == 0 and s.stdout.startswith("["), s.stderr
    assert not errors, errors
    assert len(lat) == 16
    assert relib.integrity(ix) == "ok"
    assert len(relib.snapshot(ix)) == 11 + 60


# -- the server as an attack surface --------------------------------------------------------------
def test_the_server_answers_hostile_requests_with_a_clear_4xx_and_serves_no_other_file(reference, tmp_path):
    import httpx

    import server_attack

    lib, ref_ix, _ = reference
    ix = tmp_path / "index"
    shutil.copytree(ref_ix, ix)
    (ix / "secret.txt").write_bytes(server_attack.SECRET)
    indexed = {p.read_bytes() for p in lib.iterdir()}
    with relib.Server(ix) as srv, httpx.Client(base_url=srv.url, timeout=120, follow_redirects=True) as c:
        def clear(r, *codes):
            assert r.status_code in codes, (r.request.url, r.status_code, r.text[:200])
            assert r.json()["error"]
            assert server_attack.SECRET not in r.content

        big = b"\xff\xd8\xff\xe0" + b"\x00" * (server_attack.MAX_UPLOAD + 10)
        clear(c.post("/api/search/image", files={"file": ("big.jpg", big, "image/jpeg")}), 413)
        clear(c.post("/api/search/image", files={"file": ("bomb.png", server_attack.png_bomb(30000, 30000),
                                                          "image/png")}), 413)
        clear(c.post("/api/caption", files={"file": ("b.png", server_attack.png_bomb(9000, 9000), "image/png")}), 413)
        clear(c.post("/api/search/image", files={"file": ("a.txt", b"hello", "text/plain")}), 415)
        clear(c.post("/api/caption", files={"file": ("a.jpg", b"not a jpeg" * 50, "image/jpeg")}), 415)
        for pid in server_attack.id_fuzz(random.Random(0), 0):
            for route in server_attack.PHOTO_ROUTES:
                r = c.get(route.format(pid))
                assert r.url.host == "127.0.0.1"
                assert r.status_code in ((200, 400, 404, 422) if server_attack.is_int(pid) else (400, 404, 422)), \
                    (route.format(pid), r.status_code, r.text[:200])
                assert server_attack.SECRET not in r.content and b"root:x:0:0" not in r.content
                if r.status_code == 200 and route.endswith("/file"):
                    assert r.content in indexed
        for path in server_attack.TRAVERSAL:
            r = c.get(path)
            assert r.status_code < 500 and server_attack.SECRET not in r.content and b"root:x:0:0" not in r.content
        clear(c.get("/api/status", headers={"Host": "evil.example"}), 400)
        clear(c.get("/api/status", headers={"Host": f"evil.example:{srv.port}"}), 400)
        assert c.get("/api/status", headers={"Host": f"localhost:{srv.port}"}).status_code == 200
        assert srv.rss_peak_mb() < 1500
