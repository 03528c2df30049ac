"""Exporting torch modules to ONNX: the one call to ``torch.onnx.export`` (:func:`export_onnx`) and
the export of an encoder's text and image paths (:func:`export_encoder`) into its cache folder
(see :mod:`retrieval.encoders.onnx_runtime`, which runs them)."""
from __future__ import annotations

import os
from pathlib import Path

from retrieval.encoders.onnx_runtime import CONCEPT_NAMES_FILE, IMAGE_FILE, MODEL_FILE, TOKENIZER_FILE, export_dir


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


def export_encoder(encoder) -> Path:
    """Export ``encoder``'s text and image paths to ONNX (see the module docstring).

    Args:
        encoder: a :class:`retrieval.encoders.base.AlignedEncoder`.

    Returns:
        the export folder (``text_query.onnx`` with outputs ``embedding`` and ``sentence``, the
        sentence encoder's own embedding; ``tokenizer.json``; ``image.onnx`` with outputs
        ``embedding`` and ``imagenet``, the backbones' mean ImageNet posteriors; and
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

            bb, ihead = encoder.backbone, encoder.net.image
            parts = getattr(bb, "parts", [bb])
            pooled = torch.nn.ModuleList([p.pooled_module() for p in parts])
            from retrieval.concepts.heads import posterior_module

            posteriors = posterior_module(parts)

            class ImagePath(torch.nn.Module):
                """One pixel input per backbone (each at its native size) -> image head, and the
                backbones' mean ImageNet posteriors."""

                def __init__(self):
                    super().__init__()
                    self.pooled, self.head, self.posteriors = pooled, ihead, posteriors

                def forward(self, *pixels):
                    feats = [m(x) for m, x in zip(self.pooled, pixels)]
                    return self.head(torch.cat(feats, dim=1)), self.posteriors(feats)

            sizes = [p.spec.image_size for p in parts]
            names = ["pixels"] + [f"pixels_{i}" for i in range(1, len(parts))]
            export_onnx(ImagePath().eval(), tuple(torch.zeros(2, 3, n, n) for n in sizes), tmp / IMAGE_FILE,
                        names, ["embedding", "imagenet"])
            (tmp / "image_size.txt").write_text(" ".join(map(str, sizes)))
            from retrieval.concepts.scoring import embed_concept_names

            embed_concept_names(se, tmp / CONCEPT_NAMES_FILE)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
