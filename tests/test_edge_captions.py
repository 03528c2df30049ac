"""Edge cases of the deferred caption pass: photos are searchable before their captions exist, an
interrupted pass keeps what it wrote and the next run writes only the rest, ``retr status`` says how
far it is, and the default ``retr index`` writes the captions after its summary line."""
from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from conftest import DEMO, run_retr

PHOTOS = ("cat.jpg", "horses.jpg", "coffee.jpg")


def _generated(idx):
    with sqlite3.connect(idx / "retr.sqlite") as c:
        return dict(c.execute("SELECT photo_id, text FROM texts WHERE source = 'generated'").fetchall())


class _StopAfter:
    """A captioner that raises KeyboardInterrupt (a Ctrl-C) once it has captioned ``n`` batches."""

    def __init__(self, captioner, n):
        self.captioner, self.left = captioner, n

    def __getattr__(self, name):  # needs_regions, encoder_id ... of the wrapped captioner
        return getattr(self.captioner, name)

    def _tick(self):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1

    def beam_search_batch(self, *args, **kwargs):  # a pooled captioner's index-time decoding
        self._tick()
        return self.captioner.beam_search_batch(*args, **kwargs)

    def caption_embeddings(self, *args, **kwargs):  # an attention captioner's
        self._tick()
        return self.captioner.caption_embeddings(*args, **kwargs)


@pytest.fixture(scope="module")
def captioner(encoder):
    from retrieval.captioning.model import load_captioner

    return load_captioner(None, encoder.id)


def test_an_interrupted_caption_pass_keeps_its_captions_and_the_next_run_writes_the_rest(tmp_path, encoder,
                                                                                          captioner):
    from retrieval.indexing.caption_pass import caption_folder
    from retrieval.indexing.indexer import index_folder
    from retrieval.search import Index

    lib, idx = tmp_path / "p", tmp_path / "idx"
    lib.mkdir()
    for n in PHOTOS:
        shutil.copy(DEMO / n, lib / n)
    index_folder(lib, idx, encoder=encoder)
    assert _generated(idx) == {}
    hits = Index(idx).search("a cat", k=3)  # searchable before any caption exists
    assert hits[0].path.endswith("cat.jpg") and all(h.text is None for h in hits)
    with pytest.raises(KeyboardInterrupt):
        caption_folder(lib, idx, _StopAfter(captioner, 1), encoder, batch=1)
    first = _generated(idx)
    assert len(first) == 1
    assert "generated for 1 of 3 photos (`retr index`" in run_retr("status", "--index", idx, check=0).stdout
    rep = caption_folder(lib, idx, captioner, encoder, batch=1)
    assert rep.generated == 2
    after = _generated(idx)
    assert len(after) == 3 and {k: after[k] for k in first} == first  # the first kept, not written twice
    assert caption_folder(lib, idx, captioner, encoder).generated == 0  # nothing left to do
    assert "captions  generated for 3 of 3 photos\n" in run_retr("status", "--index", idx, check=0).stdout
    hit = Index(idx).search("a cat", k=1)[0]
    assert hit.text == after[hit.id]


def test_a_photo_changed_or_removed_while_it_was_captioned_gets_no_stale_caption(tmp_path, encoder, captioner):
    from retrieval.indexing.caption_pass import caption_pass
    from retrieval.indexing.indexer import index_folder
    from retrieval.store.database import Store

    lib, idx = tmp_path / "p", tmp_path / "idx"
    lib.mkdir()
    shutil.copy(DEMO / "cat.jpg", lib / "a.jpg")
    index_folder(lib, idx, encoder=encoder)
    p = caption_pass(str(lib), captioner, encoder)
    store = Store(idx)
    try:
        (batch,) = p.pending(store)
        results = p.work(batch)
        shutil.copy(DEMO / "horses.jpg", lib / "a.jpg")  # changed meanwhile: re-embedded by another run
        index_folder(lib, idx, encoder=encoder)
        assert p.save(store, batch, results) == 0
        (batch,) = p.pending(store)
        (lib / "a.jpg").unlink()
        index_folder(lib, idx, encoder=encoder, prune=True)  # gone before its batch is worked on
        assert p.work(batch) == [None] and p.save(store, batch, [None]) == 0
    finally:
        store.close()
    assert _generated(idx) == {}


def test_retr_index_writes_the_captions_after_the_photos_are_searchable(tmp_path):
    lib, idx = tmp_path / "p", tmp_path / "idx"
    lib.mkdir()
    for n in PHOTOS:
        shutil.copy(DEMO / n, lib / n)
    p = run_retr("index", lib, "--index", idx, "--no-ocr", "--no-objects", check=0)
    assert p.stdout.startswith("added 3,")
    assert "captions: generated for 3 photos" in p.stderr
    assert len(_generated(idx)) == 3
    (hit,) = json.loads(run_retr("search", "a cat", "-k", "1", "--json", "--index", idx, check=0).stdout)
    assert hit["text"] in _generated(idx).values()
