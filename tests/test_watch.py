"""retr index --watch: additions, changes, moves and removals reach the index; a photo being copied
waits until it is complete; an emptied folder pauses and removes nothing; Ctrl-C stops cleanly."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from PIL import Image

from conftest import DEMO
from retrieval.indexing.indexer import index_folder
from retrieval.indexing.watch import Watcher, WatchSettings
from retrieval.search import Index

QUICK = WatchSettings(debounce_s=0.2, stable_s=0.3, max_wait_s=30.0, tick_s=0.05, recheck_s=0.2)


def _until(cond, timeout=90.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _paths(idx, query="a photo", k=20):
    ix = Index(idx)
    try:
        return {os.path.relpath(h.path, idx.parent / "photos") for h in ix.search(query, k=k)}
    finally:
        ix.reader.close()


def _hash_of(idx, name):
    ix = Index(idx)
    try:
        return next(ix.reader.photo_record(h.photo_id)["hash"] for h in ix.search("a photo", k=20)
                    if h.path.endswith("/" + name))
    finally:
        ix.reader.close()


def _start(photo_dir, idx, encoder, notes):
    w = Watcher([photo_dir], idx, lambda root, exclude: index_folder(root, idx, encoder=encoder, exclude=exclude,
                                                                      defer_hashes=True, prune=True),  # as retr does
                QUICK, notice=notes.append)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    return w, t


def test_watch_add_modify_move_delete_then_empty(photo_dir, tmp_path, encoder):
    idx, notes = tmp_path / "idx", []
    w, t = _start(photo_dir, idx, encoder, notes)
    try:
        _until(lambda: w.runs >= 1 and (idx / "photos.faiss").exists(), what="the first run")
        assert _paths(idx) == {"astronaut.jpg", "cat.jpg", "coffee.jpg", "horses.jpg"}
        # a photo still being copied is not indexed (nor reported broken) until complete
        data = (DEMO / "rocket.jpg").read_bytes()
        with open(photo_dir / "rocket.jpg", "wb") as f:
            f.write(data[: len(data) // 2])
        time.sleep(1.5)
        assert "rocket.jpg" not in _paths(idx)
        with open(photo_dir / "rocket.jpg", "ab") as f:
            f.write(data[len(data) // 2 :])
        hits = _until(lambda: Index(idx).search("a rocket on the launch pad", k=1), what="the rocket")
        _until(lambda: Index(idx).search("a rocket on the launch pad", k=1)[0].path.endswith("rocket.jpg"),
               what="the rocket first")
        # modify, move, delete
        assert hits
        cat_hash = _hash_of(idx, "cat.jpg")
        Image.open(photo_dir / "cat.jpg").transpose(Image.FLIP_LEFT_RIGHT).save(photo_dir / "cat.jpg")
        (photo_dir / "sub").mkdir()
        (photo_dir / "horses.jpg").rename(photo_dir / "sub" / "horses.jpg")
        (photo_dir / "coffee.jpg").unlink()
        _until(lambda: _paths(idx) == {"astronaut.jpg", "cat.jpg", "rocket.jpg", "sub/horses.jpg"},
               what="modify/move/delete")
        _until(lambda: _hash_of(idx, "cat.jpg") != cat_hash, what="the changed cat re-embedded")
        # empty the folder: paused with a warning, nothing removed
        for p in list(photo_dir.rglob("*.jpg")):
            p.unlink()
        _until(lambda: any("paused" in n for n in notes), what="the pause warning")
        time.sleep(1.0)
        assert _paths(idx) == {"astronaut.jpg", "cat.jpg", "rocket.jpg", "sub/horses.jpg"}
        # photos back: watching resumes
        shutil.copy(DEMO / "coffee.jpg", photo_dir / "coffee.jpg")
        _until(lambda: "coffee.jpg" in _paths(idx), what="resume")
    finally:
        w.stop.set()
        t.join(timeout=10)
    assert not t.is_alive()


def test_watch_folder_disappearing_keeps_photos(photo_dir, tmp_path, encoder):
    idx, notes = tmp_path / "idx", []
    w, t = _start(photo_dir, idx, encoder, notes)
    try:
        _until(lambda: w.runs >= 1 and (idx / "photos.faiss").exists(), what="the first run")
        shutil.rmtree(photo_dir)  # an unmounted disk
        _until(lambda: any("missing" in n and "paused" in n for n in notes), what="the pause warning")
        time.sleep(0.5)
        assert len(_paths(idx)) == 4
    finally:
        w.stop.set()
        t.join(timeout=10)


def _passes_done(idx, n: int, env: dict) -> bool:
    """Whether the object and text passes of ``retr index`` have seen all ``n`` photos of the index."""
    p = subprocess.run([sys.executable, "-m", "retrieval", "status", "--index", str(idx), "--json"],
                       capture_output=True, text=True, env=env)
    st = json.loads(p.stdout) if p.returncode == 0 else {}
    return st.get("objects") == n and st.get("ocr", {}).get("considered") == n


def test_cli_watch_indexes_new_photo_and_stops_on_ctrl_c(photo_dir, tmp_path):
    idx = tmp_path / "idx"
    env = dict(os.environ, RETR_WATCH_DEBOUNCE="0.2", RETR_WATCH_STABLE="0.3")
    env.pop("RETR_INDEX", None)
    proc = subprocess.Popen([sys.executable, "-m", "retrieval", "index", "--watch", str(photo_dir), "--index",
                             str(idx), "--no-captions"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        _until(lambda: (idx / "photos.faiss").exists(), timeout=180, what="the first run")
        shutil.copy(DEMO / "rocket.jpg", photo_dir / "rocket.jpg")
        out = _until(lambda: (lambda p: p.returncode == 0 and "rocket.jpg" in p.stdout and p)(subprocess.run(
            [sys.executable, "-m", "retrieval", "search", "a rocket", "--index", str(idx), "--json", "-k", "1"],
            capture_output=True, text=True, env=env)), what="retr search to find the new photo")
        assert json.loads(out.stdout)[0]["path"].endswith("rocket.jpg")
        _until(lambda: _passes_done(idx, 5, env), timeout=180, what="the later passes on the new photo")
    finally:
        proc.send_signal(signal.SIGINT)  # the watcher is idle now: Ctrl-C between updates
        stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert "stopped watching" in stderr and "Traceback" not in stderr


def _get(port, path):
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            return json.loads(r.read())
    except OSError:
        return None


def test_serve_watch_searches_see_changes_and_an_emptied_folder_removes_nothing(photo_dir, tmp_path):
    import socket
    import urllib.parse

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    idx = tmp_path / "idx"
    env = dict(os.environ, RETR_WATCH_DEBOUNCE="0.2", RETR_WATCH_STABLE="0.3")
    env.pop("RETR_INDEX", None)
    proc = subprocess.Popen([sys.executable, "-m", "retrieval", "serve", "--watch", str(photo_dir), "--index", str(idx),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def names(q="a photo"):
        r = _get(port, "/api/search?k=20&literal=true&q=" + urllib.parse.quote(q))
        return r is not None and {h["name"] for h in r["hits"]}

    try:  # no index yet: the watcher's first update makes it, then the page serves it
        _until(lambda: names() == {"astronaut.jpg", "cat.jpg", "coffee.jpg", "horses.jpg"}, timeout=240,
               what="the first update")
        shutil.copy(DEMO / "rocket.jpg", photo_dir / "rocket.jpg")  # the running server sees each change
        _until(lambda: "rocket.jpg" in names(), what="the new photo")
        (photo_dir / "cat.jpg").unlink()
        _until(lambda: "cat.jpg" not in names(), what="the removal")
        for p in photo_dir.iterdir():  # emptied: paused, nothing removed
            p.unlink()
        time.sleep(3)
        assert names() == {"astronaut.jpg", "coffee.jpg", "horses.jpg", "rocket.jpg"}
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "is empty: watching it is paused" in stderr and "Traceback" not in stderr and "stopped" in stderr
