"""Attention captioner: a conditional VAE whose GRU decoder attends over image regions and
over the photo's concept words, and can copy a concept word into the caption.

The network (:class:`AttendCVAE`):

* **condition** c: the photo's L2-normalised aligned embedding, as in the pooled captioner
  (:mod:`retrieval.captioning.model`); a Gaussian latent z with a prior p(z | c) and a recognition
  network q(z | caption, c) (conditional VAE, Sohn et al. 2015), so that sampling z gives
  different captions of one photo. The recognition network reads the caption as the mean of its
  words' embeddings (the decoder's own, tied).
* **regions**: the backbone's spatial feature map (R regions of ``region_dim`` channels, e.g.
  EfficientNet-Lite0's 7x7 = 49 x 1280), projected to ``att`` dims. At each step the decoder's
  hidden state h_t attends over the regions and a visual sentinel computed from h_t (adaptive
  attention, Lu et al. 2017, "Knowing When to Look"): where no region helps (function words) the
  weight goes to the sentinel. As in Lu et al. the attention reads h_t (after the GRU step) and
  feeds the word prediction, not the GRU input, so training runs the GRU once over the whole
  caption and attends for all steps in parallel (the cheap form on CPUs). Without regions (text-only
  pre-training, or a photo whose map is absent) the sentinel takes all the weight.
* **concept words**: up to K words naming what the photo's classifiers see (ImageNet class
  lemmas and COCO detector names mapped to vocabulary words, :mod:`retrieval.captioning.concept_input`),
  each with its confidence in [0, 1]. They are embedded with the decoder's own (tied) word
  embeddings; their confidence-weighted mean enters the GRU input and initial state (semantic
  input attention), and h_t attends over them (semantic output attention, You et al. 2016,
  "Image Captioning with Semantic Attention"; the attention score includes a learnt multiple of
  log-confidence). A copy gate p_gen(h_t, context) mixes the vocabulary distribution with the
  concept attention scattered onto the concept words' ids (pointer-generator, See et al. 2017),
  so a concept word the decoder rarely saw in training ("giraffe") can still be said when the
  photo's concepts name it with confidence.

Word output: the hidden state, region context and concept context are combined into an
``emb``-dim vector scored against the tied word embeddings (Press & Wolf 2017).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from retrieval.captioning.vocab import PAD

#: floor of the mixed word probability before the log (the copy mixture can put 0 on a word)
PROB_FLOOR = 1e-9


def _mlp(d_in: int, d_out: int, hidden: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class AttendCVAE(nn.Module):
    """Adaptive-attention conditional VAE captioner with concept words and a copy gate.

    Args:
        vocab_size: number of tokens (including the 4 specials of :mod:`retrieval.captioning.vocab`).
        cond_dim: dim of the aligned embedding c.
        region_dim: channels of a region feature (1280 for the EfficientNet-Lite / MobileNetV2 maps).
        z_dim: latent dim. emb: word embedding dim (tied input/output). hidden: GRU size.
        att: attention dim. dropout: on word embeddings, regions and the GRU output.
    """

    def __init__(self, vocab_size: int, cond_dim: int = 512, region_dim: int = 1280, z_dim: int = 32,
                 emb: int = 256, hidden: int = 512, att: int = 512, dropout: float = 0.3):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, cond_dim=cond_dim, region_dim=region_dim, z_dim=z_dim, emb=emb,
                           hidden=hidden, att=att, dropout=dropout)
        self.embed = nn.Embedding(vocab_size, emb, padding_idx=PAD)
        nn.init.normal_(self.embed.weight, std=emb ** -0.5)  # tied output: logits of unit scale at the start
        self.prior = _mlp(cond_dim, 2 * z_dim)
        self.recognition = _mlp(cond_dim + emb, 2 * z_dim)
        self.region_proj = nn.Sequential(nn.LayerNorm(region_dim), nn.Linear(region_dim, att))
        self.global_in = nn.Linear(cond_dim + z_dim + emb, emb)
        self.init_h = nn.Linear(cond_dim + z_dim + emb, hidden)
        self.gru = nn.GRU(2 * emb, hidden, batch_first=True)
        self.query = nn.Linear(hidden, att)
        self.sentinel = nn.Linear(hidden, att)
        self.concept_query = nn.Linear(hidden, emb)
        self.conf_weight = nn.Parameter(torch.tensor([1.0, 0.0]))  # score += a log(conf) + b conf
        self.combine = nn.Linear(hidden + att + emb, emb)
        self.copy_gate = nn.Linear(hidden + att + emb + emb, 1)
        self.out_bias = nn.Parameter(torch.zeros(vocab_size))
        self.out_scale = nn.Parameter(torch.tensor(float(emb) ** 0.5))  # tanh outputs x tied embeddings of norm ~1
        self.drop = nn.Dropout(dropout)
        #: decode-time shift of the copy gate's logit towards copying (0: as trained)
        self.copy_shift = 0.0

    # -- parts computed once a photo -------------------------------------------------------
    def prior_params(self, c: torch.Tensor):
        """(B, cond_dim) -> mean, log-variance of p(z | c), each (B, z_dim)."""
        mu, lv = self.prior(c).chunk(2, dim=-1)
        return mu, lv.clamp(-8, 4)

    def recognition_params(self, c: torch.Tensor, tokens: torch.Tensor):
        """c (B, cond_dim), tokens (B, T) caption ids -> mean, log-variance of q(z | caption, c)."""
        mask = (tokens > 3).float().unsqueeze(-1)  # words only, no specials
        bow = (self.embed(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        mu, lv = self.recognition(torch.cat([c, bow], -1)).chunk(2, dim=-1)
        return mu, lv.clamp(-8, 4)

    def memory(self, c: torch.Tensor, z: torch.Tensor, regions: torch.Tensor | None,
               concept_ids: torch.Tensor, concept_conf: torch.Tensor, region_rows: torch.Tensor | None = None) -> dict:
        """Everything the decoder reads that does not change from word to word.

        Args:
            c: (B, cond_dim) float32 aligned embeddings; z: (B, z_dim) latents.
            regions: (B, R, region_dim) float32 region features, or ``None`` (no regions).
            concept_ids: (B, K) int64 word ids of the concept words (``PAD`` = empty slot).
            concept_conf: (B, K) float32 confidences in [0, 1] (0 for empty slots).
            region_rows: optional (B,) int64: row b reads ``regions[region_rows[b]]`` (a photo's
                regions projected once for all its captions).

        Returns:
            a dict of tensors (see :meth:`read_out`); ``h0`` (1, B, hidden) the initial GRU state.
        """
        conf = concept_conf * (concept_ids != PAD).float()
        k_emb = self.embed(concept_ids)  # (B, K, emb)
        pooled = (k_emb * conf.unsqueeze(-1)).sum(1) / (conf.sum(1, keepdim=True) + 1.0)
        czs = torch.cat([c, z, pooled], -1)
        mem = {"g": torch.tanh(self.global_in(czs)), "h0": torch.tanh(self.init_h(czs)).unsqueeze(0),
               "k_ids": concept_ids, "k_emb": k_emb,
               "k_bias": self.conf_weight[0] * torch.log(conf.clamp(min=1e-4)) + self.conf_weight[1] * conf
               + torch.where(conf > 0, 0.0, -1e4)}
        mem["v"] = None
        if regions is not None and regions.shape[1]:
            v = self.drop(self.region_proj(regions))
            mem["v"] = v if region_rows is None else v[region_rows]
        return mem

    # -- the word-by-word part ------------------------------------------------------------------
    def run(self, tokens: torch.Tensor, mem: dict, h: torch.Tensor | None = None,
            targets: torch.Tensor | None = None):
        """The GRU over ``tokens`` (B, T), then the read-out of every step.

        Args:
            targets: optional (B, T) next words: then only their log-probabilities are computed
                (training: no (B, T, V) copy mixture is built).

        Returns:
            (log-probabilities (B, T, V) of the next word, or (B, T) of ``targets``;
            last hidden state (1, B, hidden)).
        """
        x = self.drop(self.embed(tokens))
        x = torch.cat([x, mem["g"].unsqueeze(1).expand(-1, x.shape[1], -1)], -1)
        o, h = self.gru(x, mem["h0"] if h is None else h)
        return self.read_out(self.drop(o), x[..., : self.config["emb"]], mem, targets), h

    def read_out(self, o: torch.Tensor, x: torch.Tensor, mem: dict, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states o (B, T, hidden) and word inputs x (B, T, emb) -> (B, T, V) log-probabilities
        (or (B, T) of ``targets``): adaptive region attention, concept attention, tied output and the
        copy mixture."""
        q, s = self.query(o), self.sentinel(o)  # (B, T, att)
        scale = 1.0 / math.sqrt(q.shape[-1])
        sent = (q * s).sum(-1, keepdim=True) * scale  # (B, T, 1)
        if mem["v"] is not None:
            scores = torch.cat([torch.einsum("bta,bra->btr", q, mem["v"]) * scale, sent], -1)
            a = scores.softmax(-1)
            ctx = torch.einsum("btr,bra->bta", a[..., :-1], mem["v"]) + a[..., -1:] * s
        else:
            ctx = s
        kq = self.concept_query(o)  # (B, T, emb)
        ks = torch.einsum("bte,bke->btk", kq, mem["k_emb"]) / math.sqrt(kq.shape[-1]) + mem["k_bias"].unsqueeze(1)
        beta = ks.softmax(-1)  # (B, T, K)
        kctx = torch.einsum("btk,bke->bte", beta, mem["k_emb"])
        feat = torch.cat([o, ctx, kctx], -1)
        word = torch.tanh(self.combine(feat)) * self.out_scale
        has = (mem["k_bias"] > -1e3).any(-1).float().view(-1, 1, 1)  # photos with at least one concept
        p_gen = 1.0 - has * (1.0 - torch.sigmoid(self.copy_gate(torch.cat([feat, x], -1)) - self.copy_shift))
        if targets is not None:  # the targets' probabilities only, at the non-padding steps
            sel = targets != PAD
            p_t = torch.zeros(targets.shape)
            p_t[sel] = (-F.cross_entropy(F.linear(word[sel], self.embed.weight, self.out_bias), targets[sel],
                                         reduction="none")).exp()
            copy_t = (beta * (mem["k_ids"].unsqueeze(1) == targets.unsqueeze(-1))).sum(-1)
            return torch.log(p_gen[..., 0] * p_t + (1.0 - p_gen[..., 0]) * copy_t + PROB_FLOOR)
        p_vocab = F.linear(word, self.embed.weight, self.out_bias).softmax(-1)
        copy = torch.zeros_like(p_vocab).scatter_add_(
            2, mem["k_ids"].unsqueeze(1).expand(-1, o.shape[1], -1), beta * (1.0 - p_gen))
        return torch.log(p_gen * p_vocab + copy + PROB_FLOOR)

    def loss(self, tokens: torch.Tensor, c: torch.Tensor, regions: torch.Tensor | None,
             concept_ids: torch.Tensor, concept_conf: torch.Tensor, label_smoothing: float = 0.0,
             region_rows: torch.Tensor | None = None):
        """Negative ELBO terms of a batch.

        Args:
            tokens: (B, T) int64 ``<bos> w1 .. wn <eos> <pad>..``.
            c: (B, cond_dim) conditions (zeros in text-only training: no photo).
            regions: (B, R, region_dim) or ``None``. concept_ids, concept_conf: (B, K); region_rows (:meth:`memory`).
            label_smoothing: share of the target mass spread uniformly (Szegedy et al. 2016).

        Returns:
            (summed token NLL / B, KL(q || p) averaged over the batch, number of tokens).
        """
        mu_q, lv_q = self.recognition_params(c, tokens)
        mu_p, lv_p = self.prior_params(c)
        z = mu_q + torch.randn_like(mu_q) * (0.5 * lv_q).exp()
        mem = self.memory(c, z, regions, concept_ids, concept_conf, region_rows)
        tgt = tokens[:, 1:]
        mask = tgt != PAD
        if label_smoothing > 0:
            logp, _ = self.run(tokens[:, :-1], mem)
            nll = -(1 - label_smoothing) * logp.gather(2, tgt.unsqueeze(-1))[..., 0] - label_smoothing * logp.mean(-1)
        else:
            nll = -self.run(tokens[:, :-1], mem, targets=tgt)[0]
        ce = (nll * mask).sum()
        kl = 0.5 * (lv_p - lv_q + ((lv_q.exp() + (mu_q - mu_p) ** 2) / lv_p.exp()) - 1).sum(-1)
        return ce / tokens.shape[0], kl.mean(), int(mask.sum())


def select_memory(mem: dict, rows: torch.Tensor) -> dict:
    """The memory of the photos ``rows`` (int64 indices; repeats allowed: one row per beam)."""
    return {k: (None if v is None else (v[:, rows] if k == "h0" else v[rows])) for k, v in mem.items()}
