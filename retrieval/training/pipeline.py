"""`retr train` and `retr eval`: train alignment heads on any COCO-captions corpus,
and measure Recall@K (optionally by k-fold cross-validation over photos)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from retrieval.io.coco import load_coco_captions
from retrieval.training.metrics import modality_gap, recall_at_k
from retrieval.training.align import AlignConfig, embed_features, train_alignment
from retrieval.training.features import image_features, readable_photos, text_features


def check_folds(folds: int) -> None:
    """Refuse a ``--folds`` value that cannot mean anything, before any work.

    Raises:
        ValueError: ``folds`` is negative or 1 (0 = no cross-validation, else K >= 2).
    """
    if folds < 0 or folds == 1:
        raise ValueError(f"--folds must be 0 (no cross-validation) or at least 2, not {folds}")


def kfold_photo_splits(n_photos: int, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K disjoint test folds over photo indices (all of a photo's captions go with it).

    Returns:
        list of k (train_photos, test_photos) int arrays; test folds partition range(n_photos).

    Raises:
        ValueError: k < 2 or k > n_photos.
    """
    if k < 2 or k > n_photos:
        raise ValueError(f"--folds must be between 2 and the number of photos ({n_photos}), got {k}")
    perm = np.random.default_rng(seed).permutation(n_photos)
    folds = np.array_split(perm, k)
    return [(np.sort(np.concatenate([f for j, f in enumerate(folds) if j != i])), np.sort(folds[i]))
            for i in range(k)]


def train_encoder(captions: str | Path, images: str | Path, out: str | Path, *,
                  backbone: str = "efficientnet-lite0", text_encoder: str = "all-MiniLM-L6-v2",
                  cfg: AlignConfig | None = None, cache_dir: str | Path | None = None, progress=None,
                  on_skip=None) -> dict:
    """Train alignment heads on a COCO-captions corpus and write an encoder checkpoint.

    Args:
        captions: COCO-captions JSON (``file_name`` relative to ``images``).
        images: photo folder.
        out: checkpoint path, usable as ``retr index --encoder OUT``.
        cache_dir: feature cache (default: ``<out>.cache/``).
        on_skip: ``on_skip(path, reason)`` for each photo that cannot be decoded; it is left out
            with its captions (:func:`~retrieval.training.features.readable_photos`).

    Returns:
        info dict (held-out Recall@K on part of the training photos, epochs, seconds).

    Raises:
        ValueError: bad captions file, no readable photo, or too few photos. DecodeError: a
            photo became unreadable after the check.
    """
    from retrieval.encoders.base import save_alignment

    cache = Path(cache_dir) if cache_dir else Path(str(out) + ".cache")
    corpus = readable_photos(load_coco_captions(captions), images, cache, on_skip)
    img = image_features(corpus, images, backbone, cache, flip=True)
    txt = text_features(corpus.captions, text_encoder, cache)
    model, info = train_alignment(img, txt, corpus.caption_photo, cfg, progress=progress)
    save_alignment(model, out, backbone, text_encoder,
                   card={"train_data": str(captions), "train_info": info, "align_config": (cfg or AlignConfig()).__dict__})
    return info


