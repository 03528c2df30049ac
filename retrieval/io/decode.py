"""Decode image files into RGB PIL images, the way a person sees them.

Every failure is raised as :class:`DecodeError` carrying the path and a
one-line human reason, so callers can report it and go on with the next file.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from retrieval.errors import DecodeError

try:  # HEIC/HEIF photos from phones
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional
    pass

# We check the declared size ourselves (``max_megapixels``), before any pixels are decoded.
Image.MAX_IMAGE_PIXELS = None
# Pillow warns about damaged metadata (corrupt EXIF, odd TIFF tags) on stderr, several lines a file;
# the pixels decode all the same, and a file that cannot be decoded is reported as a DecodeError.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
#: Default ceiling on decoded pixels, in megapixels (width * height / 1e6).
DEFAULT_MAX_MEGAPIXELS = 200.0


def load_image(
    path: str | Path,
    *,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Open ``path`` and return a fully decoded RGB image, upright.

    EXIF orientation is applied (``ImageOps.exif_transpose``), the first frame
    of an animation or multi-page file is used, and any mode (palette with
    transparency, RGBA, CMYK, greyscale, 16-bit, 32-bit float scaled to its own range) is converted to RGB
    (transparent pixels composited on white).

    Args:
        path: image file.
        max_megapixels: refuse images whose declared size exceeds this many
            megapixels, before decoding pixels (guards against decompression
            bombs and out-of-memory).
        draft_size: if given, let JPEG decoding pick a reduced DCT scale that
            is still at least this (width, height) (Pillow draft mode); a speed
            hint, never upsamples.

    Returns:
        ``PIL.Image.Image`` in mode ``"RGB"``; ``info["original_size"]`` holds
        the upright (width, height) in pixels before any draft reduction.

    Raises:
        DecodeError: the file is missing, unreadable, empty, not an image,
            truncated, or too large.
    """
    p = Path(path)
    if p.is_dir():
        raise DecodeError(p, "is a folder, not an image file")
    try:
        if p.stat().st_size == 0:
            raise DecodeError(p, "empty file (0 bytes)")
    except OSError as e:
        raise DecodeError(p, f"cannot read file ({e.strerror or e})") from None
    try:
        with Image.open(p) as im:
            w, h = im.size
            if w * h > max_megapixels * 1e6:
                raise DecodeError(
                    p,
                    f"image too large ({w}x{h} = {w * h / 1e6:.3g} megapixels > "
                    f"{max_megapixels:g}; raise --max-megapixels to allow it)",
                )
            if im.getexif().get(0x0112) in (5, 6, 7, 8):
                w, h = h, w
            if draft_size is not None and im.format == "JPEG":
                im.draft("RGB", draft_size)
            im.seek(0)
            im.load()
            upright = ImageOps.exif_transpose(im)
            out = to_rgb(upright)
            if out is im:  # never hand out the object the ``with`` block closes
                out = im.copy()
            out.info["original_size"] = (w, h)
            return out
    except DecodeError:
        raise
    except UnidentifiedImageError:
        raise DecodeError(p, "not a recognised image format") from None
    except OSError as e:
        msg = str(e) or e.__class__.__name__
        if "truncated" in msg:
            msg = "truncated or corrupt image data (" + msg + ")"
        raise DecodeError(p, msg) from None
    except (ValueError, SyntaxError, EOFError, MemoryError) as e:
        raise DecodeError(p, f"corrupt image ({e.__class__.__name__}: {e})") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited on white."""
    if im.mode == "RGB":
        return im
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im.convert("RGBA"), mask=im.convert("RGBA").getchannel("A"))
        return bg
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.point(lambda v: v / 256).convert("L")
    if im.mode == "F":
        im = float_to_grey(im)
    return im.convert("RGB")


def float_to_grey(im: Image.Image) -> Image.Image:
    """A 32-bit float greyscale image (Pillow mode ``F``: scientific TIFFs, HDR exports) as 8-bit
    greyscale, scaled linearly from its own finite range (min..max) to 0..255: its values may be
    in 0..1, in physical units or anything else, and clipping them to 0..255 would give a uniform
    black or white picture. Non-finite pixels (NaN, inf) become 0; a constant image is mid-grey."""
    import numpy as np

    a = np.asarray(im, np.float32)
    finite = np.isfinite(a)
    if not finite.any():
        return Image.new("L", im.size, 128)
    lo, hi = float(a[finite].min()), float(a[finite].max())
    if hi <= lo:
        return Image.new("L", im.size, 128)
    out = np.where(finite, (a - lo) * (255.0 / (hi - lo)), 0.0)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "L")
