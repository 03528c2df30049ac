"""What reading the text in photos costs ``retr index``: photos/s until the photos are searchable and
until their text is searchable, against indexing without OCR, in one run.

    python scripts/bench/bench_ocr_index.py [-n 200] [--rounds 2] [--data ../shared/data] [--seed 0]

Two libraries of ``-n`` photos: Flickr8k dev photos as they are, and the same photos where 10% carry
one to three lines of words drawn by Pillow (:mod:`retrieval.training.drawn_text`: 3-10% of the photo's
height, four fonts, six colour schemes, up to 5 degrees). For each, rows into fresh indexes, in the
same process (ONNX sessions warmed up first), captions off, rounds interleaved; medians:

  no OCR:      ``index_folder`` alone (``retr index --no-ocr``);
  OCR, gate:   ``index_folder`` (the photos are searchable when it returns), then the OCR pass
               (``read_text_in_folder``) with the gate, as ``retr index`` runs them.

Printed: photos/s until searchable and until all text is read, each with its ratio to the no-OCR row;
photos the OCR engine read; and on the library with text, how many of its text photos had at least
one drawn word found (so searchable by it).
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from benchlib import load_line, machine_line

from retrieval.encoders.base import load_encoder
from retrieval.indexing.indexer import index_folder
from retrieval.indexing.text_pass import read_text_in_folder
from retrieval.ocr.engine import OcrEngine
from retrieval.ocr.gate import TextGate
from retrieval.training.drawn_text import caption_words, draw_text, random_lines

ROOT = Path(__file__).resolve().parents[2]


def libraries(tmp: Path, data: Path, n: int, rng: random.Random) -> tuple[Path, Path, dict]:
    """(plain library, library with 10% drawn text, {file name: drawn words} of the latter)."""
    f8 = [data / "flickr8k" / "images" / i["file_name"]
          for i in json.loads((data / "flickr8k" / "captions_dev.json").read_text())["images"]]
    plain, mixed = tmp / "flickr8k", tmp / "text10"
    plain.mkdir()
    for p in rng.sample(f8, n):
        shutil.copy(p, plain / p.name)
    shutil.copytree(plain, mixed)
    words, truth = caption_words(data / "flickr8k" / "captions_dev.json"), {}
    for p in rng.sample(sorted(mixed.iterdir()), n // 10):
        lines = random_lines(words, rng)
        draw_text(Image.open(p).convert("RGB"), lines, rng).save(p, quality=92)
        truth[p.name] = [w for line in lines for w in line.split()]
    return plain, mixed, truth


def one_row(folder: Path, idx: Path, encoder, ocr) -> dict:
    """Seconds until searchable and until the text is read (the same without OCR), photos read, texts."""
    t = time.perf_counter()
    index_folder(folder, idx, encoder=encoder)
    searchable = time.perf_counter() - t
    read, texts = 0, {}
    if ocr is not None:
        rep = read_text_in_folder(folder, idx, *ocr)
        read = rep.read
        import sqlite3

        with sqlite3.connect(idx / "retr.sqlite") as c:
            texts = {p.rsplit("/", 1)[1]: t for p, t in c.execute(
                "SELECT photos.path, ocr_texts.text FROM ocr_texts JOIN photos ON photos.id = ocr_texts.photo_id")}
    return {"searchable": searchable, "text": time.perf_counter() - t, "read": read, "texts": texts}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(machine_line())
    print(load_line())
    encoder = load_encoder()
    rows = {"no OCR": None, "OCR, gate": (OcrEngine(), TextGate(encoder))}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plain, mixed, truth = libraries(tmp, Path(a.data).resolve(), a.n, random.Random(a.seed))
        warm = tmp / "warm"
        warm.mkdir()
        for p in sorted(plain.iterdir())[:8]:
            shutil.copy(p, warm / p.name)
        one_row(warm, tmp / "warm-idx", encoder, rows["OCR, gate"])  # ONNX sessions and the OCR models loaded
        got = {(lib, row): [] for lib in ("Flickr8k dev", "10% with text") for row in rows}
        for r in range(a.rounds):
            for lib, folder in (("Flickr8k dev", plain), ("10% with text", mixed)):
                for row, ocr in rows.items():
                    got[lib, row].append(one_row(folder, tmp / f"i{r}-{lib[:3]}-{row[:3]}", encoder, ocr))
        print(load_line())
        print(f"\n| library ({a.n} photos) | run | photos/s until searchable | ratio | photos/s until text read | "
              f"ratio | photos read by OCR | text photos found by a drawn word |")
        print("|---|---|---|---|---|---|---|---|")
        for lib in ("Flickr8k dev", "10% with text"):
            base = a.n / statistics.median(x["searchable"] for x in got[lib, "no OCR"])
            for row in rows:
                xs = got[lib, row]
                s = a.n / statistics.median(x["searchable"] for x in xs)
                t = a.n / statistics.median(x["text"] for x in xs)
                found = "-"
                if lib != "Flickr8k dev" and row != "no OCR":
                    texts = xs[-1]["texts"]
                    found = f"{sum(any(w in texts.get(n, '').lower() for w in ws) for n, ws in truth.items())}" \
                            f" of {len(truth)}"
                print(f"| {lib} | {row} | {s:.1f} | {s / base:.0%} | {t:.1f} | {t / base:.0%} | "
                      f"{xs[-1]['read']} | {found} |")


if __name__ == "__main__":
    main()
