"""Conditional VAE captioner: describe a photo from its aligned embedding.

Model (Kingma & Welling 2014; Sohn et al. 2015; in the line of Wang, Schwing &
Lazebnik 2017): a prior network p(z | c) and a recognition network
q(z | caption, c) over a Gaussian latent z, and a GRU decoder
p(caption | z, c), where c is the photo's L2-normalised aligned embedding
(the output of the encoder's image head). The recognition network sees the
caption through its aligned text embedding. Sampling z from the prior gives
different captions of one photo; the prior mean with beam search gives the
single best one.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from retrieval.encoders.base import WEIGHTS_DIR
from retrieval.errors import CaptionerError

#: The shipped captioner checkpoint.
DEFAULT_CAPTIONER = WEIGHTS_DIR / "captioner-default.pt"
#: Captions of the photos the shipped captioner was trained on, with those photos' aligned
#: embeddings: the neighbours' captions that re-rank the beam. Data (Flickr8k train captions),
#: so not in git: ``python scripts/build_caption_bank.py`` writes it; used when present.
DEFAULT_BANK = WEIGHTS_DIR / "caption-bank-default.npz"
#: Default decodings, chosen on Flickr8k dev (docs/captioner_decoding.md): with a caption bank,
#: beam ``RERANK_BEAM`` re-ranked by CIDEr-D against the captions of the ``CAPTION_NEIGHBOURS``
#: nearest bank photos; without one, beam ``CAPTION_BEAM`` (length penalty power 0.7).
RERANK_BEAM, CAPTION_NEIGHBOURS, CAPTION_BEAM = 8, 15, 5
#: The caption ``retr index`` stores for every photo stays the cheap one: beam 3, no re-ranking
#: (24 ms a photo on one core, already more than the rest of indexing; the re-ranked default costs ~65 ms).
INDEX_BEAM = 3
PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|[0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; punctuation dropped (``"A dog 's ball ."`` -> ``["a", "dog's", "ball"]``).

    Flickr8k writes possessives as separate tokens (``"dog 's"``); they are rejoined.
    """
    return _WORD.findall(text.lower().replace(" '", "'"))


def detokenize(words: list[str]) -> str:
    """Words -> a clean sentence: capitalised, single spaces, one final full stop."""
    out = []
    for w in words:
        if w in SPECIALS:
            continue
        if w == "s" and out:  # a possessive split off by an older tokenizer: "man s" -> "man's"
            out[-1] += "'s"
        else:
            out.append(w)
    s = " ".join(out).strip()
    if not s:
        return ""
    return s[0].upper() + s[1:] + "."


