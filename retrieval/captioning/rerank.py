"""Re-ranking captions: CIDEr-D (Vedantam et al. 2015) between candidates and references, consensus
among candidates, and the ordering of sampled captions."""
from __future__ import annotations

import numpy as np

from retrieval.captioning.vocab import tokenize


def _ngram_counts(words: list[str], n: int = 4) -> list[dict]:
    out = []
    for k in range(1, n + 1):
        d: dict = {}
        for i in range(len(words) - k + 1):
            g = tuple(words[i : i + k])
            d[g] = d.get(g, 0) + 1
        out.append(d)
    return out


def document_frequencies(pools: list[list[str]], n: int = 4) -> tuple[dict, int]:
    """n-gram document frequencies over several photos' candidate lists (a photo = a document),
    as CIDEr computes them over the reference sets (Vedantam et al. 2015).

    Returns:
        ({n-gram tuple: number of pools containing it}, number of pools).
    """
    df: dict = {}
    for pool in pools:
        seen = set()
        for s in pool:
            for d in _ngram_counts(tokenize(s), n):
                seen.update(d)
        for g in seen:
            df[g] = df.get(g, 0) + 1
    return df, len(pools)


def _cider_vectors(captions: list[str], df: dict | None, n_docs: int | None):
    """tf-idf n-gram vectors (n = 1..4), their norms and lengths, as pycocoevalcap's CIDEr-D."""
    logn = np.log(float(n_docs)) if df is not None and n_docs else 0.0
    out = []
    for s in captions:
        words = tokenize(s)
        vs, norms = [], []
        for d in _ngram_counts(words):
            if df is None:
                v = {g: float(c) for g, c in d.items()}
            else:
                v = {g: c * (logn - np.log(max(1.0, float(df.get(g, 0.0))))) for g, c in d.items()}
            vs.append(v)
            norms.append(float(np.sqrt(sum(x * x for x in v.values()))))
        out.append((vs, norms, len(words)))
    return out


def _cider_pair(h, r, sigma: float) -> float:
    """CIDEr-D of one hypothesis vector against one reference vector (x 10)."""
    (vh, nh, lh), (vr, nr, lr) = h, r
    val = 0.0
    for k in range(len(vh)):
        rk = vr[k]
        x = sum(min(w, rk[g]) * rk[g] for g, w in vh[k].items() if g in rk)
        if nh[k] > 0 and nr[k] > 0:
            x /= nh[k] * nr[k]
        val += x
    return val / len(vh) * np.exp(-((lh - lr) ** 2) / (2 * sigma ** 2)) * 10


def cider_against(captions: list[str], references: list[str], df: dict | None = None, n_docs: int | None = None,
                  sigma: float = 6.0) -> np.ndarray:
    """Mean CIDEr-D of each caption against one shared list of references (Vedantam et al. 2015).

    With the captions of the photo's nearest neighbours as references this is consensus
    re-ranking as Devlin et al. 2015 do it (there with retrieved captions as candidates).

    Args:
        captions: N candidate sentences. references: M sentences.
        df, n_docs: n-gram document frequencies (:func:`document_frequencies`); ``None``: weights 1.
        sigma: CIDEr-D's length tolerance (words).

    Returns:
        (N,) float64 (0 where there are no references).
    """
    if not references:
        return np.zeros(len(captions))
    hv = _cider_vectors(captions, df, n_docs)
    rv = _cider_vectors(references, df, n_docs)
    return np.array([np.mean([_cider_pair(h, r, sigma) for r in rv]) for h in hv])


def consensus_cider(captions: list[str], df: dict | None = None, n_docs: int | None = None,
                    sigma: float = 6.0) -> np.ndarray:
    """Consensus score of each candidate: its mean CIDEr-D against the *other* candidates as references.

    The expected gain of a minimum Bayes risk (MBR) decision (Kumar & Byrne 2004) with the
    candidates standing in for samples of the model's distribution; the argmax is the
    consensus caption (Devlin et al. 2015, with the candidates in place of the captions of
    nearest-neighbour photos). CIDEr-D as pycocoevalcap computes it (Vedantam et al. 2015):
    per n = 1..4, tf-idf vectors of n-gram counts, clipped cosine
    sum_g min(h_g, r_g) r_g / (|h| |r|), times exp(-(len_h - len_r)^2 / (2 sigma^2)),
    averaged over n, times 10.

    Args:
        captions: N candidate sentences (duplicates count as agreeing candidates).
        df, n_docs: n-gram document frequencies and the number of documents
            (:func:`document_frequencies`); ``None``: every n-gram weighs 1 (one photo alone
            gives no document frequencies).
        sigma: CIDEr-D's length tolerance (words).

    Returns:
        (N,) float64 scores (0 for N < 2).
    """
    n = len(captions)
    if n < 2:
        return np.zeros(n)
    v = _cider_vectors(captions, df, n_docs)
    sim = np.array([[_cider_pair(v[i], v[j], sigma) if i != j else 0.0 for j in range(n)] for i in range(n)])
    return sim.sum(1) / (n - 1)


def rerank(captions: list[str], text_embs: np.ndarray, photo_emb: np.ndarray | None = None,
           method: str = "consensus") -> list[int]:
    """Order sampled captions best first.

    ``consensus``: by mean cosine similarity to the other samples (the sample the
    others agree with; Devlin et al. 2015). ``alignment``: by cosine similarity to
    the photo's aligned embedding (the alignment network's score).

    Args:
        captions: N strings. text_embs: (N, D) float32 L2-normalised embeddings of them.
        photo_emb: (D,) float32, needed for ``alignment``.
        method: ``"consensus"`` or ``"alignment"``.

    Returns:
        indices into ``captions``, best first.

    Raises:
        ValueError: unknown method, or ``alignment`` without ``photo_emb``.
    """
    t = np.asarray(text_embs, np.float32)
    if method == "consensus":
        sim = t @ t.T
        n = len(captions)
        score = (sim.sum(1) - np.diag(sim)) / max(n - 1, 1)
    elif method == "alignment":
        if photo_emb is None:
            raise ValueError("alignment re-ranking needs the photo embedding")
        score = t @ np.asarray(photo_emb, np.float32)
    else:
        raise ValueError(f"unknown re-ranking {method!r}: use consensus or alignment")
    return [int(i) for i in np.argsort(-score, kind="stable")]
