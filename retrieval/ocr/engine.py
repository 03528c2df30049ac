"""The OCR engine: RapidOCR (PP-OCRv4 detection and recognition models exported to ONNX, run with
ONNX Runtime; the models ship inside the ``rapidocr-onnxruntime`` wheel, Apache-2.0, so nothing is
downloaded). PP-OCR: Du et al., *PP-OCR: A Practical Ultra Lightweight OCR System*, 2020; v4 2023.
"""
from __future__ import annotations

import threading

from PIL import Image

from retrieval.errors import RetrError

#: the engine's name as stored with each recognised text
ENGINE_NAME = "rapidocr"
#: recognised lines below this confidence are dropped
MIN_CONFIDENCE = 0.5


class OcrUnavailable(RetrError):
    """The OCR engine is not installed or cannot start."""


class OcrEngine:
    """Recognises the text in a photo (lazy: the models load on first use, ~3 s).

    Thread-safe (one call at a time: ONNX Runtime sessions use several threads themselves).

    Raises:
        OcrUnavailable: ``rapidocr-onnxruntime`` is not installed (on first use).
    """

    name = ENGINE_NAME

    def __init__(self, min_confidence: float = MIN_CONFIDENCE):
        self.min_confidence = min_confidence
        self._engine = None
        self._lock = threading.Lock()

    def _load(self):
        if self._engine is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as e:
                raise OcrUnavailable(f"text in photos needs rapidocr-onnxruntime ({e}); pip install "
                                     f"rapidocr-onnxruntime, or index with --no-ocr") from None
            self._engine = RapidOCR()
        return self._engine

    def close(self) -> None:
        """Drop the loaded models and the memory they hold; the next :meth:`recognise` loads them again."""
        with self._lock:
            self._engine = None

    def recognise(self, image: Image.Image) -> str:
        """The text read in ``image`` (RGB PIL image), its lines in reading order joined by newlines;
        ``""`` when none is found."""
        with self._lock:
            engine = self._load()
            result, _ = engine(image.convert("RGB"))
        lines = [(box, text) for box, text, conf in (result or []) if float(conf) >= self.min_confidence and
                 text.strip()]
        lines.sort(key=lambda bt: (round(min(p[1] for p in bt[0]) / 20), min(p[0] for p in bt[0])))
        return "\n".join(t.strip() for _, t in lines)


__all__ = ["ENGINE_NAME", "MIN_CONFIDENCE", "OcrEngine", "OcrUnavailable"]
