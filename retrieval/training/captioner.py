"""Train the conditional VAE captioner on (aligned photo embedding, caption) pairs.

KL annealing (Bowman et al. 2016) from 0 to 1 over the first epochs, and free
bits (Kingma et al. 2016) so the latent is used and does not collapse.
Early stopping on a held-out part of the training photos.

Two stages (either can run alone):

1. text-only pre-training (CapDec, Nukrai et al. 2022) on captions without photos:
   the condition c is the caption's own aligned text embedding plus Gaussian noise
   N(0, noise_std^2 I), re-normalised to the unit sphere, so that at inference the
   photo's aligned image embedding (a point near, not on, its captions' embeddings:
   the modality gap, Liang et al. 2022) can stand in for it;
2. fine-tuning on (photo, caption) pairs, c = the photo's aligned embedding,
   starting from stage 1's network and vocabulary.
"""
from __future__ import annotations

import csv
import gzip
import io
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from retrieval.captioning.model import CaptionCVAE

from retrieval.captioning.vocab import BOS, EOS, PAD, SPECIALS, UNK, tokenize


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
    #: std of the Gaussian noise added per dimension to the text embedding standing in
    #: for the photo in text-only training (CapDec); unused when photos are given.
    noise_std: float = 0.045
    label_smoothing: float = 0.0


def load_text_corpus(path: str | Path, column: str = "caption") -> tuple[list[str], list[str]]:
    """Captions of a text-only corpus, for the text-only pre-training stage.

    Formats: ``.txt`` (one caption a line), or ``.tsv`` / ``.tsv.gz`` with a header row
    naming a ``column`` (e.g. ``source<TAB>image<TAB>caption``, as in the shared
    ``corpus.tsv.gz``); any file ending ``.gz`` is read gzip-compressed. Blank lines are skipped.

    Returns:
        (captions, images): two lists of equal length; ``images`` holds the tsv's
        ``image`` column where there is one (to drop captions of evaluation photos),
        else empty strings.

    Raises:
        ValueError: not gzip data where ``.gz`` says so, not UTF-8 text, a tsv without
            the column, or no caption at all (each message names the file).
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a UTF-8 text corpus ({e.__class__.__name__}: {e})") from None
    name = path.name[:-3] if path.suffix == ".gz" else path.name
    caps, imgs = [], []
    if name.endswith(".tsv"):
        rows = csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows, [])
        if column not in header:
            raise ValueError(f"{path}: no {column!r} column in the header {header}")
        ci = header.index(column)
        ii = header.index("image") if "image" in header else None
        for r in rows:
            if len(r) > ci and r[ci].strip():
                caps.append(r[ci].strip())
                imgs.append(r[ii] if ii is not None and len(r) > ii else "")
    else:
        caps = [ln.strip() for ln in text.splitlines() if ln.strip()]
        imgs = [""] * len(caps)
    if not caps:
        raise ValueError(f"{path}: no captions")
    return caps, imgs


def flickr_photo_id(image: str) -> str:
    """``"1000268201_693b08cb0e.jpg"`` (Flickr8k) or ``"1000268201.jpg"`` (Flickr30k) -> ``"1000268201"``."""
    return Path(image).name.split("_")[0].split(".")[0]


def drop_photos(captions: list[str], images: list[str], photo_ids) -> list[str]:
    """The captions whose image (by :func:`flickr_photo_id`) is not in ``photo_ids``:
    keeps an evaluation split's photos out of text-only pre-training."""
    ids = set(photo_ids)
    return [c for c, im in zip(captions, images) if not im or flickr_photo_id(im) not in ids]


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


