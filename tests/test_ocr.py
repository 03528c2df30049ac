"""Text in photos: read at index time, found by its words (fused with the semantic score, or alone
with --text-only), not by absent words; --no-ocr stores no text; the gate skips ordinary photos."""
from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from PIL import Image, ImageDraw, ImageFont

from conftest import DEMO, run_retr

pytest.importorskip("rapidocr_onnxruntime")
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"


def _font(size, name=FONT):
    try:
        return ImageFont.truetype(name, size)
    except OSError:
        return ImageFont.load_default(size=size)


def _library(folder):
    folder.mkdir()
    for n in ("coffee.jpg", "horses.jpg", "astronaut.jpg"):
        shutil.copy(DEMO / n, folder / n)
    im = Image.new("RGB", (480, 640), "white")  # a receipt: all text
    d = ImageDraw.Draw(im)
    for i, line in enumerate(["STARBUCKS COFFEE", "Store 1234 Main Street", "Latte grande 4.50", "Muffin 2.95",
                              "Espresso 2.10", "Tax 0.61", "TOTAL 10.16", "VISA **** 4242", "Thank you", "Come again"]):
        d.text((30, 30 + 58 * i), line, fill="black", font=_font(22, MONO))
    im.save(folder / "receipt.png")
    im = Image.open(DEMO / "horses.jpg").convert("RGB")  # words drawn onto a photo
    ImageDraw.Draw(im).text((10, 10), "RANCH SALE", fill=(255, 255, 0), font=_font(im.height // 10))
    im.save(folder / "horses with sign.jpg", quality=92)


def _ocr_rows(idx):
    with sqlite3.connect(idx / "retr.sqlite") as c:
        return c.execute("SELECT photos.path, ocr_texts.text, ocr_texts.engine FROM ocr_texts JOIN photos ON "
                         "photos.id = ocr_texts.photo_id").fetchall()


def test_words_in_photos_are_found_and_absent_words_are_not(tmp_path):
    _library(tmp_path / "p")
    idx = tmp_path / "idx"
    run_retr("index", tmp_path / "p", "--index", idx, "--no-captions", "--ocr-all", check=0)
    texts = {r[0].rsplit("/", 1)[1]: r[1] for r in _ocr_rows(idx)}
    assert len(texts) == 5 and "RANCH" in texts["horses with sign.jpg"].upper()
    hits = json.loads(run_retr("search", "ranch", "--text-only", "--index", idx, "--json", check=0).stdout)
    assert [h["path"].rsplit("/", 1)[1] for h in hits] == ["horses with sign.jpg"] and hits[0]["source"] == "ocr"
    hits = json.loads(run_retr("search", "starbucks", "--text-only", "--index", idx, "--json", check=0).stdout)
    assert [h["path"].rsplit("/", 1)[1] for h in hits] == ["receipt.png"]
    p = run_retr("search", "zebra", "--text-only", "--index", idx, "--json", check=0)  # an absent word
    assert json.loads(p.stdout) == []
    # fused with the semantic score: the words lift the photo holding them to the top
    hits = json.loads(run_retr("search", "ranch sale", "--index", idx, "--json", "-k", "5", check=0).stdout)
    assert hits[0]["path"].endswith("horses with sign.jpg") and hits[0]["source"] == "ocr"
    assert hits[0]["score"] > hits[1]["score"]
    # a word that both a photo's text and another photo's subject hold keeps the fused ranking and its match
    hits = json.loads(run_retr("search", "coffee", "--index", idx, "--json", "-k", "5", check=0).stdout)
    assert {h["path"].rsplit("/", 1)[1] for h in hits[:2]} == {"coffee.jpg", "receipt.png"}
    assert all(h["match"] is not None for h in hits)
    shown = run_retr("show", tmp_path / "p" / "receipt.png", "--index", idx, check=0).stdout
    assert "text in photo:" in shown and "STARBUCKS" in shown.split("text in photo:")[1].upper()
    p = run_retr("search", "starbucks receipt", "--index", idx, "--json", "-k", "3", check=0)
    assert json.loads(p.stdout)[0]["path"].endswith("receipt.png") and "no good match" not in p.stderr


def test_short_words_count_only_as_whole_words_of_the_text():
    """OCR joins words, so long query words count inside longer ones; short ones would match anything."""
    from retrieval.ocr.fusion import coverage

    assert coverage(["starbucks"], "STARBUCKSCOFFEE Store 12") == 1.0
    assert coverage(["room"], "Bathroom 4") == 0.0 and coverage(["pass"], "Password: hunter2") == 0.0
    assert coverage(["room", "living"], "Living ROOM") == 1.0


def test_no_ocr_stores_no_text_and_a_later_run_reads_it(tmp_path):
    _library(tmp_path / "p")
    idx = tmp_path / "idx"
    run_retr("index", tmp_path / "p", "--index", idx, "--no-captions", "--no-ocr", check=0)
    assert _ocr_rows(idx) == []
    p = run_retr("search", "starbucks", "--text-only", "--index", idx, check=0)
    assert p.stdout == "" and "no photo's recognised text" in p.stderr
    # the next run (gate on) considers every photo once, without re-embedding any
    p = run_retr("index", tmp_path / "p", "--index", idx, "--no-captions", check=0)
    assert "unchanged 5" in p.stdout and "text in photos:" in p.stderr
    rows = {r[0].rsplit("/", 1)[1]: r for r in _ocr_rows(idx)}
    assert len(rows) == 5
    assert rows["receipt.png"][2] == "rapidocr" and "STARBUCKS" in rows["receipt.png"][1].upper()  # passes the gate
    assert rows["coffee.jpg"][2] == "skipped" and rows["astronaut.jpg"][2] == "skipped"  # ordinary photos do not


def test_changed_photo_is_read_again(tmp_path, encoder):
    from retrieval.indexing.indexer import index_folder
    from retrieval.indexing.text_pass import read_text_in_folder
    from retrieval.ocr.gate import TextGate

    class Engine:
        name = "fake"
        calls = 0

        def recognise(self, image):
            Engine.calls += 1
            return f"call {Engine.calls}"

    (tmp_path / "p").mkdir()
    shutil.copy(DEMO / "cat.jpg", tmp_path / "p" / "cat.jpg")
    idx = tmp_path / "idx"
    index_folder(tmp_path / "p", idx, encoder=encoder)
    gate = TextGate(encoder, None)
    assert read_text_in_folder(tmp_path / "p", idx, Engine(), gate).read == 1
    assert read_text_in_folder(tmp_path / "p", idx, Engine(), gate).read == 0  # read once
    Image.open(DEMO / "cat.jpg").transpose(Image.FLIP_LEFT_RIGHT).save(tmp_path / "p" / "cat.jpg")
    index_folder(tmp_path / "p", idx, encoder=encoder)
    assert read_text_in_folder(tmp_path / "p", idx, Engine(), gate).read == 1
    assert [r[1] for r in _ocr_rows(idx)] == ["call 2"]


def test_text_pass_resumes_after_ctrl_c_and_holds_the_lock_only_to_commit(tmp_path, encoder, monkeypatch):
    from retrieval.indexing import text_pass
    from retrieval.indexing.indexer import index_folder, writer_lock
    from retrieval.ocr.gate import TextGate

    lib, idx = tmp_path / "p", tmp_path / "idx"
    lib.mkdir()
    for n in ("cat.jpg", "coffee.jpg", "horses.jpg", "astronaut.jpg", "eagle.jpg"):
        shutil.copy(DEMO / n, lib / n)
    index_folder(lib, idx, encoder=encoder)
    monkeypatch.setattr(text_pass, "OCR_BATCH", 2)

    class Engine:
        name = "fake"
        calls = 0

        def recognise(self, image):
            Engine.calls += 1
            if Engine.calls == 1:  # reading runs without the writer lock: another run can write meanwhile
                with writer_lock(idx):
                    pass
                (lib / "cat.jpg").unlink()  # in the batch being read: removed before it is saved
                index_folder(lib, idx, encoder=encoder)
            if Engine.calls == 3:
                raise KeyboardInterrupt
            return f"text {Engine.calls}"

    seen = []
    with pytest.raises(KeyboardInterrupt):
        text_pass.read_text_in_folder(lib, idx, Engine(), TextGate(encoder, None),
                                      on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(2, 5)] and [r[0].rsplit("/", 1)[1] for r in _ocr_rows(idx)] == ["astronaut.jpg"]
    rep = text_pass.read_text_in_folder(lib, idx, Engine(), TextGate(encoder, None))  # goes on where it stopped
    rows = {r[0].rsplit("/", 1)[1] for r in _ocr_rows(idx)}
    assert rep.read == 3 and rows == {"astronaut.jpg", "coffee.jpg", "eagle.jpg", "horses.jpg"}
    assert "text      4 of 4 photos considered: 4 read (4 with text)" in run_retr("status", "--index", idx).stdout


def test_gate_probe_scores_drawn_words_above_every_plain_photo(tmp_path, encoder):
    from retrieval.io.decode import load_image
    from retrieval.ocr.gate import TextGate

    gate = TextGate(encoder)
    assert gate.probe is not None and len(gate.probe[0]) == encoder.dim  # the shipped probe of the default encoder
    _library(tmp_path / "p")
    photos = [tmp_path / "p" / "horses with sign.jpg"] + sorted(DEMO.glob("*.jpg"))
    vectors = encoder.encode_images([load_image(p) for p in photos])
    scores = gate.probe_scores(vectors)
    assert scores[0] > scores[1:].max()  # "RANCH SALE" drawn on horses.jpg: above horses.jpg and the rest
    assert not gate.passes(vectors[1:]).any()  # ordinary photos are skipped

    class Other:  # an encoder no probe was trained for: the prompts alone
        id = "hf:some-clip"
        encode_texts = encoder.encode_texts

    assert TextGate(Other()).probe is None
