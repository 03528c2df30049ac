"""The alignment network: two projection heads into one shared embedding space.

An image head maps frozen CNN features, a text head maps frozen sentence
embeddings; both outputs are L2-normalised so that the inner product is the
cosine similarity. Trained with symmetric InfoNCE (see
``retrieval.training.align``).
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class ProjectionHead(nn.Module):
    """Standardise -> dropout -> (linear + residual MLP) -> L2-normalise.

    Args:
        d_in: input feature dim.
        d_out: shared embedding dim.
        hidden: MLP hidden width (0: linear head only).
        dropout: input-feature dropout probability (training only).

    Input ``(N, d_in)`` float32; output ``(N, d_out)`` float32, L2-normalised.
    The per-dimension mean/std buffers are set from training features with a
    floor on the std (some sentence-embedding dimensions are constant).
    """

    def __init__(self, d_in: int, d_out: int, hidden: int = 1024, dropout: float = 0.5):
        super().__init__()
        self.register_buffer("mean", torch.zeros(d_in))
        self.register_buffer("std", torch.ones(d_in))
        self.drop = nn.Dropout(dropout)
        self.linear = nn.Linear(d_in, d_out)
        self.mlp = (
            nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(0.1), nn.Linear(hidden, d_out))
            if hidden
            else None
        )

    def set_stats(self, feats: torch.Tensor, floor: float = 1e-2) -> None:
        """Set standardisation from (N, d_in) training features; std floored at ``floor`` * median std."""
        m = feats.mean(0)
        s = feats.std(0)
        s = s.clamp(min=float(s.median()) * floor + 1e-6)
        self.mean.copy_(m)
        self.std.copy_(s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop((x - self.mean) / self.std)
        y = self.linear(x)
        if self.mlp is not None:
            y = y + self.mlp(x)
        return F.normalize(y, dim=-1)


class AlignmentNetwork(nn.Module):
    """Image and text projection heads plus a learned temperature.

    Args:
        d_image: image feature dim (1280 for EfficientNet-Lite).
        d_text: sentence embedding dim (384 for MiniLM).
        dim: shared embedding dim.
        hidden: MLP hidden width of each head.
        dropout: input-feature dropout of the image head.
        text_dropout: input-feature dropout of the text head (``None``: same as
            ``dropout``). Sentence embeddings have 384 dims against the image's
            1280-3840, and tolerate less: on Flickr8k 0.1 beat 0.3, which beat
            sharing the image head's 0.5 or 0.7 (docs/ablation_alignment.md).
    """

    def __init__(self, d_image: int, d_text: int, dim: int = 512, hidden: int = 1024, dropout: float = 0.5,
                 text_dropout: float | None = None):
        super().__init__()
        self.config = dict(d_image=d_image, d_text=d_text, dim=dim, hidden=hidden, dropout=dropout,
                           text_dropout=text_dropout)
        self.image = ProjectionHead(d_image, dim, hidden, dropout)
        self.text = ProjectionHead(d_text, dim, hidden, dropout if text_dropout is None else text_dropout)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1/0.07), CLIP's init

    @property
    def dim(self) -> int:
        return self.config["dim"]
