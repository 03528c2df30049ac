"""Perceptual hash of a photo: a 64-bit fingerprint that survives resizing, recompression and
brightness changes, for finding near-duplicate photos (:mod:`retrieval.duplicates`).

The hash is the DCT hash ("pHash"; Zauner, *Implementation and Benchmarking of Perceptual Image
Hash Functions*, 2010) as computed by the ``imagehash`` library: the photo reduced to 32x32
grey pixels, its 2-D DCT, and one bit per low-frequency coefficient (the top-left 8x8) saying
whether it lies above their median. Similar photos differ in few bits (Hamming distance).
"""
from __future__ import annotations

from PIL import Image

#: bits in a hash (8x8 low-frequency DCT coefficients)
HASH_BITS = 64


def perceptual_hash(image: Image.Image) -> str:
    """The 64-bit DCT perceptual hash of ``image`` as 16 lowercase hex digits.

    Args:
        image: a decoded PIL image (any mode and size; converted to grey internally).

    Returns:
        a 16-character hex string.
    """
    import imagehash

    return str(imagehash.phash(image, hash_size=8))


def hash_distance(a: str, b: str) -> int:
    """Hamming distance (0..64) between two hashes from :func:`perceptual_hash`.

    Raises:
        ValueError: a hash is not 16 hex digits.
    """
    if len(a) != 16 or len(b) != 16:
        raise ValueError(f"perceptual hashes must be 16 hex digits, not {a!r} and {b!r}")
    return (int(a, 16) ^ int(b, 16)).bit_count()
