"""Hinge loss on the hardest negative in the batch (VSE++, Faghri et al. 2018)."""
from __future__ import annotations


def hardest_negative_hinge(img, txt, margin: float = 0.2):
    """Max-of-hinges triplet loss: for each positive pair, only the most similar
    wrong caption (for a photo) and the most similar wrong photo (for a caption)
    contribute.

    Row i of ``img`` and row i of ``txt`` are a positive pair; the batch must hold
    one caption per photo (every other row is a true negative).

    Args:
        img: (B, D) float tensor, L2-normalised image embeddings.
        txt: (B, D) float tensor, L2-normalised text embeddings.
        margin: hinge margin on cosine similarity.

    Returns:
        scalar tensor: mean over the batch of the two hardest-negative hinges.
    """
    import torch

    s = img @ txt.t()
    pos = s.diagonal()
    mask = torch.eye(s.shape[0], dtype=torch.bool, device=s.device)
    s = s.masked_fill(mask, float("-inf"))
    cost_txt = (margin + s.max(dim=1).values - pos).clamp(min=0)  # photo -> hardest wrong caption
    cost_img = (margin + s.max(dim=0).values - pos).clamp(min=0)  # caption -> hardest wrong photo
    return (cost_txt + cost_img).mean()
