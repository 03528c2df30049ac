"""Concept words: a decode-time prior that lets the photo's ImageNet concepts name what is in it.

The captioner's decoder sees one aligned embedding of the photo and speaks Flickr8k's words, so a
cat or an espresso cup becomes "a boy" or "a dog". The image path also gives the photo's
ImageNet-1k class posteriors (:mod:`retrieval.concepts`). Here every class votes for the
captioner's words that name it (its one-word lemmas and WordNet hypernyms, singular and plural,
less a stop list of words too general or too ambiguous to name an object), and a word's
evidence is the posterior mass of the classes that name it: p("dog") is the mass on the 118 dog
breeds. In beam search and sampling, each word whose evidence reaches ``threshold`` gets
``weight x evidence`` added to its log-probability until the caption has said it (or its
singular/plural), a shallow fusion of the language model with a class prior in the spirit of
semantic attention over detected concept words (You et al. 2016, "Image Captioning with
Semantic Attention") but with no training: the decoder's own language still places the word.
Gating by the posterior keeps labels of unsure concepts out of the caption (hallucination is
measured with CHAIR, Rohrbach et al. 2018: docs/captioner_concepts.md).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from retrieval.concepts.scoring import TOP_CLASSES

#: default prior, chosen on Flickr8k dev and COCO-mini (docs/captioner_concepts.md)
CONCEPT_WEIGHT, CONCEPT_THRESHOLD = 8.0, 0.3
#: names too general ("animal", "food", "garment"), too ambiguous ("boxer", "crane", "jack"), scenes
#: ("shore") or dog breeds (people say "dog") to put in a caption
GENERIC = frozenset(
    "animal clothing food instrument vehicle furniture machine barrier game headdress shop seat fabric piece "
    "stick beverage liquid course top light control attire sheet bar point beam ride mini pick circle spot "
    "work medium site case jack head ear racer landing carrier gear board runner display rubber disk platform "
    "stage post can tank fly cricket boxer crane mouse coach pitcher muzzle shade shades chest watch bow pipe "
    "bars ridge column player athlete groom diver pirate person bin wagon makeup magazine ball piece cap "
    "screen box bag dish wheel fence roof pot plate building structure device equipment covering container "
    "tights jean denim mat sign swing plant glass tub pen top bubble paper corn valley hay shore seashore coast "
    "lakeside sandbar cliff geyser promontory garment establishment craft drop eatery shelter tool staff memorial "
    "signal weight tissue lens produce mountain apparatus apparel decoration design dressing feed file grand hip "
    "hook iron package peer product scale semi shape shield swimsuit terrier hound retriever greyhound poodle "
    "beagle collie doberman husky dalmatian spaniel setter pug schnauzer cell dip kit lock mail pin punch safe "
    "slot spring spike upright wrapping scope organ horn nail rack".split())


def _names(cls) -> set[str]:
    return {n.lower() for n in (*cls.lemmas, *cls.hypernyms) if n.isalpha()}


@lru_cache(maxsize=8)
def _table(vocab: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from retrieval.concepts.labels import imagenet_classes

    idx = {w: i for i, w in enumerate(vocab)}
    cls_ids, word_ids, group = [], [], np.arange(len(vocab))
    for c in imagenet_classes():
        for name in _names(c) - GENERIC:
            forms = [f for f in (name, name + "s", name + "es") if f in idx]
            for f in forms:
                cls_ids.append(c.index)
                word_ids.append(idx[f])
                group[idx[f]] = idx[forms[0]]
    return np.asarray(cls_ids, np.int64), np.asarray(word_ids, np.int64), group


def word_evidence(posteriors: np.ndarray, vocab: list[str]) -> np.ndarray:
    """How strongly the concepts say each word of ``vocab``.

    Args:
        posteriors: (N, 1000) float ImageNet-1k posteriors (rows sum to at most 1); only each
            row's ``TOP_CLASSES`` largest count (what the index keeps, :func:`stored_posteriors`).
        vocab: the captioner's words (token id order).

    Returns:
        (N, V) float32: for each word, the summed posterior of the classes that name it (in [0, 1]);
        0 for words no class names.
    """
    post = np.asarray(posteriors, np.float32).reshape(-1, 1000)
    if post.shape[0]:  # the classes the index keeps, so `retr caption` and `retr index` see the same evidence
        kept = np.argpartition(-post, TOP_CLASSES - 1, axis=1)[:, :TOP_CLASSES]
        post = np.zeros_like(post)
        np.put_along_axis(post, kept, np.take_along_axis(np.asarray(posteriors, np.float32).reshape(-1, 1000), kept, 1), 1)
    cls_ids, word_ids, _ = _table(tuple(vocab))
    ev = np.zeros((len(post), len(vocab)), np.float32)
    if len(cls_ids):
        np.add.at(ev.T, word_ids, post[:, cls_ids].T)
    return np.minimum(ev, 1.0)


def concept_bias(posteriors: np.ndarray, vocab: list[str], weight: float = CONCEPT_WEIGHT,
                 threshold: float = CONCEPT_THRESHOLD, novel: np.ndarray | None = None) -> np.ndarray:
    """The log-probability bonus of each word for each photo: ``weight x evidence`` where the
    evidence (:func:`word_evidence`) reaches ``threshold``, else 0.

    Args:
        novel: optional (V,) bool, the words added by :func:`add_novel_words`: below the threshold
            they get -1e9 (a novel word is said only where the concepts name it).

    Returns:
        (N, V) float32.
    """
    ev = word_evidence(posteriors, vocab)
    bias = np.where(ev >= threshold, weight * ev, 0.0).astype(np.float32)
    if novel is not None:
        bias[:, novel] = np.where(ev[:, novel] >= threshold, bias[:, novel], -1e9)
    return bias


def named_words(vocab: list[str]) -> np.ndarray:
    """(W,) int64: the token ids of ``vocab`` that some ImageNet class names (singular or plural)."""
    return np.unique(_table(tuple(vocab))[1])


def word_groups(vocab: list[str]) -> np.ndarray:
    """(V,) int64: each word's group (the token id of its singular form among the concept words;
    other words are their own group), so saying "horses" spends the bonus of "horse" too."""
    return _table(tuple(vocab))[2]



def bias_rows(bias: np.ndarray, groups: np.ndarray, photos: list[int], seqs: list[list[int]]):
    """The bonus of each decoder row: row r is photo ``photos[r]``'s bias with the words whose
    group its partial caption ``seqs[r]`` already holds set to 0 (a concept is said once).

    Args:
        bias: (N, V) float32 from :func:`concept_bias`; groups: :func:`word_groups`.
        photos: the photo of each row; seqs: each row's token ids so far.

    Returns:
        (R, V) torch float32 tensor.
    """
    import torch

    out = torch.from_numpy(bias[photos])
    for r, (i, seq) in enumerate(zip(photos, seqs)):
        words = np.flatnonzero(bias[i] > 0)
        if len(words):
            said = set(groups[seq].tolist())
            for w in words:
                if groups[w] in said:
                    out[r, w] = 0.0
    return out


def stored_posteriors(classes: bytes | None, probs: bytes | None) -> np.ndarray:
    """(1000,) float32 posteriors from a photo's stored concepts (:class:`retrieval.store.database.Concept`:
    int16 class indices and float16 posteriors of its top classes; the rest 0); all 0 for ``None``."""
    out = np.zeros(1000, np.float32)
    if classes is not None and probs is not None:
        out[np.frombuffer(bytes(classes), np.int16).astype(np.int64)] = np.frombuffer(bytes(probs), np.float16)
    return out


#: the novel-word table (scripts/train/novel_words.py): word, corpus count, donors
NOVEL_WORDS_FILE = Path(__file__).resolve().parent / "data" / "novel_words.tsv"
#: a novel word's output bias relative to its donor's, in nats: below the donor until the concepts speak
NOVEL_OFFSET = -3.0


def add_novel_words(net, vocab: list[str], path: Path = NOVEL_WORDS_FILE) -> tuple[list[str], np.ndarray]:
    """Give the decoder words it never learned that name ImageNet concepts ("zebra", "oven", "clock").

    Each word of the table missing from ``vocab`` whose first donor present in ``vocab`` exists is
    appended; its input embedding and output row are copied from that donor, its output bias is
    the donor's plus :data:`NOVEL_OFFSET` (direct transfer, Deep Compositional Captioning,
    Hendricks et al. 2016). The donors (a seen word people use alike in the caption corpus) come
    from ``scripts/train/novel_words.py``. ``net`` is changed in place (its ``embed`` and ``out``
    grow; ``net.config["vocab_size"]`` follows).

    Returns:
        (the extended vocabulary, (V',) bool mask of the added words). A missing table adds nothing.
    """
    import torch

    have = {w: i for i, w in enumerate(vocab)}
    new, donor = [], []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            word, _, ds = line.split("\t")
            d = next((have[x] for x in ds.split(",") if x in have), None)
            if word not in have and d is not None:
                new.append(word)
                donor.append(d)
    mask = np.zeros(len(vocab) + len(new), bool)
    mask[len(vocab):] = True
    if not new:
        return list(vocab), mask
    idx = torch.tensor(donor)
    with torch.no_grad():
        emb = torch.cat([net.embed.weight, net.embed.weight[idx]])
        net.embed = torch.nn.Embedding.from_pretrained(emb, freeze=True, padding_idx=net.embed.padding_idx)
        out = torch.nn.Linear(net.out.in_features, len(mask))
        out.weight.copy_(torch.cat([net.out.weight, net.out.weight[idx]]))
        out.bias.copy_(torch.cat([net.out.bias, net.out.bias[idx] + NOVEL_OFFSET]))
        net.out = out
    net.config["vocab_size"] = len(mask)
    return list(vocab) + new, mask
