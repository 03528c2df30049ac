"""File names a real library meets: bytes that are not UTF-8, and names a terminal cannot show.

Each case indexes a small folder named after its edge case, through ``python -m retrieval``.
"""
from __future__ import annotations

import base64
import json
import os
import shutil

import pytest

from conftest import DEMO, run_retr

#: a name written by an old camera or another system: bytes \\xff\\xfe are not UTF-8
RAW_NAME = b"caf\xff\xfe.jpg"


@pytest.fixture(scope="module")
def non_utf8_names(tmp_path_factory):
    """A folder with a photo whose name is not valid UTF-8, indexed (index folder, library, photo path)."""
    if os.fsencode("x") != b"x" or not hasattr(os, "fsencode"):  # pragma: no cover
        pytest.skip("a filesystem encoding other than UTF-8")
    root = tmp_path_factory.mktemp("non_utf8_names")
    lib = root / "library"
    lib.mkdir()
    shutil.copy(DEMO / "cat.jpg", lib / "cat.jpg")
    raw = os.path.join(os.fsencode(lib), RAW_NAME)
    try:
        shutil.copy(DEMO / "horses.jpg", raw)
    except OSError as e:  # pragma: no cover - a filesystem that refuses such names
        pytest.skip(f"this filesystem refuses a non-UTF-8 name ({e})")
    idx = root / "idx"
    p = run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    assert "added 2" in p.stdout and "failed 0" in p.stdout, p.stdout + p.stderr
    return idx, lib, raw


def test_a_non_utf8_name_is_indexed_found_and_given_back_losslessly(non_utf8_names):
    """--json: ``path`` readable (undecodable bytes replaced), ``path_b64`` the raw bytes; the plain
    output escapes the bytes; ``b64:`` + path_b64 is accepted back as a photo query."""
    idx, lib, raw = non_utf8_names
    p = run_retr("search", "horses on a green field", "--index", idx, "-k", "1", "--json", check=0)
    hit = json.loads(p.stdout)[0]
    assert base64.b64decode(hit["path_b64"]) == raw
    assert hit["path"] == raw.decode("utf-8", "replace")
    p = run_retr("search", "horses on a green field", "--index", idx, "-k", "1", check=0)
    assert p.stdout.strip().endswith(str(lib) + "/caf\\xff\\xfe.jpg"), p.stdout
    p = run_retr("search", "b64:" + hit["path_b64"], "--index", idx, "-k", "1", "--json", check=0)
    again = json.loads(p.stdout)[0]
    assert again["path_b64"] == hit["path_b64"] and again["score"] > 0.99
    p = run_retr("search", "b64:" + base64.b64encode(raw + b"x").decode(), "--index", idx, check=1)
    assert len(p.stderr.strip().splitlines()) == 1 and "no such image file" in p.stderr, p.stderr
    # an unchanged second run keeps it (no "removed", no re-embedding)
    p = run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    assert "unchanged 2" in p.stdout, p.stdout


def test_a_non_utf8_name_is_served(non_utf8_names):
    """``retr serve``: the photo's JSON, thumbnail and file routes work for such a name."""
    from fastapi.testclient import TestClient

    from retrieval.app.server.app import create_app

    idx, _, raw = non_utf8_names
    client = TestClient(create_app(idx))
    hits = client.get("/api/search", params={"q": "horses on a green field", "k": 2}).json()["hits"]
    hit = next(h for h in hits if h["path_b64"] == base64.b64encode(raw).decode())
    assert hit["path"] == raw.decode("utf-8", "replace") and hit["name"] == "caf\ufffd\ufffd.jpg"
    pid = hit["photo_id"]
    info = client.get(f"/api/photos/{pid}").json()
    assert base64.b64decode(info["path_b64"]) == raw
    r = client.get(f"/api/photos/{pid}/thumb")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    r = client.get(f"/api/photos/{pid}/file")
    assert r.status_code == 200 and r.content == (DEMO / "horses.jpg").read_bytes()


def test_paths_are_stored_losslessly():
    """The store's path encoding: UTF-8 names unchanged, other bytes escaped and given back exactly."""
    from retrieval.io.paths import from_db, to_db

    for raw in (b"/photos/cat.jpg", b"/p/caf\xff\xfe.jpg", b"/p/back\\slash\xff.jpg", b"/p/\\x41\xc3.jpg",
                "/p/日本/🙂.jpg".encode()):
        p = os.fsdecode(raw)
        stored = to_db(p)
        stored.encode("utf-8")  # valid text for SQLite and PostgreSQL
        assert from_db(stored) == p and os.fsencode(from_db(stored)) == raw
        if b"\xff" not in raw and b"\xc3." not in raw:
            assert stored == p  # valid UTF-8 paths are stored as they are


@pytest.fixture(scope="module")
def names_a_terminal_cannot_show(tmp_path_factory):
    """Photos named in Chinese, with an emoji and in Arabic, indexed: (index folder, library)."""
    root = tmp_path_factory.mktemp("names_a_terminal_cannot_show")
    lib = root / "library"
    lib.mkdir()
    for src, name in (("cat.jpg", "猫.jpg"), ("horses.jpg", "🐴 horses.jpg"), ("coffee.jpg", "قهوة.jpg")):
        shutil.copy(DEMO / src, lib / name)
    idx = root / "idx"
    run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    return idx, lib


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"}, {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}],
                         ids=["PYTHONIOENCODING=ascii", "LC_ALL=C"])
def test_a_terminal_that_is_not_utf8_gets_every_row(names_a_terminal_cannot_show, env):
    """--json is valid JSON (ASCII escapes) with the exact names; the plain output escapes what the
    terminal cannot show, one row per hit, exit 0."""
    idx, lib = names_a_terminal_cannot_show
    p = run_retr("search", "a cat", "--index", idx, "-k", "3", "--json", env=env, check=0)
    hits = json.loads(p.stdout)
    assert sorted(os.path.basename(h["path"]) for h in hits) == sorted(["猫.jpg", "🐴 horses.jpg", "قهوة.jpg"])
    p.stdout.encode("ascii")
    p = run_retr("search", "a cat", "--index", idx, "-k", "3", env=env, check=0)
    rows = p.stdout.strip().splitlines()
    assert len(rows) == 3 and rows[0].endswith("\\u732b.jpg"), p.stdout
    p.stdout.encode("ascii")
    p = run_retr("caption", lib / "猫.jpg", "--json", env=env, check=0)
    assert json.loads(p.stdout)["path"].endswith("猫.jpg")
