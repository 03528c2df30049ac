"""Load a trained attention captioner and describe photos from their regions, aligned embedding
and concepts (:mod:`retrieval.captioning.attend`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from retrieval.captioning.attend import AttendCVAE
from retrieval.captioning.attend_decoding import attend_beam, attend_sample
from retrieval.captioning.concept_input import photo_concepts
from retrieval.captioning.decoding import length_normalise
from retrieval.captioning.vocab import detokenize
from retrieval.errors import CaptionerError

#: checkpoint kind written in ``config["kind"]``; the pooled captioner's checkpoints have none
KIND = "attend"
#: beam width of a caption
CAPTION_BEAM = 5


def save_attend_captioner(net: AttendCVAE, vocab: list[str], path: str | Path, encoder_id: str, max_len: int,
                          card: dict | None = None, copy_shift: float = 0.0) -> Path:
    """Write a shipped attention-captioner checkpoint: float16 weights, vocabulary, config
    (``copy_shift``: the copy gate's decode-time logit shift, :attr:`AttendCVAE.copy_shift`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ck = {"config": {"kind": KIND, "network": dict(net.config), "encoder_id": encoder_id, "max_len": max_len,
                     "card": card or {}, "copy_shift": float(copy_shift)},
          "vocab": [str(w) for w in vocab],
          "state_dict": {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ck, tmp)
    tmp.replace(path)
    return path


