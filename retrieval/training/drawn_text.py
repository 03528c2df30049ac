"""Photos with words drawn on them, for training and measuring the OCR gate and the OCR engine: real
photos with one to three lines of words drawn by Pillow in several fonts, colours and small rotations,
at heights from 3% to 10% of the photo's height, and plain screenshots. Needs the DejaVu fonts
(Debian's ``fonts-dejavu-core``)."""
from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

#: the fonts drawn with, in :data:`FONT_DIR`
FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf"]
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
#: (fill, outline or None) colour schemes
COLOURS = [((255, 255, 255), (0, 0, 0)), ((0, 0, 0), None), ((255, 230, 0), (0, 0, 0)), ((220, 20, 20), None),
           ((255, 255, 255), None), ((20, 40, 160), (255, 255, 255))]


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
    """An 800x500 white screenshot with ``lines`` in dark 12-16 px text."""
    im = Image.new("RGB", (800, 500), (255, 255, 255))
    d = ImageDraw.Draw(im)
    font = ImageFont.truetype(str(FONT_DIR / rng.choice(FONTS[:2])), rng.randint(12, 16))
    for i, line in enumerate(lines):
        d.text((20, 20 + 24 * i), line, fill=(30, 30, 30), font=font)
    return im


def caption_words(captions_file: Path) -> list[str]:
    """The distinct alphabetic words of 4 to 9 letters in a COCO-captions JSON file, lowercase, sorted."""
    coco = json.loads(Path(captions_file).read_text())
    words = {w.strip(".,!?\"'").lower() for a in coco["annotations"] for w in a["caption"].split()}
    return sorted(w for w in words if w.isalpha() and 4 <= len(w) <= 9)


def random_lines(words: list[str], rng: random.Random) -> list[str]:
    """One to three lines of one to three of ``words`` each."""
    return [" ".join(rng.sample(words, rng.randint(1, 3))) for _ in range(rng.randint(1, 3))]


__all__ = ["COLOURS", "FONTS", "FONT_DIR", "caption_words", "draw_text", "random_lines", "screenshot"]
