"""Caption metrics through pycocoevalcap (BLEU-1..4, METEOR, ROUGE-L, CIDEr) and diversity.

pycocoevalcap's METEOR and PTB tokenizer need a Java runtime (``java`` on PATH).
"""
from __future__ import annotations


def caption_tokens(s: str) -> str:
    """``s`` as the captioner tokenizes it (lower case, no punctuation), words joined by spaces: the
    form pycocoevalcap's scorers compare."""
    from retrieval.captioning.vocab import tokenize

    return " ".join(tokenize(s))


def caption_scores(refs: dict, hyps: dict, meteor: bool = True) -> dict:
    """Corpus-level caption metrics (Papineni 2002; Banerjee & Lavie 2005; Lin 2004; Vedantam 2015).

    Args:
        refs: ``{key: [reference str, ...]}``.
        hyps: ``{key: hypothesis str}`` with the same keys.
        meteor: include METEOR (needs Java).

    Returns:
        ``{"BLEU-1": .., "BLEU-4": .., "METEOR": .., "ROUGE-L": .., "CIDEr": ..}`` in percent (x100).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {k: [caption_tokens(r) for r in v] for k, v in refs.items()}
    res = {k: [caption_tokens(hyps[k])] for k in refs}
    out = {}
    b, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for i, v in enumerate(b):
        out[f"BLEU-{i + 1}"] = 100 * v
    if meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        m = Meteor()
        out["METEOR"] = 100 * m.compute_score(gts, res)[0]
        del m
    out["ROUGE-L"] = 100 * Rouge().compute_score(gts, res)[0]
    out["CIDEr"] = 100 * Cider().compute_score(gts, res)[0]
    return out


def diversity(samples: dict) -> dict:
    """Diversity of several captions per photo (Aneja et al. 2019; Shetty et al. 2017).

    Div-n: distinct n-grams / total n-grams over each photo's samples, averaged.
    mBLEU-4: BLEU-4 of each sample against the photo's other samples, averaged (lower = more diverse).

    Args:
        samples: ``{key: [caption str, ...]}`` (at least 2 per key).

    Returns:
        ``{"Div-1": .., "Div-2": .., "mBLEU-4": ..}`` as fractions in [0, 1].
    """
    from pycocoevalcap.bleu.bleu import Bleu

    d1, d2 = [], []
    gts, res = {}, {}
    for k, caps in samples.items():
        toks = [caption_tokens(c).split() for c in caps]
        for n, acc in ((1, d1), (2, d2)):
            grams = [tuple(t[i : i + n]) for t in toks for i in range(len(t) - n + 1)]
            acc.append(len(set(grams)) / max(1, len(grams)))
        for i, t in enumerate(toks):
            key = f"{k}#{i}"
            res[key] = [" ".join(t)]
            gts[key] = [" ".join(o) for j, o in enumerate(toks) if j != i]
    mb = Bleu(4).compute_score(gts, res, verbose=0)[0][3] if res else 0.0
    return {"Div-1": sum(d1) / max(1, len(d1)), "Div-2": sum(d2) / max(1, len(d2)), "mBLEU-4": mb}


__all__ = ["caption_scores", "diversity"]