def _mlp(d_in: int, d_out: int, hidden: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class CaptionCVAE(nn.Module):
    """The network: prior, recognition network and GRU decoder.

    Args:
        vocab_size: number of tokens (including the 4 specials).
        cond_dim: dim of the aligned embedding c.
        z_dim: latent dim.
        emb: word embedding dim.
        hidden: GRU hidden size.
        dropout: dropout on word embeddings and GRU outputs.
    """

    def __init__(self, vocab_size: int, cond_dim: int = 512, z_dim: int = 32, emb: int = 256, hidden: int = 512,
                 dropout: float = 0.3):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, cond_dim=cond_dim, z_dim=z_dim, emb=emb, hidden=hidden,
                           dropout=dropout)
        self.prior = _mlp(cond_dim, 2 * z_dim)
        self.recognition = _mlp(2 * cond_dim, 2 * z_dim)
        self.embed = nn.Embedding(vocab_size, emb, padding_idx=PAD)
        self.init_h = nn.Linear(cond_dim + z_dim, hidden)
        self.gru = nn.GRU(emb + cond_dim + z_dim, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def prior_params(self, c: torch.Tensor):
        """(B, cond_dim) -> mean, log-variance, each (B, z_dim)."""
        mu, lv = self.prior(c).chunk(2, dim=-1)
        return mu, lv.clamp(-8, 4)

    def recognition_params(self, c: torch.Tensor, t: torch.Tensor):
        """c, t: (B, cond_dim) photo and caption embeddings -> mean, log-variance (B, z_dim)."""
        mu, lv = self.recognition(torch.cat([c, t], -1)).chunk(2, dim=-1)
        return mu, lv.clamp(-8, 4)

    def step(self, tokens: torch.Tensor, cz: torch.Tensor, h: torch.Tensor | None):
        """Run the decoder over ``tokens`` (B, T) given cz = [c, z] (B, cond+z).

        Returns:
            logits (B, T, V) and the last hidden state (1, B, hidden).
        """
        if h is None:
            h = torch.tanh(self.init_h(cz)).unsqueeze(0)
        x = self.drop(self.embed(tokens))
        x = torch.cat([x, cz.unsqueeze(1).expand(-1, x.shape[1], -1)], -1)
        o, h = self.gru(x, h)
        return self.out(self.drop(o)), h

    def loss(self, tokens: torch.Tensor, c: torch.Tensor, t: torch.Tensor, label_smoothing: float = 0.0):
        """Negative ELBO terms for a batch.

        Args:
            tokens: (B, T) int64, ``<bos> w1 .. wn <eos> <pad>..``.
            c: (B, cond_dim) condition: photo embeddings, or in text-only pre-training
                the captions' own embeddings with Gaussian noise (CapDec, Nukrai et al. 2022).
            t: (B, cond_dim) caption embeddings (seen by the recognition network only).
            label_smoothing: mass spread over the vocabulary in the cross-entropy
                (Szegedy et al. 2016); 0 = the exact likelihood.

        Returns:
            (summed token cross-entropy / B, KL(q || p) averaged over the batch, number of tokens).
        """
        mu_q, lv_q = self.recognition_params(c, t)
        mu_p, lv_p = self.prior_params(c)
        z = mu_q + torch.randn_like(mu_q) * (0.5 * lv_q).exp()
        logits, _ = self.step(tokens[:, :-1], torch.cat([c, z], -1), None)
        tgt = tokens[:, 1:]
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=PAD,
                             reduction="sum", label_smoothing=label_smoothing)
        kl = 0.5 * (lv_p - lv_q + ((lv_q.exp() + (mu_q - mu_p) ** 2) / lv_p.exp()) - 1).sum(-1)
        b = tokens.shape[0]
        return ce / b, kl.mean(), int((tgt != PAD).sum())


