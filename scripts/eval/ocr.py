"""Text in photos: OCR accuracy (RapidOCR, and Tesseract for comparison) on photos with drawn text, and
the gate's skip rate.

    python scripts/eval/ocr.py [--data ../shared/data] [--text-photos 40] [--plain 200] [--seed 0]
        [--tesseract 3,11] [--gate-only]

1. Accuracy: ``--text-photos`` real photos (half Flickr8k dev, half COCO-mini) get one to three lines
   of random caption words drawn by Pillow (DejaVu Sans, Sans Bold, Serif, Mono; light or dark
   colours with or without an outline; rotated by up to 5 degrees; text height 3% to 10% of the
   photo's height), plus 5 plain screenshots (dark text on white, 12-16 px). Each is read by the
   engine at full size (no gate): character error rate (Levenshtein distance / reference length,
   case and spacing ignored) and word recall (share of the drawn words found in the text read).
   Tesseract (``tesseract`` on the PATH, e.g. Debian's ``tesseract-ocr``) is measured on the same
   photos in the same run, at each ``--tesseract`` page-segmentation mode.
2. Gate: the share of ``--plain`` text-free photos (Flickr8k dev and COCO-mini, as shipped) the
   gate skips, and the share of the text photos it passes.
Indexing speed with and without OCR: scripts/bench/bench_ocr_index.py.
"""
import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from retrieval.encoders.base import load_encoder
from retrieval.io.decode import load_image
from retrieval.ocr.engine import OcrEngine
from retrieval.ocr.gate import TextGate
from retrieval.training.drawn_text import caption_words, draw_text, screenshot

def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def norm(s: str) -> str:
    return "".join(s.lower().split())


def word_pool(data: Path) -> list[str]:
    return caption_words(data / "flickr8k" / "captions_dev.json")


def photo_lists(data: Path) -> tuple[list[Path], list[Path]]:
    f8 = json.loads((data / "flickr8k" / "captions_dev.json").read_text())
    cm = json.loads((data / "coco_mini" / "captions.json").read_text())
    return ([data / "flickr8k" / "images" / i["file_name"] for i in f8["images"]],
            [data / "coco_mini" / "images" / i["file_name"] for i in cm["images"]])


def make_text_set(out: Path, f8, cm, n: int, words, rng) -> dict[str, list[str]]:
    """Write the photos with text; returns {file name: drawn words}."""
    truth = {}
    for k, src in enumerate(rng.sample(f8, n // 2) + rng.sample(cm, n - n // 2)):
        lines = [" ".join(rng.sample(words, rng.randint(1, 3))) for _ in range(rng.randint(1, 3))]
        name = f"text{k:03d}.jpg"
        draw_text(Image.open(src).convert("RGB"), lines, rng).save(out / name, quality=92)
        truth[name] = lines
    for k in range(5):
        lines = [" ".join(rng.sample(words, 6)) for _ in range(12)]
        name = f"screenshot{k}.png"
        screenshot(lines, rng).save(out / name)
        truth[name] = lines
    return truth


class Tesseract:
    """Tesseract (Debian's ``tesseract-ocr`` with its English data) through its command line, for comparison:
    ``tesseract IMAGE stdout --psm PSM -l eng``. Not a retr dependency."""

    def __init__(self, psm: int = 3):
        self.psm, self.name = psm, f"tesseract --psm {psm}"

    def recognise(self, image: Image.Image) -> str:
        import subprocess

        with tempfile.NamedTemporaryFile(suffix=".png") as f:
            image.convert("RGB").save(f.name)
            out = subprocess.run(["tesseract", f.name, "stdout", "--psm", str(self.psm), "-l", "eng"],
                                 capture_output=True, text=True, timeout=120).stdout
        return "\n".join(line.strip() for line in out.splitlines() if line.strip())


def accuracy(folder: Path, truth: dict, engine) -> dict:
    cer_num = cer_den = found = total = 0
    for name, lines in truth.items():
        got = engine.recognise(load_image(folder / name))
        ref = norm(" ".join(lines))
        cer_num += levenshtein(ref, norm(got))
        cer_den += len(ref)
        ws = [w for line in lines for w in line.split()]
        found += sum(w in got.lower() for w in ws)
        total += len(ws)
    return {"cer": cer_num / cer_den, "word_recall": found / total}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--text-photos", type=int, default=40)
    ap.add_argument("--plain", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tesseract", default="3,11", help="Tesseract page-segmentation modes to compare ('' for none)")
    ap.add_argument("--gate-only", action="store_true", help="Measure only the gate (the same photos, no engine)")
    a = ap.parse_args()
    data, rng = Path(a.data).resolve(), random.Random(a.seed)
    f8, cm = photo_lists(data)
    encoder, engine = load_encoder(), OcrEngine()
    gate = TextGate(encoder)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "text").mkdir()
        truth = make_text_set(tmp / "text", f8, cm, a.text_photos, word_pool(data), rng)
        photos = [n for n in truth if n.startswith("text")]
        engines = [] if a.gate_only else [engine] + [Tesseract(int(psm)) for psm in a.tesseract.split(",")
                                                     if psm and shutil.which("tesseract")]
        print(f"OCR on {len(photos)} photos with drawn text + {len(truth) - len(photos)} screenshots "
              f"(s a photo: one photo at a time, same run)")
        print("| engine | set | CER | word recall | s a photo |\n|---|---|---|---|---|")
        for eng in engines:
            for label, names in (("photos with drawn text", photos),
                                 ("screenshots", [n for n in truth if n not in photos]), ("all", list(truth))):
                t = time.perf_counter()
                r = accuracy(tmp / "text", {n: truth[n] for n in names}, eng)
                per = (time.perf_counter() - t) / len(names)
                print(f"| {getattr(eng, 'name', 'rapidocr')} | {label} | {r['cer']:.3f} | {r['word_recall']:.3f} | "
                      f"{per:.2f} |")
        plain = rng.sample(f8, a.plain // 2) + rng.sample(cm, a.plain - a.plain // 2)
        emb = lambda paths: np.concatenate([encoder.encode_images([load_image(p) for p in paths[i : i + 32]])  # noqa
                                            for i in range(0, len(paths), 32)])
        sets = (emb(plain), emb([tmp / "text" / n for n in photos]), emb([tmp / "text" / n for n in truth if n not in photos]))
        for label, g in (("prompts only", TextGate(encoder, probe=False)), ("prompts or probe (shipped)", gate)):
            skip, passed_text, passed_shots = 1 - g.passes(sets[0]).mean(), g.passes(sets[1]).mean(), g.passes(sets[2]).mean()
            print(f"gate, {label}: skips {skip:.1%} of {len(plain)} text-free photos; passes {passed_text:.1%} of the "
                  f"photos with drawn text and {passed_shots:.0%} of the screenshots")


if __name__ == "__main__":
    main()
