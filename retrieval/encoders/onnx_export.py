"""Exporting torch modules to ONNX: the one call to ``torch.onnx.export`` (:func:`export_onnx`) and
the export of an encoder's text and image paths (:func:`export_encoder`) into its cache folder
(see :mod:`retrieval.encoders.onnx_runtime`, which runs them)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from retrieval.encoders.onnx_runtime import (CONCEPT_NAMES_FILE, IMAGE_FILE, IMAGE_FORMAT_FILE, IMAGE_OUTPUTS,
                                             MODEL_FILE, TOKENIZER_FILE, export_dir, image_format)


def export_onnx(module, args: tuple, path: str | Path, input_names: list[str], output_name: str | list[str],
                token_axis: bool = False) -> None:
    """Write ``module`` (a torch ``nn.Module`` in eval mode) traced on ``args`` to ``path`` as ONNX
    (opset 17, TorchScript exporter), every input and output (one name, or a list for a module
    returning a tuple) with a dynamic batch axis 0
    (``token_axis``: inputs also with a dynamic axis 1, the tokens). The exporter's tracer
    warnings are silenced (not the user's concern)."""
    import warnings

    import torch

    axes = {n: ({0: "batch", 1: "tokens"} if token_axis else {0: "batch"}) for n in input_names}
    outputs = [output_name] if isinstance(output_name, str) else list(output_name)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=list(input_names), output_names=outputs,
                          dynamic_axes={**axes, **{o: {0: "batch"} for o in outputs}}, opset_version=17, dynamo=False)


def image_path(parts, head):
    """The image model as one torch module: one ``(N, 3, S_k, S_k)`` pixel input per backbone (each at
    its native size) -> ``(embedding (N, D), imagenet (N, 1000), regions (N, R, 1280))``: the image head
    on the concatenated pooled features, the backbones' mean ImageNet posteriors, and their spatial
    maps concatenated along the region axis. The pooled features are the maps' means over regions,
    so one backbone pass gives all three.

    Args:
        parts: the :class:`retrieval.encoders.backbones.Backbone` of each backbone, in order.
        head: the alignment network's image head (``AlignmentNetwork.image``).
    """
    import torch

    from retrieval.concepts.heads import posterior_module

    class ImagePath(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.spatial = torch.nn.ModuleList([p.spatial_module() for p in parts])
            self.head, self.posteriors = head, posterior_module(parts)

        def forward(self, *pixels):
            maps = [m(x) for m, x in zip(self.spatial, pixels)]
            feats = [r.mean(1) for r in maps]
            return self.head(torch.cat(feats, dim=1)), self.posteriors(feats), torch.cat(maps, dim=1)

    return ImagePath().eval()


def export_encoder(encoder) -> Path:
    """Export ``encoder``'s text and image paths to ONNX (see the module docstring).

    Args:
        encoder: a :class:`retrieval.encoders.base.AlignedEncoder`.

    Returns:
        the export folder (``text_query.onnx`` with outputs ``embedding`` and ``sentence``, the
        sentence encoder's own embedding; ``tokenizer.json``; ``image.onnx`` with outputs
        ``embedding``, ``imagenet`` (the backbones' mean ImageNet posteriors) and ``regions`` (the
        backbones' spatial maps, (N, R, 1280), concatenated along the region axis); its
        ``image_format.json`` (:func:`retrieval.encoders.onnx_runtime.image_format`); and
        ``concept_names.npz``, :func:`retrieval.concepts.scoring.embed_concept_names`),
        written to a temporary folder and renamed into place.
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
            return self.head(e), e

    final = export_dir(encoder.id)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
    import warnings

    try:
        with warnings.catch_warnings():  # the exporter's tracer warnings are not the user's concern
            warnings.simplefilter("ignore")
            model = TextPath().eval()
            enc = se.tokenizer(["a dog runs on the beach", "two people"], padding=True, return_tensors="pt")
            export_onnx(model, (enc["input_ids"], enc["attention_mask"]), tmp / MODEL_FILE,
                        ["input_ids", "attention_mask"], ["embedding", "sentence"], token_axis=True)
            se.tokenizer.backend_tokenizer.save(str(tmp / TOKENIZER_FILE))

            parts = getattr(encoder.backbone, "parts", [encoder.backbone])
            pixels = tuple(torch.zeros(2, 3, p.spec.image_size, p.spec.image_size) for p in parts)
            export_onnx(image_path(parts, encoder.net.image), pixels, tmp / IMAGE_FILE,
                        ["pixels"] + [f"pixels_{i}" for i in range(1, len(parts))], list(IMAGE_OUTPUTS))
            (tmp / "image_size.txt").write_text(" ".join(str(p.spec.image_size) for p in parts))
            (tmp / IMAGE_FORMAT_FILE).write_text(json.dumps(image_format([p.regions for p in parts])))
            from retrieval.concepts.scoring import embed_concept_names

            embed_concept_names(se, tmp / CONCEPT_NAMES_FILE)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
