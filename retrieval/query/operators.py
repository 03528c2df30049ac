"""Query operators, as rclip has them: steer a query by adding and subtracting other queries.

``retr search "a dog" --add "snow" --subtract "people"`` searches for the embedding
``normalise(e("a dog") + e("snow") - e("people"))``: each part (words, or the path of a photo) is
embedded and L2-normalised, weighted, and summed (the vector arithmetic of Mikolov et al. 2013,
applied to a joint image-text space as in rclip). ``W:TEXT`` gives a part the weight ``W``
(``--add "0.5:at night"``; default 1).
"""
from __future__ import annotations

import re

import numpy as np

_WEIGHT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*:(.+)$", re.S)


def split_weight(term: str) -> tuple[float, str]:
    """``"0.5:at night"`` -> ``(0.5, "at night")``; a term without a weight has weight 1.

    Raises:
        ValueError: an empty term (one line naming it).
    """
    m = _WEIGHT.match(term)
    w, text = (float(m.group(1)), m.group(2)) if m else (1.0, term)
    if not text.strip():
        raise ValueError(f"{term!r}: an empty --add/--subtract term")
    return w, text.strip()


def combine(base: np.ndarray, added: list[tuple[float, np.ndarray]],
            subtracted: list[tuple[float, np.ndarray]]) -> np.ndarray:
    """``normalise(base + sum(w * a) - sum(w * s))`` of (D,) float32 unit vectors; (D,) float32 unit vector.

    Raises:
        ValueError: the parts cancel out (a zero vector: nothing left to search for).
    """
    v = np.asarray(base, np.float32).copy()
    for w, a in added:
        v += np.float32(w) * np.asarray(a, np.float32)
    for w, s in subtracted:
        v -= np.float32(w) * np.asarray(s, np.float32)
    n = float(np.linalg.norm(v))
    if n < 1e-6:
        raise ValueError("the query's parts cancel out: nothing left to search for")
    return v / n
