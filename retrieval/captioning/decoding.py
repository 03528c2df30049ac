"""Decoding a caption from the captioner's network: beam search from the prior mean of z, nucleus
sampling from the prior, and the length normalisation of beam scores. Works on token ids; turning
them into words is :class:`retrieval.captioning.model.Captioner`'s."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from retrieval.captioning.concept_words import bias_rows
from retrieval.captioning.vocab import BOS, EOS, PAD, UNK


@torch.no_grad()
def beam_hypotheses(net, embs: np.ndarray, beam: int, max_len: int, bias: np.ndarray | None = None,
                    groups: np.ndarray | None = None) -> list[list[tuple[list[int], float]]]:
    """Beam search (width ``beam``, at most ``max_len`` words) of the CVAE ``net`` from the prior mean
    of z for every row of ``embs`` at once (see :meth:`retrieval.captioning.model.Captioner.beam_hypotheses_batch`,
    which documents the search).

    Args:
        net: a :class:`retrieval.captioning.model.CaptionCVAE` in eval mode.
        embs: (N, D) float32 aligned image embeddings, L2-normalised, D = ``net``'s ``cond_dim``.
        bias, groups: an optional (N, V) float32 bonus per photo and word, added to the logits
            (the distribution is renormalised) and spent once the word's group is said (:func:`retrieval.captioning.concept_words.concept_bias`,
            :func:`~retrieval.captioning.concept_words.word_groups`); ``None``: none.

    Returns:
        N lists of (token ids without ``<bos>``/``<eos>``, summed log-probability under the biased
        distribution) pairs.

    Raises:
        ValueError: ``embs`` is not (N, D).
    """
    e = np.asarray(embs, np.float32)
    d = net.config["cond_dim"]
    if e.ndim != 2 or e.shape[1] != d:
        raise ValueError(f"embeddings of shape {e.shape}: the captioner decodes (N, {d}) aligned image embeddings")
    n = len(e)
    if n == 0:
        return []
    ct = torch.from_numpy(np.ascontiguousarray(e))
    mu, _ = net.prior_params(ct)
    cz_all = torch.cat([ct, mu], -1)  # (N, D + z)

    def next_logp(photos: list[int], seqs: list[list[int]], h):
        logits, h = net.step(torch.tensor([[q[-1]] for q in seqs]), cz_all[photos], h)
        logits = logits[:, -1]
        if bias is not None:  # shallow fusion: p(w) x exp(bonus), renormalised
            logits = logits + bias_rows(bias, groups, photos, seqs)
        logp = F.log_softmax(logits, -1)
        logp[:, [PAD, BOS, UNK]] = -1e9
        return logp, h

    return beam_search_rows(n, beam, max_len, next_logp)


def _extend(beams: list, finished: list, vals: list, idxs: list, r: int, beam: int) -> tuple[list, int]:
    """Grow one photo's beams by the top words of rows ``r``.. ; returns (new beams, next row). A hypothesis
    ending in ``<eos>`` goes to ``finished`` as (tokens without ``<bos>``/``<eos>``, score)."""
    cand = []
    for seq, score, _ in beams:
        for lp, ti in zip(vals[r], idxs[r]):
            cand.append((seq + [ti], score + lp, r))
        r += 1
    cand.sort(key=lambda x: -x[1])
    nb = []
    for seq, score, row in cand:
        if seq[-1] == EOS:
            finished.append((seq[1:-1], score))
        else:
            nb.append((seq, score, row))
        if len(nb) == beam:
            break
    return nb, r


def beam_search_rows(n: int, beam: int, max_len: int, next_logp) -> list[list[tuple[list[int], float]]]:
    """Beam search (width ``beam``, at most ``max_len`` words) for ``n`` photos at once, over any
    recurrent decoder (the pooled and the attention captioners share it).

    Args:
        n: number of photos.
        beam: beam width.
        max_len: most words a caption.
        next_logp: ``(photos, seqs, h) -> (logp, h)``: one decoder step for the live hypotheses, row r
            being photo ``photos[r]`` with tokens ``seqs[r]`` so far (starting with ``<bos>``) and hidden
            state ``h[:, r]`` (``h`` None at the first step); ``logp`` (R, V) float32 log-probabilities
            of the next token (banned tokens at -1e9), ``h`` the new hidden state (layers, R, hidden).

    Returns:
        n lists of (token ids without ``<bos>``/``<eos>``, summed log-probability) pairs in the order they
        finished (a photo with none finished: its live hypotheses). A photo stops once ``beam``
        hypotheses have finished. Deterministic.
    """
    beams = [[([BOS], 0.0, -1)] for _ in range(n)]  # per photo: (tokens, log-prob, row of its hidden state)
    finished: list[list] = [[] for _ in range(n)]
    live, h = list(range(n)), None  # h: (layers, R, hidden), one row per live beam, in the order of ``live``
    for _ in range(max_len + 1):
        rows = [(i, b) for i in live for b in beams[i]]
        hs = None if h is None else h[:, [b[2] for _, b in rows]]
        logp, h = next_logp([i for i, _ in rows], [b[0] for _, b in rows], hs)
        top = torch.topk(logp, beam, dim=-1)
        vals, idxs = top.values.tolist(), top.indices.tolist()
        r, still = 0, []
        for i in live:
            beams[i], r = _extend(beams[i], finished[i], vals, idxs, r, beam)
            if len(finished[i]) < beam and beams[i]:
                still.append(i)
        live = still
        if not live:
            break
    return [fin or [(seq[1:], score) for seq, score, _ in nb] for fin, nb in zip(finished, beams)]


@torch.no_grad()
def nucleus_sample(net, c: np.ndarray, n: int, top_p: float, temperature: float, seed: int | None,
                   max_len: int, bias: np.ndarray | None = None, groups: np.ndarray | None = None,
                   n_words: int | None = None) -> list[list[int]]:
    """``n`` token-id sequences (no ``<bos>``/``<eos>``) for one photo: z drawn from the prior
    p(z | c) of the CVAE ``net``, words by nucleus sampling (Holtzman et al. 2020) at ``temperature``
    with mass ``top_p``; ``seed`` makes the draw reproducible. ``bias`` (1, V) and ``groups``: a
    log-probability bonus added before the temperature, as in :func:`beam_hypotheses`; ``n_words``:
    draw only from the first ``n_words`` tokens (``None``: all)."""
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    ct = torch.from_numpy(np.asarray(c, np.float32)).reshape(1, -1).expand(n, -1)
    mu, lv = net.prior_params(ct)
    z = mu + torch.randn(mu.shape, generator=g) * (0.5 * lv).exp()
    cz = torch.cat([ct, z], -1)
    tok = torch.full((n, 1), BOS)
    h = None
    out = [[] for _ in range(n)]
    alive = torch.ones(n, dtype=torch.bool)
    for _ in range(max_len):
        logits, h = net.step(tok, cz, h)
        logits = logits[:, -1, :n_words]
        if bias is not None:
            logits = logits + bias_rows(bias, groups, [0] * n, [np.asarray(o, np.int64) for o in out])
        logits = logits / temperature
        logits[:, [PAD, BOS, UNK]] = -1e9
        probs = F.softmax(logits, -1)
        sp, si = probs.sort(-1, descending=True)
        keep = (sp.cumsum(-1) - sp) < top_p
        sp = sp * keep
        choice = torch.multinomial(sp / sp.sum(-1, keepdim=True), 1, generator=g)
        nxt = si.gather(1, choice)
        for i in range(n):
            if alive[i]:
                if int(nxt[i]) == EOS:
                    alive[i] = False
                else:
                    out[i].append(int(nxt[i]))
        if not alive.any():
            break
        tok = nxt
    return out


def length_normalise(logp_sum: float, length: int, length_penalty: float = 0.7, form: str = "power") -> float:
    """Length-normalised beam score, so long captions are not out-scored by short ones.

    ``power``: logp / length ** a (the form this project shipped first);
    ``gnmt``: logp / ((5 + length) / 6) ** a, the length penalty of Wu et al. 2016 (GNMT, eq. 14).
    ``a = 0`` gives the raw summed log-probability in both forms.

    Args:
        logp_sum: summed log-probability of the words and ``<eos>``.
        length: number of scored tokens (words + ``<eos>``).
        length_penalty: the exponent a.
        form: ``"power"`` or ``"gnmt"``.

    Raises:
        ValueError: unknown form.
    """
    if form == "power":
        return logp_sum / max(length, 1) ** length_penalty
    if form == "gnmt":
        return logp_sum / ((5 + length) / 6) ** length_penalty
    raise ValueError(f"unknown length penalty form {form!r}: use power or gnmt")
