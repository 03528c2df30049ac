"""The encoder's two paths exported to ONNX and run with ONNX Runtime.

* text: tokens -> sentence encoder -> mean pooling -> text head -> (N, D);
  ``import torch`` alone costs about 2 s, so ``retr search "words"`` runs this
  with ONNX Runtime and the ``tokenizers`` library, never importing torch;
* image: pixels -> backbone -> pooling -> image head -> (N, D); ONNX Runtime
  runs EfficientNet-Lite0 about 4x faster than TorchScript on 2 CPU cores.

The image path can also run an int8 copy (:func:`quantize_image_model`, made the first time
``RETR_IMAGE_PRECISION=int8`` asks for it; see :func:`image_precision`).

Both are exported once per encoder (keyed by its id) from the weights already
on disk (the registry packages and the alignment checkpoint) into the user's
cache folder; nothing is downloaded. Outputs match the torch path within 1e-4
cosine (tested).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.config import image_precision

if TYPE_CHECKING:
    from PIL import Image

MODEL_FILE = "text_query.onnx"
IMAGE_FILE = "image.onnx"
#: the image path with its backbone quantised to int8 (QDQ, per-channel weights; the image head stays float32)
IMAGE_INT8_FILE = "image.int8.onnx"
#: beside it: the settings it was quantised with (:meth:`retrieval.encoders.quantisation.Int8Settings.describe`)
IMAGE_INT8_SETTINGS_FILE = "image.int8.settings"
TOKENIZER_FILE = "tokenizer.json"
#: what ``image.onnx`` gives (:func:`image_format`); an export without it, or of an older format, is
#: made again by the next ``retr index`` (:func:`export_is_current`) and keeps serving meanwhile
IMAGE_FORMAT_FILE = "image_format.json"
#: version of the image model's outputs; raise it whenever they change
IMAGE_FORMAT_VERSION = 2
#: the image model's outputs, in order
IMAGE_OUTPUTS = ("embedding", "imagenet", "regions")
#: sentence-encoder embeddings of the ImageNet class names (:mod:`retrieval.concepts.labels`), for the
#: concept channel; its presence also marks an export whose paths carry their second outputs
#: (``imagenet`` posteriors of the image path, ``sentence`` embedding of the text path)
CONCEPT_NAMES_FILE = "concept_names.npz"

#: shipped calibration photos for int8 quantisation (the 11 redistributable demo photos of
#: ``data/photos``, longer side 384 px; licences in ``data/LICENSES.md``)
CALIBRATION_DIR = Path(__file__).resolve().parents[1] / "weights" / "calibration"


def cache_root() -> Path:
    """``$RETR_CACHE`` if set, else the platform's user cache folder for retr."""
    env = os.environ.get("RETR_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("retr"))


def export_dir(encoder_id: str) -> Path:
    """Folder holding the ONNX text path of ``encoder_id``."""
    return cache_root() / "onnx" / re.sub(r"[^A-Za-z0-9_.@-]", "_", encoder_id)


def has_export(encoder_id: str) -> bool:
    """True when both paths of ``encoder_id`` have been exported."""
    d = export_dir(encoder_id)
    return all((d / f).is_file() for f in (MODEL_FILE, TOKENIZER_FILE, IMAGE_FILE, CONCEPT_NAMES_FILE))


def image_format(region_counts: list[int]) -> dict:
    """What an export's ``image.onnx`` gives, as written to :data:`IMAGE_FORMAT_FILE`: the format
    version, the output names and the regions each backbone contributes to ``regions``."""
    return {"version": IMAGE_FORMAT_VERSION, "outputs": list(IMAGE_OUTPUTS), "region_counts": list(region_counts)}


def read_image_format(folder: str | Path) -> dict | None:
    """An export folder's :func:`image_format` record, or None (an export older than the record,
    whose ``image.onnx`` gives ``embedding`` and ``imagenet`` only, or an unreadable one)."""
    import json

    try:
        rec = json.loads((Path(folder) / IMAGE_FORMAT_FILE).read_text())
        return rec if isinstance(rec, dict) else None
    except (OSError, ValueError):
        return None


def export_is_current(encoder_id: str) -> bool:
    """True when ``encoder_id`` is exported (:func:`has_export`) in the current image format
    (:data:`IMAGE_FORMAT_VERSION`); an older export still serves text and embeddings until re-exported."""
    rec = read_image_format(export_dir(encoder_id))
    return has_export(encoder_id) and rec is not None and rec.get("version") == IMAGE_FORMAT_VERSION


def _calibration_batches(image_sizes: list[int], input_names: list[str], batch: int = 8):
    """Calibration inputs for :func:`quantize_image_model`: the shipped photos
    (:data:`CALIBRATION_DIR`), each also mirrored and cropped to 60% and 80% of its size at three
    places (88 inputs from 11 photos), preprocessed as the indexer does.

    Yields:
        ``{input name: (B, 3, S, S) float32}`` feeds, B <= ``batch``.
    """
    from PIL import ImageOps

    from retrieval.io.decode import load_image

    ims = []
    for p in sorted(CALIBRATION_DIR.glob("*.jpg")):
        im = load_image(p)
        w, h = im.size
        ims += [im, ImageOps.mirror(im)]
        for f in (0.6, 0.8):
            cw, ch = int(w * f), int(h * f)
            for x, y in ((0, 0), (w - cw, h - ch), ((w - cw) // 2, (h - ch) // 2)):
                ims.append(im.crop((x, y, x + cw, y + ch)))
    for i in range(0, len(ims), batch):
        yield {n: preprocess(ims[i : i + batch], s) for n, s in zip(input_names, image_sizes)}


#: a ``.q-*`` working folder of :func:`quantize_image_model` older than this (seconds) is a killed run's
STALE_QUANTISATION_S = 3600


def remove_stale_quantisation(folder: str | Path) -> None:
    """Remove the ``folder/.q-*`` working folders of :func:`quantize_image_model` runs that were
    killed (SIGKILL, power loss), once :data:`STALE_QUANTISATION_S` old. No lock guards the
    folder, so age tells a dead run's folder from a live one's (a live run takes ~20 s).
    Called by every quantisation and by every int8 load, so a folder left by a run killed just
    before a successful rerun is removed later too."""
    import time

    for old in Path(folder).glob(".q-*"):
        try:
            if old.is_dir() and time.time() - old.stat().st_mtime > STALE_QUANTISATION_S:
                import shutil  # here: a search that finds nothing to remove does not import it

                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # gone meanwhile (another run cleaned it up)
            pass


def int8_model_is_current(folder: str | Path, settings=None) -> bool:
    """True when ``folder/image.int8.onnx`` exists and was quantised with the settings this CPU
    wants (:func:`retrieval.encoders.quantisation.int8_settings`): a model made on another kind of CPU
    (a cache folder shared between machines) or by an older retr is made again. ``settings``:
    compare with these instead (an :class:`retrieval.encoders.quantisation.Int8Settings`)."""
    from retrieval.encoders.quantisation import int8_settings

    settings = settings or int8_settings()
    folder = Path(folder)
    try:
        recorded = (folder / IMAGE_INT8_SETTINGS_FILE).read_text().strip()
    except OSError:
        return False
    return (folder / IMAGE_INT8_FILE).is_file() and recorded == settings.describe()


def quantize_image_model(folder: str | Path, settings=None) -> Path:
    """Write ``folder/image.int8.onnx``: ``image.onnx`` with its backbone quantised to int8.

    ONNX Runtime static quantisation (``quantize_static``): QDQ format, per-channel weights,
    uint8 activations with MinMax ranges calibrated on :func:`_calibration_batches` (shipped
    photos: nothing from the user's library or the training data is needed). The weights are
    int8 or uint8 as ``settings`` (default :func:`retrieval.encoders.quantisation.int8_settings`, decided
    from this CPU's features) say; the settings are written beside the model
    (:data:`IMAGE_INT8_SETTINGS_FILE`). The image head (the nodes under ``/head/``) stays float32.
    Mean cosine to float32 and top-5 agreement per CPU kind: docs/int8.md.

    Each run works in a temporary folder ``folder/.q-*``; one left behind by a run that was
    killed (SIGKILL, power loss) is removed by :func:`remove_stale_quantisation`.

    Returns:
        the written path (written under a temporary name, then renamed into place).

    Raises:
        FileNotFoundError: no ``image.onnx`` or no calibration photos in ``folder``.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from retrieval.encoders.quantisation import int8_settings

    settings = settings or int8_settings()
    folder = Path(folder)
    src = folder / IMAGE_FILE
    if not src.is_file():
        raise FileNotFoundError(src)
    if not any(CALIBRATION_DIR.glob("*.jpg")):
        raise FileNotFoundError(f"{CALIBRATION_DIR}: no calibration photos")
    sizes = [int(x) for x in (folder / "image_size.txt").read_text().split()]
    remove_stale_quantisation(folder)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".q-") as t:
        pre = Path(t) / "pre.onnx"
        quant_pre_process(str(src), str(pre))  # shape inference + graph optimisation, as ORT recommends
        model = onnx.load(str(pre))
        names = [i.name for i in model.graph.input]
        head = [n.name for n in model.graph.node if n.name.startswith("/head/")]
        del model

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = _calibration_batches(sizes, names)

            def get_next(self):
                return next(self.it, None)

        out = Path(t) / IMAGE_INT8_FILE
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                        activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8 if settings.weight_type == "int8" else QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=head)
        note = Path(t) / IMAGE_INT8_SETTINGS_FILE
        note.write_text(settings.describe() + "\n")
        (folder / IMAGE_INT8_SETTINGS_FILE).unlink(missing_ok=True)  # never a new model with old settings
        os.replace(out, folder / IMAGE_INT8_FILE)
        os.replace(note, folder / IMAGE_INT8_SETTINGS_FILE)
    return folder / IMAGE_INT8_FILE


def preprocess(images: list[Image.Image], size: int) -> np.ndarray:
    """Resize RGB images to ``size`` x ``size`` (aspect squashed, as in training)
    and scale to [-1, 1] (EfficientNet-Lite's mean = std = 0.5).

    Returns:
        (N, 3, size, size) float32 array.
    """
    from PIL import Image

    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, im in enumerate(images):
        if im.mode != "RGB":
            im = im.convert("RGB")
        out[i] = np.asarray(im.resize((size, size), Image.BILINEAR, reducing_gap=3.0))
    x = out.astype(np.float32).transpose(0, 3, 1, 2)
    x /= 127.5
    x -= 1.0
    return np.ascontiguousarray(x)


def session(path: str | Path, threads: int | None = None, cache_optimized: bool = False, prepack: bool = True):
    """An ONNX Runtime CPU session for ``path``.

    ``cache_optimized``: the first session saves its graph-optimised model (level EXTENDED:
    fusions that do not depend on the CPU) next to ``path`` as ``*.opt.onnx``, with its weights
    in a separate external-data file (``*.opt.<pid>.data``); later sessions load that with
    optimisation off, and ONNX Runtime memory-maps the external weights instead of parsing and
    copying them, so a new process has a session in ~0.02 s instead of ~0.23 s (``retr search``
    in a new process; see docs/bench.md). A cache that cannot be written or read is ignored.

    ``prepack=False`` skips MLAS's weight pre-packing at load: faster to open, slower per
    batch; right for a few queries, wrong for embedding a corpus.
    """
    import onnxruntime as ort

    def options(level):
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = level
        if threads:
            opts.intra_op_num_threads = threads
        if not prepack:
            opts.add_session_config_entry("session.disable_prepacking", "1")
        return opts

    providers = ["CPUExecutionProvider"]
    if not cache_optimized:
        return ort.InferenceSession(str(path), options(ort.GraphOptimizationLevel.ORT_ENABLE_ALL), providers=providers)
    opt = path.with_name(path.stem + ".opt.onnx")
    if (opt.is_file() and opt.stat().st_mtime >= path.stat().st_mtime
            and any(path.parent.glob(f"{path.stem}.opt.*.data"))):  # a cache from before external data: redo
        try:
            return ort.InferenceSession(str(opt), options(ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                                        providers=providers)
        except Exception:  # noqa: BLE001 - a damaged cache: optimise again below
            pass
    if not os.access(path.parent, os.W_OK):  # a read-only cache: optimise in memory, save nothing
        return ort.InferenceSession(str(path), options(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
                                    providers=providers)
    o = options(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    tmp = opt.with_name(f".{opt.name}.{os.getpid()}.tmp")
    data = f"{path.stem}.opt.{os.getpid()}.data"  # per process: concurrent writers never share a file
    o.optimized_model_filepath = str(tmp)
    o.add_session_config_entry("session.optimized_model_external_initializers_file_name", data)
    o.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    try:
        sess = ort.InferenceSession(str(path), o, providers=providers)
    except Exception:  # noqa: BLE001 - e.g. a read-only cache folder: no cache, same session
        return ort.InferenceSession(str(path), options(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
                                    providers=providers)
    try:
        os.replace(tmp, opt)
        for old in path.parent.glob(f"{path.stem}.opt.*.data"):  # weights of earlier caches (unlinking an
            if old.name != data:                                  # open, mapped file is safe on POSIX)
                old.unlink(missing_ok=True)
    except OSError:
        pass
    return sess


_warned: set[str] = set()


def _warn_once(msg: str) -> None:
    """Log ``msg`` as a warning once per process."""
    if msg not in _warned:
        _warned.add(msg)
        import logging

        logging.getLogger(__name__).warning(msg)


class OnnxImageEncoder:
    """RGB PIL images -> (N, D) float32 L2-normalised aligned embeddings, with ONNX Runtime.

    Args:
        folder: an export folder from :func:`retrieval.encoders.onnx_export.export_encoder`.
        precision: ``"int8"`` runs ``image.int8.onnx`` (made now by :func:`quantize_image_model`
            if it is missing; float32 if that fails, or, with one warning, where
            :func:`retrieval.encoders.quantisation.int8_refusal` refuses int8 on this CPU), ``"fp32"`` runs ``image.onnx``;
            None: :func:`image_precision` (float32 unless ``RETR_IMAGE_PRECISION=int8``).
        threads: ONNX Runtime intra-op threads per call; 1 (default) runs each call on the
            calling thread only, so that the indexer's worker threads each decode and embed a
            batch at once, one per core (on 2 cores this beats one call over 2 threads:
            docs/bench.md); None: ONNX Runtime's default (all physical cores).
        int8_settings: quantise with these (:class:`retrieval.encoders.quantisation.Int8Settings`) instead
            of the ones chosen for this CPU, even where int8 is refused (for measurements:
            scripts/bench/int8_accuracy.py).

    Attributes:
        precision: the precision actually loaded, ``"int8"`` or ``"fp32"``.
        precision_detail: ``"fp32"`` (``"fp32 (int8 refused on this CPU)"`` where int8 was asked
            for and refused), or ``"int8 "`` + the quantisation settings
            (e.g. ``int8 U8U8 per-channel (x86 without VNNI)``); recorded in the index.

    ``encode_images`` may be called from several threads at once.

    Raises:
        FileNotFoundError: the export is missing.
    """

    def __init__(self, folder: str | Path, precision: str | None = None, threads: int | None = 1,
                 int8_settings=None):
        folder = Path(folder)
        #: native input size (px) of each backbone; one ONNX input per backbone
        self.image_sizes = [int(x) for x in (folder / "image_size.txt").read_text().split()]
        precision = precision or image_precision()
        path = folder / IMAGE_FILE
        refused = False
        if precision == "int8" and int8_settings is None:
            from retrieval.encoders.quantisation import int8_refusal

            why = int8_refusal()
            if why:
                _warn_once(why)
                remove_stale_quantisation(folder)
                precision, refused = "fp32", True
        if precision == "int8":
            q = folder / IMAGE_INT8_FILE
            if not int8_model_is_current(folder, int8_settings):
                try:
                    quantize_image_model(folder, int8_settings)
                except Exception as e:  # noqa: BLE001 - e.g. a read-only cache: float32, as before
                    import logging

                    logging.getLogger(__name__).warning("could not quantise the image model to int8 (%s); "
                                                        "using float32", e)
            if int8_model_is_current(folder, int8_settings):  # never an int8 model made for another CPU
                path = q
                remove_stale_quantisation(folder)
        self.precision = "int8" if path.name == IMAGE_INT8_FILE else "fp32"
        self.precision_detail = "fp32 (int8 refused on this CPU)" if refused else "fp32"
        if self.precision == "int8":
            try:
                self.precision_detail = "int8 " + (folder / IMAGE_INT8_SETTINGS_FILE).read_text().strip()
            except OSError:
                self.precision_detail = "int8"
        self.session = session(path, threads=threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        outputs = {o.name for o in self.session.get_outputs()}
        rec = read_image_format(folder)
        #: regions each backbone contributes to :meth:`encode_images_concepts_and_regions`; None for an
        #: export made before the image model gave its spatial maps (re-exported by the next ``retr index``)
        self.region_counts = rec["region_counts"] if rec and "regions" in outputs else None

    def _runs(self, images: list, batch_size: int, outputs: list[str]):
        """Yield the named outputs of the image model for each batch of ``images``."""
        for i in range(0, len(images), batch_size):
            batch = images[i : i + batch_size]
            pixels = {s: preprocess(batch, s) for s in set(self.image_sizes)}  # backbones of one size share
            yield self.session.run(outputs, {n: pixels[s] for n, s in zip(self.input_names, self.image_sizes)})

    def encode_images(self, images: list, batch_size: int = 32) -> np.ndarray:
        """RGB PIL images -> (N, D) float32, L2-normalised (resized to each backbone's input size)."""
        outs = [r[0] for r in self._runs(images, batch_size, ["embedding"])]
        return np.concatenate(outs).astype(np.float32)

    def encode_images_and_concepts(self, images: list, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """RGB PIL images -> ((N, D) float32 L2-normalised embeddings, (N, 1000) float32 ImageNet
        posteriors, the mean over the backbones; rows sum to 1), from one run of the image path."""
        runs = list(self._runs(images, batch_size, ["embedding", "imagenet"]))
        return (np.concatenate([r[0] for r in runs]).astype(np.float32),
                np.concatenate([r[1] for r in runs]).astype(np.float32))

    def encode_images_concepts_and_regions(self, images: list, batch_size: int = 32
                                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`encode_images_and_concepts` and ``(N, R, 1280)`` float32 spatial maps (each backbone's last
        feature map before global average pooling, row-major regions, concatenated along the region
        axis in :attr:`region_counts` order), from the same run.

        Raises:
            ValueError: the export predates the spatial maps (``region_counts`` is None).
        """
        if self.region_counts is None:
            raise ValueError("this image model export has no spatial maps; run retr index to export it again")
        runs = list(self._runs(images, batch_size, list(IMAGE_OUTPUTS)))
        return tuple(np.concatenate([r[k] for r in runs]).astype(np.float32) for k in range(3))


class OnnxTextEncoder:
    """Text queries -> (N, D) float32 L2-normalised aligned embeddings, without torch.

    Args:
        folder: an export folder from :func:`retrieval.encoders.onnx_export.export_encoder`.
        max_tokens: truncation length (the sentence encoder's limit, 256).
        prepack: pre-pack weights at load (see :func:`session`); ``False`` for a few queries.

    Raises:
        FileNotFoundError: the export is missing.
    """

    def __init__(self, folder: str | Path, max_tokens: int = 256, prepack: bool = True):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.max_tokens = max_tokens
        self.session = session(folder / MODEL_FILE, cache_optimized=True, prepack=prepack)

    def encode_texts(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Strings -> (N, D) float32, L2-normalised; long texts truncated with a warning.

        Texts are batched by token length (less padding), results returned in input order.
        """
        import logging

        encs = self.tokenizer.encode_batch(list(texts))
        for t, e in zip(texts, encs):
            if e.overflowing:
                logging.getLogger(__name__).warning("query truncated to %d tokens: %r...", self.max_tokens,
                                                    t[:40].replace("\n", " "))
        lengths = np.array([sum(e.attention_mask) for e in encs])
        order = np.argsort(lengths, kind="stable")
        out = None
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            n = int(lengths[idx].max())
            ids = np.array([encs[i].ids[:n] for i in idx], np.int64)
            mask = np.array([encs[i].attention_mask[:n] for i in idx], np.int64)
            emb = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            if out is None:
                out = np.empty((len(texts), emb.shape[1]), np.float32)
            out[idx] = emb
        return out if out is not None else np.zeros((0, 0), np.float32)

    def encode_texts_and_sentences(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Strings -> ((N, D) aligned embeddings, (N, 384) sentence-encoder embeddings), both
        float32 L2-normalised, from one run (the second feeds the concept channel)."""
        encs = self.tokenizer.encode_batch(list(texts))
        n = max((sum(e.attention_mask) for e in encs), default=1)
        ids = np.array([e.ids[:n] for e in encs], np.int64)
        mask = np.array([e.attention_mask[:n] for e in encs], np.int64)
        emb, sent = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[:2]
        return emb.astype(np.float32), sent.astype(np.float32)
