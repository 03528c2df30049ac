"""``retr index --watch``: keep an index current while photos appear, change, move or disappear.

File-system events (the ``watchdog`` library: inotify, FSEvents, ReadDirectoryChangesW, else
polling) mark a watched folder as changed. Once no event has come for ``debounce_s`` and every
changed photo is complete (size and mtime unchanged for ``stable_s`` and the file decodes), the
folder is brought up to date by one incremental run of ``index_root`` (normally
:func:`retrieval.indexing.indexer.index_folder`: moves found by content hash, removed files
dropped). The index's writer lock is held only during that run, so searches, ``retr serve`` and
other writers wait at most one batch. A watched folder that is missing (an unmounted disk) or
holds no photo any more is paused with a warning and its photos stay in the index; it resumes
when photos are back.
"""
from __future__ import annotations

import glob
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from retrieval.errors import DecodeError, IndexingError, StoreError
from retrieval.indexing.plan import is_under
from retrieval.io.decode import load_image
from retrieval.io.files import is_image_name, walk_images

log = logging.getLogger(__name__)
#: the watchdog event types that change a folder ("closed": closed after writing; opening and reading
#: a file, as indexing does, is not a change)
CHANGES = ("created", "modified", "moved", "deleted", "closed")


@dataclass
class WatchSettings:
    """Timings of a watcher, in seconds.

    Attributes:
        debounce_s: quiet time after the last event before a folder is updated.
        stable_s: how long a changed photo's size and mtime must stay the same before it is indexed.
        max_wait_s: after this long, a folder is updated even if some photo in it is still changing
            (those photos are left out of that run and indexed by a later one).
        tick_s: how often the watcher wakes up to look at its queue.
        recheck_s: how often a paused folder is looked at again.
    """

    debounce_s: float = 1.0
    stable_s: float = 2.0
    max_wait_s: float = 60.0
    tick_s: float = 0.25
    recheck_s: float = 2.0


@dataclass
class _Folder:
    root: str
    since: float | None = None  # first event not yet indexed (monotonic s); None: nothing pending
    last: float = 0.0  # last event (monotonic s)
    files: dict = field(default_factory=dict)  # path -> ((size, mtime), first seen with that stat)
    paused: bool = False
    checked: float = 0.0


def folder_state(root: str, skip: Path) -> str:
    """``"missing"`` (not a folder), ``"empty"`` (no photo anywhere under it) or ``"ok"``."""
    if not os.path.isdir(root):
        return "missing"
    return "ok" if next(iter(walk_images(root, skip_dirs=(skip,))), None) is not None else "empty"


def is_complete(path: str, seen: tuple, now: float, stable_s: float, give_up_s: float = 60.0) -> tuple[bool, tuple]:
    """Whether the file at ``path`` is ready to index: its (size, mtime) equals the one first seen
    ``stable_s`` ago and it decodes (or has not changed for ``give_up_s``: a broken file, which the run
    reports). Returns (ready, (stat key, first seen)) to keep for the next check; a file that is gone is
    ready (the run drops it)."""
    try:
        st = os.stat(path)
    except OSError:
        return True, seen
    key = (st.st_size, st.st_mtime_ns)
    if not seen or seen[0] != key:
        return False, (key, now)
    if now - seen[1] < stable_s:
        return False, seen
    try:
        load_image(path, draft_size=(64, 64))
    except DecodeError:
        return now - seen[1] >= give_up_s, seen
    return True, seen