def evaluate(captions: str | Path, images: str | Path, *, encoder=None, folds: int = 0,
             cfg: AlignConfig | None = None, cache_dir: str | Path | None = None, seed: int = 0,
             on_skip=None) -> dict:
    """Recall@1/5/10 both ways on a captioned photo set.

    Without ``folds``: the given encoder (default: built-in) embeds all photos and
    captions; the photos are the gallery and the captions the queries.
    With ``folds=K``: K-fold cross-validation of *training* alignment heads on the
    corpus (same backbone and text encoder as ``encoder``), no photo in both its
    train and test fold; reports per-fold results and mean / std.
    A photo that cannot be decoded is reported as ``on_skip(path, reason)`` and left out with
    its captions (:func:`~retrieval.training.features.readable_photos`).

    Returns:
        ``{"recall": {...}, "modality_gap": float, "photos": n, "captions": m}``, plus
        ``"folds": [...]``, ``"mean"`` and ``"std"`` with ``folds``.

    Raises:
        ValueError: ``folds`` is 1 or negative (checked before any work), or more than the
            photos; a bad captions file; no readable photo. DecodeError: a photo became
            unreadable after the check.
    """
    from retrieval.encoders.base import load_encoder

    check_folds(folds)
    encoder = encoder or load_encoder()
    if folds and not hasattr(encoder, "backbone_name"):
        raise ValueError("--folds trains alignment heads; it needs a retr encoder")
    corpus = readable_photos(load_coco_captions(captions), images, cache_dir, on_skip)
    if not hasattr(encoder, "backbone_name"):
        # any other Encoder (e.g. hf:): embed photos and captions with it, no retr heads involved
        from retrieval.io.decode import load_image

        batch = 32
        pi = np.concatenate([encoder.encode_images([load_image(Path(images) / f)
                                                    for f in corpus.file_names[s : s + batch]])
                             for s in range(0, len(corpus.file_names), batch)]).astype(np.float32, copy=False)
        ti = np.asarray(encoder.encode_texts(list(corpus.captions)), np.float32)
        cp = np.asarray(corpus.caption_photo)
        return {"recall": recall_at_k(pi, ti, cp), "modality_gap": modality_gap(pi, ti),
                "photos": len(corpus.file_names), "captions": len(cp), "encoder": encoder.id}
    cache = Path(cache_dir) if cache_dir else None
    img = image_features(corpus, images, encoder.backbone_name, cache, flip=bool(folds))
    txt = text_features(corpus.captions, encoder.text_name, cache)
    cp = np.asarray(corpus.caption_photo)
    if not folds:
        pi, ti = encoder.project_images(img), encoder.project_texts(txt)
        return {"recall": recall_at_k(pi, ti, cp), "modality_gap": modality_gap(pi, ti),
                "photos": len(corpus.file_names), "captions": len(cp), "encoder": encoder.id}
    results = []
    for tr, te in kfold_photo_splits(len(corpus.file_names), folds, seed):
        tr_set = set(tr.tolist())
        tr_caps = np.array([j for j, p in enumerate(cp) if p in tr_set])
        remap = {int(p): i for i, p in enumerate(tr)}
        model, _ = train_alignment(img[:, tr], txt[tr_caps], [remap[int(cp[j])] for j in tr_caps], cfg)
        te_map = {int(p): i for i, p in enumerate(te)}
        te_caps = np.array([j for j, p in enumerate(cp) if int(p) in te_map])
        pi, ti = embed_features(model, img[0][te], txt[te_caps])
        results.append({"recall": recall_at_k(pi, ti, [te_map[int(cp[j])] for j in te_caps]),
                        "modality_gap": modality_gap(pi, ti), "test_photos": int(len(te))})

    def agg(fn):
        return {d: {k: float(fn([r["recall"][d][k] for r in results])) for k in results[0]["recall"][d]}
                for d in results[0]["recall"]}

    return {"folds": results, "mean": agg(np.mean), "std": agg(np.std), "photos": len(corpus.file_names),
            "captions": len(cp), "encoder": f"{encoder.backbone_name}+{encoder.text_name} (heads retrained per fold)"}


