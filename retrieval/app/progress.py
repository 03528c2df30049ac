"""``retr index``'s side of the terminal: its flag checks, the notices before slow first-time work,
and the progress display (a rich bar on a terminal, a line every tenth otherwise)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable


def index_flag_problem(path: Path, idx: Path, index_type: str | None, ray: str | None, shards: Path | None,
                       captions: Path | None) -> tuple[str, int] | None:
    """(message, exit status) for the first thing wrong with ``retr index``'s arguments, else None;
    checked before any model is loaded (a captions file is parsed here, not after the embedding)."""
    from retrieval.errors import IndexingError
    from retrieval.store.ann import INDEX_TYPES

    if index_type is not None and index_type not in INDEX_TYPES:
        return f"--index-type must be one of {', '.join(INDEX_TYPES)}, not {index_type!r}", 2
    if not path.exists():
        return f"{path}: no such file or folder", 1
    if shards is not None and ray is None:
        return "--shards needs --ray ADDRESS", 2
    if ray is not None:
        from retrieval.indexing.distributed import require_ray

        try:
            require_ray()
        except IndexingError as e:
            return str(e), 1
    if captions is not None:
        from retrieval.io.coco import load_coco_captions

        if not captions.is_file():
            return f"{captions}: captions file not found", 1
        try:
            load_coco_captions(captions)  # fail before the expensive work, not after
        except (ValueError, OSError) as e:
            return str(e), 1
    if idx.exists() and not idx.is_dir():
        return f"{idx}: --index must be a folder, and this is a file", 1
    return None


def watch_flag_problem(paths: list[Path], watch: bool, ray: str | None) -> tuple[str, int] | None:
    """(message, exit status) when ``retr index``'s paths do not suit ``--watch`` (or its absence), else None."""
    if not watch:
        return None if len(paths) == 1 else ("one PATH at a time (several folders only with --watch)", 2)
    if ray is not None:
        return "--watch indexes on this machine: not with --ray", 2
    for p in paths:
        if not p.is_dir():
            return f"{p}: --watch needs folders, and this is {'a file' if p.exists() else 'not there'}", 1
    return None


def first_time_notice(enc) -> str | None:
    """The line to show before a one-time ONNX export or int8 quantisation of ``enc``, else None."""
    from retrieval.config import image_precision
    from retrieval.encoders import onnx_runtime

    if not hasattr(enc, "export_fast_path"):
        return None
    if not onnx_runtime.export_is_current(enc.id):
        return f"exporting the encoder to ONNX once for fast runs (~30 s) into {onnx_runtime.export_dir(enc.id)}"
    if image_precision() == "int8" and not onnx_runtime.int8_model_is_current(onnx_runtime.export_dir(enc.id)):
        from retrieval.encoders.quantisation import int8_refusal, int8_settings

        if not int8_refusal():  # where refused, the encoder says so in one line
            return f"quantising the image model to int8 once for this CPU, {int8_settings().describe()} (~20 s)"
    return None


class IndexProgress:
    """The progress of ``retr index``: ``on_error`` and ``on_progress`` for :func:`retrieval.index_folder`.

    Each skipped file is one line through ``skipped(path, reason)``; progress is a rich bar on a
    terminal (stderr), else a line ``embedded N/TOTAL[, skipped K]`` every tenth (``doing`` and ``done``
    name the work: "embedding", "embedded"). Files reported
    before embedding began (while walking) are not counted as skipped embeddings.
    """

    def __init__(self, skipped: Callable[[str, str], None], say: Callable[[str], None], tty: bool | None = None,
                 doing: str = "embedding", done: str = "embedded"):
        self._skipped, self._say = skipped, say
        self.doing, self.done = doing, done
        self.errors = self.at_start = 0
        self.last = -1
        self.bar = None
        if sys.stderr.isatty() if tty is None else tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), transient=True, console=Console(stderr=True))
            self.task = self.bar.add_task(doing, total=None)

    def on_error(self, path: str, reason: str) -> None:
        self.errors += 1
        self._skipped(path, reason)

    def _bad(self, done: int) -> int:
        if done == 0:
            self.at_start = self.errors
        return self.errors - self.at_start

    def on_progress(self, done: int, total: int) -> None:
        bad = self._bad(done)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total,
                            description=f"{self.doing} ({bad} skipped)" if bad else self.doing)
            return
        step = max(1, total // 10) if total else 1
        if done and (done == total or done // step != self.last):
            self.last = done // step
            if total:
                self._say(f"{self.done} {done - bad}/{total}" + (f", skipped {bad}" if bad else ""))

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
