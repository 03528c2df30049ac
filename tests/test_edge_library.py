"""Libraries as they are found on real disks: emptied folders (an unmounted disk, a failed sync),
photos that come back, and the odd folders and files a library holds.

Each case builds a small folder named after its edge case and runs ``python -m retrieval``
on it where the behaviour is user-facing, the Python API where the test needs many photos.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from conftest import DEMO, ConstantEncoder, run_retr

THREE = ("cat.jpg", "horses.jpg", "coffee.jpg")


def _library(path, names=THREE, sub=()):
    path.mkdir(parents=True)
    for n in names:
        shutil.copy(DEMO / n, path / n)
    for n in sub:
        (path / "sub").mkdir(exist_ok=True)
        shutil.copy(DEMO / n, path / "sub" / n)
    return path


def _colour_photos(folder, n: int, start: int = 0):
    """``n`` small PNGs of distinct colours (distinct content hashes) in ``folder``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        Image.new("RGB", (32, 32), (i * 7 % 256, i * 13 % 256, i * 29 % 256)).save(folder / f"p{i:03d}.png")


def test_an_emptied_library_folder_does_not_wipe_the_index(tmp_path):
    """The photos moved away (the folder is there, empty): one line, exit 1, nothing removed;
    back again: all unchanged. ``--prune`` removes them; they come back later without re-embedding."""
    lib = _library(tmp_path / "emptied_library")
    idx = tmp_path / "idx"
    run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    away = tmp_path / "away"
    shutil.move(lib, away)
    lib.mkdir()
    p = run_retr("index", lib, "--index", idx, "--no-captions", check=1)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "--prune" in lines[0] and "3" in lines[0], p.stderr
    assert "removed" not in p.stdout
    p = run_retr("search", "a cat", "--index", idx, "--json", check=0)
    assert len(__import__("json").loads(p.stdout)) == 3
    shutil.rmtree(lib)
    shutil.move(away, lib)
    p = run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    assert "unchanged 3" in p.stdout and "removed 0" in p.stdout, p.stdout
    # --prune: removed, kept as tombstones; photos that come back return without re-embedding
    shutil.move(lib, away)
    lib.mkdir()
    p = run_retr("index", lib, "--index", idx, "--no-captions", "--prune", check=0)
    assert "removed 3" in p.stdout, p.stdout + p.stderr
    shutil.rmtree(lib)
    shutil.move(away, lib)
    p = run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    assert "restored 3" in p.stdout and "added 0" in p.stdout, p.stdout
    assert "embedded" not in p.stderr, p.stderr
    p = run_retr("search", "a cat", "--index", idx, "-k", "1", check=0)
    assert p.stdout.strip().endswith("cat.jpg")


def test_a_deleted_subfolder_is_an_ordinary_removal(tmp_path):
    lib = _library(tmp_path / "deleted_subfolder", sub=("astronaut.jpg",))
    idx = tmp_path / "idx"
    run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    shutil.rmtree(lib / "sub")
    p = run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    assert "removed 1" in p.stdout and "unchanged 3" in p.stdout, p.stdout


def test_removing_more_than_half_of_over_20_photos_needs_prune(tmp_path):
    """More than half of a root's photos gone, and more than 20 of them: refused; half, or fewer than
    21 photos: an ordinary removal."""
    from retrieval import index_folder
    from retrieval.errors import IndexingError

    lib = tmp_path / "half_gone_library"
    _colour_photos(lib, 44)
    idx = tmp_path / "idx"
    enc = ConstantEncoder(8)
    assert index_folder(lib, idx, encoder=enc, export_query_path=False).added == 44
    for i in range(23):  # 23 of 44: more than half, more than 20
        os.replace(lib / f"p{i:03d}.png", tmp_path / f"p{i:03d}.png")
    with pytest.raises(IndexingError, match="--prune"):
        index_folder(lib, idx, encoder=enc, export_query_path=False)
    os.replace(tmp_path / "p000.png", lib / "p000.png")  # 22 of 44 gone: half, an ordinary removal
    rep = index_folder(lib, idx, encoder=enc, export_query_path=False)
    assert (rep.removed, rep.unchanged) == (22, 22), rep
    rep = index_folder(lib, idx, encoder=enc, export_query_path=False, prune=True)
    assert rep.removed == 0