def train_captioner_on_corpus(captions: str | Path, images: str | Path, out: str | Path, *, encoder=None,
                              cfg=None, cache_dir: str | Path | None = None, progress=None,
                              corpus: str | Path | None = None, pretrain_cfg=None, on_skip=None) -> dict:
    """Train a VAE captioner on a COCO-captions corpus, conditioned on ``encoder``'s
    aligned photo embeddings, and write a checkpoint usable as ``retr caption --captioner OUT``.

    Args:
        corpus: optional text-only captions (``.txt`` one a line, or ``.tsv[.gz]`` with a
            ``caption`` column; see :func:`~retrieval.training.captioner.load_text_corpus`):
            first pre-train on them without photos (CapDec, Nukrai et al. 2022), then
            fine-tune on the photos (:func:`~retrieval.training.captioner.train_two_stage`).
        cfg: (fine-tuning) hyper-parameters. pretrain_cfg: the text-only stage's.
        progress: optional ``progress(epoch, info)`` (``info["text_only"]`` tells the stage).
        on_skip: ``on_skip(path, reason)`` for each photo that cannot be decoded; it is left out
            with its captions (:func:`~retrieval.training.features.readable_photos`).

    Returns:
        info dict (held-out cross-entropy per token and KL, vocabulary size, seconds;
        the text-only stage's under ``"pretrain"``).

    Raises:
        ValueError: bad captions or corpus file, or no readable photo. DecodeError: a photo
            became unreadable after the check.
    """
    from retrieval.encoders.base import load_encoder
    from retrieval.training.captioner import (CaptionerConfig, finetune_config, load_text_corpus, save_captioner, train_captioner,
                            train_two_stage)

    encoder = encoder or load_encoder()
    cfg = cfg or (finetune_config() if corpus else CaptionerConfig())
    texts = load_text_corpus(corpus)[0] if corpus else None
    cache = Path(cache_dir) if cache_dir else Path(str(out) + ".cache")
    coco = readable_photos(load_coco_captions(captions), images, cache, on_skip)
    img = image_features(coco, images, encoder.backbone_name, cache, flip=True)
    txt = text_features(coco.captions, encoder.text_name, cache)
    cond = np.stack([encoder.project_images(v) for v in img])
    temb = encoder.project_texts(txt)
    if texts:
        cemb = encoder.project_texts(text_features(texts, encoder.text_name, cache))
        net, vocab, info = train_two_stage(cond, temb, coco.captions, coco.caption_photo, texts, cemb, cfg,
                                           pretrain_cfg, progress=(lambda s, e, i: progress(e, i)) if progress else None)
    else:
        net, vocab, info = train_captioner(cond, temb, coco.captions, coco.caption_photo, cfg, progress=progress)
    save_captioner(net, vocab, out, encoder.id, cfg.max_len,
                   card={"train_data": str(captions) + (f" after text-only pre-training on {corpus}" if corpus else ""),
                         "train_info": info, "config": cfg.__dict__})
    return info


