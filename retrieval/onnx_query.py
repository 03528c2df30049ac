"""A torch-free path for text queries: sentence encoder + text head exported to ONNX.

``import torch`` alone costs about 2 s, so ``retr search "words"`` runs the text
side of the encoder with ONNX Runtime and the ``tokenizers`` library instead.
The ONNX file is exported once per encoder, from the weights already on disk
(the sentence-encoder package and the alignment checkpoint), by ``retr index``;
nothing is downloaded.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

MODEL_FILE = "text_query.onnx"
TOKENIZER_FILE = "tokenizer.json"


def cache_root() -> Path:
    """``$RETR_CACHE`` if set, else the platform's user cache folder for retr."""
    env = os.environ.get("RETR_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("retr"))


def export_dir(encoder_id: str) -> Path:
    """Folder holding the ONNX text path of ``encoder_id``."""
    return cache_root() / "onnx" / re.sub(r"[^A-Za-z0-9_.@-]", "_", encoder_id)


def has_export(encoder_id: str) -> bool:
    d = export_dir(encoder_id)
    return (d / MODEL_FILE).is_file() and (d / TOKENIZER_FILE).is_file()


def export_text_path(encoder) -> Path:
    """Export ``encoder``'s text side (tokens -> aligned (N, D) embedding) to ONNX.

    Args:
        encoder: a :class:`retrieval.encoder.AlignedEncoder`.

    Returns:
        the export folder (``text_query.onnx`` + ``tokenizer.json``), written atomically.
    """
    import shutil
    import tempfile

    import torch

    se = encoder.sentence_encoder
    head = encoder.net.text

    class TextPath(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert, self.head = se.model, head

        def forward(self, input_ids, attention_mask):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            e = torch.nn.functional.normalize(e, dim=-1)
            return self.head(e)

    final = export_dir(encoder.id)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
    try:
        model = TextPath().eval()
        enc = se.tokenizer(["a dog runs on the beach", "two people"], padding=True, return_tensors="pt")
        with torch.no_grad():
            torch.onnx.export(model, (enc["input_ids"], enc["attention_mask"]), str(tmp / MODEL_FILE),
                              input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"},
                                            "embedding": {0: "batch"}},
                              opset_version=17, dynamo=False)
        se.tokenizer.backend_tokenizer.save(str(tmp / TOKENIZER_FILE))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


class OnnxTextEncoder:
    """Text queries -> (N, D) float32 L2-normalised aligned embeddings, without torch.

    Args:
        folder: an export folder from :func:`export_text_path`.
        max_tokens: truncation length (the sentence encoder's limit, 256).

    Raises:
        FileNotFoundError: the export is missing.
    """

    def __init__(self, folder: str | Path, max_tokens: int = 256):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.max_tokens = max_tokens
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(folder / MODEL_FILE), opts, providers=["CPUExecutionProvider"])

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Strings -> (N, D) float32, L2-normalised; long texts truncated with a warning."""
        import logging

        encs = self.tokenizer.encode_batch(list(texts))
        for t, e in zip(texts, encs):
            if e.overflowing:
                logging.getLogger(__name__).warning("query truncated to %d tokens: %r...", self.max_tokens,
                                                    t[:40].replace("\n", " "))
        ids = np.array([e.ids for e in encs], np.int64)
        mask = np.array([e.attention_mask for e in encs], np.int64)
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0].astype(np.float32)