def test_tombstones_expire_after_30_days(tmp_path):
    """A removed photo's vector is kept 30 days: within them it returns without embedding; after, it is
    embedded again as a new photo."""
    from sqlalchemy import text

    from retrieval import index_folder
    from retrieval.store.database import Store

    class Counting(ConstantEncoder):
        calls = 0

        def encode_images(self, ims):
            Counting.calls += len(ims)
            return super().encode_images(ims)

    lib = tmp_path / "tombstoned_library"
    _colour_photos(lib, 4)
    idx = tmp_path / "idx"
    enc = Counting(8)
    index_folder(lib, idx, encoder=enc, export_query_path=False)
    shutil.move(lib / "p000.png", tmp_path / "p000.png")
    assert index_folder(lib, idx, encoder=enc, export_query_path=False).removed == 1
    shutil.move(tmp_path / "p000.png", lib / "p000.png")
    Counting.calls = 0
    rep = index_folder(lib, idx, encoder=enc, export_query_path=False)
    assert (rep.restored, rep.added, Counting.calls) == (1, 0, 0), rep
    shutil.move(lib / "p000.png", tmp_path / "p000.png")
    index_folder(lib, idx, encoder=enc, export_query_path=False)
    st = Store(idx)
    with st.engine.begin() as c:
        assert c.execute(text("SELECT count(*) FROM tombstones")).scalar() == 1
        c.execute(text("UPDATE tombstones SET removed_at = '2000-01-01T00:00:00+00:00'"))
    st.close()
    shutil.move(tmp_path / "p000.png", lib / "p000.png")
    rep = index_folder(lib, idx, encoder=enc, export_query_path=False)
    assert (rep.restored, rep.added, Counting.calls) == (0, 1, 1), rep
    st = Store(idx)
    assert st.count("photos") == 4 and np.isclose(np.linalg.norm(st.load_vectors("photos")[1], axis=1), 1).all()
    with st.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM tombstones")).scalar() == 0
    st.close()


def test_a_retr_index_inside_the_library_is_skipped(tmp_path):
    """Another index folder (anyone's: its database, FAISS file and thumbnails) inside the library:
    none of its thumbnails is indexed as a photo."""
    lib = _library(tmp_path / "library_holding_an_index", names=("cat.jpg", "horses.jpg"))
    for other in ("old index", "pg-index"):
        d = lib / other / "thumbs"
        d.mkdir(parents=True)
        for i in range(3):
            shutil.copy(DEMO / "coffee.jpg", d / f"{i + 1}-abc.jpg")
    (lib / "old index" / "retr.sqlite").write_bytes(b"SQLite format 3\0")
    (lib / "pg-index" / "photos.faiss").write_bytes(b"\0" * 16)  # an index whose tables are in PostgreSQL
    p = run_retr("index", lib, "--index", tmp_path / "idx", "--no-captions", check=0)
    assert "added 2," in p.stdout, p.stdout


def test_a_float_greyscale_image_is_scaled_to_its_own_range(tmp_path):
    """Pillow mode F (32-bit float greyscale, e.g. a scientific TIFF with values in 0..1) is decoded
    as the picture it is, not as a uniform black image."""
    from PIL import Image

    from retrieval.io.decode import load_image

    grey = Image.open(DEMO / "cat.jpg").convert("L")
    arr = np.asarray(grey, np.float32)
    folder = tmp_path / "float_greyscale"
    folder.mkdir()
    Image.fromarray(arr / 255.0, mode="F").save(folder / "unit_range.tif")
    Image.fromarray(arr * 40.0 - 1000.0, mode="F").save(folder / "any_range.tif")
    for name in ("unit_range.tif", "any_range.tif"):
        got = np.asarray(load_image(folder / name).convert("L"), np.float32)
        lo, hi = arr.min(), arr.max()
        want = (arr - lo) / (hi - lo) * 255
        assert np.abs(got - want).mean() < 1.0, (name, np.abs(got - want).mean())
    nan = arr / 255.0
    nan[:10] = np.nan
    Image.fromarray(nan, mode="F").save(folder / "with_nan.tif")
    assert np.asarray(load_image(folder / "with_nan.tif").convert("L")).std() > 20


def test_a_photo_replaced_with_the_same_name_size_and_mtime_is_noticed(tmp_path):
    """Another photo written over one of the library's, same size and mtime (a restore, a sync tool):
    the inode and ctime tell, and the photo is embedded again."""
    from PIL import Image

    lib = tmp_path / "replaced_same_size_and_mtime"
    lib.mkdir()
    Image.open(DEMO / "cat.jpg").convert("RGB").resize((64, 48)).save(lib / "photo.bmp")
    Image.open(DEMO / "horses.jpg").convert("RGB").resize((64, 48)).save(lib / "keep.bmp")
    idx = tmp_path / "idx"
    run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    st = os.stat(lib / "photo.bmp")
    Image.open(DEMO / "rocket.jpg").convert("RGB").resize((64, 48)).save(tmp_path / "new.bmp")
    assert os.path.getsize(tmp_path / "new.bmp") == st.st_size
    os.utime(tmp_path / "new.bmp", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp_path / "new.bmp", lib / "photo.bmp")
    p = run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    assert "updated 1" in p.stdout and "unchanged 1" in p.stdout, p.stdout
    p = run_retr("index", lib, "--index", idx, "--no-captions", check=0)
    assert "unchanged 2" in p.stdout, p.stdout


def test_an_empty_folder_says_no_photo_was_found(tmp_path):
    lib = tmp_path / "empty_folder"
    (lib / "sub").mkdir(parents=True)
    (lib / "notes.txt").write_text("not a photo")
    p = run_retr("index", lib, "--index", tmp_path / "idx", "--no-captions", check=0)
    assert "no photo found" in p.stderr and str(lib) in p.stderr, p.stderr
