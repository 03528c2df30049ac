"""Real photo libraries are messy: the real CLI on one fixture folder per edge case."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import messy
from conftest import DEMO, run_retr


@pytest.fixture(scope="module")
def messy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("messy") / "library"
    bad = messy.build(root)
    outside = tmp_path_factory.mktemp("outside")
    shutil.copy(DEMO / "rocket.jpg", outside / "linked_rocket.jpg")
    os.symlink(outside, root / "symlink_outside")  # a folder outside the tree, followed once
    os.symlink(root, root / "good" / "loop")  # a loop back to the root: must not recurse forever
    idx = root / "index"  # the index inside the indexed folder: never indexes itself
    names_dir = root / "odd_names"
    names_dir.mkdir()
    odd = messy.odd_names(names_dir)
    p = run_retr("index", root, "--index", idx, "--no-captions")
    return {"root": root, "bad": bad, "idx": idx, "p": p, "odd": odd}


def _indexed(idx):
    from retrieval.store.database import Store

    ids, _ = Store(idx).load_vectors("photos")
    from sqlalchemy import select

    from retrieval.store.database import Photo

    st = Store(idx)
    with st.session() as s:
        return sorted(s.execute(select(Photo.path)).scalars())


def test_messy_library_reports_each_bad_file_once_and_indexes_the_rest(messy_run):
    p, root = messy_run["p"], messy_run["root"]
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    failed = [f for fs in messy_run["bad"].values() for f in fs]
    for name in failed:
        lines = [l for l in p.stderr.splitlines() if l.startswith("retr: skipped") and name in l]
        assert len(lines) == 1, (name, p.stderr)
    assert f"failed {len(failed)}" in p.stdout
    assert "megapixels" in next(l for l in p.stderr.splitlines() if "bomb.png" in l)
    paths = _indexed(messy_run["idx"])
    rel = {os.path.relpath(x, root) for x in paths}
    expected = {"good/astronaut.jpg", "good/cat.jpg", "good/coffee.jpg", "wrong_extension/actually_png.jpg",
                "palette_transparent/palette.png", "rgba_screenshot/screenshot.png", "cmyk_jpeg/cmyk.jpg",
                "greyscale_jpeg/grey.jpg", "animated_gif/anim.gif", "multipage_tiff/pages.tiff",
                "panorama/panorama.jpg", "exif_rotated/upright.jpg", "exif_rotated/rotated_tagged.jpg",
                "heic_photo/phone.heic", "avif_photo/modern.avif", "symlink_outside/linked_rocket.jpg"}
    expected |= {f"odd_names/{n}" for n in messy_run["odd"]}
    assert rel == expected, rel ^ expected
    assert not any("index" in r.split(os.sep)[0] for r in rel)


def test_second_run_changes_nothing(messy_run):
    p = run_retr("index", messy_run["root"], "--index", messy_run["idx"], "--no-captions")
    n_bad = sum(len(v) for v in messy_run["bad"].values())
    assert "added 0, updated 0, moved 0, removed 0" in p.stdout and f"failed {n_bad}" in p.stdout, p.stdout


def test_good_photos_are_searchable(messy_run):
    hits = json.loads(run_retr("search", "an astronaut", "--index", messy_run["idx"], "--json", "-k", "3",
                               check=0).stdout)
    assert any(h["path"].endswith("astronaut.jpg") or h["path"].endswith("screenshot.png") for h in hits)


def test_odd_file_names_round_trip_in_json(messy_run):
    hits = json.loads(run_retr("search", DEMO / "cat.jpg", "--index", messy_run["idx"], "--json", "-k", "40",
                               check=0).stdout)
    got = {os.path.basename(h["path"]) for h in hits}
    assert set(messy_run["odd"]) <= got


def test_exif_rotation_embeds_as_seen(messy_run):
    from retrieval.store.database import Photo, Store
    from sqlalchemy import select

    st = Store(messy_run["idx"])
    with st.session() as s:
        rows = {os.path.basename(p): np.frombuffer(v, np.float32) for p, v in
                s.execute(select(Photo.path, Photo.vector).where(Photo.path.like("%exif_rotated%"))).all()}
        w = dict(s.execute(select(Photo.path, Photo.width).where(Photo.path.like("%exif_rotated%"))).all())
    assert float(rows["upright.jpg"] @ rows["rotated_tagged.jpg"]) > 0.98
    assert len(set(w.values())) == 1  # stored upright size, not the rotated one


def test_include_hidden_and_exclude(tmp_path):
    d = tmp_path / "lib"
    d.mkdir()
    messy.hidden_and_clutter(d)
    shutil.copy(DEMO / "coffee.jpg", d / "coffee.jpg")
    shutil.copy(DEMO / "horses.jpg", d / "skipme.jpg")
    p = run_retr("index", d, "--index", tmp_path / "i1", "--no-captions", "--exclude", "skip*", check=0)
    assert "added 1," in p.stdout and "failed 0" in p.stdout
    p = run_retr("index", d, "--index", tmp_path / "i2", "--no-captions", "--include-hidden", check=0)
    # coffee, skipme, .dotfile.jpg, .hidden/secret.jpg; clutter (@eaDir, ._*) stays out
    assert "added 4," in p.stdout, p.stdout


def test_unreadable_folder_is_reported_not_fatal(tmp_path):
    from retrieval.io.files import walk_images

    (tmp_path / "ok").mkdir()
    (tmp_path / "locked").mkdir()
    shutil.copy(DEMO / "cat.jpg", tmp_path / "ok" / "cat.jpg")
    real = os.scandir
    errors = []

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    mp = pytest.MonkeyPatch()
    mp.setattr(os, "scandir", scandir)
    try:
        found = list(walk_images(tmp_path, on_error=lambda p, r: errors.append((p, r))))
    finally:
        mp.undo()
    assert [os.path.basename(f.path) for f in found] == ["cat.jpg"]
    assert errors and errors[0][0].endswith("locked") and "Permission denied" in errors[0][1]


def test_folder_renamed_and_deleted_between_runs(tmp_path):
    lib = tmp_path / "lib"
    (lib / "trip").mkdir(parents=True)
    (lib / "old").mkdir()
    shutil.copy(DEMO / "eagle.jpg", lib / "trip" / "eagle.jpg")
    shutil.copy(DEMO / "cat.jpg", lib / "old" / "cat.jpg")
    idx = tmp_path / "idx"
    run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    (lib / "trip").rename(lib / "trip 2024")
    shutil.rmtree(lib / "old")
    p = run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    assert "added 0, updated 0, moved 1, removed 1" in p.stdout, p.stdout


def test_corrupt_faiss_file_is_rebuilt_from_database(tmp_path):
    idx = tmp_path / "idx"
    run_retr("index", DEMO / "cat.jpg", "--index", idx, "--no-captions", check=0)
    (idx / "photos.faiss").write_bytes(b"garbage")
    p = run_retr("search", "a cat", "--index", idx, "--json", check=0)
    assert json.loads(p.stdout)[0]["path"].endswith("cat.jpg")
    assert "rebuilt" in p.stderr


def test_older_index_format_gives_rebuild_instruction(tmp_path):
    import sqlite3

    idx = tmp_path / "idx"
    run_retr("index", DEMO / "cat.jpg", "--index", idx, "--no-captions", check=0)
    with sqlite3.connect(idx / "retr.sqlite") as c:
        c.execute("UPDATE meta SET value='0' WHERE key='format_version'")
    p = run_retr("search", "a cat", "--index", idx)
    assert p.returncode == 1 and "format 0" in p.stderr and "--rebuild" in p.stderr


@pytest.mark.parametrize("query", ["", "   ", "word " * 2000, "一只猫坐在桌子上"])
def test_odd_queries(tmp_path_factory, query):
    idx = tmp_path_factory.getbasetemp() / "oddq_idx"
    if not idx.exists():
        run_retr("index", DEMO, "--index", idx, "--no-captions", check=0)
    p = run_retr("search", query, "--index", idx, "--json", "-k", "3")
    if query.strip():
        assert p.returncode == 0 and len(json.loads(p.stdout)) == 3, p.stderr
    else:
        assert p.returncode == 1 and "empty query" in p.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_keeps_finished_photos_and_next_run_resumes(tmp_path, sig):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(6):
        for n in os.listdir(DEMO):
            shutil.copy(DEMO / n, lib / f"{i}_{n}")
    total = len(os.listdir(lib))
    idx = tmp_path / "idx"
    env = dict(os.environ)
    env.pop("RETR_INDEX", None)
    proc = subprocess.Popen([sys.executable, "-m", "retrieval", "index", str(lib), "--index", str(idx),
                             "--no-captions", "--batch-size", "4"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    from retrieval.store.database import Store

    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            if Store(idx).count("photos") >= 8:
                break
        except Exception:  # noqa: BLE001 - not created yet
            pass
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("indexing finished before the signal arrived")
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    kept = Store(idx).count("photos")
    assert 8 <= kept < total
    p = run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    assert f"added {total - kept}," in p.stdout and f"unchanged {kept}," in p.stdout, p.stdout
