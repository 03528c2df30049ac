"""Photo metadata at index time (EXIF dates with and without offsets, camera, lens, GPS -> place
name; broken EXIF left empty), filters on it in Python, the CLI and the API, and query operators."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3

import pytest
from PIL import Image

from conftest import DEMO, run_retr

from retrieval.io.exif import read_metadata
from retrieval.io.places import places_of
from retrieval.query.filters import Filters

OSLO, PARIS, SYDNEY, NEW_YORK = (59.9139, 10.7522), (48.8566, 2.3522), (-33.8688, 151.2093), (40.7128, -74.0060)


def _dms(x: float) -> tuple[float, float, float]:
    x = abs(x)
    d, m = int(x), int((x - int(x)) * 60)
    return float(d), float(m), round((x - d - m / 60) * 3600, 2)


def make_photo(path, base="cat.jpg", date=None, offset=None, make=None, model=None, lens=None, gps=None,
               raw_exif: bytes | None = None):
    """A copy of a demo photo with this EXIF, written by Pillow."""
    im = Image.open(DEMO / base).convert("RGB")
    if raw_exif is not None:
        im.save(path, exif=raw_exif)
        return path
    ex = Image.Exif()
    if make:
        ex[0x010F] = make
    if model:
        ex[0x0110] = model
    sub = ex.get_ifd(0x8769)
    if date:
        sub[0x9003] = date
    if offset:
        sub[0x9011] = offset
    if lens:
        sub[0xA434] = lens
    if gps:
        g = ex.get_ifd(0x8825)
        g[1], g[2] = ("N" if gps[0] >= 0 else "S"), _dms(gps[0])
        g[3], g[4] = ("E" if gps[1] >= 0 else "W"), _dms(gps[1])
    im.save(path, exif=ex)
    return path


def test_exif_date_with_and_without_offset_camera_lens_gps(tmp_path):
    md = read_metadata(make_photo(tmp_path / "a.jpg", date="2019:07:14 18:30:05", offset="+02:00", make="Canon",
                                  model="Canon EOS 80D", lens="EF-S 18-135mm", gps=OSLO))
    assert (md.taken, md.taken_offset, md.taken_source) == ("2019-07-14T18:30:05", "+02:00", "exif")
    assert (md.camera, md.lens) == ("Canon EOS 80D", "EF-S 18-135mm")
    assert md.latitude == pytest.approx(OSLO[0], abs=1e-3) and md.longitude == pytest.approx(OSLO[1], abs=1e-3)
    md = read_metadata(make_photo(tmp_path / "b.jpg", date="2021:03:02 07:00:00", make="Apple", model="iPhone 12",
                                  gps=SYDNEY))
    assert (md.taken, md.taken_offset, md.camera) == ("2021-03-02T07:00:00", None, "Apple iPhone 12")
    assert md.latitude < 0 and md.longitude > 0


@pytest.mark.parametrize("kw", [dict(date="0000:00:00 00:00:00"), dict(date="2999:01:01 00:00:00"),
                                dict(date="2019:13:40 25:00:00"), dict(date="garbage", offset="+99:00"),
                                dict(raw_exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff garbage")])
def test_broken_or_absurd_exif_leaves_the_date_to_the_file_time(tmp_path, kw):
    p = make_photo(tmp_path / "x.jpg", **kw)
    os.utime(p, (1_600_000_000, 1_600_000_000))
    md = read_metadata(p, os.stat(p).st_mtime)
    assert md.taken_source == "mtime" and md.taken == dt.datetime.fromtimestamp(1_600_000_000).isoformat()
    assert md.taken_offset is None


def test_gps_out_of_range_or_null_island_is_no_position(tmp_path):
    assert read_metadata(make_photo(tmp_path / "z.jpg", gps=(0.0, 0.0))).latitude is None
    p = make_photo(tmp_path / "far.jpg", gps=(10.0, 10.0))
    im = Image.open(p)
    ex = im.getexif()
    ex.get_ifd(0x8825)[2] = (95.0, 0.0, 0.0)  # latitude 95 degrees
    im.save(tmp_path / "bad.jpg", exif=ex)
    assert read_metadata(tmp_path / "bad.jpg").latitude is None
    assert read_metadata(tmp_path / "missing.jpg", 0.0).taken_source == "mtime"  # no file: no EXIF, no error


def test_places_of_known_cities_and_the_open_sea():
    got = places_of([OSLO, PARIS, SYDNEY, NEW_YORK, (0.0, -30.0)])
    assert [p.country for p in got[:4]] == ["Norway", "France", "Australia", "United States"]
    assert got[0].city == "Oslo" and got[1].city == "Paris" and got[2].city == "Sydney"
    assert "|new york|" in got[3].key and got[4] is None


# -- an index of photos with metadata ---------------------------------------------------------
LIBRARY = {  # name: (demo photo, EXIF)
    "oslo_cat.jpg": ("cat.jpg", dict(date="2019:07:14 18:30:00", offset="+02:00", make="Canon",
                                     model="Canon EOS 80D", gps=OSLO)),
    "paris_coffee.jpg": ("coffee.jpg", dict(date="2021:03:02 09:00:00", make="Apple", model="iPhone 12",
                                            gps=PARIS)),
    "trip/sydney_kites.jpg": ("kites_beach.jpg", dict(date="2023:01:20 12:00:00", make="Apple",
                                                      model="iPhone 12", gps=SYDNEY)),
    "trip/horses.jpg": ("horses.jpg", dict(date="2023:08:05 17:00:00", make="NIKON CORPORATION",
                                           model="NIKON D750")),
    "broken.jpg": ("rocket.jpg", dict(date="0000:00:00 00:00:00", gps=(0.0, 0.0))),
}


@pytest.fixture(scope="module")
def meta_index(tmp_path_factory, encoder):
    from retrieval.indexing.indexer import index_folder

    d = tmp_path_factory.mktemp("meta")
    lib = d / "library"
    for name, (base, kw) in LIBRARY.items():
        (lib / name).parent.mkdir(parents=True, exist_ok=True)
        make_photo(lib / name, base, **kw)
    os.utime(lib / "broken.jpg", (1_600_000_000, 1_600_000_000))  # 2020-09-13
    rep = index_folder(lib, d / "index", encoder=encoder)
    assert rep.failed == 0 and rep.added == len(LIBRARY)  # broken EXIF: still indexed
    return lib, d / "index"


def _names(hits):
    return [os.path.relpath(h.path, os.path.dirname(h.path)) for h in hits]


def test_filters_dates_places_cameras_folders(meta_index):
    from retrieval.search import Index

    lib, idx = meta_index
    ix = Index(idx)
    every = {h.path: h for h in ix.search("a photo", k=10)}
    cat = every[str(lib / "oslo_cat.jpg")]
    assert (cat.taken, cat.place, cat.camera) == ("2019-07-14T18:30:00", "Oslo, Norway", "Canon EOS 80D")
    broken = every[str(lib / "broken.jpg")]
    assert broken.place is None and broken.taken == dt.datetime.fromtimestamp(1_600_000_000).isoformat()

    def found(**kw):
        return sorted(os.path.basename(h.path) for h in ix.search("a photo", k=10, filters=Filters(**kw)))

    assert found(since="2021-01-01", until="2024-01-01") == ["horses.jpg", "paris_coffee.jpg", "sydney_kites.jpg"]
    assert found(place="Norway") == ["oslo_cat.jpg"] and found(place="fr") == ["paris_coffee.jpg"]
    assert found(camera="iphone") == ["paris_coffee.jpg", "sydney_kites.jpg"]
    assert found(folder="trip") == ["horses.jpg", "sydney_kites.jpg"]
    assert found(folder=str(lib / "trip")) == ["horses.jpg", "sydney_kites.jpg"]
    assert found(months=(6, 7, 8)) == ["horses.jpg", "oslo_cat.jpg"]
    assert found(place="Australia", camera="nikon") == [] and ix.matched == 0
    dated = ix.search("a photo", k=10, sort="date")
    assert [h.taken for h in dated] == sorted((h.taken for h in dated), reverse=True)


def test_older_index_gets_metadata_without_reembedding(meta_index, tmp_path, encoder):
    from retrieval.indexing.indexer import index_folder
    from retrieval.search import Index

    lib, idx = meta_index
    old = tmp_path / "old"
    shutil.copytree(idx, old)
    from alembic.script import ScriptDirectory

    from retrieval.store.database import MIGRATIONS_DIR

    before = ScriptDirectory(str(MIGRATIONS_DIR)).get_revision("photo_metadata").down_revision
    with sqlite3.connect(old / "retr.sqlite") as c:  # as an index made before metadata was read
        c.execute("DROP TABLE photo_metadata")
        for sql in ("DROP TRIGGER ocr_texts_ai", "DROP TRIGGER ocr_texts_ad", "DROP TRIGGER ocr_texts_au",
                    "DROP TABLE ocr_fts", "DROP TABLE ocr_texts"):  # a later revision's tables
            c.execute(sql)
        c.execute("DROP TABLE IF EXISTS concepts")  # a later revision's table
        c.execute("UPDATE alembic_version SET version_num = ?", (before,))
    rep = index_folder(lib, old, encoder=encoder)
    assert (rep.added, rep.updated, rep.unchanged) == (0, 0, len(LIBRARY))
    hits = Index(old).search("a photo", k=10, filters=Filters(place="Sydney"))
    assert [os.path.basename(h.path) for h in hits] == ["sydney_kites.jpg"]


def test_cli_parses_dates_and_places_and_says_so(meta_index):
    lib, idx = meta_index
    p = run_retr("search", "a photo 2023", "--index", idx, "--json", check=0)
    assert 'searched "a photo" from 2023-01-01 to 2023-12-31' in p.stderr
    assert sorted(os.path.basename(h["path"]) for h in json.loads(p.stdout)) == ["horses.jpg", "sydney_kites.jpg"]
    p = run_retr("search", "a cat in Norway", "--index", idx, check=0)
    assert 'searched "a cat" in Norway' in p.stderr and p.stdout.strip().endswith("oslo_cat.jpg")
    p = run_retr("search", "a photo 2023", "--literal", "--index", idx, check=0)
    assert "searched" not in p.stderr and len(p.stdout.splitlines()) == len(LIBRARY)
    p = run_retr("search", "a photo", "--after", "2100", "--index", idx, check=0)
    assert p.stdout == "" and p.stderr.strip() == "retr: no photo matches the filters (from 2100-01-01)"
    p = run_retr("search", "a photo", "--before", "2020-13", "--index", idx)
    assert p.returncode == 2 and "not a date" in p.stderr
    p = run_retr("search", "a photo", "--camera", "iphone", "--sort", "date", "--index", idx, check=0)
    assert [ln.split("\t")[1][:4] for ln in p.stdout.splitlines()] == ["2023", "2021"]


def test_api_filters(meta_index, encoder):
    from fastapi.testclient import TestClient

    from retrieval.app.server.app import create_app

    _, idx = meta_index
    with TestClient(create_app(idx, encoder=encoder)) as c:
        r = c.get("/api/search", params={"q": "a photo", "camera": "iphone", "after": "2022"}).json()
        assert [h["name"] for h in r["hits"]] == ["sydney_kites.jpg"] and r["matched"] == 1
        assert r["hits"][0]["place"] == "Sydney, New South Wales, Australia" and r["hits"][0]["taken"].startswith("2023")
        r = c.get("/api/search", params={"q": "horses in summer"}).json()
        assert r["understood"] == 'searched "horses" in Jun, Jul, Aug'
        assert sorted(h["name"] for h in r["hits"]) == ["horses.jpg", "oslo_cat.jpg"]
        r = c.get("/api/search", params={"q": "a photo", "folder": "trip", "sort": "date"}).json()
        assert [h["name"] for h in r["hits"]] == ["horses.jpg", "sydney_kites.jpg"]
        assert c.get("/api/search", params={"q": "a photo", "place": "Mars"}).json()["matched"] == 0
        assert c.get("/api/search", params={"q": "a photo", "after": "soon"}).status_code == 400
        with open(DEMO / "horses.jpg", "rb") as f:  # a photo query with filters
            r = c.post("/api/search/image", params={"place": "Australia"}, files={"file": ("h.jpg", f, "image/jpeg")})
        assert [h["name"] for h in r.json()["hits"]] == ["sydney_kites.jpg"] and r.json()["matched"] == 1


def test_operators_steer_the_ranking(demo_index):
    from retrieval.search import Index

    ix = Index(demo_index)

    def rank(name, **kw):
        hits = ix.search("an animal", k=11, **kw)
        return [os.path.basename(h.path) for h in hits].index(name)

    # steered searches rank by the embedding alone, so the plain search they are compared with does too
    plain = rank("cat.jpg", channels=("embedding",))
    added, subtracted = rank("cat.jpg", add=("a cat",)), rank("cat.jpg", subtract=("a cat",))
    assert added < plain < subtracted

    def gap(**kw):  # a photo plus words: how far the rocket is behind the horses photo itself
        s = {os.path.basename(h.path): h.score for h in ix.search(str(DEMO / "horses.jpg"), k=11, **kw)}
        return s["horses.jpg"] - s["rocket.jpg"]

    assert gap(add=("3:a rocket",)) < gap(add=("a rocket",)) < gap()
