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

from .encoder import WEIGHTS_DIR

#: The shipped captioner checkpoint.
DEFAULT_CAPTIONER = WEIGHTS_DIR / "captioner-default.pt"
PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|[0-9]+")


class CaptionerError(Exception):
    """The captioner cannot be loaded or does not match the encoder."""


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

    def _words(self, ids) -> list[str]:
        return [self.vocab[i] for i in ids if i not in (PAD, BOS, EOS)]

    @torch.no_grad()
    def beam_candidates(self, c: np.ndarray, beam: int = 3, length_penalty: float = 0.7) -> list[tuple[str, float]]:
        """Beam search (width ``beam``) from the prior mean of z: the finished hypotheses, best first.

        Args:
            c: (D,) float32 aligned image embedding, L2-normalised.
            beam: beam width (1 = greedy).
            length_penalty: scores are divided by length ** this (Wu et al. 2016).

        Returns:
            up to ``beam`` (sentence, length-normalised log-probability) pairs, best first
            (distinct sentences). Deterministic for a given input.
        """
        net = self.net
        ct = torch.from_numpy(np.asarray(c, np.float32)).reshape(1, -1)
        mu, _ = net.prior_params(ct)
        cz = torch.cat([ct, mu], -1)
        beams = [([BOS], 0.0, None)]
        finished = []
        for _ in range(self.max_len + 1):
            toks = torch.tensor([[b[0][-1]] for b in beams])
            hs = None if beams[0][2] is None else torch.cat([b[2] for b in beams], 1)
            logits, h = net.step(toks, cz.expand(len(beams), -1), hs)
            logp = F.log_softmax(logits[:, -1], -1)
            logp[:, PAD] = -1e9
            logp[:, BOS] = -1e9
            logp[:, UNK] = -1e9
            cand = []
            for bi, (seq, score, _) in enumerate(beams):
                top = torch.topk(logp[bi], beam)
                for lp, ti in zip(top.values.tolist(), top.indices.tolist()):
                    cand.append((seq + [ti], score + lp, bi))
            cand.sort(key=lambda x: -x[1])
            beams = []
            for seq, score, bi in cand:
                if seq[-1] == EOS:
                    finished.append((seq, score / (len(seq) - 1) ** length_penalty))
                else:
                    beams.append((seq, score, h[:, bi : bi + 1]))
                if len(beams) == beam:
                    break
            if len(finished) >= beam or not beams:
                break
        if not finished:
            finished = [(b[0], b[1] / len(b[0]) ** length_penalty) for b in beams]
        out, seen = [], set()
        for seq, score in sorted(finished, key=lambda x: -x[1]):
            s = detokenize(self._words(seq))
            if s not in seen:
                seen.add(s)
                out.append((s, float(score)))
        return out

    def beam_search(self, c: np.ndarray, beam: int = 3, length_penalty: float = 0.7) -> str:
        """The most likely caption for one photo: the best of :meth:`beam_candidates`.

        Args:
            c: (D,) float32 aligned image embedding, L2-normalised.
            beam: beam width (1 = greedy).
            length_penalty: scores are divided by length ** this (Wu et al. 2016).

        Returns:
            a clean sentence. Deterministic for a given input.
        """
        return self.beam_candidates(c, beam, length_penalty)[0][0]

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

    def caption_embeddings(self, embs: np.ndarray, beam: int = 3) -> list[str]:
        """Best caption of each row of (N, D) float32 aligned image embeddings."""
        return [self.beam_search(e, beam) for e in np.asarray(embs, np.float32)]


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


def load_captioner(weights: str | Path | None = None, encoder_id: str | None = None) -> Captioner:
    """Load a captioner and check it was trained on ``encoder_id``'s embeddings.

    Args:
        weights: a checkpoint; ``None``: the shipped captioner made for ``encoder_id``
            (``captioner-default.pt`` for the default encoder, ``captioner-best.pt``
            for the ``best`` preset), else ``captioner-default.pt``.
        encoder_id: the encoder whose image embeddings it will decode.

    Raises:
        CaptionerError: missing/invalid weights, or trained for another encoder.
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
    return cap