class AttendCaptioner:
    """A trained :class:`AttendCVAE` with its vocabulary.

    Args:
        weights: checkpoint path (:func:`save_attend_captioner`), or an already loaded checkpoint dict
            with ``path`` naming its file.

    Attributes:
        encoder_id: the encoder whose aligned embeddings and regions it was trained on.
        region_dim: channels of a region feature it reads.

    Raises:
        CaptionerError: missing or invalid checkpoint.
    """

    def __init__(self, weights: str | Path | dict, path: str | Path | None = None):
        ck = weights if isinstance(weights, dict) else None
        self.path = Path(path if ck is not None else weights)
        try:
            if ck is None:
                ck = torch.load(self.path, map_location="cpu", weights_only=True)
            self.net = AttendCVAE(**ck["config"]["network"])
            self.net.load_state_dict({k: v.float() for k, v in ck["state_dict"].items()})
        except FileNotFoundError:
            raise CaptionerError(f"{self.path}: captioner weights not found") from None
        except Exception as e:  # noqa: BLE001
            raise CaptionerError(f"{self.path}: not a retr attention captioner checkpoint ({e.__class__.__name__})") from None
        self.net.eval()
        #: decode-time shift of the copy gate towards the concept words (chosen on the demo photos)
        self.net.copy_shift = float(ck["config"].get("copy_shift", 0.0))
        self.vocab: list[str] = list(ck["vocab"])
        self.encoder_id: str = ck["config"]["encoder_id"]
        self.max_len: int = int(ck["config"].get("max_len", 20))
        self.card: dict = ck["config"].get("card", {})
        self.region_dim: int = self.net.config["region_dim"]
        #: this captioner reads the photo's regions (the pooled one does not)
        self.needs_regions = True
        #: accepted for the pooled captioner's switch (`retr caption --concepts`); concepts are inputs here
        self.concept_weight = 0.0

    def memory(self, embs: np.ndarray, regions: np.ndarray | None, posteriors: np.ndarray | None,
               objects: list | None, z: torch.Tensor | None = None) -> dict:
        """The network's memory of N photos (z = the prior mean unless given)."""
        c = torch.from_numpy(np.ascontiguousarray(np.asarray(embs, np.float32).reshape(-1, self.net.config["cond_dim"])))
        if regions is not None:
            regions = np.asarray(regions, np.float32)
            if regions.ndim != 3 or regions.shape[0] != len(c) or regions.shape[2] != self.region_dim:
                raise ValueError(f"regions of shape {regions.shape}: the captioner reads ({len(c)}, R, {self.region_dim})")
        ids, conf = photo_concepts(posteriors, objects, self.vocab, n=len(c))
        with torch.no_grad():
            if z is None:
                z = self.net.prior_params(c)[0]
            return self.net.memory(c, z, None if regions is None else torch.from_numpy(regions),
                                   torch.from_numpy(ids), torch.from_numpy(conf))

    def caption_batch(self, embs: np.ndarray, regions: np.ndarray | None = None, posteriors: np.ndarray | None = None,
                      objects: list | None = None, beam: int = 5, length_penalty: float = 0.7) -> list[str]:
        """The best caption of each of N photos: beam search from the prior mean of z.

        Args:
            embs: (N, D) float32 aligned image embeddings, L2-normalised.
            regions: (N, R, region_dim) float region features (the backbone's spatial map), or ``None``.
            posteriors: (N, 1000) ImageNet posteriors, or ``None``.
            objects: per photo, (COCO class index, score) detections, or ``None``.
            beam: beam width; length_penalty: power of :func:`length_normalise`.

        Returns:
            N clean sentences. Deterministic for a given input.

        Raises:
            ValueError: inputs of the wrong shape.
        """
        mem = self.memory(embs, regions, posteriors, objects)
        out = []
        for fin in attend_beam(self.net, mem, len(mem["g"]), beam, self.max_len):
            seq, _ = max(fin, key=lambda x: length_normalise(x[1], len(x[0]) + 1, length_penalty))
            out.append(self.words(seq))
        return out

    def sample(self, c: np.ndarray, n: int = 5, top_p: float = 0.9, temperature: float = 1.0, seed: int | None = None,
               concepts: np.ndarray | None = None, regions: np.ndarray | None = None,
               objects: list | None = None) -> list[str]:
        """``n`` captions of one photo: z drawn from p(z | c), words by nucleus sampling (Holtzman et al. 2020).

        Args:
            c: (D,) float32 aligned embedding; concepts: (1000,) ImageNet posteriors or ``None``;
            regions: (R, region_dim) region features or ``None``; objects: [(COCO class, score)] or ``None``;
            top_p, temperature: the nucleus; seed makes the draw reproducible.

        Returns:
            ``n`` sentences (duplicates possible but unlikely).
        """
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        ct = torch.from_numpy(np.asarray(c, np.float32).reshape(1, -1))
        with torch.no_grad():
            mu, lv = self.net.prior_params(ct)
            z = mu + torch.randn((n, mu.shape[1]), generator=g) * (0.5 * lv).exp()
        rep = lambda x: None if x is None else np.repeat(np.asarray(x, np.float32)[None], n, 0)  # noqa: E731
        mem = self.memory(np.repeat(ct.numpy(), n, 0), rep(regions), rep(concepts),
                          None if objects is None else [objects] * n, z)
        return [self.words(s) for s in attend_sample(self.net, mem, n, self.max_len, top_p, temperature, g)]

    def caption(self, c: np.ndarray, beam: int | None = None, *args, concepts: np.ndarray | None = None,
                regions: np.ndarray | None = None, objects: list | None = None, length_penalty: float = 0.7,
                **kwargs) -> str:
        """The best caption of one photo (:meth:`caption_batch` with one row); ``beam`` None: ``CAPTION_BEAM``.
        Arguments of the pooled captioner's re-ranking (``rerank``, ``neighbours``, ...) are accepted and
        ignored: this captioner does not re-rank."""
        return self.caption_batch(np.asarray(c, np.float32).reshape(1, -1),
                                  None if regions is None else np.asarray(regions, np.float32)[None],
                                  None if concepts is None else np.asarray(concepts, np.float32).reshape(1, -1),
                                  None if objects is None else [objects], beam or CAPTION_BEAM, length_penalty)[0]

    def caption_embeddings(self, embs: np.ndarray, beam: int = CAPTION_BEAM, rerank=None,
                           concepts: np.ndarray | None = None, regions: np.ndarray | None = None,
                           objects: list | None = None) -> list[str]:
        """The caption ``retr index`` stores for each of N photos (:meth:`caption_batch`)."""
        return self.caption_batch(embs, regions, concepts, objects, beam)

    def words(self, ids) -> str:
        """Token ids -> a clean sentence."""
        return detokenize([self.vocab[i] for i in ids])
