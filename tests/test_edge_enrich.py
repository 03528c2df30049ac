"""Edge cases of the deferred OCR pass: a photo the gate skipped is read by a later ``--ocr-all`` run
(``--ocr-all`` promises every photo is read), once, without a second row."""
from __future__ import annotations

import shutil
import sqlite3

from conftest import DEMO


def _rows(idx):
    with sqlite3.connect(idx / "retr.sqlite") as c:
        return c.execute("SELECT photo_id, text, engine FROM ocr_texts ORDER BY photo_id").fetchall()


class _Engine:
    name = "fake"

    def recognise(self, image):
        return "EXIT"


class _SkipAll:
    """A gate that skips every photo (as the real one skips a plain sign it misjudges)."""

    threshold = 1.0

    def passes(self, vectors):
        import numpy as np

        return np.zeros(len(vectors), bool)


def test_ocr_all_reads_the_photos_an_earlier_gate_skipped(tmp_path, encoder):
    from retrieval.indexing.indexer import index_folder
    from retrieval.indexing.text_pass import read_text_in_folder
    from retrieval.ocr.gate import TextGate

    lib, idx = tmp_path / "p", tmp_path / "idx"
    lib.mkdir()
    for n in ("cat.jpg", "coffee.jpg"):
        shutil.copy(DEMO / n, lib / n)
    index_folder(lib, idx, encoder=encoder, )
    rep = read_text_in_folder(lib, idx, _Engine(), _SkipAll())
    assert rep.skipped == 2 and [r[2] for r in _rows(idx)] == ["skipped", "skipped"]
    rep = read_text_in_folder(lib, idx, _Engine(), TextGate(encoder, None))  # --ocr-all
    assert rep.read == 2
    assert [(r[1], r[2]) for r in _rows(idx)] == [("EXIT", "fake"), ("EXIT", "fake")]
    assert read_text_in_folder(lib, idx, _Engine(), TextGate(encoder, None)).read == 0  # read once
    assert read_text_in_folder(lib, idx, _Engine(), _SkipAll()).skipped == 0  # the gate does not undo it
    assert len(_rows(idx)) == 2
