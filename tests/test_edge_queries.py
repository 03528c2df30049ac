"""Queries as users type them: mistyped photo paths, odd file names, photos over the size limit,
hits whose files are gone. Each through ``python -m retrieval`` on a small folder named after its case."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import DEMO, run_retr


@pytest.fixture(scope="module")
def small_library(tmp_path_factory):
    """Three demo photos and one whose name holds a newline, indexed: (index folder, library)."""
    root = tmp_path_factory.mktemp("small_library")
    lib = root / "library"
    lib.mkdir()
    for n in ("cat.jpg", "horses.jpg", "coffee.jpg"):
        shutil.copy(DEMO / n, lib / n)
    shutil.copy(DEMO / "rocket.jpg", lib / "two\nlines.jpg")
    idx = root / "idx"
    run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    return idx, lib


@pytest.mark.parametrize("query", ["My Photos 2024/beach.jpg", "holiday/beach", "beach photo.jpeg"])
def test_a_mistyped_photo_path_is_one_line_not_a_word_search(small_library, query):
    idx, _ = small_library
    p = run_retr("search", query, "--index", idx, check=1)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such" in lines[0] and "--as-text" in lines[0], p.stderr
    assert not p.stdout.strip()
    run_retr("search", query, "--index", idx, "--as-text", "-k", "1", check=0)  # words, when asked for


def test_a_photo_path_with_a_newline_is_a_photo_query(small_library):
    idx, lib = small_library
    p = run_retr("search", lib / "two\nlines.jpg", "--index", idx, "-k", "1", "--json", check=0)
    hit = json.loads(p.stdout)[0]
    assert hit["path"] == str(lib / "two\nlines.jpg") and hit["score"] > 0.99


def test_the_max_megapixels_hint_names_an_option_the_command_has(small_library, tmp_path):
    """caption and search refuse a photo over the limit with `raise --max-megapixels`, and take it."""
    from PIL import Image

    idx, _ = small_library
    big = tmp_path / "over_the_size_limit" / "wide.png"
    big.parent.mkdir()
    Image.open(DEMO / "cat.jpg").convert("RGB").resize((2000, 1500)).save(big)
    for cmd in (("caption", big), ("search", big, "--index", idx)):
        p = run_retr(*cmd, "--max-megapixels", "1", check=1)
        assert "raise --max-megapixels" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
        run_retr(*cmd, "--max-megapixels", "4", check=0)


def test_search_marks_hits_whose_files_are_gone(tmp_path):
    lib = tmp_path / "photos_deleted_after_indexing"
    lib.mkdir()
    for n in ("cat.jpg", "horses.jpg"):
        shutil.copy(DEMO / n, lib / n)
    idx = tmp_path / "idx"
    run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    os.unlink(lib / "cat.jpg")
    hits = json.loads(run_retr("search", "a cat", "--index", idx, "--json", check=0).stdout)
    assert {os.path.basename(h["path"]): h["missing"] for h in hits} == {"cat.jpg": True, "horses.jpg": False}
    rows = run_retr("search", "a cat", "--index", idx, check=0).stdout.strip().splitlines()
    assert rows[0].endswith("cat.jpg\t(missing: no longer on disk)") and rows[1].endswith("horses.jpg"), rows
