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
