"""The incremental plan of `retr index` (retrieval.indexing.plan.plan), with no photo at all."""
from __future__ import annotations

from dataclasses import dataclass

from retrieval.indexing.plan import is_under, plan
from retrieval.io.files import FileInfo


@dataclass
class Row:
    id: int
    path: str
    size: int
    mtime: float
    hash: str
    ctime: float | None = None
    inode: int | None = None


HASHES = {"/p/a.jpg": "ha", "/p/b.jpg": "hb", "/p/new.jpg": "hn", "/p/moved/c.jpg": "hc", "/p/touched.jpg": "ht"}


def _hash(path: str) -> str:
    if path not in HASHES:
        raise OSError(13, "Permission denied")
    return HASHES[path]


def test_unchanged_changed_new_moved_touched_gone():
    existing = {
        "/p/a.jpg": Row(1, "/p/a.jpg", 10, 1.0, "ha"),          # unchanged: same size and mtime
        "/p/b.jpg": Row(2, "/p/b.jpg", 10, 1.0, "old"),         # changed bytes -> re-embedded in place
        "/p/c.jpg": Row(3, "/p/c.jpg", 10, 1.0, "hc"),          # moved to /p/moved/c.jpg
        "/p/touched.jpg": Row(4, "/p/touched.jpg", 10, 1.0, "ht"),  # new mtime, same bytes
        "/p/gone.jpg": Row(5, "/p/gone.jpg", 10, 1.0, "hg"),    # deleted
        "/q/other.jpg": Row(6, "/q/other.jpg", 10, 1.0, "ho"),  # outside the walked root: kept
    }
    found = [FileInfo("/p/a.jpg", 10, 1.0), FileInfo("/p/b.jpg", 11, 2.0), FileInfo("/p/moved/c.jpg", 10, 3.0),
             FileInfo("/p/touched.jpg", 10, 5.0), FileInfo("/p/new.jpg", 7, 1.0)]
    p = plan(existing, found, "/p", hash_file=_hash)
    assert p.unchanged == 2  # a.jpg, and touched.jpg (its row only gets the new mtime)
    assert [(rid, f.path) for rid, f in p.touch] == [(4, "/p/touched.jpg")]
    assert [(rid, f.path) for rid, f in p.moves] == [(3, "/p/moved/c.jpg")]
    assert sorted(r.id for r in p.gone) == [5]
    assert [(t.file.path, t.hash, t.row_id) for t in p.todo] == [("/p/b.jpg", "hb", 2), ("/p/new.jpg", "hn", None)]
    assert p.failures == []


def test_unreadable_file_is_a_failure_and_nothing_else():
    p = plan({}, [FileInfo("/p/locked.jpg", 1, 1.0)], "/p", hash_file=_hash)
    assert p.todo == [] and p.unchanged == 0
    assert len(p.failures) == 1 and p.failures[0][0] == "/p/locked.jpg" and "cannot read file" in p.failures[0][1]


def test_deferred_hashes_only_when_nothing_is_gone():
    found = [FileInfo("/p/new.jpg", 7, 1.0)]
    first = plan({}, found, "/p", hash_file=_hash, defer_hashes=True)
    assert [(t.file.path, t.hash) for t in first.todo] == [("/p/new.jpg", None)]  # the embedder hashes it
    gone = {"/p/old.jpg": Row(1, "/p/old.jpg", 7, 1.0, "hn")}
    again = plan(gone, found, "/p", hash_file=_hash, defer_hashes=True)
    assert again.todo == [] and [(rid, f.path) for rid, f in again.moves] == [(1, "/p/new.jpg")]


def test_is_under():
    assert is_under("/p/a.jpg", "/p") and is_under("/p", "/p") and is_under("/p/a.jpg", "/p/")
    assert not is_under("/pp/a.jpg", "/p")


def test_a_file_written_over_with_the_same_name_size_and_mtime_is_hashed():
    """Same size and mtime, another inode (or ctime): hashed, and embedded again when the bytes differ;
    the same inode and ctime: unchanged, not read; a row from before inodes were recorded: touched."""
    existing = {"/p/a.jpg": Row(1, "/p/a.jpg", 10, 1.0, "old", ctime=1.0, inode=5),
                "/p/b.jpg": Row(2, "/p/b.jpg", 10, 1.0, "hb", ctime=1.0, inode=6),
                "/p/new.jpg": Row(3, "/p/new.jpg", 7, 1.0, "hn")}
    found = [FileInfo("/p/a.jpg", 10, 1.0, ctime=2.0, inode=9), FileInfo("/p/b.jpg", 10, 1.0, ctime=1.0, inode=6),
             FileInfo("/p/new.jpg", 7, 1.0, ctime=3.0, inode=7)]
    p = plan(existing, found, "/p", hash_file=lambda path: {"/p/a.jpg": "ha"}[path])
    assert [(t.file.path, t.row_id) for t in p.todo] == [("/p/a.jpg", 1)]
    assert p.unchanged == 2 and [rid for rid, _ in p.touch] == [3]
