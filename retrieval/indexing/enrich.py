"""Enrichment passes: slow work on photos that are already indexed and searchable (reading the text
in them, detecting objects, ...), run after the embedding pass and resumable.

A pass names what is still to do (read from the index), does the work one batch at a time *without*
the index's writer lock, and commits each batch's results holding the lock only for that commit.
So the photos are searchable before the pass starts; Ctrl-C loses at most the batch in progress;
the next run does only what is still to do (the pass's ``pending`` reads it from the index); and
another ``retr index`` (or a watcher) waits at most one commit. A photo removed or changed while
its batch was being worked on is left to the pass's ``save``, which must check it is still there
(the work ran outside the lock). This is the usual shape of a photo library's background jobs
(a queue of per-photo tasks, checkpointed per batch).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from retrieval.indexing.indexer import writer_lock
from retrieval.store.database import Store

#: seconds a pass waits for the writer lock before a commit (another ``retr index`` writing)
LOCK_WAIT = 600.0


@dataclass
class EnrichmentPass:
    """One kind of enrichment.

    Attributes:
        name: what it does, for messages ("text in photos").
        pending: ``pending(store) -> batches``: the work still to do, as a list of batches (each a list of items).
        work: ``work(batch) -> results``: does one batch (no lock held, no database write).
        save: ``save(store, batch, results) -> int``: commits one batch's results (the writer lock held);
            returns how many items it saved (those whose photo is gone or changed are not).
        finish: ``finish(store)``, once after the last batch when any item was saved (the writer lock
            held), e.g. to rewrite a search file; None: nothing.
    """

    name: str
    pending: Callable[[Store], Sequence[list]]
    work: Callable[[list], list]
    save: Callable[[Store, list, list], int]
    finish: Callable[[Store], None] | None = None


def run_pass(enrichment: EnrichmentPass, index_dir: str | Path, *, db_url: str | None = None,
             on_progress: Callable[[int, int], None] | None = None, lock_wait: float = LOCK_WAIT) -> int:
    """Run ``enrichment`` over the index at ``index_dir`` until nothing is pending.

    Args:
        on_progress: ``(items done, items pending at the start)`` after each committed batch.
        lock_wait: seconds to wait for the writer lock before each commit.

    Returns:
        How many items were saved.

    Raises:
        IndexingError: another ``retr index`` held the writer lock for longer than ``lock_wait``
            (the batches committed before are kept).
        StoreError: no index there, or it cannot be used.
        KeyboardInterrupt: passed on; every batch committed before it is kept.
    """
    index_dir = Path(index_dir).absolute()
    with writer_lock(index_dir, wait=lock_wait):  # opening may migrate the schema
        store = Store(index_dir, db_url=db_url)
    try:
        batches = [b for b in enrichment.pending(store) if b]
        total, done, saved = sum(len(b) for b in batches), 0, 0
        for batch in batches:
            results = enrichment.work(batch)
            with writer_lock(index_dir, wait=lock_wait):
                saved += enrichment.save(store, batch, results)
            done += len(batch)
            if on_progress:
                on_progress(done, total)
        if saved and enrichment.finish is not None:
            with writer_lock(index_dir, wait=lock_wait):
                enrichment.finish(store)
        return saved
    finally:
        store.close()


__all__ = ["EnrichmentPass", "LOCK_WAIT", "run_pass"]
