"""Symmetric InfoNCE (CLIP, Radford et al. 2021; van den Oord et al. 2018)."""
from __future__ import annotations


def symmetric_infonce(img, txt, logit_scale):
    """Symmetric cross-entropy over the in-batch cosine-similarity matrix.

    Row i of ``img`` and row i of ``txt`` are a positive pair; every other row
    in the batch is a negative.

    Args:
        img: (B, D) float tensor, L2-normalised image embeddings.
        txt: (B, D) float tensor, L2-normalised text embeddings.
        logit_scale: scalar tensor, log of the inverse temperature (learned).

    Returns:
        scalar tensor: mean of image->text and text->image cross-entropies.
    """
    import torch
    import torch.nn.functional as F

    logits = img @ txt.t() * logit_scale.exp().clamp(max=100.0)
    target = torch.arange(img.shape[0], device=img.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def multi_positive_infonce(img, txt, logit_scale):
    """Symmetric InfoNCE with ``k`` captions of each photo in the batch.

    Text -> image: each caption's positive is its photo among the B photos.
    Image -> text: each of a photo's k captions is scored against all B*k
    captions with the photo's other k-1 captions masked out, so every caption
    of the batch is used once as a positive and once as a negative for the
    other photos (the multi-caption batches of VSE-style training; Faghri et
    al. 2018 sample one caption, this keeps all k).

    Args:
        img: (B, D) float tensor, L2-normalised image embeddings.
        txt: (B*k, D) float tensor, L2-normalised; rows ``i*k .. i*k+k-1`` are
            captions of photo i.
        logit_scale: scalar tensor, log of the inverse temperature (learned).

    Returns:
        scalar tensor: mean of the image->text and text->image cross-entropies;
        equal to :func:`symmetric_infonce` when k = 1.

    Raises:
        ValueError: ``len(txt)`` is not a multiple of ``len(img)``.
    """
    import torch
    import torch.nn.functional as F

    b = img.shape[0]
    if b == 0 or txt.shape[0] == 0 or txt.shape[0] % b:
        raise ValueError(f"need k captions per photo: {txt.shape[0]} captions for {b} photos")
    k = txt.shape[0] // b
    logits = txt @ img.t() * logit_scale.exp().clamp(max=100.0)  # (B*k, B)
    owner = torch.arange(b, device=img.device).repeat_interleave(k)
    t2i = F.cross_entropy(logits, owner)
    li = logits.t()  # (B, B*k)
    pos = owner[None, :] == torch.arange(b, device=img.device)[:, None]
    lse_neg = torch.logsumexp(li.masked_fill(pos, float("-inf")), 1, keepdim=True)  # (B, 1)
    pl = li[pos].view(b, k)
    i2t = (torch.logaddexp(pl, lse_neg) - pl).mean()
    return 0.5 * (t2i + i2t)
