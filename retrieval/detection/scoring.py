"""Detector concept score: how well a photo's detected COCO objects match a query's words.

A query's sentence embedding is compared with the embeddings of every COCO class's names
(:func:`retrieval.detection.names.class_names`: "dog", "puppy", "dogs", ...); a class's match is
its best name's cosine, rescaled above ``threshold`` to [0, 1] as the ImageNet channel does
(:class:`retrieval.concepts.scoring.ConceptMatcher`). A photo's object score is the best, over
classes, of match x the class's highest detection score in the photo (objectness x class
probability), times a count factor when the query asks for a number ("two dogs": photos with
exactly two confident dogs keep their score, others keep ``count_miss`` of it). NumPy only; the
name embeddings are computed once per encoder with its ONNX text model and cached beside it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.detection.names import name_forms

#: COCO classes
NUM_OBJECTS = 80
OBJECT_NAMES_FILE = "object_names.npz"
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
            "nine": 9, "ten": 10, "pair": 2, "couple": 2, "both": 2}
_NUMBER_RE = re.compile(r"\b(" + "|".join(_NUMBERS) + r"|\d{1,2})\b")


def name_prompts() -> tuple[list[str], np.ndarray]:
    """(prompt per name, (M,) int32 class of each): ``"a photo of a dog."``, ``"a photo of dogs."``."""
    prompts, cls = [], []
    for c in range(NUM_OBJECTS):
        one, many = name_forms(c)
        prompts += [f"a photo of a {n}." for n in one] + [f"a photo of {n}." for n in many if n not in one]
        cls += [c] * (len(one) + len([n for n in many if n not in one]))
    return prompts, np.array(cls, np.int32)


def embed_object_names(text_encoder, path: str | Path) -> Path:
    """Write the name embeddings (``embeddings`` (M, 384) float16, ``class_index`` (M,) int32) of every
    COCO class name to ``path`` with ``text_encoder`` (an
    :class:`retrieval.encoders.onnx_runtime.OnnxTextEncoder`: its sentence output)."""
    prompts, cls = name_prompts()
    tmp = Path(path).with_suffix(".tmp.npz")
    np.savez(tmp, embeddings=name_embeddings(text_encoder, prompts).astype(np.float16), class_index=cls)
    tmp.replace(path)
    return Path(path)


def name_embeddings(text_encoder, prompts: list[str]) -> np.ndarray:
    """(M, 384) float32 sentence embeddings of ``prompts`` (batches of 64)."""
    return np.concatenate([text_encoder.encode_texts_and_sentences(prompts[i : i + 64])[1]
                           for i in range(0, len(prompts), 64)])


def query_count(text: str) -> int | None:
    """The number of things a query asks for ("two dogs" -> 2, "a pair of shoes" -> 2), or None."""
    m = _NUMBER_RE.search(text.lower())
    if m is None:
        return None
    w = m.group(1)
    n = int(w) if w.isdigit() else _NUMBERS[w]
    return n if 1 <= n <= 20 else None


@dataclass
class ObjectMatcher:
    """Query -> per-COCO-class match weights (see the module docstring).

    Attributes:
        embeddings: (M, 384) float32 L2-normalised name embeddings.
        class_index: (M,) int32 class of each name.
        threshold: cosine below which a class does not match.
        count_miss: factor on a photo whose count of a class differs from the query's number.
    """

    embeddings: np.ndarray
    class_index: np.ndarray
    threshold: float = 0.5
    count_miss: float = 0.5

    @classmethod
    def load(cls, path: str | Path, **kw) -> "ObjectMatcher":
        """Read an ``object_names.npz``. Raises ``OSError``/``KeyError`` on a missing or damaged file."""
        z = np.load(path)
        return cls(z["embeddings"].astype(np.float32), z["class_index"], **kw)

    def class_weights(self, sentence: np.ndarray) -> np.ndarray:
        """(384,) query sentence embedding -> (80,) float32 in [0, 1]."""
        s = self.embeddings @ np.asarray(sentence, np.float32)
        best = np.full(NUM_OBJECTS, -1.0, np.float32)
        np.maximum.at(best, self.class_index, s)
        return np.clip((best - self.threshold) / (1.0 - self.threshold), 0.0, 1.0)


def object_scores(weights: np.ndarray, scores: np.ndarray, counts: np.ndarray | None = None,
                  want: int | None = None, count_miss: float = 0.5) -> np.ndarray:
    """Photos' object scores.

    Args:
        weights: (80,) class weights of the query (:meth:`ObjectMatcher.class_weights`).
        scores: (N, 80) float32: each photo's best detection score per class (0: not detected).
        counts: (N, 80) int: confident detections per class (needed when ``want`` is set).
        want: the number the query asks for (:func:`query_count`), or None.
        count_miss: factor where a photo's count differs from ``want``.

    Returns:
        (N,) float32 in [0, 1].
    """
    s = np.asarray(scores, np.float32) * weights[None, :]
    if want is not None and counts is not None:
        s = np.where(np.asarray(counts) == want, s, s * count_miss)
    return s.max(1) if s.shape[0] else np.zeros(0, np.float32)


#: a class is stored for a photo when its best detection scores at least this
STORE_SCORE = 0.1
#: detections at least this confident are counted ("two dogs")
COUNT_SCORE = 0.25


def summarise(detections, classes=None) -> list[tuple[int, float, int]]:
    """One photo's detections (:class:`retrieval.detection.yolo.Detection`) -> its stored rows
    ``(class index, best score, count of detections >= COUNT_SCORE)`` for classes whose best score is
    >= :data:`STORE_SCORE`, best first. ``classes``: the class names in output order (default COCO's)."""
    if classes is None:
        from retrieval.detection.classes import COCO_CLASSES as classes
    idx = {c: i for i, c in enumerate(classes)}
    best: dict[int, list] = {}
    for d in detections:
        row = best.setdefault(idx[d.label], [0.0, 0])
        row[0] = max(row[0], d.score)
        row[1] += d.score >= COUNT_SCORE
    rows = [(c, round(s, 4), n) for c, (s, n) in best.items() if s >= STORE_SCORE]
    return sorted(rows, key=lambda r: -r[1])


def object_matrix(photo: np.ndarray, cls: np.ndarray, score: np.ndarray, count: np.ndarray,
                  n_photos: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored rows (parallel (M,) arrays; ``photo`` in 0..n_photos-1) -> ((N, 80) float32 best
    scores, (N, 80) int16 counts), zero where a class was not detected."""
    s = np.zeros((n_photos, NUM_OBJECTS), np.float32)
    c = np.zeros((n_photos, NUM_OBJECTS), np.int16)
    p, k = np.asarray(photo, np.int64), np.asarray(cls, np.int64)
    s[p, k] = score
    c[p, k] = count
    return s, c


def load_object_matcher(export_folder: str | Path, text_encoder=None, **kw) -> ObjectMatcher:
    """The :class:`ObjectMatcher` of an encoder export folder, its name embeddings computed on first
    use with the export's ONNX text model (``text_encoder``, or one opened here) and cached there
    (in memory only when the folder is read-only)."""
    path = Path(export_folder) / OBJECT_NAMES_FILE
    if not path.is_file():
        if text_encoder is None:
            from retrieval.encoders.onnx_runtime import OnnxTextEncoder

            text_encoder = OnnxTextEncoder(export_folder)
        try:
            embed_object_names(text_encoder, path)
        except OSError:
            prompts, cls = name_prompts()
            return ObjectMatcher(name_embeddings(text_encoder, prompts), cls, **kw)
    return ObjectMatcher.load(path, **kw)
