"""Bring your own model: any Hugging Face CLIP or SigLIP checkpoint as a retr encoder.

``retr index PHOTOS --encoder hf:PATH_OR_NAME`` embeds photos and texts with the
checkpoint's own image and text towers (``get_image_features`` /
``get_text_features``), through ``transformers`` ``AutoModel`` + ``AutoProcessor``.

* A local folder (anything written by ``save_pretrained``) is loaded with
  ``local_files_only=True``: it never touches the network.
* A hub name (``openai/clip-vit-base-patch32``) is loaded the usual
  ``transformers`` way: from the local Hugging Face cache, or downloaded where
  the hub is reachable (``HF_HUB_OFFLINE=1`` forbids that).

torch and transformers are imported only when an encoder is created.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

#: ``config.model_type`` values this encoder accepts.
SUPPORTED_MODEL_TYPES = ("clip", "siglip", "siglip2")
#: files of a local checkpoint folder that make up its content digest (weights, config, processor, tokenizer).
_DIGEST_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".json", ".txt", ".model")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5")


def _error(msg: str) -> Exception:
    from retrieval.errors import EncoderError

    return EncoderError(msg)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{e.__class__.__name__}: {text[:300]}"


def _looks_like_path(ref: str) -> bool:
    """True for what can only be a folder: absolute, ``./``, ``../``, ``~`` or more than one ``/``."""
    return (os.path.isabs(ref) or ref.startswith((".", "~")) or ref.count("/") > 1
            or os.sep != "/" and os.sep in ref)


def folder_digest(folder: Path) -> str:
    """12-hex sha256 over the checkpoint files at the top of ``folder`` (weights, config,
    processor and tokenizer files; names and contents), sorted by name."""
    h = hashlib.sha256()
    for p in sorted(folder.iterdir(), key=lambda p: p.name):
        if p.name.startswith(".") or not p.is_file() or not p.name.endswith(_DIGEST_SUFFIXES):
            continue
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()[:12]


class HFClipEncoder:
    """A Hugging Face CLIP / SigLIP checkpoint as a retr :class:`~retrieval.encoders.base.Encoder`.

    Args:
        ref: a local checkpoint folder (``save_pretrained`` output: ``config.json``,
            weights, processor and tokenizer files) or a Hugging Face hub name.
        batch_size: photos per forward pass in :meth:`encode_images` (texts: 4x that).
        device: torch device (default: ``"cuda"`` when available, else ``"cpu"``).

    Attributes:
        name: ``"hf:" + basename`` of the folder or hub name (e.g. ``hf:clip-vit-base-patch32``).
        version: for a folder, a 12-hex content digest of its weight, config, processor
            and tokenizer files (a changed checkpoint is a different encoder); for a hub
            name, the resolved commit hash (12 hex) when known, else the name itself.
        dim: embedding dim (CLIP: ``projection_dim``; SigLIP: the tower width).
        spec: ``"hf:" + absolute folder path`` or ``"hf:" + hub name``; an index records
            it so that ``load_encoder(spec)`` loads this encoder again.
        model_type: ``"clip"``, ``"siglip"`` or ``"siglip2"``.
        max_text_len: texts are truncated to this many tokens (never an error).

    Raises:
        EncoderError: the folder does not exist, is not a CLIP / SigLIP checkpoint, or
            the checkpoint (or hub name) cannot be loaded; the message is one line.
    """

    def __init__(self, ref: str | Path, batch_size: int = 32, device: str | None = None):
        ref = str(ref).strip()
        if not ref:
            raise _error("hf: needs a checkpoint folder or a Hugging Face model name (hf:PATH_OR_NAME)")
        folder = Path(ref).expanduser()
        self.local = folder.exists() or _looks_like_path(ref)
        if self.local:
            if not folder.is_dir():
                raise _error(f"{ref}: Hugging Face checkpoint folder not found" if not folder.exists()
                             else f"{ref}: not a folder; give a Hugging Face checkpoint folder (save_pretrained output)")
            folder = folder.resolve()
            if not (folder / "config.json").is_file():
                raise _error(f"{folder}: not a Hugging Face checkpoint (no config.json)")
            if not any(p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES) for p in folder.iterdir()):
                raise _error(f"{folder}: no weight files (*.safetensors, *.bin) in this checkpoint folder")
            source = str(folder)
        else:
            source = ref

        import torch
        import transformers
        from transformers import AutoConfig, AutoModel, AutoProcessor

        kw = {"local_files_only": True} if self.local else {}
        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()
        try:
            try:
                config = AutoConfig.from_pretrained(source, **kw)
            except Exception as e:  # noqa: BLE001 - any failure becomes one clear line
                raise _error(f"{ref}: cannot read the model config ({_one_line(e)})") from None
            mtype = getattr(config, "model_type", None)
            if mtype not in SUPPORTED_MODEL_TYPES:
                raise _error(f"{ref}: not a CLIP or SigLIP checkpoint (model_type {mtype!r}; "
                             f"supported: {', '.join(SUPPORTED_MODEL_TYPES)})")
            try:
                model = AutoModel.from_pretrained(source, **kw)
                processor = AutoProcessor.from_pretrained(source, **kw)
            except Exception as e:  # noqa: BLE001
                raise _error(f"{ref}: cannot load the {mtype} checkpoint ({_one_line(e)})") from None
        finally:
            if bars:
                transformers.utils.logging.enable_progress_bar()
        tokenizer = getattr(processor, "tokenizer", None)
        image_processor = getattr(processor, "image_processor", None)
        if tokenizer is None or image_processor is None:
            raise _error(f"{ref}: the checkpoint has no tokenizer or no image processor "
                         "(save the model's processor with it: processor.save_pretrained(folder))")

        self._torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.model_type = mtype
        self.batch_size = max(1, int(batch_size))
        self.source = source
        self.spec = "hf:" + source
        base = Path(source).name if self.local else source.rstrip("/").split("/")[-1]
        self.name = "hf:" + (base or str(getattr(config, "_name_or_path", "") or "model").rstrip("/").split("/")[-1])
        if self.local:
            self.version = folder_digest(folder)
        else:
            commit = getattr(model.config, "_commit_hash", None) or getattr(config, "_commit_hash", None)
            self.version = str(commit)[:12] if commit else source
        self.max_text_len = self._max_text_len(config)
        # SigLIP was trained on texts padded to the full length; CLIP pools at the EOS token.
        self._padding = "max_length" if mtype.startswith("siglip") else True
        self.dim = int(self.encode_texts([""]).shape[1])

    def _max_text_len(self, config) -> int:
        cands = []
        tcfg = getattr(config, "text_config", None)
        mpe = getattr(tcfg, "max_position_embeddings", None)
        if isinstance(mpe, int) and mpe > 0:
            cands.append(mpe)
        tml = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tml, int) and 0 < tml < 100_000:
            cands.append(tml)
        return min(cands) if cands else 64

    @property
    def id(self) -> str:
        """``name@version``; two encoders with equal ids give identical vectors."""
        return f"{self.name}@{self.version}"

    def _features(self, out):
        """A ``get_*_features`` result (a tensor, or a model output whose
        ``pooler_output`` holds the projected features) -> (N, D) tensor."""
        if isinstance(out, self._torch.Tensor):
            return out
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = out[0]
        return pooled

    def _normalise(self, t) -> np.ndarray:
        v = t.detach().float().cpu().numpy().astype(np.float32, copy=False)
        n = np.linalg.norm(v, axis=1, keepdims=True)
        return np.ascontiguousarray(v / np.maximum(n, 1e-12), np.float32)

    def encode_images(self, images: list) -> np.ndarray:
        """PIL images (converted to RGB if needed) -> (N, D) float32, L2-normalised.

        Runs in batches of ``batch_size``; an empty list gives a (0, D) array.
        """
        if not images:
            return np.zeros((0, self.dim), np.float32)
        out = []
        with self._torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                batch = [im if getattr(im, "mode", "RGB") == "RGB" else im.convert("RGB")
                         for im in images[s : s + self.batch_size]]
                inputs = self.image_processor(images=batch, return_tensors="pt")
                inputs = {k: v.to(self.device) for k, v in inputs.items() if hasattr(v, "to")}
                out.append(self._normalise(self._features(self.model.get_image_features(**inputs))))
        return np.concatenate(out)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Strings -> (N, D) float32, L2-normalised.

        Texts longer than ``max_text_len`` tokens are truncated (never an error);
        an empty list gives a (0, D) array.
        """
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), np.float32)
        out = []
        bs = self.batch_size * 4
        with self._torch.inference_mode():
            for s in range(0, len(texts), bs):
                enc = self.tokenizer(texts[s : s + bs], padding=self._padding, truncation=True,
                                     max_length=self.max_text_len, return_tensors="pt")
                keep = ("input_ids", "attention_mask", "position_ids")
                if self.model_type == "siglip":
                    keep = ("input_ids", "position_ids")  # SigLIP pools the last token; no attention mask
                inputs = {k: v.to(self.device) for k, v in enc.items() if k in keep}
                out.append(self._normalise(self._features(self.model.get_text_features(**inputs))))
        return np.concatenate(out)