class Watcher:
    """Watches folders and updates the index at ``index_dir`` as they change.

    Args:
        roots: folders to watch (absolute or relative).
        index_dir: the index folder (events inside it are ignored).
        index_root: ``index_root(root, exclude) -> IndexReport``: one incremental run over ``root``
            leaving out the glob patterns ``exclude`` (photos still being written).
        settings: :class:`WatchSettings`.
        notice: ``notice(line)`` for warnings and what each run did.
        use_polling: poll the folders instead of OS events (network shares, tests).
    """

    def __init__(self, roots, index_dir, index_root: Callable, settings: WatchSettings | None = None,
                 notice: Callable[[str], None] | None = None, use_polling: bool = False):
        self.folders = [_Folder(os.path.abspath(r)) for r in roots]
        self.index_dir = Path(index_dir).absolute()
        self.index_root = index_root
        self.settings = settings or WatchSettings()
        self.notice = notice or log.warning
        self.use_polling = use_polling
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.runs = 0  # incremental runs done (for callers and tests)
        self._observer = None
        self._watches: dict[str, object] = {}

    # -- events (watchdog's thread) ----------------------------------------
    def dispatch(self, event) -> None:
        """Record a watchdog event: mark the folder holding it as changed."""
        paths = [event.src_path] + ([event.dest_path] if getattr(event, "dest_path", "") else [])
        now = time.monotonic()
        for p in (os.fsdecode(p) for p in paths):
            if is_under(p, str(self.index_dir)) or (not event.is_directory and not is_image_name(p)):
                continue
            if event.event_type not in CHANGES or (event.is_directory and event.event_type == "modified"):
                continue
            with self.lock:
                for f in self.folders:
                    if is_under(p, f.root):
                        f.since = f.since if f.since is not None else now
                        f.last = now
                        if not event.is_directory:
                            f.files.setdefault(p, ())

    # -- the loop (caller's thread) ----------------------------------------
    def run(self) -> None:
        """Watch until :attr:`stop` is set or Ctrl-C (KeyboardInterrupt is passed on after a clean stop).
        Every folder is brought up to date first."""
        self._start_observer()
        now = time.monotonic()
        for f in self.folders:
            f.since, f.last = now, now - self.settings.debounce_s
        try:
            while not self.stop.is_set():
                for f in self.folders:
                    self._step(f, time.monotonic())
                self.stop.wait(self.settings.tick_s)
        finally:
            self._observer.stop()
            self._observer.join(timeout=5)

    def _start_observer(self) -> None:
        if self.use_polling:
            from watchdog.observers.polling import PollingObserver as Observer
        else:
            from watchdog.observers import Observer
        self._observer = Observer(timeout=self.settings.tick_s) if self.use_polling else Observer()
        self._observer.start()
        for f in self.folders:
            self._schedule(f)

    def _schedule(self, f: _Folder) -> None:
        old = self._watches.pop(f.root, None)
        if old is not None:
            try:
                self._observer.unschedule(old)
            except (KeyError, OSError):
                pass
        if os.path.isdir(f.root):
            try:
                self._watches[f.root] = self._observer.schedule(self, f.root, recursive=True)
            except OSError as e:
                self.notice(f"cannot watch {f.root} ({e.strerror or e})")

    def _step(self, f: _Folder, now: float) -> None:
        s = self.settings
        if f.paused and now - f.checked < s.recheck_s:
            return
        if f.since is None and not f.paused:
            return
        if not f.paused and now - f.last < s.debounce_s:
            return
        f.checked = now
        state = folder_state(f.root, self.index_dir)
        if state != "ok":
            if not f.paused:
                self.notice(f"warning: {f.root} is {'missing' if state == 'missing' else 'empty'}: watching it "
                            f"is paused and its photos stay in the index")
            f.paused = True
            return
        if f.paused:
            self.notice(f"{f.root} has photos again: watching it resumes")
            f.paused = False
            self._schedule(f)
            f.since = f.since or now
        self._update(f, now)

    def _update(self, f: _Folder, now: float) -> None:
        with self.lock:
            files = dict(f.files)
        waiting = []
        for p, seen in files.items():
            ready, seen = is_complete(p, seen, now, self.settings.stable_s, self.settings.max_wait_s)
            with self.lock:
                if p in f.files:
                    f.files[p] = seen
            if not ready:
                waiting.append(p)
        if waiting and now - f.since < self.settings.max_wait_s:
            return
        exclude = tuple(glob.escape(os.path.relpath(p, f.root)) for p in waiting)
        with self.lock:
            started = f.last
        try:
            rep = self.index_root(f.root, exclude)
        except IndexingError as e:  # another writer holds the lock: try again after the debounce
            self.notice(f"warning: {e}; trying again")
            f.last = time.monotonic()
            return
        except StoreError as e:
            self.notice(f"warning: {f.root} not updated ({e})")
            f.last = time.monotonic()
            return
        self.runs += 1
        if rep is not None and rep.changed():
            self.notice(f"{f.root}: {rep.summary()}")
        with self.lock:
            for p in files:
                if p not in waiting and f.files.get(p) is not None:
                    f.files.pop(p, None)
            if f.last == started:  # else new events came during the run: still pending from the first
                f.since = now if waiting else None  # photos still being written: the wait starts afresh


def watch_folders(roots, index_dir, index_root: Callable, settings: WatchSettings | None = None,
                  notice: Callable[[str], None] | None = None) -> Watcher:
    """Watch ``roots`` until Ctrl-C (see :class:`Watcher`; the same arguments). Returns the stopped watcher."""
    w = Watcher(roots, index_dir, index_root, settings, notice)
    try:
        w.run()
    except KeyboardInterrupt:
        pass
    return w


__all__ = ["CHANGES", "WatchSettings", "Watcher", "folder_state", "is_complete", "watch_folders"]
