"""Build the messy-library fixture folders, one folder per edge case (issue: real photo libraries)."""
from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

from PIL import Image

import retrieval.io.decode  # noqa: F401 - registers the HEIF opener and saver
from conftest import DEMO

GOOD = ["astronaut.jpg", "cat.jpg", "coffee.jpg"]


def _photo(name="cat.jpg") -> Image.Image:
    return Image.open(DEMO / name).convert("RGB")


def truncated_jpeg(d: Path) -> list[str]:
    data = (DEMO / "eagle.jpg").read_bytes()
    (d / "half.jpg").write_bytes(data[: len(data) // 2])
    return ["half.jpg"]


def zero_byte(d: Path) -> list[str]:
    (d / "empty.jpg").write_bytes(b"")
    return ["empty.jpg"]


def text_named_png(d: Path) -> list[str]:
    (d / "readme.png").write_text("not an image\n")
    return ["readme.png"]


def wrong_extension(d: Path) -> None:
    """A PNG file named .jpg: Pillow decodes it fully, so it is indexed."""
    _photo("rocket.jpg").save(d / "actually_png.jpg", format="PNG")


def palette_transparent(d: Path) -> None:
    im = _photo("coffee.jpg").convert("P", palette=Image.ADAPTIVE)
    im.save(d / "palette.png", transparency=0)


def rgba_screenshot(d: Path) -> None:
    im = _photo("astronaut.jpg").convert("RGBA")
    im.putalpha(200)
    im.save(d / "screenshot.png")


def cmyk_jpeg(d: Path) -> None:
    _photo("horses.jpg").convert("CMYK").save(d / "cmyk.jpg")


def greyscale_jpeg(d: Path) -> None:
    _photo("cat.jpg").convert("L").save(d / "grey.jpg")


def animated_gif(d: Path) -> None:
    a, b = _photo("eagle.jpg"), _photo("rocket.jpg").resize(_photo("eagle.jpg").size)
    a.save(d / "anim.gif", save_all=True, append_images=[b], duration=100, loop=0)


def multipage_tiff(d: Path) -> None:
    a, b = _photo("giraffe_zebra.jpg"), _photo("coffee.jpg")
    a.save(d / "pages.tiff", save_all=True, append_images=[b])


def panorama(d: Path) -> None:
    _photo("horses.jpg").resize((20000, 500)).save(d / "panorama.jpg", quality=70)


def exif_rotated(d: Path) -> None:
    """The same photo stored upright, and stored rotated with an orientation tag."""
    im = _photo("person_dog_horse.jpg")
    im.save(d / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.rotate(90, expand=True).save(d / "rotated_tagged.jpg", exif=exif, quality=95)


def huge_declared(d: Path) -> list[str]:
    """A tiny PNG file (a few hundred bytes) that declares 30000x30000 pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x00" * 30000
    idat = zlib.compress(row * 8, 9)  # only the first rows: the header alone must be refused
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    (d / "bomb.png").write_bytes(png)
    return ["bomb.png"]


def heic_photo(d: Path) -> None:
    _photo("kites_beach.jpg").save(d / "phone.heic", format="HEIF")


def avif_photo(d: Path) -> None:
    _photo("giraffe_zebra.jpg").save(d / "modern.avif", format="AVIF")


def hidden_and_clutter(d: Path) -> list[str]:
    """Hidden files and folders and OS clutter: skipped by default, so nothing fails."""
    (d / ".hidden").mkdir()
    shutil.copy(DEMO / "cat.jpg", d / ".hidden" / "secret.jpg")
    shutil.copy(DEMO / "cat.jpg", d / ".dotfile.jpg")
    (d / "@eaDir").mkdir()
    shutil.copy(DEMO / "cat.jpg", d / "@eaDir" / "SYNOPHOTO_THUMB_XL.jpg")
    (d / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (d / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (d / "._resource.jpg").write_bytes(b"\x00\x05\x16\x07")
    return []


def odd_names(d: Path) -> list[str]:
    names = ["with space.jpg", "quote's \"x\".jpg", "new\nline.jpg", "中文照片.jpg", "emoji 🐱.jpg"]
    for n in names:
        shutil.copy(DEMO / "cat.jpg", d / n)
    return names


CASES = {f.__name__: f for f in (truncated_jpeg, zero_byte, text_named_png, wrong_extension, palette_transparent,
                                 rgba_screenshot, cmyk_jpeg, greyscale_jpeg, animated_gif, multipage_tiff, panorama,
                                 exif_rotated, huge_declared, heic_photo, avif_photo, hidden_and_clutter)}
#: cases whose files must be reported and skipped (the others must be indexed)
BAD = {"truncated_jpeg", "zero_byte", "text_named_png", "huge_declared"}


def build(root: Path, cases=None) -> dict[str, list[str]]:
    """Make ``root/<case>/`` for each case plus ``root/good/``; returns the files expected to fail, per case."""
    root.mkdir(parents=True, exist_ok=True)
    good = root / "good"
    good.mkdir()
    for n in GOOD:
        shutil.copy(DEMO / n, good / n)
    bad = {}
    for name in cases or CASES:
        d = root / name
        d.mkdir()
        r = CASES[name](d)
        bad[name] = r if name in BAD else []
    return bad