def noisy_condition(t: torch.Tensor, noise_std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """CapDec's stand-in for the photo embedding (Nukrai et al. 2022): (B, D) float32
    L2-normalised text embeddings + N(0, noise_std^2 I), re-normalised to unit length
    (the photo embeddings the decoder reads at inference are unit vectors)."""
    n = torch.randn(t.shape, generator=generator) * noise_std
    return F.normalize(t + n, dim=-1)


def train_captioner(cond: np.ndarray | None, text_emb: np.ndarray, captions: list[str], caption_photo=None,
                    cfg: CaptionerConfig | None = None, progress=None, vocab: list[str] | None = None,
                    init: CaptionCVAE | None = None):
    """Train a :class:`CaptionCVAE`.

    Args:
        cond: (N, D) float32 aligned photo embeddings, or (A, N, D) augmented
            views sampled at random per step; ``None`` for text-only (CapDec)
            training, where each caption's noisy text embedding is its condition.
        text_emb: (M, D) float32 aligned embeddings of the captions.
        captions: M caption strings.
        caption_photo: length-M photo row of each caption (ignored without ``cond``).
        cfg: hyper-parameters.
        progress: optional ``progress(epoch, info_dict)``.
        vocab: a fixed vocabulary (default: built from the training captions).
        init: a network to start from (fine-tuning; needs its ``vocab``).

    Returns:
        (network in eval mode, vocab list, info dict with held-out CE/KL per token).
    """
    cfg = cfg or CaptionerConfig()
    t0 = time.time()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    text_only = cond is None
    if text_only:
        cp = np.arange(len(captions))
        views = np.zeros((1, 0, text_emb.shape[1]), np.float32)
    else:
        views = cond[None] if cond.ndim == 2 else cond
        cp = np.asarray(caption_photo)
    photos = np.unique(cp)
    perm = rng.permutation(photos)
    n_hold = int(len(photos) * cfg.holdout) if len(photos) >= 40 else 0
    hold = set(perm[:n_hold].tolist())
    is_hold = np.array([p in hold for p in cp])
    tr, va = np.where(~is_hold)[0], np.where(is_hold)[0]
    if vocab is None:
        vocab = build_vocab([captions[i] for i in tr], cfg.min_count)
    toks = encode_captions(captions, vocab, cfg.max_len)
    if init is not None:
        if init.config["vocab_size"] != len(vocab):
            raise ValueError("init network and vocab differ in size")
        net = CaptionCVAE(**init.config)
        net.load_state_dict(init.state_dict())
    else:
        net = CaptionCVAE(len(vocab), views.shape[-1], cfg.z_dim, cfg.emb, cfg.hidden, cfg.dropout)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    bs = min(cfg.batch_size, len(tr))
    steps = max(1, len(tr) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.max_epochs * steps,
                                                pct_start=0.1)
    text_t = torch.from_numpy(np.asarray(text_emb, np.float32))
    toks_t = torch.from_numpy(toks)

    gen = torch.Generator().manual_seed(cfg.seed)

    def batch_tensors(idx, view=None):
        idx = np.asarray(idx)
        if text_only:
            c = noisy_condition(text_t[idx], cfg.noise_std, gen)
        else:
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
            ce, kl, nt = net.loss(t, c, e, cfg.label_smoothing)
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
                    "seconds": round(time.time() - t0, 1), "text_only": text_only}
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
                 "text_only": text_only, "noise_std": cfg.noise_std if text_only else None,
                 "seconds": round(time.time() - t0, 1)})
    return net, vocab, info


def pretrain_config() -> CaptionerConfig:
    """Defaults of the text-only (CapDec) stage: a large corpus, so few epochs, a short KL
    annealing, a 2% held-out part, and a vocabulary of words seen >= 10 times."""
    return CaptionerConfig(min_count=10, max_epochs=2, anneal_epochs=0.5, holdout=0.02, patience=1)


def finetune_config() -> CaptionerConfig:
    """Defaults of the fine-tuning stage on (photo, caption) pairs, starting from the
    text-only network: a lower learning rate, fewer epochs, no KL annealing (beta = 1)."""
    return CaptionerConfig(lr=1e-3, max_epochs=5, anneal_epochs=0.0)


def train_two_stage(cond: np.ndarray, text_emb: np.ndarray, captions: list[str], caption_photo,
                    corpus: list[str], corpus_emb: np.ndarray, cfg: CaptionerConfig | None = None,
                    pretrain_cfg: CaptionerConfig | None = None, progress=None):
    """Text-only pre-training on ``corpus`` (CapDec), then fine-tuning on the photos.

    The vocabulary is built from the corpus and the photos' captions together
    (``pretrain_cfg.min_count``).

    Args:
        cond: (N, D) or (A, N, D) float32 aligned photo embeddings (see :func:`train_captioner`).
        text_emb, captions, caption_photo: the photos' M captions, their (M, D) float32
            aligned embeddings and photo rows.
        corpus: K captions without photos. corpus_emb: (K, D) float32 their aligned embeddings.
        cfg: fine-tuning hyper-parameters (default :func:`finetune_config`).
        pretrain_cfg: text-only stage hyper-parameters (default :func:`pretrain_config`).
        progress: optional ``progress(stage, epoch, info_dict)``, stage ``"pretrain"`` or ``"finetune"``.

    Returns:
        (network, vocab, info): info of the fine-tuning stage with the text-only stage's under ``"pretrain"``.
    """
    cfg = cfg or finetune_config()
    pretrain_cfg = pretrain_cfg or pretrain_config()
    vocab = build_vocab(list(corpus) + list(captions), pretrain_cfg.min_count)
    net0, _, info0 = train_captioner(None, corpus_emb, corpus, cfg=pretrain_cfg, vocab=vocab,
                                     progress=(lambda e, i: progress("pretrain", e, i)) if progress else None)
    net, _, info = train_captioner(cond, text_emb, captions, caption_photo, cfg, vocab=vocab, init=net0,
                                   progress=(lambda e, i: progress("finetune", e, i)) if progress else None)
    info["pretrain"] = info0
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
