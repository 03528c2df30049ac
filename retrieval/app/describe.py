"""``retr caption`` with an attention captioner (:class:`retrieval.captioning.attend_captioner.AttendCaptioner`):
a photo's decoder inputs from one run of the image model (aligned embedding, ImageNet posteriors,
spatial maps) and the COCO detector's objects, then its beam caption or its samples."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PhotoInputs:
    """What the attention captioner reads of one photo.

    Attributes:
        emb: (D,) float32 aligned embedding, L2-normalised.
        regions: (R, 1280) float32 spatial maps of the encoder's backbones.
        post: (1000,) float32 ImageNet posteriors, or None (concepts off).
        objects: the detector's ``(COCO class index, best score)`` pairs, best first, as an index
            stores them (:func:`retrieval.detection.scoring.summarise`), or None (concepts off, or
            no detector installed).
    """

    emb: np.ndarray
    regions: np.ndarray
    post: np.ndarray | None
    objects: list[tuple[int, float]] | None


class ObjectSource:
    """The COCO detector (YOLOv3-tiny, :class:`retrieval.detection.yolo.ObjectDetector`), opened on first use;
    None from :meth:`pairs` when it cannot run (weights not installed and no export cached).

    Args:
        threads: ONNX Runtime threads of the detector.
    """

    def __init__(self, threads: int | None = 2):
        self.threads = threads
        self._detector = None
        self._tried = False

    def pairs(self, image) -> list[tuple[int, float]] | None:
        """One PIL image -> its ``(COCO class index, best score)`` pairs, best first, or None."""
        from retrieval.detection import yolo
        from retrieval.detection.scoring import summarise

        if not self._tried:
            self._tried = True
            if yolo.available():
                self._detector = yolo.ObjectDetector(threads=self.threads)
        if self._detector is None:
            return None
        return [(c, s) for c, s, _ in summarise(self._detector.detect([image])[0])]


def photo_inputs(encoder, image, concepts: bool, objects: ObjectSource | None) -> PhotoInputs:
    """One photo's :class:`PhotoInputs`: one image-model run
    (:meth:`retrieval.encoders.base.AlignedEncoder.encode_images_concepts_and_regions`) and, with
    ``concepts``, the detector's objects."""
    embs, posts, regions = encoder.encode_images_concepts_and_regions([image])
    found = objects.pairs(image) if concepts and objects is not None else None
    return PhotoInputs(embs[0], regions[0], posts[0] if concepts else None, found)


def attend_captions(captioner, x: PhotoInputs, samples: int = 0, seed: int | None = None, beam: int = 5,
                    length_penalty: float = 0.7) -> list[str]:
    """The beam caption of a photo (``samples`` 0), or ``samples`` sampled captions (a seed makes them
    reproducible), from an attention captioner."""
    if samples:
        return captioner.sample(x.emb, n=samples, seed=seed, concepts=x.post, regions=x.regions, objects=x.objects)
    return captioner.caption_batch(x.emb[None], x.regions[None], None if x.post is None else x.post[None],
                                   None if x.objects is None else [x.objects], beam=beam,
                                   length_penalty=length_penalty)
