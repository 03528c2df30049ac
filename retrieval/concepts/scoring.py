"""Zero-shot concept score: how well a photo's ImageNet posteriors match a query's words.

A query's sentence embedding is compared with the embeddings of every ImageNet class name
(lemmas and WordNet hypernyms, :mod:`retrieval.concepts.labels`); a class's match is its best
name's cosine (a hypernym's discounted by ``hypernym_weight``), and only matches above
``threshold`` count. A photo's concept score is the expectation of that match under its
class posteriors (the zero-shot transfer of Lampert et al. 2009 / Norouzi et al. 2014, ConSE,
with class-name embeddings from the sentence encoder instead of word vectors). NumPy only:
the name embeddings are computed once at export time (:func:`embed_concept_names`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.concepts.labels import NUM_CLASSES, class_labels, concept_names

#: classes kept per photo in the index (their posteriors; the rest of the mass is dropped)
TOP_CLASSES = 10


def embed_concept_names(sentence_encoder, path: str | Path) -> Path:
    """Write the class-name embeddings for :class:`ConceptMatcher` (export time; torch).

    Args:
        sentence_encoder: a :class:`retrieval.encoders.text.SentenceEncoder` (its ``embed``).
        path: the ``.npz`` file to write: ``names`` (U,) str, ``embeddings`` (U, 384) float16,
            ``name_index``/``class_index``/``hypernym`` (M,) arrays linking names to classes.
    """
    names, cls, hyper = concept_names()
    unique = sorted(set(names))
    pos = {n: i for i, n in enumerate(unique)}
    emb = sentence_encoder.embed([f"a photo of a {n}." for n in unique])
    np.savez(path, names=np.array(unique), embeddings=emb.astype(np.float16),
             name_index=np.array([pos[n] for n in names], np.int32), class_index=np.array(cls, np.int32),
             hypernym=np.array(hyper, bool))
    return Path(path)


@dataclass
class ConceptMatcher:
    """Query -> per-class match weights, from the name embeddings of :func:`embed_concept_names`.

    Attributes:
        embeddings: (U, 384) float32 L2-normalised name embeddings.
        name_index, class_index: (M,) int32: name ``name_index[m]`` names class ``class_index[m]``.
        hypernym: (M,) bool: the name is a hypernym of the class, not one of its lemmas.
        threshold: cosine below which a class does not match at all.
        hypernym_weight: factor on a hypernym's cosine.
    """

    embeddings: np.ndarray
    name_index: np.ndarray
    class_index: np.ndarray
    hypernym: np.ndarray
    threshold: float = 0.5
    hypernym_weight: float = 0.95

    def __post_init__(self):
        # names grouped by class, for one np.maximum.reduceat (np.maximum.at is ~50x slower)
        self._order = np.argsort(self.class_index, kind="stable")
        grouped = np.asarray(self.class_index)[self._order]
        self._starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
        self._classes = grouped[self._starts]
        self._last: tuple[bytes, np.ndarray] | None = None

    @classmethod
    def load(cls, path: str | Path, **kw) -> "ConceptMatcher":
        """Read a ``concept_names.npz``. Raises ``OSError``/``KeyError`` on a missing or damaged file."""
        with np.load(path) as z:
            return cls(z["embeddings"].astype(np.float32), z["name_index"], z["class_index"], z["hypernym"], **kw)

    def class_similarity(self, sentence: np.ndarray) -> np.ndarray:
        """(384,) query sentence embedding -> (1000,) float32 best-name cosine of each class (-1 for a
        class without a name); the last query's answer is kept (a search asks twice)."""
        q = np.asarray(sentence, np.float32)
        key = q.tobytes() + np.float32(self.hypernym_weight).tobytes()
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        s = np.einsum("ud,d->u", self.embeddings, q)[self.name_index]  # no BLAS thread pool for one query
        s = np.where(self.hypernym, s * self.hypernym_weight, s).astype(np.float32)
        out = np.full(NUM_CLASSES, -1.0, np.float32)
        out[self._classes] = np.maximum.reduceat(s[self._order], self._starts)
        self._last = (key, out)
        return out

    def class_weights(self, sentence: np.ndarray) -> np.ndarray:
        """(1000,) float32 in [0, 1]: ``max(0, sim - threshold) / (1 - threshold)``."""
        s = self.class_similarity(sentence)
        return np.clip((s - self.threshold) / (1.0 - self.threshold), 0.0, 1.0)

    def strength(self, sentence: np.ndarray) -> float:
        """How clearly the query names an ImageNet concept: its best class weight, in [0, 1]."""
        return float(self.class_weights(sentence).max())


def top_classes(probs: np.ndarray, k: int = TOP_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1000) posteriors -> ((N, k) int16 class indices, (N, k) float32 probabilities), best first."""
    probs = np.asarray(probs, np.float32)
    k = min(k, probs.shape[1])
    idx = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    p = np.take_along_axis(probs, idx, 1)
    o = np.argsort(-p, axis=1)
    return np.take_along_axis(idx, o, 1).astype(np.int16), np.take_along_axis(p, o, 1)


def concept_scores(weights: np.ndarray, classes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Photos' concept scores: ``sum_j probs[n, j] * weights[classes[n, j]]``.

    Args:
        weights: (1000,) class weights of the query (:meth:`ConceptMatcher.class_weights`).
        classes, probs: (N, k) top classes and their posteriors (:func:`top_classes`).

    Returns:
        (N,) float32 in [0, 1].
    """
    if len(classes) == 0:
        return np.zeros(0, np.float32)
    return (np.asarray(probs, np.float32) * weights[np.asarray(classes, np.int64)]).sum(1).astype(np.float32)


def concept_labels(classes, probs, min_prob: float = 0.05) -> list[dict]:
    """One photo's concepts for display: ``[{"label", "synset", "p"}]`` with p >= ``min_prob``, best first."""
    names = class_labels()
    return [{"label": names[int(c)][0], "synset": names[int(c)][1], "p": round(float(p), 3)}
            for c, p in zip(classes, probs) if p >= min_prob]
