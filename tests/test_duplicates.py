"""retr duplicates: perceptual hashes kept at index time, near-duplicate groups, older indexes."""
from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
from PIL import Image

from conftest import DEMO, run_retr
from retrieval.duplicates import components, duplicate_pairs, find_duplicates, popcount
from retrieval.indexing.indexer import index_folder
from retrieval.io.phash import hash_distance, perceptual_hash
from retrieval.store.database import Store


def test_hash_distance_and_popcount():
    assert hash_distance("0" * 16, "f" * 16) == 64
    assert hash_distance("00000000000000ff", "0000000000000000") == 8
    assert popcount(np.array([0, 1, 3, 2 ** 64 - 1], np.uint64)).tolist() == [0, 1, 2, 64]


def test_rule_and_components_without_photos():
    v = np.eye(4, dtype=np.float32)
    v[1] = (v[0] + 0.1 * v[2]) / np.linalg.norm(v[0] + 0.1 * v[2])  # 0 and 1: cosine 0.995
    hashes = ["0" * 16, "0" * 15 + "f", "f" * 16, "f" * 16]  # 0-1: 4 bits; 2-3: same hash, orthogonal vectors
    i, j, s, d = duplicate_pairs(v, hashes, threshold=0.95, max_hash_distance=24, sure_hash_distance=6)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 1)]  # 2-3 are never compared: cosine 0 is below the floor
    # a far hash vetoes an embedding match; an unknown hash leaves the embedding to decide
    assert len(duplicate_pairs(v, ["0" * 16, "f" * 16, None, None], threshold=0.95)[0]) == 0
    assert len(duplicate_pairs(v, [None, "f" * 16, None, None], threshold=0.95)[0]) == 1
    assert components(5, np.array([0, 3, 1]), np.array([1, 4, 3])) == [[0, 1, 3, 4]]


def _library(folder):
    folder.mkdir()
    for n in ("cat.jpg", "coffee.jpg", "horses.jpg", "astronaut.jpg"):
        shutil.copy(DEMO / n, folder / n)
    cat = Image.open(folder / "cat.jpg")
    cat.resize((cat.width // 2, cat.height // 2), Image.LANCZOS).save(folder / "cat small.jpg", quality=85)
    Image.open(folder / "coffee.jpg").save(folder / "coffee recompressed.jpg", quality=30)
    w, h = cat.size
    cat.crop((w // 20, h // 20, w, h)).save(folder / "cat cropped.jpg", quality=90)


def _groups(groups):
    return sorted(sorted(m.path.rsplit("/", 1)[1] for m in g.photos) for g in groups)


def test_resized_recompressed_and_cropped_copies_grouped(tmp_path, encoder):
    _library(tmp_path / "p")
    index_folder(tmp_path / "p", tmp_path / "idx", encoder=encoder)
    store = Store(tmp_path / "idx")
    try:
        assert all(len(v[3]) == 16 for v in store.photo_fingerprints().values())
        groups, unhashed = find_duplicates(store)
    finally:
        store.close()
    assert unhashed == 0
    # different photos (horses, astronaut, cat vs coffee) are never grouped
    assert _groups(groups) == [["cat cropped.jpg", "cat small.jpg", "cat.jpg"],
                               ["coffee recompressed.jpg", "coffee.jpg"]]
    assert groups[0].photos[0].path.endswith("/cat.jpg")  # the most pixels first


def test_cli_duplicates_json_and_older_index_hashed_without_reembedding(tmp_path, encoder):
    _library(tmp_path / "p")
    idx = tmp_path / "idx"
    index_folder(tmp_path / "p", idx, encoder=encoder)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "p").iterdir()}
    # an index made before hashes were kept: schema at the first revision, no phash column
    with sqlite3.connect(idx / "retr.sqlite") as c:
        for sql in ("DROP TRIGGER ocr_texts_ai", "DROP TRIGGER ocr_texts_ad", "DROP TRIGGER ocr_texts_au",
                    "DROP TABLE ocr_fts", "DROP TABLE ocr_texts"):  # and before text in photos was kept
            c.execute(sql)
        c.execute("ALTER TABLE photos DROP COLUMN phash")
        c.execute("DROP TABLE IF EXISTS photo_metadata")  # later revisions' tables
        c.execute("DROP TABLE IF EXISTS concepts")
        c.execute("UPDATE alembic_version SET version_num = '0001'")
    p = run_retr("duplicates", "--index", idx, "--json", check=0)  # migrated on open: no hashes yet
    assert "no perceptual hash yet" in p.stderr
    rep = index_folder(tmp_path / "p", idx, encoder=encoder)
    assert (rep.added, rep.updated, rep.unchanged) == (0, 0, 7)  # nothing re-embedded
    p = run_retr("duplicates", "--index", idx, "--json", check=0)
    got = json.loads(p.stdout)
    assert [sorted(m["path"].rsplit("/", 1)[1] for m in g["photos"]) for g in got] == \
        [["cat cropped.jpg", "cat small.jpg", "cat.jpg"], ["coffee recompressed.jpg", "coffee.jpg"]]
    assert all(g["kind"] == "near-duplicate" and isinstance(g["photos"][0]["hash_distance"], int) for g in got)
    strict = json.loads(run_retr("duplicates", "--index", idx, "--threshold", "1.0", "--json", check=0).stdout)
    assert len(strict) >= 1 and all(len(g["photos"]) >= 2 for g in strict)  # close hashes alone still group
    assert sum(len(g["photos"]) for g in strict) <= sum(len(g["photos"]) for g in got)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "p").iterdir()} == before  # nothing touched


def test_perceptual_hash_survives_resizing():
    im = Image.open(DEMO / "horses.jpg")
    assert hash_distance(perceptual_hash(im), perceptual_hash(im.resize((im.width // 3, im.height // 3)))) <= 4
    assert hash_distance(perceptual_hash(im), perceptual_hash(Image.open(DEMO / "cat.jpg"))) > 16


def test_bursts_one_camera_two_seconds(tmp_path, encoder):
    from test_metadata import make_photo

    from retrieval.duplicates import burst_runs

    assert burst_runs({1: ("c", "2024-05-01T10:00:00"), 2: ("c", "2024-05-01T10:00:02"),
                       3: ("c", "2024-05-01T10:00:05"), 4: ("d", "2024-05-01T10:00:01")}) == [[1, 2]]
    (tmp_path / "p").mkdir()
    for name, base, date, model in (("a.jpg", "cat.jpg", "2024:05:01 10:00:00", "X100"),
                                    ("b.jpg", "coffee.jpg", "2024:05:01 10:00:01", "X100"),
                                    ("c.jpg", "horses.jpg", "2024:05:01 10:00:09", "X100"),
                                    ("d.jpg", "rocket.jpg", "2024:05:01 10:00:01", "Other")):
        make_photo(tmp_path / "p" / name, base=base, date=date, make="Fuji", model=model)
    index_folder(tmp_path / "p", tmp_path / "idx", encoder=encoder)
    store = Store(tmp_path / "idx")
    try:
        groups, _ = find_duplicates(store)
    finally:
        store.close()
    assert [(g.kind, [m.path.rsplit("/", 1)[1] for m in g.photos]) for g in groups] == [("burst", ["a.jpg", "b.jpg"])]
