"""An attention captioner trained on one backbone, decoding for an encoder whose first backbone is that
one (the ``best`` preset's EfficientNet-Lite0, whose 7x7 map leads its spatial maps).

The ``best`` preset's spatial maps are its backbones' maps side by side (``region_counts`` ``[49, 81,
49]``): the first 49 regions are EfficientNet-Lite0's, the same map the ``fast`` preset gives. The
``fast`` attention captioner reads them, with its own aligned embedding computed from their mean
(the backbone's pooled feature) through the ``fast`` alignment head, so one trained captioner serves
both presets. The ImageNet posteriors (the mean over the ``best`` backbones' heads) and the detector's
objects are the same kind of input in both presets and go through unchanged.
"""
from __future__ import annotations

import numpy as np

from retrieval.captioning.attend_captioner import AttendCaptioner


class FirstBackboneCaptioner:
    """An :class:`~retrieval.captioning.attend_captioner.AttendCaptioner` seen through an encoder whose
    spatial maps begin with the captioner's backbone's regions.

    Args:
        captioner: the attention captioner (trained on ``inner_encoder``'s embeddings and regions).
        inner_encoder: the encoder it was trained on (an
            :class:`~retrieval.encoders.base.AlignedEncoder`; only its alignment head runs here).
        encoder_id: the outer encoder's id (the one whose maps and embeddings are passed in).
        regions: how many leading regions of the outer maps are the inner backbone's (49).

    Attributes:
        encoder_id: ``encoder_id`` (so the index and ``retr caption`` accept it for that encoder).
        needs_regions: True (it reads the photo's spatial maps).
    """

    needs_regions = True

    def __init__(self, captioner, inner_encoder, encoder_id: str, regions: int):
        self.inner = captioner
        self.inner_encoder = inner_encoder
        self.encoder_id = encoder_id
        self.regions = int(regions)

    def __getattr__(self, name):  # path, vocab, card, words, concept_weight ... of the inner captioner
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def inputs(self, embs: np.ndarray, regions: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, D) outer embeddings and (N, R, 1280) outer maps or None -> the inner captioner's (N, d) float32
        embeddings (from the mean of the first ``regions`` regions; zeros without maps: the captioner then
        decodes from the concepts and objects alone) and (N, regions, 1280) float32 maps or None.

        Raises:
            ValueError: maps with fewer regions than ``regions``."""
        n = len(np.asarray(embs).reshape(len(embs), -1))
        if regions is None:
            return np.zeros((n, self.inner.net.config["cond_dim"]), np.float32), None
        regions = np.asarray(regions, np.float32)
        if regions.ndim != 3 or regions.shape[1] < self.regions:
            raise ValueError(f"regions of shape {regions.shape}: the captioner reads the first {self.regions}")
        own = np.ascontiguousarray(regions[:, : self.regions])
        return self.inner_encoder.project_images(own.mean(1)), own

    def caption_batch(self, embs, regions=None, posteriors=None, objects=None, beam: int = 5,
                      length_penalty: float = 0.7) -> list[str]:
        """:meth:`AttendCaptioner.caption_batch` on the inner inputs (same arguments, outer shapes)."""
        c, own = self.inputs(embs, regions)
        return self.inner.caption_batch(c, own, posteriors, objects, beam, length_penalty)

    # one photo, and the index's batches: the attention captioner's own, through caption_batch above
    caption = AttendCaptioner.caption
    caption_embeddings = AttendCaptioner.caption_embeddings

    def sample(self, c, n: int = 5, top_p: float = 0.9, temperature: float = 1.0, seed: int | None = None,
               concepts=None, regions=None, objects=None) -> list[str]:
        """:meth:`AttendCaptioner.sample` on the inner inputs of one photo."""
        inner_c, own = self.inputs(np.asarray(c, np.float32)[None],
                                   None if regions is None else np.asarray(regions, np.float32)[None])
        return self.inner.sample(inner_c[0], n, top_p, temperature, seed, concepts=concepts,
                                 regions=None if own is None else own[0], objects=objects)


def first_backbone_view(captioner, encoder):
    """``captioner`` (attention, trained on the default encoder) seen through ``encoder``, or None when
    ``encoder``'s first backbone is not the one it was trained on.

    Args:
        captioner: an attention captioner (``needs_regions``).
        encoder: an :class:`~retrieval.encoders.base.AlignedEncoder` with several backbones (``+``-joined
            ``backbone_name``).
    """
    from retrieval.encoders.base import AlignedEncoder

    name = getattr(encoder, "backbone_name", "")
    if "+" not in name or not getattr(captioner, "needs_regions", False):
        return None
    inner = AlignedEncoder(None)  # its alignment head loads on first use, not to compare ids
    if inner.id != captioner.encoder_id or name.split("+")[0] != inner.backbone_name:
        return None
    from retrieval.encoders.backbones import native_regions

    return FirstBackboneCaptioner(captioner, inner, encoder.id, native_regions(inner.backbone_name)[0])
