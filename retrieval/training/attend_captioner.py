"""Train the attention captioner (:class:`retrieval.captioning.attend.AttendCVAE`) in two stages,
resumable from checkpoints.

1. **text-only pre-training** on the caption corpus: no photo (c = 0, no regions); each caption's
   concepts are its own object words as canonical concept words
   (:func:`retrieval.captioning.concept_input.canonical_table`), each dropped with probability
   ``concept_drop`` and given a random confidence, plus random distractor concepts the caption
   does not say (so the copy gate learns to copy only what fits). This is language-model
   pre-training of the decoder with the concept inputs of CapDec's text-only idea (Nukrai et al.
   2022), without the noised sentence embedding: embedding the 216k corpus captions with the
   sentence encoder costs more CPU time than the training itself.
2. **fine-tuning** on (photo, caption) pairs: c = the photo's aligned embedding, its regions and
   its concepts from the classifiers; a share ``rehearsal`` of the steps are text-only corpus
   batches, so the corpus's words are not forgotten.

KL annealing (Bowman et al. 2016) and free bits (Kingma et al. 2016) as the pooled captioner.
A run writes its checkpoint (network, optimiser, schedule, step) every ``save_every_s`` seconds
and at its end; started again with the same checkpoint path it goes on from the saved step.
Batches are drawn from a generator seeded by (seed, step), so a resumed run sees the batches an
unbroken one would have.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from retrieval.captioning.attend import AttendCVAE
from retrieval.captioning.concept_input import CONCEPT_SLOTS, canonical_table
from retrieval.captioning.vocab import PAD


@dataclass
class AttendConfig:
    """Hyper-parameters of :func:`fit`."""

    steps: int = 2000
    batch: int = 128
    lr: float = 2e-3
    warmup: float = 0.05
    anneal: float = 0.3
    free_bits: float = 3.0
    label_smoothing: float = 0.0
    concept_drop: float = 0.25
    distractor_p: float = 0.5
    rehearsal: float = 0.25
    use_regions: bool = True
    use_concepts: bool = True
    save_every_s: float = 240.0
    seed: int = 0
    #: also keep the state at this step (``<ckpt>.step<N>``), e.g. for a shorter-budget comparison; 0: none
    snapshot_step: int = 0


@dataclass
class TextData:
    """Tokenised captions without photos: tokens (M, L) int64 (:func:`encode_captions`); ``order``
    sorts them by length (a batch is a run of captions of about one length: little padding)."""

    tokens: np.ndarray
    vocab: list[str]

    def __post_init__(self):
        self.order = np.argsort((self.tokens != PAD).sum(1), kind="stable")


@dataclass
class PhotoData:
    """Photos with captions: c (N, D) float32, regions (N, R, F) float16, concept ids/conf (N, K),
    tokens (M, L) int64 and caption_photo (M,) int64."""

    c: np.ndarray
    regions: np.ndarray
    concept_ids: np.ndarray
    concept_conf: np.ndarray
    tokens: np.ndarray
    caption_photo: np.ndarray


def own_concepts(tokens: np.ndarray, vocab: list[str], rng: np.random.Generator, drop: float,
                 distractor_p: float, k: int = CONCEPT_SLOTS) -> tuple[np.ndarray, np.ndarray]:
    """Text-only concepts of B captions: their canonical concept words, each kept with
    probability 1 - ``drop`` at a confidence drawn from U(0.3, 1), then with probability
    ``distractor_p`` one or two concept words the caption does not say at U(0.25, 0.6).

    Returns:
        (ids (B, k) int64, conf (B, k) float32).
    """
    canon, _ = canonical_table(tuple(vocab))
    pool = np.unique(canon[canon >= 0])
    ids = np.full((len(tokens), k), PAD, np.int64)
    conf = np.zeros((len(tokens), k), np.float32)
    for b, row in enumerate(tokens):
        own = [w for w in dict.fromkeys(canon[row[row > 3]].tolist()) if w >= 0]
        kept = [(w, rng.uniform(0.3, 1.0)) for w in own if rng.random() >= drop]
        if rng.random() < distractor_p:
            kept += [(int(w), rng.uniform(0.25, 0.6)) for w in rng.choice(pool, rng.integers(1, 3)) if w not in own]
        kept = sorted(kept, key=lambda x: -x[1])[:k]
        for j, (w, s) in enumerate(kept):
            ids[b, j], conf[b, j] = w, s
    return ids, conf


def _trim(t: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(t[:, : int((t != PAD).sum(1).max())])


def text_batch(data: TextData, rng: np.random.Generator, cfg: AttendConfig, cond_dim: int) -> dict:
    """A text-only batch: a random run of ``cfg.batch`` captions of about one length, c = 0, no
    regions, own concepts."""
    start = int(rng.integers(0, max(1, len(data.tokens) - cfg.batch)))
    idx = data.order[start : start + cfg.batch]
    t = data.tokens[idx]
    ids, conf = own_concepts(t, data.vocab, rng, cfg.concept_drop, cfg.distractor_p)
    if not cfg.use_concepts:
        ids[:], conf[:] = PAD, 0.0
    return {"tokens": _trim(t), "c": torch.zeros(len(t), cond_dim), "regions": None,
            "concept_ids": torch.from_numpy(ids), "concept_conf": torch.from_numpy(conf)}


def photo_batch(data: PhotoData, rng: np.random.Generator, cfg: AttendConfig) -> dict:
    """A batch of about ``cfg.batch`` captions: random photos with all their captions; each photo's
    regions are projected once (``region_rows``)."""
    photos = rng.choice(len(data.c), max(1, cfg.batch // 5), replace=False)
    pos = {int(p): j for j, p in enumerate(photos)}
    caps = np.flatnonzero(np.isin(data.caption_photo, photos))
    rows = np.array([pos[int(p)] for p in data.caption_photo[caps]])
    ids, conf = data.concept_ids[photos[rows]], data.concept_conf[photos[rows]]
    if not cfg.use_concepts:
        ids, conf = np.full_like(ids, PAD), np.zeros_like(conf)
    regions = torch.from_numpy(data.regions[photos].astype(np.float32)) if cfg.use_regions else None
    return {"tokens": _trim(data.tokens[caps]), "c": torch.from_numpy(data.c[photos[rows]]), "regions": regions,
            "region_rows": torch.from_numpy(rows) if cfg.use_regions else None,
            "concept_ids": torch.from_numpy(ids), "concept_conf": torch.from_numpy(conf)}


def _schedule(opt, cfg: AttendConfig):
    warm = max(1, int(cfg.warmup * cfg.steps))

    def f(s):
        return (s + 1) / warm if s < warm else 0.5 * (1 + np.cos(np.pi * (s - warm) / max(1, cfg.steps - warm)))
    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def save_state(path: Path, net: AttendCVAE, opt, sched, step: int, meta: dict) -> None:
    """Write a resumable training checkpoint atomically."""
    tmp = path.with_suffix(".tmp")
    torch.save({"net": net.state_dict(), "config": net.config, "opt": opt.state_dict(),
                "sched": sched.state_dict(), "step": step, "meta": meta}, tmp)
    tmp.replace(path)


def fit(net: AttendCVAE, cfg: AttendConfig, ckpt: Path, text: TextData | None = None,
        photos: PhotoData | None = None, log=print) -> AttendCVAE:
    """Train ``net`` for ``cfg.steps`` steps (text-only when ``photos`` is None, else fine-tuning
    with a ``cfg.rehearsal`` share of text batches), resuming from ``ckpt`` if it exists.

    Returns:
        the network in eval mode (its final state is also in ``ckpt``).
    """
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = _schedule(opt, cfg)
    step = 0
    if ckpt.is_file():
        st = torch.load(ckpt, map_location="cpu", weights_only=False)
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        step = st["step"]
        log(f"resumed {ckpt} at step {step}")
    t0 = last = time.time()
    run_ce = run_kl = run_tok = 0.0
    net.train()
    while step < cfg.steps:
        rng = np.random.default_rng([cfg.seed, step])
        torch.manual_seed(cfg.seed * 100003 + step)
        use_text = photos is None or (text is not None and rng.random() < cfg.rehearsal)
        b = text_batch(text, rng, cfg, net.config["cond_dim"]) if use_text else photo_batch(photos, rng, cfg)
        ce, kl, nt = net.loss(b["tokens"], b["c"], b["regions"], b["concept_ids"], b["concept_conf"],
                              cfg.label_smoothing, b.get("region_rows"))
        beta = min(1.0, step / max(1.0, cfg.anneal * cfg.steps)) if cfg.anneal > 0 else 1.0
        loss = ce + beta * torch.clamp(kl, min=cfg.free_bits)
        opt.zero_grad()
        (loss * len(b["tokens"]) / max(nt, 1)).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        run_ce, run_kl, run_tok = run_ce + ce.item() * len(b["tokens"]), run_kl + kl.item(), run_tok + nt
        if step % 25 == 0 or step == cfg.steps:
            log(f"step {step}/{cfg.steps} ce/token {run_ce / max(run_tok, 1):.3f} kl {run_kl / 25:.2f} "
                f"{(time.time() - t0) / 25:.2f} s/step")
            t0, run_ce, run_kl, run_tok = time.time(), 0.0, 0.0, 0
        if step == cfg.snapshot_step:
            save_state(ckpt.with_name(f"{ckpt.name}.step{step}"), net, opt, sched, step, {"cfg": asdict(cfg)})
        if time.time() - last > cfg.save_every_s or step == cfg.steps:
            save_state(ckpt, net, opt, sched, step, {"cfg": asdict(cfg)})
            last = time.time()
    net.eval()
    return net