def evaluate_captioner(captions: str | Path, images: str | Path, *, encoder=None, captioner=None,
                       n_samples: int = 5, beam: int = 3, length_penalty: float = 0.7, rerank: str | None = None,
                       max_photos: int | None = None, cache_dir: str | Path | None = None,
                       meteor: bool = True, diversity_samples: bool = True) -> dict:
    """Caption metrics on a captioned photo set (photos' captions as references).

    Beam search gives one caption a photo, scored with BLEU-1..4, METEOR, ROUGE-L and
    CIDEr; ``n_samples`` latent samples a photo give Div-1, Div-2, mBLEU-4 and the
    oracle (best-of-n) CIDEr. Also the negative-ELBO terms on these captions: token
    cross-entropy (z from the recognition network) and KL(q(z | caption, c) || p(z | c)).

    Args:
        beam, length_penalty: beam search settings (see ``Captioner.beam_candidates``).
        rerank: ``"alignment"``: of the beam's finished hypotheses keep the one the
            alignment network scores closest to the photo (cosine of the aligned
            embeddings); ``"neighbours"``, ``"mbr"``, ``"auto"``: as ``Captioner.caption``
            (``"auto"``: the default decoding of ``retr caption``); ``None``: the most likely one.
        beam: ``None`` only with a ``Captioner.caption`` re-ranking (its default width).
        diversity_samples: ``False`` skips the sampled captions (diversity, oracle).

    Returns:
        ``{"beam": {...}, "diversity": {...}, "oracle_CIDEr": float, "photos": n, "examples": [...],
        "ce_per_token": float, "kl": float}``.
    """
    import torch

    from retrieval.training.caption_metrics import caption_scores, diversity
    from retrieval.captioning.model import load_captioner
    from retrieval.encoders.base import load_encoder
    from retrieval.training.captioner import encode_captions

    encoder = encoder or load_encoder()
    captioner = captioner or load_captioner(None, encoder.id, pooled=True)
    corpus = load_coco_captions(captions)
    if max_photos:
        corpus = corpus.subset(np.arange(min(max_photos, len(corpus.file_names))))
    img = image_features(corpus, images, encoder.backbone_name, cache_dir, flip=True)[0]
    emb = encoder.project_images(img)
    refs = {i: [] for i in range(len(emb))}
    for c, p in zip(corpus.captions, corpus.caption_photo):
        refs[p].append(c)
    refs = {k: v for k, v in refs.items() if v}
    if rerank == "alignment":
        cands = {i: [s for s, _ in captioner.beam_candidates(emb[i], beam, length_penalty)] for i in refs}
        flat = [s for i in refs for s in cands[i]]
        temb = np.asarray(encoder.encode_texts(flat), np.float32)
        hyps, k = {}, 0
        for i in refs:
            n = len(cands[i])
            hyps[i] = cands[i][int(np.argmax(temb[k : k + n] @ emb[i]))]
            k += n
    elif rerank is None:
        hyps = {i: captioner.beam_search(emb[i], beam, length_penalty) for i in refs}
    elif rerank in ("neighbours", "mbr", "auto"):
        hyps = {i: captioner.caption(emb[i], beam, rerank, length_penalty=length_penalty) for i in refs}
    else:
        raise ValueError(f"unknown re-ranking {rerank!r}")
    out = {"beam": caption_scores(refs, hyps, meteor=meteor), "photos": len(refs)}
    # negative-ELBO terms on these (photo, caption) pairs
    txt = encoder.project_texts(text_features(corpus.captions, encoder.text_name, cache_dir))
    toks = torch.from_numpy(encode_captions(corpus.captions, captioner.vocab, captioner.max_len))
    c = torch.from_numpy(emb[np.asarray(corpus.caption_photo)])
    t = torch.from_numpy(np.asarray(txt, np.float32))
    ce_tot = kl_tot = 0.0
    n_tok = 0
    torch.manual_seed(0)  # z ~ q(z | caption, c) is drawn with torch's global generator: reproducible figures
    with torch.no_grad():
        for s in range(0, len(toks), 512):
            tb = toks[s : s + 512]
            tb = tb[:, : int((tb != 0).sum(1).max())]
            ce, kl, nt = captioner.net.loss(tb, c[s : s + 512], t[s : s + 512])
            ce_tot += float(ce) * len(tb)
            kl_tot += float(kl) * len(tb)
            n_tok += nt
    out["ce_per_token"] = ce_tot / max(n_tok, 1)
    out["kl"] = kl_tot / max(len(toks), 1)
    if diversity_samples:
        samples = {i: captioner.sample(emb[i], n_samples, seed=i) for i in refs}
        out["diversity"] = diversity(samples)
        # oracle: for each photo the sample with the best CIDEr against its references
        from pycocoevalcap.cider.cider import Cider

        from retrieval.training.caption_metrics import caption_tokens

        gts = {f"{i}#{j}": [caption_tokens(r) for r in refs[i]] for i in refs for j in range(n_samples)}
        res = {f"{i}#{j}": [caption_tokens(samples[i][j])] for i in refs for j in range(n_samples)}
        _, per = Cider().compute_score(gts, res)
        per = dict(zip(gts.keys(), per))
        out["oracle_CIDEr"] = 100 * float(np.mean([max(per[f"{i}#{j}"] for j in range(n_samples)) for i in refs]))
    out["examples"] = [{"file": corpus.file_names[i], "beam": hyps[i],
                        "samples": samples[i][:3] if diversity_samples else [],
                        "reference": refs[i][0]} for i in list(refs)[:3]]
    return out
