"""Retrieval metrics: Recall@K both ways, and the modality gap."""
from __future__ import annotations

import numpy as np


def recall_at_k(img: np.ndarray, txt: np.ndarray, caption_photo, ks=(1, 5, 10)) -> dict:
    """Recall@K for image->text and text->image retrieval (the standard 1K protocol).

    Image->text: a photo counts as found at K if any of its captions is among the
    K texts closest to it. Text->image: a caption counts if its photo is among
    the K photos closest to it.

    Args:
        img: (N, D) float32, L2-normalised photo embeddings (the gallery).
        txt: (M, D) float32, L2-normalised caption embeddings (the queries).
        caption_photo: length-M ints, the photo row of each caption.
        ks: cut-offs.

    Returns:
        ``{"i2t": {1: r1, 5: r5, 10: r10}, "t2i": {...}}`` in percent (0-100).
    """
    cp = np.asarray(caption_photo)
    sim = img @ txt.T  # (N, M)
    # text -> image: rank of the true photo for each caption
    true_t2i = sim[cp, np.arange(len(cp))]
    rank_t2i = (sim > true_t2i[None, :]).sum(0)
    # image -> text: best rank among the photo's captions
    order = np.argsort(-sim, axis=1)
    ranks = np.empty_like(order)
    rows = np.arange(sim.shape[0])[:, None]
    ranks[rows, order] = np.arange(sim.shape[1])[None, :]
    best = np.full(sim.shape[0], np.iinfo(np.int64).max)
    np.minimum.at(best, cp, ranks[cp, np.arange(len(cp))])
    has = np.zeros(sim.shape[0], bool)
    has[cp] = True
    best = best[has]
    return {
        "i2t": {k: float(100.0 * (best < k).mean()) for k in ks},
        "t2i": {k: float(100.0 * (rank_t2i < k).mean()) for k in ks},
    }


def modality_gap(img: np.ndarray, txt: np.ndarray) -> float:
    """Euclidean distance between the image and text embedding centroids
    (Liang et al. 2022, "Mind the Gap").

    Args:
        img: (N, D) float32, L2-normalised. txt: (M, D) float32, L2-normalised.
    """
    return float(np.linalg.norm(img.mean(0) - txt.mean(0)))
