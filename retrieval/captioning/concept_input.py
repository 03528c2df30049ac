"""The concept words the attention captioner reads: what the photo's classifiers see, as words of
its vocabulary with a confidence each.

Two sources, both already computed by the image path: the ImageNet-1k posteriors (each word's
evidence is the posterior mass of the classes naming it, :func:`retrieval.captioning.concept_words.word_evidence`,
plural forms folded onto the singular) and the COCO detector's objects (each class named by one
canonical word, :func:`detector_word`, with the detection score). A word named by both keeps the
larger confidence. The ``k`` most confident words at or above ``floor`` are kept: a floor keeps
unsure labels out of the decoder's reach (hallucination, CHAIR, Rohrbach et al. 2018).

In text-only pre-training the captions have no photo: their concepts are their own object
words mapped to the same canonical words (:func:`canonical_concepts`; "men" -> "person",
"puppies" -> "dog", "horses" -> "horse"), so the decoder learns to use the same inputs.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from retrieval.captioning.concept_words import named_words, word_evidence, word_groups
from retrieval.captioning.vocab import PAD
from retrieval.detection.classes import COCO_CLASSES
from retrieval.detection.names import name_forms

#: concepts kept a photo, and the confidence floor below which a concept is not given
CONCEPT_SLOTS, CONCEPT_FLOOR = 8, 0.25
#: COCO classes whose display name is several words: the one word that names them in a caption
MULTIWORD = {"traffic light": "light", "fire hydrant": "hydrant", "stop sign": "sign", "parking meter": "meter",
             "sports ball": "ball", "baseball bat": "bat", "baseball glove": "glove", "tennis racket": "racket",
             "wine glass": "glass", "hot dog": "hotdog", "potted plant": "plant", "dining table": "table",
             "computer mouse": "mouse", "remote control": "remote", "cell phone": "phone", "teddy bear": "teddy",
             "hair dryer": "dryer"}


#: ImageNet concept words too odd to put in a caption ("fluid" for espresso, "rig" for a launch pad)
NOT_SAID = frozenset({"fluid", "rig", "bob"})


def detector_word(index: int) -> str:
    """The one word naming COCO class ``index`` in a caption ("person", "table", "phone")."""
    main = name_forms(index)[0][0]
    return MULTIWORD.get(main, main)


@lru_cache(maxsize=4)
def canonical_table(vocab: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """For each token id of ``vocab``: the id of the canonical concept word it names (-1: none),
    and for each COCO class the id of its :func:`detector_word` (-1 where ``vocab`` lacks it).

    Returns:
        ((V,) int64, (80,) int64).
    """
    idx = {w: i for i, w in enumerate(vocab)}
    canon = np.full(len(vocab), -1, np.int64)
    groups = word_groups(list(vocab))
    for w in named_words(list(vocab)):
        if vocab[w] not in NOT_SAID:
            canon[w] = groups[w]
    det = np.full(len(COCO_CLASSES), -1, np.int64)
    for c in range(len(COCO_CLASSES)):
        head = idx.get(detector_word(c), -1)
        det[c] = head
        if head < 0:
            continue
        singular, plural = name_forms(c)
        for name in (*singular, *plural):
            if " " not in name and name in idx:
                canon[idx[name]] = head
        canon[head] = head
    return canon, det


def photo_concepts(posteriors: np.ndarray | None, objects: list[list[tuple[int, float]]] | None, vocab: list[str],
                   k: int = CONCEPT_SLOTS, floor: float = CONCEPT_FLOOR, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The concept words of N photos.

    Args:
        posteriors: (N, 1000) float ImageNet posteriors, or ``None``.
        objects: per photo, (COCO class index, score in [0, 1]) detections, or ``None``.
        vocab: the captioner's vocabulary.
        k: slots a photo. floor: smallest confidence kept.
        n: number of photos (needed only when both sources are ``None``).

    Returns:
        (ids (N, k) int64, ``PAD`` in empty slots; confidences (N, k) float32, 0 in empty slots),
        most confident first.
    """
    if n is None:
        n = len(posteriors) if posteriors is not None else len(objects or [])
    canon, det = canonical_table(tuple(vocab))
    conf = np.zeros((n, len(vocab)), np.float32)
    if posteriors is not None and n:
        ev = word_evidence(np.asarray(posteriors, np.float32).reshape(n, -1), vocab)
        cols = np.flatnonzero(canon >= 0)
        np.maximum.at(conf.T, canon[cols], ev[:, cols].T)
    for i, objs in enumerate(objects or []):
        for c, s in objs:
            if det[int(c)] >= 0:
                conf[i, det[int(c)]] = max(conf[i, det[int(c)]], float(s))
    ids = np.full((n, k), PAD, np.int64)
    out = np.zeros((n, k), np.float32)
    if n:
        top = np.argsort(-conf, axis=1, kind="stable")[:, :k]
        val = np.take_along_axis(conf, top, 1)
        keep = val >= floor
        ids[keep], out[keep] = top[keep], np.minimum(val[keep], 1.0)
    return ids, out
