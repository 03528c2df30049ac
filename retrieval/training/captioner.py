"""Train the conditional VAE captioner on (aligned photo embedding, caption) pairs.

KL annealing (Bowman et al. 2016) from 0 to 1 over the first epochs, and free
bits (Kingma et al. 2016) so the latent is used and does not collapse.
Early stopping on a held-out part of the training photos.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..captioner import BOS, EOS, PAD, SPECIALS, UNK, CaptionCVAE, tokenize


@dataclass
class CaptionerConfig:
    """Hyper-parameters of :func:`train_captioner`."""

    min_count: int = 5
    max_len: int = 20
    z_dim: int = 32
    emb: int = 256
    hidden: int = 512
    dropout: float = 0.3
    lr: float = 2e-3
    batch_size: int = 128
    max_epochs: int = 12
    anneal_epochs: float = 3.0
    free_bits: float = 3.0
    patience: int = 2
    holdout: float = 0.05
    seed: int = 0


def build_vocab(captions: list[str], min_count: int = 5) -> list[str]:
    """Specials, then words seen at least ``min_count`` times, most frequent first."""
    cnt = Counter(w for c in captions for w in tokenize(c))
    return SPECIALS + [w for w, n in sorted(cnt.items(), key=lambda x: (-x[1], x[0])) if n >= min_count]


def encode_captions(captions: list[str], vocab: list[str], max_len: int) -> np.ndarray:
    """(M, max_len + 2) int64: ``<bos> ids.. <eos>`` padded with ``<pad>``; long captions cut."""
    idx = {w: i for i, w in enumerate(vocab)}
    out = np.full((len(captions), max_len + 2), PAD, np.int64)
    for j, c in enumerate(captions):
        ids = [idx.get(w, UNK) for w in tokenize(c)][:max_len]
        out[j, : len(ids) + 2] = [BOS] + ids + [EOS]
    return out


def train_captioner(cond: np.ndarray, text_emb: np.ndarray, captions: list[str], caption_photo,
                    cfg: CaptionerConfig | None = None, progress=None):
    """Train a :class:`CaptionCVAE`.

    Args:
        cond: (N, D) float32 aligned photo embeddings, or (A, N, D) augmented
            views sampled at random per step.
        text_emb: (M, D) float32 aligned embeddings of the captions.
        captions: M caption strings.
        caption_photo: length-M photo row of each caption.
        cfg: hyper-parameters.
        progress: optional ``progress(epoch, info_dict)``.

    Returns:
        (network in eval mode, vocab list, info dict with held-out CE/KL per token).
    """
    cfg = cfg or CaptionerConfig()
    t0 = time.time()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    views = cond[None] if cond.ndim == 2 else cond
    cp = np.asarray(caption_photo)
    photos = np.unique(cp)
    perm = rng.permutation(photos)
    n_hold = int(len(photos) * cfg.holdout) if len(photos) >= 40 else 0
    hold = set(perm[:n_hold].tolist())
    is_hold = np.array([p in hold for p in cp])
    tr, va = np.where(~is_hold)[0], np.where(is_hold)[0]
    vocab = build_vocab([captions[i] for i in tr], cfg.min_count)
    toks = encode_captions(captions, vocab, cfg.max_len)
    net = CaptionCVAE(len(vocab), views.shape[-1], cfg.z_dim, cfg.emb, cfg.hidden, cfg.dropout)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    bs = min(cfg.batch_size, len(tr))
    steps = max(1, len(tr) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.max_epochs * steps,
                                                pct_start=0.1)
    text_t = torch.from_numpy(np.asarray(text_emb, np.float32))
    toks_t = torch.from_numpy(toks)

    def batch_tensors(idx, view=None):
        idx = np.asarray(idx)
        v = rng.integers(0, views.shape[0], len(idx)) if view is None else np.full(len(idx), view)
        c = torch.from_numpy(views[v, cp[idx]])
        t = toks_t[idx]
        t = t[:, : int((t != PAD).sum(1).max())]
        return t, c, text_t[idx]

    def evaluate():
        net.eval()
        ce_tot, kl_tot, n_tok = 0.0, 0.0, 0
        with torch.no_grad():
            for s in range(0, len(va), 512):
                t, c, e = batch_tensors(va[s : s + 512], view=0)
                ce, kl, nt = net.loss(t, c, e)
                ce_tot += float(ce) * len(t)
                kl_tot += float(kl) * len(t)
                n_tok += nt
        return ce_tot / max(n_tok, 1), kl_tot / max(len(va), 1)

    best, best_state, best_epoch, bad, step = float("inf"), None, 0, 0, 0
    info = {}
    for epoch in range(cfg.max_epochs):
        net.train()
        order = rng.permutation(tr)
        for s in range(steps):
            t, c, e = batch_tensors(order[s * bs : (s + 1) * bs])
            ce, kl, nt = net.loss(t, c, e)
            beta = min(1.0, step / max(1.0, cfg.anneal_epochs * steps))
            loss = ce + beta * torch.clamp(kl, min=cfg.free_bits)
            opt.zero_grad()
            (loss * len(t) / max(nt, 1)).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
        if len(va):
            vce, vkl = evaluate()
            info = {"epoch": epoch, "heldout_ce_per_token": round(vce, 4), "heldout_kl": round(vkl, 3),
                    "seconds": round(time.time() - t0, 1)}
            if progress:
                progress(epoch, info)
            score = vce  # token-level cross-entropy with the posterior z
            if score < best:
                best, best_epoch, bad = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    info.update({"best_epoch": best_epoch, "vocab_size": len(vocab), "train_captions": int(len(tr)),
                 "seconds": round(time.time() - t0, 1)})
    return net, vocab, info


def save_captioner(net: CaptionCVAE, vocab: list[str], path: str | Path, encoder_id: str, max_len: int,
                   card: dict | None = None) -> Path:
    """Write a captioner checkpoint (float16 weights, vocab, config)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ck = {"config": {"network": dict(net.config), "encoder_id": encoder_id, "max_len": max_len,
                     "card": card or {}},
          "vocab": list(vocab),
          "state_dict": {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ck, tmp)
    tmp.replace(path)
    return path
