"""The ``retr`` console entry point.

``retr search ...`` with ordinary arguments is answered here without importing Typer, Click
or pydantic (Typer 0.29 builds a pydantic TypeAdapter per parameter, ~0.5 s of a cold
search); everything else, and any search argument list this small parser does not take
as it is (``--help``, a typo, a missing value), goes to the Typer app in
:mod:`retrieval.app.commands`, which gives its usual help and error messages.
"""
from __future__ import annotations

import os
import sys

from retrieval.app.console import escape_unshowable_output, run_search


def _parse_search(argv: list[str]) -> dict | None:
    """The options of ``retr search`` (see retrieval.app.commands.search) from argv, or None when
    anything is unusual (then the Typer app parses them and reports errors its usual way)."""
    import argparse

    if any(a in ("-h", "--help") for a in argv):
        return None
    class Parser(argparse.ArgumentParser):
        def error(self, message):  # never print or exit: hand over to Typer
            raise argparse.ArgumentError(None, message)

    p = Parser(add_help=False, allow_abbrev=False, exit_on_error=False)
    p.add_argument("query")
    p.add_argument("-k", "--top", dest="k", type=int, default=10)
    p.add_argument("--as-text", action="store_true")
    p.add_argument("--texts", action="store_true")
    p.add_argument("--text-only", action="store_true")
    p.add_argument("--json", dest="as_json", action="store_true")
    p.add_argument("--index", dest="index_dir", default=None)
    p.add_argument("--db", default=None)
    for opt in ("--after", "--before", "--folder", "--camera", "--place"):
        p.add_argument(opt, default=None)
    p.add_argument("--sort", default="score")
    p.add_argument("--literal", action="store_true")
    p.add_argument("--add", action="append", default=[])
    p.add_argument("--subtract", action="append", default=[])
    p.add_argument("--channels", default=None)
    p.add_argument("--min-score", dest="min_score", type=float, default=None)
    p.add_argument("--max-megapixels", dest="max_megapixels", type=float, default=200.0)
    try:
        ns, rest = p.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit):
        return None
    if rest or not ns.max_megapixels >= 0.01:  # a bad value: Typer's message
        return None
    return vars(ns)


def _run_app(app) -> int:
    """Run the Typer app; a usage error (missing argument, unknown option, bad value) is one
    line on stderr naming the command and its ``--help``, not Typer's multi-line box. Returns
    the exit status (2 for usage errors, as Click does)."""
    from typer import Abort

    try:  # Typer >= 0.20 vendors Click as typer._click; older Typer uses Click itself
        from typer import _click as click
    except ImportError:  # pragma: no cover
        import click

    try:
        rv = app(prog_name="retr", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:  # `retr` or `retr index` alone: the help
        e.show()
        return 0
    except click.exceptions.UsageError as e:
        cmd = e.ctx.command_path if e.ctx is not None else "retr"
        msg = " ".join(e.format_message().split())
        sys.stderr.write(f"{cmd}: {msg} (see `{cmd} --help`)\n")
        return e.exit_code
    except click.exceptions.ClickException as e:
        sys.stderr.write(f"retr: {' '.join(e.format_message().split())}\n")
        return e.exit_code
    except Abort:  # typer.Abort (Typer's own; its vendored Click has none)
        sys.stderr.write("retr: aborted\n")
        return 1
    return rv if isinstance(rv, int) else 0


def main() -> None:  # pragma: no cover
    """Console entry point: fast ``retr search``, else the Typer app. A closed or full stdout,
    Ctrl-C and any unexpected error end in one line on stderr (``RETR_DEBUG=1``: the traceback)."""
    if len(sys.argv) > 1 and sys.argv[1] == "search":
        # One query: a BLAS thread pool only costs (numpy's OpenBLAS spawns it at import, and on a busy
        # machine a threaded matrix-vector product waits for the pool: 15-25 ms against 0.1-0.4 ms).
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        sys.stdout = open(os.devnull, "w")
    escape_unshowable_output()
    from retrieval.config import image_precision

    try:
        image_precision()  # a bad setting is refused by every command, before any work
    except ValueError as e:
        sys.stderr.write(f"retr: {e}\n")
        sys.exit(2)
    try:
        args = _parse_search(sys.argv[2:]) if len(sys.argv) > 2 and sys.argv[1] == "search" else None
        if args is not None:
            code = run_search(**args)
            sys.stdout.flush()
            sys.stderr.flush()
            # Nothing is left to write (the store was only read): skip interpreter teardown (ONNX
            # Runtime and FAISS thread pools, module finalisers), ~50 ms of a cold search.
            os._exit(code)
        from retrieval.app.commands import app

        sys.exit(_run_app(app))
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("retr: interrupted\n")
        sys.exit(130)
    except OSError as e:
        if e.errno in (28, 32):  # ENOSPC, EPIPE on stdout
            sys.stderr.write(f"retr: cannot write output ({e.strerror})\n")
            sys.exit(1)
        _unexpected(e)
    except Exception as e:  # noqa: BLE001 - one line, not a traceback
        _unexpected(e)


def _unexpected(e: BaseException) -> None:
    """An error no command turned into a message: one line naming it (``RETR_DEBUG=1`` re-raises)."""
    if os.environ.get("RETR_DEBUG"):
        raise e
    msg = " ".join(str(e).split())[:300]
    hint = ""
    import traceback

    in_export = any(f.filename.endswith("onnx_runtime.py") for f in traceback.extract_tb(e.__traceback__))
    if in_export or type(e).__module__.startswith("onnxruntime"):
        from retrieval.encoders.onnx_runtime import cache_root

        hint = f"; the ONNX export may be damaged: delete {cache_root() / 'onnx'} and run again"
    sys.stderr.write(f"retr: error: {type(e).__name__}: {msg}{hint} (RETR_DEBUG=1 shows the traceback)\n")
    sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
