"""Train the alignment network on cached frozen features.

Objectives (each switchable in :class:`AlignConfig`, measured in
``docs/ablation_alignment.md`` by ``scripts/eval/ablate_alignment.py``):

* symmetric InfoNCE with a learned temperature (CLIP, Radford et al. 2021);
* hinge loss on the hardest negative in the batch (VSE++, Faghri et al. 2018);
* adversarial modality training through gradient reversal (ACMR, Wang et al. 2017).

Early stopping watches Recall@1 on a held-out part of the *training* photos,
never on an evaluation split.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from retrieval.encoders.alignment import AlignmentNetwork
from retrieval.training.losses.adversarial import ModalityDiscriminator
from retrieval.training.losses.hardest_negative import hardest_negative_hinge
from retrieval.training.losses.infonce import multi_positive_infonce
from retrieval.training.metrics import recall_at_k

log = logging.getLogger(__name__)


@dataclass
class AlignConfig:
    """Hyper-parameters of :func:`train_alignment` (defaults measured on Flickr8k)."""

    dim: int = 512
    hidden: int = 1024
    dropout: float = 0.5
    #: input dropout of the text head (negative: same as ``dropout``)
    text_dropout: float = 0.1
    #: captions of each photo in a batch (multi-positive InfoNCE; 1: one caption drawn per photo per
    #: step); capped at the median number of captions a training photo has, so that a corpus
    #: of one caption a photo trains as before instead of repeating each caption k times
    captions_per_photo: int = 5
    lr: float = 3e-4
    weight_decay: float = 0.05
    batch_size: int = 256
    max_epochs: int = 80
    patience: int = 10
    holdout: float = 0.08
    seed: int = 0
    #: "infonce", "hinge" (VSE++ hardest negative) or "infonce+hinge" (sum)
    loss: str = "infonce"
    margin: float = 0.2
    #: weight of the adversarial modality loss (0: off)
    adversarial: float = 0.0
    #: gradient-reversal strength reached after the first ``adv_warmup`` epochs (linear ramp)
    adv_lambda: float = 1.0
    #: "confusion" (Tzeng et al. 2015) or "reversal" (gradient reversal, ACMR)
    adv_mode: str = "confusion"
    adv_warmup: int = 5
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.captions_per_photo < 1:
            raise ValueError(f"captions_per_photo must be >= 1, got {self.captions_per_photo}")
        if self.loss not in ("infonce", "hinge", "infonce+hinge"):
            raise ValueError(f"unknown loss {self.loss!r}; choose infonce, hinge or infonce+hinge")


def embed_features(model: AlignmentNetwork, img_feats=None, txt_feats=None, batch: int = 4096):
    """Project features with a trained network (eval mode, no grad).

    Returns:
        tuple of (N, dim) float32 arrays, L2-normalised (``None`` for a missing input).
    """
    model.eval()
    out = []
    for feats, head in ((img_feats, model.image), (txt_feats, model.text)):
        if feats is None:
            out.append(None)
            continue
        with torch.no_grad():
            parts = [head(torch.from_numpy(np.asarray(feats[i : i + batch], np.float32))).numpy()
                     for i in range(0, len(feats), batch)]
        out.append(np.concatenate(parts) if parts else np.zeros((0, model.dim), np.float32))
    return tuple(out)


def train_alignment(img_feats: np.ndarray, txt_feats: np.ndarray, caption_photo, cfg: AlignConfig | None = None,
                    progress=None) -> tuple[AlignmentNetwork, dict]:
    """Train projection heads so that photos and their captions meet.

    Args:
        img_feats: (N, Di) float32 backbone features, or (A, N, Di) with A
            augmented views (e.g. mirrored) sampled at random per step.
        txt_feats: (M, Dt) float32 sentence embeddings.
        caption_photo: length-M ints, photo row of each caption.
        cfg: hyper-parameters.
        progress: optional callable ``progress(epoch, metrics_dict)``.

    Returns:
        (model in eval mode with the best held-out weights, info dict with the
        held-out Recall@K, the epoch chosen and the seconds taken).

    Raises:
        ValueError: fewer than 4 photos with captions.
    """
    cfg = cfg or AlignConfig()
    t0 = time.time()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    views = img_feats[None] if img_feats.ndim == 2 else img_feats
    cp = np.asarray(caption_photo)
    photos = np.unique(cp)
    if len(photos) < 4:
        raise ValueError(f"need at least 4 captioned photos to train, got {len(photos)}")
    perm = rng.permutation(photos)
    n_hold = max(2, int(round(len(photos) * cfg.holdout))) if len(photos) >= 20 else 0
    hold, train = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
    caps_of = {}
    for j, p in enumerate(cp):
        caps_of.setdefault(int(p), []).append(j)

    model = AlignmentNetwork(views.shape[-1], txt_feats.shape[-1], cfg.dim, cfg.hidden, cfg.dropout,
                             cfg.text_dropout if cfg.text_dropout >= 0 else None)
    train_caps = np.concatenate([caps_of[int(p)] for p in train])
    model.image.set_stats(torch.from_numpy(views[0][train]))
    model.text.set_stats(torch.from_numpy(txt_feats[train_caps]))
    params = list(model.parameters())
    disc = None
    if cfg.adversarial > 0:
        disc = ModalityDiscriminator(cfg.dim)
        params += list(disc.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    k = max(1, min(cfg.captions_per_photo, int(np.median([len(caps_of[int(p)]) for p in train]))))
    bs = min(cfg.batch_size, len(train))
    steps_per_epoch = max(1, len(train) // bs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.max_epochs * steps_per_epoch)

    if n_hold:
        hcp = np.concatenate([[k] * len(caps_of[int(p)]) for k, p in enumerate(hold)])
        hcaps = np.concatenate([caps_of[int(p)] for p in hold])
    best, best_state, best_epoch, bad = -1.0, None, 0, 0
    for epoch in range(cfg.max_epochs):
        model.train()
        order = rng.permutation(train)
        for s in range(steps_per_epoch):
            b = order[s * bs : (s + 1) * bs]
            v = rng.integers(0, views.shape[0], len(b))
            x = torch.from_numpy(views[v, b])
            # k captions a photo, drawn without replacement where it has k
            c = np.concatenate([rng.choice(caps_of[int(p)], k, replace=len(caps_of[int(p)]) < k) for p in b])
            t = torch.from_numpy(txt_feats[c])
            ei, et = model.image(x), model.text(t)
            loss = 0.0
            if "infonce" in cfg.loss:
                loss = loss + multi_positive_infonce(ei, et, model.logit_scale)
            if "hinge" in cfg.loss:  # VSE++ on one caption a photo
                loss = loss + hardest_negative_hinge(ei, et[::k], cfg.margin)
            if disc is not None:
                lam = cfg.adv_lambda * min(1.0, (epoch + s / steps_per_epoch) / max(cfg.adv_warmup, 1e-9))
                adv, disc_acc = disc(ei, et[::k], lam, cfg.adv_mode)  # balanced classes
                loss = loss + cfg.adversarial * adv
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if not n_hold:
            best_state, best_epoch = None, epoch
            continue
        hi, ht = embed_features(model, views[0][hold], txt_feats[hcaps])
        r = recall_at_k(hi, ht, hcp)
        score = r["i2t"][1] + r["t2i"][1] + 0.5 * (r["i2t"][5] + r["t2i"][5])
        if progress:
            extra = {"disc_acc": disc_acc} if disc is not None else {}
            progress(epoch, {"loss": float(loss), **extra, **{f"{d}@{k}": v for d in r for k, v in r[d].items()}})
        if score > best:
            best, best_epoch, bad = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    info = {"epoch": best_epoch, "seconds": round(time.time() - t0, 1), "holdout_photos": int(n_hold),
            "captions_per_photo": k,
            "train_photos": int(len(train))}
    if n_hold:
        hi, ht = embed_features(model, views[0][hold], txt_feats[hcaps])
        info["holdout_recall"] = recall_at_k(hi, ht, hcp)
    return model, info
