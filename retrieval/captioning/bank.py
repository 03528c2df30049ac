"""The caption bank: captions of known photos with those photos' aligned embeddings, for
re-ranking a beam by the captions of the photo's nearest neighbours."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from retrieval.captioning.rerank import document_frequencies
from retrieval.encoders.base import WEIGHTS_DIR
from retrieval.errors import CaptionerError

#: Captions of the photos the shipped captioner was trained on, with those photos' aligned
#: embeddings: the neighbours' captions that re-rank the beam. Data (Flickr8k train captions),
#: so not in git: ``python scripts/train/build_caption_bank.py`` writes it; used when present.
DEFAULT_BANK = WEIGHTS_DIR / "caption-bank-default.npz"
#: Captions of this many nearest bank photos re-rank a beam (chosen on Flickr8k dev, docs/captioner_decoding.md).
CAPTION_NEIGHBOURS = 15


class CaptionBank:
    """Captions of known photos and those photos' aligned embeddings (the photos themselves are not kept).

    Used to re-rank a beam's n-best list by agreement with the captions of the photo's nearest
    neighbours (consensus re-ranking, Devlin et al. 2015 "Language models for image captioning:
    the quirks and what works", there with retrieved captions as candidates).

    Args:
        path: ``.npz`` written by :meth:`save`.

    Attributes:
        emb: (P, D) float16 L2-normalised aligned image embeddings of the bank's photos.
        captions: C strings; ``photo``: (C,) int32 row of ``emb`` each caption belongs to.
        encoder_id: the encoder of ``emb``.

    Raises:
        CaptionerError: missing or invalid file.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            z = np.load(self.path, allow_pickle=False)
            self.emb = z["emb"]
            self.photo = z["photo"].astype(np.int64)
            self.captions: list[str] = str(z["captions"]).split("\n")
            self.encoder_id = str(z["encoder_id"])
        except Exception as e:  # noqa: BLE001
            raise CaptionerError(f"{self.path}: not a retr caption bank ({e.__class__.__name__})") from None
        if len(self.captions) != len(self.photo):
            raise CaptionerError(f"{self.path}: {len(self.captions)} captions but {len(self.photo)} photo ids")
        self._by_photo: list[list[str]] = [[] for _ in range(len(self.emb))]
        for s, p in zip(self.captions, self.photo):
            self._by_photo[p].append(s)
        self._df = None

    @staticmethod
    def save(path: str | Path, emb: np.ndarray, captions: list[str], caption_photo, encoder_id: str) -> None:
        """Write a bank: emb (P, D) aligned photo embeddings, C captions and their (C,) photo rows."""
        if any("\n" in c for c in captions):
            raise ValueError("captions must be single lines")
        np.savez_compressed(path, emb=np.asarray(emb, np.float16), captions=np.array("\n".join(captions)),
                            photo=np.asarray(caption_photo, np.int32), encoder_id=np.array(encoder_id))

    def neighbour_captions(self, c: np.ndarray, k: int = CAPTION_NEIGHBOURS) -> list[str]:
        """Captions of the ``k`` bank photos nearest (cosine) to the (D,) float32 embedding ``c``."""
        sim = self.emb.astype(np.float32) @ np.asarray(c, np.float32)
        k = min(k, len(sim))
        nn = np.argpartition(-sim, k - 1)[:k]
        return [s for j in nn[np.argsort(-sim[nn], kind="stable")] for s in self._by_photo[j]]

    def document_frequencies(self) -> tuple[dict, int]:
        """n-gram document frequencies over the bank's photos (computed once)."""
        if self._df is None:
            self._df = document_frequencies(self._by_photo)
        return self._df
