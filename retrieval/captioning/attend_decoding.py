"""Decoding the attention captioner (:class:`retrieval.captioning.attend.AttendCVAE`): beam search
from the prior mean of z for many photos at once, and nucleus sampling with z drawn from the
prior. Works on token ids and on the network's memory (:meth:`AttendCVAE.memory`)."""
from __future__ import annotations

import torch

from retrieval.captioning.attend import select_memory
from retrieval.captioning.decoding import beam_search_rows
from retrieval.captioning.vocab import BOS, EOS, PAD, UNK

BANNED = (PAD, BOS, UNK)


def _trigram_bans(q: list[int]) -> set[int]:
    """Words that would repeat a trigram of ``q`` (trigram blocking: beam search loops otherwise)."""
    if len(q) < 4:
        return set()
    a, b = q[-2], q[-1]
    return {q[i + 2] for i in range(1, len(q) - 2) if q[i] == a and q[i + 1] == b}


def _next_logp(net, seqs: list[list[int]], mem: dict, rows: list[int], h: torch.Tensor | None):
    """One decoder step for the rows ``rows`` of ``mem`` whose words so far are ``seqs``:
    (log-probs (R, V), new hidden state). No word follows itself, and a concept word of the photo
    is said at most once (the copy gate would otherwise say it again: "a clock clock"), and no
    trigram twice (:func:`_trigram_bans`)."""
    m = select_memory(mem, torch.tensor(rows))
    logp, h = net.run(torch.tensor([q[-1] for q in seqs]).unsqueeze(1), m, h)
    logp = logp[:, -1]
    logp[:, list(BANNED)] = -1e9
    concepts = m["k_ids"].tolist()
    for r, q in enumerate(seqs):
        ban = (set(q) & set(concepts[r]) - {PAD}) | set(q[1:][-1:]) | _trigram_bans(q)
        if ban:
            logp[r, list(ban)] = -1e9
    return logp, h


@torch.no_grad()
def attend_beam(net, mem: dict, n: int, beam: int, max_len: int) -> list[list[tuple[list[int], float]]]:
    """Beam search (width ``beam``, at most ``max_len`` words) for ``n`` photos at once.

    Args:
        net: an :class:`AttendCVAE` in eval mode; mem: its memory of the n photos (z = prior mean).

    Returns:
        n lists of (token ids without ``<bos>``/``<eos>``, summed log-probability) pairs in the order
        they finished (a photo with none finished: its live hypotheses). Each photo stops once
        ``beam`` hypotheses have finished. Deterministic.
    """
    def next_logp(photos: list[int], seqs: list[list[int]], h):
        return _next_logp(net, seqs, mem, photos, mem["h0"][:, photos] if h is None else h)

    return beam_search_rows(n, beam, max_len, next_logp)


@torch.no_grad()
def attend_sample(net, mem: dict, n: int, max_len: int, top_p: float = 0.9, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> list[list[int]]:
    """Nucleus sampling (Holtzman et al. 2020) of one caption per row of ``mem`` (built with z drawn
    from the prior): ``n`` token-id lists without ``<bos>``/``<eos>``."""
    h = None
    out: list[list[int]] = [[] for _ in range(n)]
    alive = [True] * n
    for _ in range(max_len):
        logp, h = _next_logp(net, [[BOS, *o] for o in out], mem, list(range(n)), mem["h0"] if h is None else h)
        probs = torch.softmax(logp / temperature, -1)
        sp, si = probs.sort(-1, descending=True)
        sp = sp * ((sp.cumsum(-1) - sp) < top_p)
        nxt = si.gather(1, torch.multinomial(sp / sp.sum(-1, keepdim=True), 1, generator=generator))[:, 0].tolist()
        for i, w in enumerate(nxt):
            if alive[i]:
                if w == EOS:
                    alive[i] = False
                else:
                    out[i].append(w)
        if not any(alive):
            break
    return out
