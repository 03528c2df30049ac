"""The novel-word table: ImageNet concept words the captioner never learned, each with its donors.

    python scripts/train/novel_words.py [--corpus ../shared/data/captions/corpus.tsv.gz] [--min-count 20]

A word qualifies when it names an ImageNet class (a one-word lemma or hypernym of
``retrieval/concepts/data/imagenet_classes.tsv``, less ``concept_words.GENERIC``), is missing from
the shipped captioner's vocabulary, and appears at least ``--min-count`` times in the caption
corpus (an everyday word people use to describe photos: "zebra", "oven", "banana"). Its donors are
the three captioner words that name ImageNet classes and are nearest to it by the sentence
encoder's embedding of the bare word (all-MiniLM-L6-v2, cosine): the direct transfer of Deep
Compositional Captioning (Hendricks et al. 2016), which copies a seen word's weights to a novel one.
Writes ``retrieval/captioning/data/novel_words.tsv`` (word, corpus count, donors).
"""
import argparse
import collections
import csv
import gzip
from pathlib import Path

import numpy as np

from retrieval.captioning.concept_words import GENERIC
from retrieval.captioning.model import Captioner
from retrieval.captioning.vocab import tokenize
from retrieval.concepts.labels import imagenet_classes


def context_similarity(corpus: str, rows: list[str], cols: list[str], n_context: int = 3000) -> np.ndarray:
    """(len(rows), len(cols)) cosine of PPMI-weighted context vectors (offsets -2..2, position-tagged)."""
    from scipy import sparse

    freq = collections.Counter()
    sents = []
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            sents.append(tokenize(row["caption"]))
            freq.update(sents[-1])
    ctx = {w: i for i, (w, _) in enumerate(freq.most_common(n_context))}
    targets = {w: i for i, w in enumerate(rows + cols)}
    r, c = [], []
    for t in sents:
        for i, w in enumerate(t):
            if w in targets:
                for o in (-2, -1, 1, 2):
                    if 0 <= i + o < len(t) and t[i + o] in ctx:
                        r.append(targets[w])
                        c.append(ctx[t[i + o]] * 4 + (o + 2 if o < 0 else o + 1))
    m = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(targets), 4 * len(ctx))).toarray()
    pmi = np.log(np.maximum(m * m.sum() / (m.sum(1, keepdims=True) * m.sum(0, keepdims=True) + 1e-12), 1e-12))
    v = np.maximum(pmi, 0) * (m > 0)
    v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
    return v[: len(rows)] @ v[len(rows):].T

ap = argparse.ArgumentParser()
ap.add_argument("--corpus", default="../shared/data/captions/corpus.tsv.gz")
ap.add_argument("--min-count", type=int, default=20)
ap.add_argument("--out", default="retrieval/captioning/data/novel_words.tsv")
a = ap.parse_args()
vocab = set(Captioner(novel_words=False).vocab)
names = {n.lower() for c in imagenet_classes() for n in (*c.lemmas, *c.hypernyms) if n.isalpha()}
counts = collections.Counter()
with gzip.open(a.corpus, "rt", encoding="utf-8") as f:
    for row in csv.DictReader(f, delimiter="\t"):
        counts.update(tokenize(row["caption"]))
novel = sorted(w for w in names - GENERIC - vocab if counts[w] >= a.min_count)
donors = sorted(w for w in vocab if counts[w] >= a.min_count and w.isalpha())
sim = context_similarity(a.corpus, novel, donors)
Path(a.out).parent.mkdir(parents=True, exist_ok=True)
with open(a.out, "w", encoding="utf-8") as f:
    f.write("word\tcorpus_count\tdonors\n")
    for w, row in zip(novel, sim):
        best = [donors[j] for j in np.argsort(-row)[:3]]
        f.write(f"{w}\t{counts[w]}\t{','.join(best)}\n")
print(f"{a.out}: {len(novel)} novel words")
