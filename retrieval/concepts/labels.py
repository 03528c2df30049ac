"""ImageNet-1k class names for the concept channel: lemmas and everyday hypernyms of each class.

The table ``data/imagenet_classes.tsv`` (1,000 rows in the backbones' output order) comes from
timm's ImageNet synset/lemma files and Princeton WordNet 3.0 hypernyms (Miller 1995; Fellbaum
1998); see ``data/README.md``. No torch, no WordNet at run time.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
CLASSES_FILE = DATA_DIR / "imagenet_classes.tsv"
#: number of ImageNet-1k classes (rows of the table, outputs of the classifier heads)
NUM_CLASSES = 1000


@dataclass(frozen=True)
class ImageNetClass:
    """One ImageNet-1k class.

    Attributes:
        index: position in the classifier output (0..999).
        synset: WordNet 3.0 noun id, e.g. ``"n02123045"``.
        lemmas: its names, most common first (``["tabby", "tabby cat"]``).
        hypernyms: more general everyday names, nearest first (``["domestic cat", "cat", ...]``).
    """

    index: int
    synset: str
    lemmas: tuple[str, ...]
    hypernyms: tuple[str, ...]

    @property
    def label(self) -> str:
        """The class's display name (its first lemma)."""
        return self.lemmas[0]


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    """The 1,000 classes in classifier-output order.

    Raises:
        FileNotFoundError: the package data file is missing.
    """
    out = []
    with open(CLASSES_FILE, encoding="utf-8") as f:
        next(f)
        for line in f:
            i, syn, lem, hyp = line.rstrip("\n").split("\t")
            out.append(ImageNetClass(int(i), syn, tuple(w.strip() for w in lem.split(",") if w.strip()),
                                     tuple(w.strip() for w in hyp.split(",") if w.strip())))
    return tuple(out)


@lru_cache(maxsize=1)
def class_labels() -> tuple[tuple[str, str], ...]:
    """(display name, synset) of the 1,000 classes in classifier-output order: what a search shows,
    read without parsing every name (:func:`imagenet_classes` reads them all).

    Raises:
        FileNotFoundError: the package data file is missing.
    """
    with open(CLASSES_FILE, encoding="utf-8") as f:
        lines = f.read().split("\n")[1:]
    out = []
    for line in lines:
        if line:
            _, syn, lem, _ = line.split("\t", 3)
            out.append((lem.split(",", 1)[0].strip(), syn))
    return tuple(out)


def concept_names() -> tuple[list[str], list[int], list[bool]]:
    """Every name of every class, for the sentence encoder.

    Returns:
        (names, class index of each name, whether each name is a hypernym rather than a lemma).
        A name shared by several classes appears once per class.
    """
    names, cls, hyper = [], [], []
    for c in imagenet_classes():
        for w in c.lemmas:
            names.append(w)
            cls.append(c.index)
            hyper.append(False)
        for w in c.hypernyms:
            names.append(w)
            cls.append(c.index)
            hyper.append(True)
    return names, cls, hyper