class Captioner:
    """Load a trained captioner and describe photos from their aligned embeddings.

    Args:
        weights: checkpoint path (default: the shipped ``captioner-default.pt``).

    Attributes:
        encoder_id: id of the encoder whose image embeddings it was trained on;
            embeddings from any other encoder give meaningless captions.

    Raises:
        CaptionerError: missing or invalid checkpoint.
    """

    def __init__(self, weights: str | Path | None = None):
        path = Path(weights) if weights else DEFAULT_CAPTIONER
        if not path.is_file():
            raise CaptionerError(f"{path}: captioner weights not found")
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
            self.vocab: list[str] = list(ck["vocab"])
            self.net = CaptionCVAE(**ck["config"]["network"])
            self.net.load_state_dict({k: v.float() for k, v in ck["state_dict"].items()})
            self.encoder_id: str = ck["config"]["encoder_id"]
            self.max_len: int = int(ck["config"].get("max_len", 20))
            self.card: dict = ck["config"].get("card", {})
        except Exception as e:  # noqa: BLE001
            raise CaptionerError(f"{path}: not a retr captioner checkpoint ({e.__class__.__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None
        self.net.eval()
        self.path = path
        #: :class:`CaptionBank` for neighbour re-ranking (:meth:`caption`); set by :func:`load_captioner`.
        self.bank: CaptionBank | None = None

    def _words(self, ids) -> list[str]:
        return [self.vocab[i] for i in ids if i not in (PAD, BOS, EOS)]

    @torch.no_grad()
    def beam_hypotheses_batch(self, embs: np.ndarray, beam: int = 3) -> list[list[tuple[list[int], float]]]:
        """Beam search (width ``beam``) from the prior mean of z for many photos at once: the
        finished hypotheses of each, raw. The one beam search of this class: the one-photo methods
        (:meth:`beam_hypotheses`, :meth:`beam_candidates`, :meth:`beam_search`) call it with one
        row, ``retr index`` with up to ``retrieval.indexing.indexer.CAPTION_BATCH`` rows (:meth:`beam_search_batch`).

        Per photo, the search keeps the ``beam`` best partial hypotheses by summed log-probability
        (a stable sort of the candidates, listed beam by beam, each beam's ``beam`` most likely
        next words in ``torch.topk`` order) and stops once ``beam`` hypotheses have ended with
        ``<eos>``, no partial hypothesis is left, or after ``max_len`` words. Pruning uses the raw
        sum, so any length normalisation only re-orders this list (see :func:`length_normalise`).
        Each decoder step runs the GRU once over the live beams of every photo still searching:
        4.4 ms CPU a photo in batches of 256 against 28.8 one photo at a time (2 cores,
        docs/bench_index_output.txt). Photos do not interact: a photo's hypotheses are those of a
        one-row call up to float rounding of the batched matrix products (tests/test_api.py).

        Args:
            embs: (N, D) float32 aligned image embeddings, L2-normalised, D = the captioner's
                ``cond_dim``; N may be 0.
            beam: beam width (1 = greedy).

        Returns:
            N lists, in the order of ``embs``, each of (token ids without ``<bos>``/``<eos>``,
            summed log-probability including ``<eos>``) pairs in the order they finished (a photo
            with none finished after ``max_len`` words: its live hypotheses, scored without ``<eos>``).
            Deterministic for a given input.

        Raises:
            ValueError: ``embs`` is not (N, D).
        """
        net = self.net
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
        beams = [[([BOS], 0.0, -1)] for _ in range(n)]  # per photo: (tokens, log-prob, row of its hidden state)
        finished: list[list] = [[] for _ in range(n)]
        live = list(range(n))
        h = None  # (1, R, hidden): one row per live beam, in the order of ``live`` and its beams
        for _ in range(self.max_len + 1):
            rows = [(i, b) for i in live for b in beams[i]]
            toks = torch.tensor([[seq[-1]] for _, (seq, _, _) in rows])
            cz = cz_all[[i for i, _ in rows]]
            hs = None if h is None else h[:, [r for _, (_, _, r) in rows]]
            logits, h = net.step(toks, cz, hs)
            logp = F.log_softmax(logits[:, -1], -1)
            logp[:, PAD] = -1e9
            logp[:, BOS] = -1e9
            logp[:, UNK] = -1e9
            top = torch.topk(logp, beam, dim=-1)
            vals, idxs = top.values.tolist(), top.indices.tolist()
            r = 0
            still = []
            for i in live:
                cand = []
                for seq, score, _ in beams[i]:
                    for lp, ti in zip(vals[r], idxs[r]):
                        cand.append((seq + [ti], score + lp, r))
                    r += 1
                cand.sort(key=lambda x: -x[1])
                nb = []
                for seq, score, row in cand:
                    if seq[-1] == EOS:
                        finished[i].append((seq[1:-1], score))
                    else:
                        nb.append((seq, score, row))
                    if len(nb) == beam:
                        break
                beams[i] = nb
                if len(finished[i]) < beam and nb:
                    still.append(i)
            live = still
            if not live:
                break
        return [fin or [(seq[1:], score) for seq, score, _ in nb] for fin, nb in zip(finished, beams)]

    def beam_hypotheses(self, c: np.ndarray, beam: int = 3) -> list[tuple[list[int], float]]:
        """Beam search (width ``beam``) from the prior mean of z: the finished hypotheses of one
        photo, raw (:meth:`beam_hypotheses_batch` with one row).

        Args:
            c: (D,) float32 aligned image embedding, L2-normalised.
            beam: beam width (1 = greedy).

        Returns:
            (token ids without ``<bos>``/``<eos>``, summed log-probability including ``<eos>``)
            pairs, in the order they finished. Deterministic for a given input.

        Raises:
            ValueError: ``c`` does not hold D values.
        """
        return self.beam_hypotheses_batch(np.asarray(c, np.float32).reshape(1, -1), beam)[0]

    def beam_candidates_batch(self, embs: np.ndarray, beam: int = 3, length_penalty: float = 0.7,
                              lp_form: str = "power") -> list[list[tuple[str, float]]]:
        """:meth:`beam_candidates` of every row of ``embs``, searched together (:meth:`beam_hypotheses_batch`).

        Args:
            embs: (N, D) float32 aligned image embeddings, L2-normalised.
            beam: beam width (1 = greedy).
            length_penalty, lp_form: length normalisation of the summed log-probability
                (:func:`length_normalise`; ``length_penalty=0``: none).

        Returns:
            N ``n``-best lists, in the order of ``embs``: each of (sentence, length-normalised
            log-probability) pairs, best first (ties: the order they finished), distinct sentences
            (usually ``beam`` of them, sometimes one or two more). Deterministic for a given input.

        Raises:
            ValueError: ``embs`` is not (N, D); unknown ``lp_form``.
        """
        out = []
        for fin in self.beam_hypotheses_batch(embs, beam):
            hyps = [(seq, length_normalise(score, len(seq) + 1, length_penalty, lp_form)) for seq, score in fin]
            cands, seen = [], set()
            for seq, score in sorted(hyps, key=lambda x: -x[1]):
                s = detokenize(self._words(seq))
                if s not in seen:
                    seen.add(s)
                    cands.append((s, float(score)))
            out.append(cands)
        return out

    def beam_candidates(self, c: np.ndarray, beam: int = 3, length_penalty: float = 0.7,
                        lp_form: str = "power") -> list[tuple[str, float]]:
        """Beam search (width ``beam``) from the prior mean of z: the finished hypotheses of one
        photo, best first (:meth:`beam_candidates_batch` with one row).

        Args:
            c: (D,) float32 aligned image embedding, L2-normalised.
            beam: beam width (1 = greedy).
            length_penalty, lp_form: length normalisation of the summed log-probability
                (:func:`length_normalise`; ``length_penalty=0``: none).

        Returns:
            the ``n``-best list: (sentence, length-normalised log-probability) pairs, best first,
            distinct sentences (usually ``beam`` of them, sometimes one or two more).
            Deterministic for a given input.

        Raises:
            ValueError: ``c`` does not hold D values; unknown ``lp_form``.
        """
        return self.beam_candidates_batch(np.asarray(c, np.float32).reshape(1, -1), beam, length_penalty, lp_form)[0]

    def beam_search_batch(self, embs: np.ndarray, beam: int = 3, length_penalty: float = 0.7,
                          lp_form: str = "power") -> list[str]:
        """:meth:`beam_search` of every row of ``embs``, searched together: the captions ``retr index``
        stores (with beam ``INDEX_BEAM``, in batches of ``retrieval.indexing.indexer.CAPTION_BATCH``).

        Args:
            embs: (N, D) float32 aligned image embeddings, L2-normalised.
            beam: beam width (1 = greedy).
            length_penalty, lp_form: see :func:`length_normalise`.

        Returns:
            N clean sentences, in the order of ``embs``; each equals ``beam_search(embs[i], ...)``
            up to float rounding of the batched matrix products. Deterministic for a given input.

        Raises:
            ValueError: ``embs`` is not (N, D); unknown ``lp_form``.
        """
        return [cands[0][0] for cands in self.beam_candidates_batch(embs, beam, length_penalty, lp_form)]

    def beam_search(self, c: np.ndarray, beam: int = 3, length_penalty: float = 0.7, lp_form: str = "power") -> str:
        """The most likely caption for one photo: the best of :meth:`beam_candidates`.

        Args:
            c: (D,) float32 aligned image embedding, L2-normalised.
            beam: beam width (1 = greedy).
            length_penalty, lp_form: see :func:`length_normalise`.

        Returns:
            a clean sentence. Deterministic for a given input.
        """
        return self.beam_candidates(c, beam, length_penalty, lp_form)[0][0]

    @torch.no_grad()
    def log_likelihood(self, c: np.ndarray, captions: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Score given captions of one photo under the decoder with z at the prior mean.

        The same model as :meth:`beam_hypotheses` (teacher forcing, no dropout): a beam
        hypothesis gets back its beam score. Out-of-vocabulary words count as ``<unk>``.

        Args:
            c: (D,) float32 aligned image embedding. captions: N sentences.

        Returns:
            (N,) float64 summed log p(words, <eos> | c, z = mean of p(z | c)) and
            (N,) int64 number of scored tokens (words + ``<eos>``).
        """
        if not captions:
            return np.zeros(0), np.zeros(0, np.int64)
        idx = {w: i for i, w in enumerate(self.vocab)}
        seqs = [[idx.get(w, UNK) for w in tokenize(s)][: self.max_len] for s in captions]
        T = max(len(q) for q in seqs) + 2
        toks = torch.full((len(seqs), T), PAD, dtype=torch.long)
        for j, q in enumerate(seqs):
            toks[j, : len(q) + 2] = torch.tensor([BOS] + q + [EOS])
        ct = torch.from_numpy(np.asarray(c, np.float32)).reshape(1, -1).expand(len(seqs), -1)
        mu, _ = self.net.prior_params(ct)
        logits, _ = self.net.step(toks[:, :-1], torch.cat([ct, mu], -1), None)
        lp = F.log_softmax(logits, -1).gather(2, toks[:, 1:, None])[..., 0]
        mask = toks[:, 1:] != PAD
        return (lp * mask).sum(1).double().numpy(), mask.sum(1).numpy().astype(np.int64)

    @torch.no_grad()
    def sample(self, c: np.ndarray, n: int = 5, top_p: float = 0.9, temperature: float = 1.0,
               seed: int | None = None) -> list[str]:
        """``n`` captions of one photo: z drawn from the prior p(z | c), words by
        nucleus sampling (Holtzman et al. 2020).

        Args:
            c: (D,) float32 aligned image embedding.
            n: number of samples.
            top_p: nucleus probability mass.
            temperature: softmax temperature.
            seed: make the draw reproducible.

        Returns:
            list of ``n`` sentences (duplicates possible but unlikely).
        """
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        net = self.net
        ct = torch.from_numpy(np.asarray(c, np.float32)).reshape(1, -1).expand(n, -1)
        mu, lv = net.prior_params(ct)
        z = mu + torch.randn(mu.shape, generator=g) * (0.5 * lv).exp()
        cz = torch.cat([ct, z], -1)
        tok = torch.full((n, 1), BOS)
        h = None
        out = [[] for _ in range(n)]
        alive = torch.ones(n, dtype=torch.bool)
        for _ in range(self.max_len):
            logits, h = net.step(tok, cz, h)
            logits = logits[:, -1] / temperature
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
        return [detokenize(self._words(o)) for o in out]

    def caption(self, c: np.ndarray, beam: int | None = None, rerank: str | None = "auto",
                neighbours: int = CAPTION_NEIGHBOURS, length_penalty: float = 0.7, lp_form: str = "power",
                text_encoder=None) -> str:
        """The single best caption of one photo: beam search, then re-ranking of its n-best list.

        Args:
            c: (D,) float32 aligned image embedding, L2-normalised.
            beam: beam width (``None``: ``RERANK_BEAM`` when re-ranking, else ``CAPTION_BEAM``);
                length_penalty, lp_form: the beam's length normalisation (:func:`length_normalise`).
            rerank: ``"neighbours"``: the candidate with the highest CIDEr-D against the captions of
                the ``neighbours`` nearest photos of :attr:`bank` (consensus re-ranking, Devlin et
                al. 2015); ``"mbr"``: the candidate with the highest mean CIDEr-D against the other
                candidates (minimum Bayes risk, Kumar & Byrne 2004); ``"alignment"``: the candidate
                whose aligned text embedding is closest to ``c`` (needs ``text_encoder``, an
                encoder with ``encode_texts``); ``None`` / ``"none"``: the beam's best;
                ``"auto"``: ``"neighbours"`` when a bank is loaded, else ``None``.

        Returns:
            a clean sentence. Deterministic for a given input.

        Raises:
            ValueError: unknown ``rerank``, ``neighbours`` without a bank, ``alignment`` without an encoder.
        """
        if rerank == "auto":
            rerank = "neighbours" if self.bank is not None else None
        if beam is None:
            beam = CAPTION_BEAM if rerank in (None, "none") else RERANK_BEAM
        cands = [s for s, _ in self.beam_candidates(c, beam, length_penalty, lp_form)]
        if rerank in (None, "none") or len(cands) == 1:
            if rerank not in (None, "none", "neighbours", "mbr", "alignment"):
                raise ValueError(f"unknown re-ranking {rerank!r}")
            return cands[0]
        if rerank == "neighbours":
            if self.bank is None:
                raise ValueError("neighbour re-ranking needs a caption bank made with this captioner's encoder "
                                 "(python scripts/build_caption_bank.py)")
            score = cider_against(cands, self.bank.neighbour_captions(c, neighbours), *self.bank.document_frequencies())
        elif rerank == "mbr":
            score = consensus_cider(cands)
        elif rerank == "alignment":
            if text_encoder is None:
                raise ValueError("alignment re-ranking needs the encoder")
            score = np.asarray(text_encoder.encode_texts(cands), np.float32) @ np.asarray(c, np.float32)
        else:
            raise ValueError(f"unknown re-ranking {rerank!r}: use neighbours, mbr, alignment or none")
        return cands[int(np.argmax(score))]  # ties: the beam's order

    def caption_embeddings(self, embs: np.ndarray, beam: int = INDEX_BEAM, rerank: str | None = None) -> list[str]:
        """The caption ``retr index`` stores for each row of (N, D) float32 aligned image embeddings:
        :meth:`caption` with beam ``INDEX_BEAM`` and no re-ranking by default (the cheap decoding)."""
        return [self.caption(e, beam, rerank) for e in np.asarray(embs, np.float32)]


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


class CaptionBank:
    """Captions of known photos and those photos' aligned embeddings (the photos themselves are not kept).

    Used to re-rank a beam's n-best list by agreement with the captions of the photo's nearest
    neighbours (consensus re-ranking, Devlin et al. 2015 "Language models for image captioning:
    the quirks and what works", there with retrieved captions as candidates).

    Args:
        path: ``.npz`` written by :meth:`save`.

    Attributes:
        emb: (P, D) float16 L2-normalised aligned image embeddings of the bank's photos.
        captions: C strings; ``photo``: (C,) int32 row of ``emb`` each caption belongs to.
        encoder_id: the encoder of ``emb``.

    Raises:
        CaptionerError: missing or invalid file.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            z = np.load(self.path, allow_pickle=False)
            self.emb = z["emb"]
            self.photo = z["photo"].astype(np.int64)
            self.captions: list[str] = str(z["captions"]).split("\n")
            self.encoder_id = str(z["encoder_id"])
        except Exception as e:  # noqa: BLE001
            raise CaptionerError(f"{self.path}: not a retr caption bank ({e.__class__.__name__})") from None
        if len(self.captions) != len(self.photo):
            raise CaptionerError(f"{self.path}: {len(self.captions)} captions but {len(self.photo)} photo ids")
        self._by_photo: list[list[str]] = [[] for _ in range(len(self.emb))]
        for s, p in zip(self.captions, self.photo):
            self._by_photo[p].append(s)
        self._df = None

    @staticmethod
    def save(path: str | Path, emb: np.ndarray, captions: list[str], caption_photo, encoder_id: str) -> None:
        """Write a bank: emb (P, D) aligned photo embeddings, C captions and their (C,) photo rows."""
        if any("\n" in c for c in captions):
            raise ValueError("captions must be single lines")
        np.savez_compressed(path, emb=np.asarray(emb, np.float16), captions=np.array("\n".join(captions)),
                            photo=np.asarray(caption_photo, np.int32), encoder_id=np.array(encoder_id))

    def neighbour_captions(self, c: np.ndarray, k: int = CAPTION_NEIGHBOURS) -> list[str]:
        """Captions of the ``k`` bank photos nearest (cosine) to the (D,) float32 embedding ``c``."""
        sim = self.emb.astype(np.float32) @ np.asarray(c, np.float32)
        k = min(k, len(sim))
        nn = np.argpartition(-sim, k - 1)[:k]
        return [s for j in nn[np.argsort(-sim[nn], kind="stable")] for s in self._by_photo[j]]

    def document_frequencies(self) -> tuple[dict, int]:
        """n-gram document frequencies over the bank's photos (computed once)."""
        if self._df is None:
            self._df = document_frequencies(self._by_photo)
        return self._df


def load_captioner(weights: str | Path | None = None, encoder_id: str | None = None,
                   bank: str | Path | None = None) -> Captioner:
    """Load a captioner and check it was trained on ``encoder_id``'s embeddings.

    Args:
        weights: a checkpoint; ``None``: the shipped captioner made for ``encoder_id``
            (``captioner-default.pt`` for the default encoder, ``captioner-best.pt``
            for the ``best`` preset), else ``captioner-default.pt``.
        encoder_id: the encoder whose image embeddings it will decode.
        bank: a :class:`CaptionBank` file (default: the shipped one); attached as ``cap.bank``
            only when made with the captioner's encoder, so :meth:`Captioner.caption`
            re-ranks by neighbours' captions only where that is meaningful.

    Raises:
        CaptionerError: missing/invalid weights or bank, or trained for another encoder.
    """
    cap = None
    if weights is None and encoder_id is not None:
        for cand in sorted(WEIGHTS_DIR.glob("captioner-*.pt")):  # each shipped checkpoint is loaded once
            try:
                c = Captioner(cand)
            except CaptionerError:
                continue
            if c.encoder_id == encoder_id:
                cap = c
                break
    if cap is None:
        cap = Captioner(weights)
    if encoder_id is not None and cap.encoder_id != encoder_id:
        raise CaptionerError(f"{cap.path}: captioner was trained on encoder {cap.encoder_id}, not {encoder_id}; "
                             f"train one with `retr train-captioner`")
    if bank is None and DEFAULT_BANK.is_file():
        bank = DEFAULT_BANK
    if bank:
        b = CaptionBank(bank)
        if b.encoder_id == cap.encoder_id:  # the bank's photo embeddings live in the captioner's encoder space
            cap.bank = b
    return cap
