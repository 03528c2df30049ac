"""A darknet network (cfg + weights) as a torch module (export time only; torch).

Reads the two files of Redmon's darknet framework as published with YOLOv3 (Redmon & Farhadi
2018, "YOLOv3: An Incremental Improvement"): the ``.cfg`` (INI-like sections ``[net]``,
``[convolutional]``, ``[maxpool]``, ``[route]``, ``[upsample]``, ``[yolo]``) and the ``.weights``
(a header, then float32 parameters layer by layer: for a batch-normalised convolution its
BN beta, gamma, running mean, running variance, then the kernel; otherwise bias, then kernel).
Only the layer types of YOLOv3(-tiny) are supported. The module's output is already decoded
(:class:`YoloDecode`), so the ONNX export needs only NMS after it (:mod:`retrieval.detection.yolo`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def parse_cfg(path: str | Path) -> list[dict]:
    """``.cfg`` text -> list of ``{"type": section, key: value (str)}``, in file order, ``[net]`` first.

    Raises:
        ValueError: a key outside a section.
    """
    blocks: list[dict] = []
    for raw in Path(path).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            blocks.append({"type": line.strip("[]").strip()})
        elif "=" in line:
            if not blocks:
                raise ValueError(f"{path}: '{line}' outside a section")
            k, v = line.split("=", 1)
            blocks[-1][k.strip()] = v.strip()
    return blocks


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def build_darknet(cfg_path: str | Path, weights_path: str | Path, input_size: int):
    """The network of ``cfg_path`` with the parameters of ``weights_path``, in eval mode.

    Args:
        input_size: the square network input in pixels (a multiple of 32; the darknet cfg's
            416 or smaller: the network is fully convolutional, anchors stay in pixels).

    Returns:
        a torch module ``(N, 3, S, S) float32 RGB in [0, 1], letterboxed`` ->
        ``(N, A, 85) float32``: per candidate box ``cx, cy, w, h`` (fractions of the network
        input), objectness, and the 80 class probabilities (sigmoid, not yet times objectness).

    Raises:
        ValueError: an unsupported layer, or a weights file of the wrong length.
    """
    blocks = parse_cfg(cfg_path)
    net = _make_darknet(blocks[1:], int(blocks[0].get("channels", 3)), input_size)
    load_weights(net, weights_path)
    return net.eval()


def load_weights(net, path: str | Path) -> None:
    """Fill ``net``'s convolutions, in cfg order, from a darknet ``.weights`` file.

    Raises:
        ValueError: the file holds fewer or more floats than the network's parameters.
    """
    import torch

    with open(path, "rb") as f:
        major, minor, _ = np.fromfile(f, np.int32, 3)
        np.fromfile(f, np.int64 if major * 10 + minor >= 2 else np.int32, 1)  # images seen in training
        data = np.fromfile(f, np.float32)
    pos = 0

    def take(t):
        nonlocal pos
        n = t.numel()
        if pos + n > len(data):
            raise ValueError(f"{path}: weights file too short for its cfg")
        t.data.copy_(torch.from_numpy(data[pos : pos + n].copy()).view_as(t))
        pos += n

    for layer in net.layers:
        conv = getattr(layer, "conv", None)
        if conv is None:
            continue
        if layer.bn is not None:
            for t in (layer.bn.bias, layer.bn.weight, layer.bn.running_mean, layer.bn.running_var):
                take(t)
        else:
            take(conv.bias)
        take(conv.weight)
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} floats left over after the last layer")


def _conv_layer(b: dict, c_in: int):
    import torch

    k, filters, stride = int(b["size"]), int(b["filters"]), int(b.get("stride", 1))
    bn = int(b.get("batch_normalize", 0))
    layer = torch.nn.Module()
    layer.conv = torch.nn.Conv2d(c_in, filters, k, stride, (k - 1) // 2 if int(b.get("pad", 0)) else 0,
                                 bias=not bn)
    layer.bn = torch.nn.BatchNorm2d(filters, eps=1e-5) if bn else None
    layer.leaky = b.get("activation", "linear") == "leaky"
    if b.get("activation", "linear") not in ("leaky", "linear"):
        raise ValueError(f"unsupported activation {b['activation']!r}")
    return layer, filters


def _make_darknet(blocks, channels, input_size):
    import torch
    import torch.nn.functional as F

    class _Darknet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks, self.layers = blocks, torch.nn.ModuleList()
            out_c: list[int] = []
            c = channels
            for b in blocks:
                layer = torch.nn.Module()
                t = b["type"]
                if t == "convolutional":
                    layer, c = _conv_layer(b, c)
                elif t == "route":
                    idx = [i if i >= 0 else len(out_c) + i for i in _ints(b["layers"])]
                    layer.sources = idx
                    c = sum(out_c[i] for i in idx)
                elif t == "yolo":
                    mask, a = _ints(b["mask"]), _ints(b["anchors"])
                    pairs = [(a[2 * m], a[2 * m + 1]) for m in mask]
                    layer = YoloDecode(pairs, int(b["classes"]), input_size)
                elif t not in ("maxpool", "upsample"):
                    raise ValueError(f"unsupported darknet layer [{t}]")
                self.layers.append(layer)
                out_c.append(c)

        def forward(self, x):
            outs, dets = [], []
            for b, layer in zip(self.blocks, self.layers):
                t = b["type"]
                if t == "convolutional":
                    x = layer.conv(x)
                    if layer.bn is not None:
                        x = layer.bn(x)
                    if layer.leaky:
                        x = F.leaky_relu(x, 0.1)
                elif t == "maxpool":
                    s, st = int(b["size"]), int(b["stride"])
                    if st == 1:  # darknet keeps the size: pad right/bottom (max over a repeated edge)
                        x = F.pad(x, (0, s - 1, 0, s - 1), mode="replicate")
                    x = F.max_pool2d(x, s, st)
                elif t == "upsample":
                    x = F.interpolate(x, scale_factor=int(b["stride"]), mode="nearest")
                elif t == "route":
                    x = torch.cat([outs[i] for i in layer.sources], 1)
                elif t == "yolo":
                    dets.append(layer(x))
                outs.append(x)
            return torch.cat(dets, 1)

    return _Darknet()


def _yolo_decode_class():
    import torch

    class _YoloDecode(torch.nn.Module):
        """One ``[yolo]`` head: raw (N, A*(5+C), H, W) -> (N, H*W*A, 5+C) decoded boxes (YOLOv3 eq. 1:
        ``b_x = (sigmoid(t_x) + c_x) / W``, ``b_w = p_w exp(t_w) / S``; objectness and classes sigmoid)."""

        def __init__(self, anchors, classes, input_size):
            super().__init__()
            self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32) / input_size)
            self.classes = classes

        def forward(self, x):
            n, _, h, w = x.shape
            a = self.anchors.shape[0]
            x = x.view(n, a, 5 + self.classes, h, w).permute(0, 3, 4, 1, 2)  # N, H, W, A, 5+C
            gy, gx = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
            cx = (torch.sigmoid(x[..., 0]) + gx[..., None]) / w
            cy = (torch.sigmoid(x[..., 1]) + gy[..., None]) / h
            bw = torch.exp(x[..., 2]) * self.anchors[:, 0]
            bh = torch.exp(x[..., 3]) * self.anchors[:, 1]
            rest = torch.sigmoid(x[..., 4:])
            out = torch.cat([torch.stack([cx, cy, bw, bh], -1), rest], -1)
            return out.reshape(n, h * w * a, 5 + self.classes)

    return _YoloDecode


def YoloDecode(anchors, classes, input_size):
    """A ``[yolo]`` layer's decoding module (anchors in input pixels; see ``_YoloDecode``)."""
    return _yolo_decode_class()(anchors, classes, input_size)
