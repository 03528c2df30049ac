"""Adversarial modality training (ACMR, Wang et al. 2017).

A small discriminator learns to tell image embeddings from text embeddings, and the
projection heads learn to make the two modalities indistinguishable, which narrows
the modality gap (Liang et al. 2022) that a captioner decoding from image embeddings
(but pre-trained on text embeddings) has to bridge. Two ways to train the heads:

* ``"reversal"``: a gradient-reversal layer (Ganin & Lempitsky 2015) flips the sign
  of the discriminator's gradient on the way into the heads (ACMR's minimax). The
  maximisation is unbounded: the modalities can swap sides and chase each other
  (``tests/test_losses.py`` shows it on two point clouds).
* ``"confusion"``: the heads are trained towards the discriminator's uniform output
  (0.5 for every embedding), the domain-confusion loss of Tzeng et al. (2015), while
  the discriminator is trained on detached embeddings; bounded, and it mixes the
  point clouds in the same test.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Identity forward; gradient multiplied by ``-lam`` backward (Ganin & Lempitsky 2015)."""
    return _GradReverse.apply(x, lam)


class ModalityDiscriminator(nn.Module):
    """MLP that predicts whether an embedding came from a photo (1) or a text (0).

    Used only in training; it is not part of a shipped encoder.

    Args:
        dim: embedding dim.
        hidden: hidden width.
    """

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, img: torch.Tensor, txt: torch.Tensor, lam: float = 1.0, mode: str = "reversal"):
        """Adversarial loss of one batch (one backward pass trains both sides).

        Args:
            img: (B, D) float tensor, image embeddings.
            txt: (B, D) float tensor, text embeddings.
            lam: weight of the heads' side (reversal strength, or confusion weight).
            mode: ``"reversal"`` or ``"confusion"`` (see the module docstring).

        Returns:
            (loss, accuracy): scalar tensor to minimise; float, the discriminator's
            accuracy on this batch (0.5 = modalities mixed).

        Raises:
            ValueError: unknown mode.
        """
        x = torch.cat([img, txt])
        y = torch.cat([torch.ones(len(img)), torch.zeros(len(txt))]).to(x.device)
        if mode == "reversal":
            logit = self.net(grad_reverse(x, lam)).squeeze(-1)
            loss = F.binary_cross_entropy_with_logits(logit, y)
        elif mode == "confusion":
            logit = self.net(x.detach()).squeeze(-1)
            loss = F.binary_cross_entropy_with_logits(logit, y)
            for p in self.parameters():  # the confusion term trains the heads only
                p.requires_grad_(False)
            try:
                fooled = self.net(x).squeeze(-1)
            finally:
                for p in self.parameters():
                    p.requires_grad_(True)
            loss = loss + lam * F.binary_cross_entropy_with_logits(fooled, torch.full_like(y, 0.5))
        else:
            raise ValueError(f"unknown adversarial mode {mode!r}; choose reversal or confusion")
        acc = float(((logit > 0).float() == y).float().mean())
        return loss, acc
