"""Text in photos: OCR accuracy on photos with drawn text, the gate's skip rate, and indexing speed
with and without OCR.

    python scripts/eval/ocr.py [--data ../shared/data] [--text-photos 40] [--plain 200] [--speed 150] [--seed 0]

1. Accuracy: ``--text-photos`` real photos (half Flickr8k dev, half COCO-mini) get one to three lines
   of random caption words drawn by Pillow (DejaVu Sans, Sans Bold, Serif, Mono; light or dark
   colours with or without an outline; rotated by up to 5 degrees; text height 3% to 10% of the
   photo's height), plus 5 plain screenshots (dark text on white, 12-16 px). Each is read by the
   engine at full size (no gate): character error rate (Levenshtein distance / reference length,
   case and spacing ignored) and word recall (share of the drawn words found in the text read).
2. Gate: the share of ``--plain`` text-free photos (Flickr8k dev and COCO-mini, as shipped) the
   gate skips, and the share of the text photos it passes.
3. Speed: ``index_folder`` (no captions) then the OCR pass with the gate, against ``index_folder``
   alone, on ``--speed`` Flickr8k dev photos and on a library of as many photos where 10% carry
   drawn text: photos/s in the same run.
"""
import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from retrieval.encoders.base import load_encoder
from retrieval.indexing.indexer import index_folder
from retrieval.indexing.text_pass import read_text_in_folder
from retrieval.io.decode import load_image
from retrieval.ocr.engine import OcrEngine
from retrieval.ocr.gate import TextGate

FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf"]
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
COLOURS = [((255, 255, 255), (0, 0, 0)), ((0, 0, 0), None), ((255, 230, 0), (0, 0, 0)), ((220, 20, 20), None),
           ((255, 255, 255), None), ((20, 40, 160), (255, 255, 255))]


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


def draw_text(im: Image.Image, lines: list[str], rng: random.Random) -> Image.Image:
    """``lines`` drawn onto ``im`` (RGB) at a random height of 3-10% of the photo, font, colour and small rotation."""
    w, h = im.size
    size = max(8, round(h * rng.uniform(0.03, 0.10)))
    font = ImageFont.truetype(str(FONT_DIR / rng.choice(FONTS)), size)
    fill, stroke = rng.choice(COLOURS)
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    y = rng.randint(0, max(1, h - len(lines) * int(size * 1.3) - 1))
    for line in lines:
        tw = d.textlength(line, font=font)
        x = rng.randint(0, max(1, int(w - tw) - 1))
        d.text((x, y), line, font=font, fill=fill + (255,), stroke_width=max(1, size // 15) if stroke else 0,
               stroke_fill=(stroke + (255,)) if stroke else None)
        y += int(size * 1.3)
    layer = layer.rotate(rng.uniform(-5, 5), resample=Image.BICUBIC, center=(w / 2, h / 2))
    out = im.convert("RGBA")
    out.alpha_composite(layer)
    return out.convert("RGB")


def screenshot(lines: list[str], rng: random.Random) -> Image.Image:
    im = Image.new("RGB", (800, 500), (255, 255, 255))
    d = ImageDraw.Draw(im)
    font = ImageFont.truetype(str(FONT_DIR / rng.choice(FONTS[:2])), rng.randint(12, 16))
    for i, line in enumerate(lines):
        d.text((20, 20 + 24 * i), line, fill=(30, 30, 30), font=font)
    return im


def word_pool(data: Path) -> list[str]:
    coco = json.loads((data / "flickr8k" / "captions_dev.json").read_text())
    words = {w.strip(".,!?\"'").lower() for a in coco["annotations"] for w in a["caption"].split()}
    return sorted(w for w in words if w.isalpha() and 4 <= len(w) <= 9)


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


def speed(folder: Path, tmp: Path, encoder, gate, engine) -> tuple[float, float, int]:
    """(photos/s without OCR, photos/s with OCR, photos read): two fresh indexes of ``folder``."""
    n = sum(1 for _ in folder.iterdir())
    t = time.perf_counter()
    index_folder(folder, tmp / "a", encoder=encoder)
    plain = n / (time.perf_counter() - t)
    t = time.perf_counter()
    index_folder(folder, tmp / "b", encoder=encoder)
    rep = read_text_in_folder(folder, tmp / "b", engine, gate)
    return plain, n / (time.perf_counter() - t), rep.read


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--text-photos", type=int, default=40)
    ap.add_argument("--plain", type=int, default=200)
    ap.add_argument("--speed", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    data, rng = Path(a.data).resolve(), random.Random(a.seed)
    f8, cm = photo_lists(data)
    encoder, engine = load_encoder(), OcrEngine()
    gate = TextGate(encoder)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "text").mkdir()
        truth = make_text_set(tmp / "text", f8, cm, a.text_photos, word_pool(data), rng)
        t = time.perf_counter()
        acc = accuracy(tmp / "text", truth, engine)
        per = (time.perf_counter() - t) / len(truth)
        photos = [n for n in truth if n.startswith("text")]
        print(f"OCR on {len(photos)} photos with drawn text + {len(truth) - len(photos)} screenshots: "
              f"CER {acc['cer']:.3f}, word recall {acc['word_recall']:.3f} ({per:.2f} s a photo)")
        for label, names in (("photos", photos), ("screenshots", [n for n in truth if n not in photos])):
            r = accuracy(tmp / "text", {n: truth[n] for n in names}, engine)
            print(f"  {label}: CER {r['cer']:.3f}, word recall {r['word_recall']:.3f}")
        plain = rng.sample(f8, a.plain // 2) + rng.sample(cm, a.plain - a.plain // 2)
        emb = lambda paths: np.concatenate([encoder.encode_images([load_image(p) for p in paths[i : i + 32]])  # noqa
                                            for i in range(0, len(paths), 32)])
        skip = 1 - gate.passes(emb(plain)).mean()
        passed_text = gate.passes(emb([tmp / "text" / n for n in photos])).mean()
        passed_shots = gate.passes(emb([tmp / "text" / n for n in truth if n not in photos])).mean()
        print(f"gate: skips {skip:.1%} of {len(plain)} text-free photos; passes {passed_text:.1%} of the photos "
              f"with drawn text and {passed_shots:.0%} of the screenshots")
        lib = tmp / "f8"
        lib.mkdir()
        for p in rng.sample(f8, a.speed):
            shutil.copy(p, lib / p.name)
        mixed = tmp / "mixed"
        shutil.copytree(lib, mixed)
        for p, (name, lines) in zip(sorted(mixed.iterdir())[: a.speed // 10], list(truth.items())):
            draw_text(Image.open(p).convert("RGB"), lines, rng).save(p, quality=92)
        index_folder(lib, tmp / "warm", encoder=encoder)  # warm-up (ONNX sessions)
        for label, folder in (("Flickr8k dev", lib), ("10% with text", mixed)):
            wo, wi, read = speed(folder, tmp / label.replace(" ", "_").replace("%", ""), encoder, gate, engine)
            print(f"speed, {label} ({a.speed} photos): {wo:.1f} photos/s without OCR, {wi:.1f} with "
                  f"({wi / wo:.0%}; {read} photos read by OCR)")


if __name__ == "__main__":
    main()
