"""Phase markers of ``retr index`` for crash tests (``scripts/reliability/killed_runs.py``).

With ``RETR_TRACE_PHASES=1`` in the environment, :func:`phase` writes one line
``retr-phase: NAME SECONDS`` to stderr as a run enters each phase (``decode``,
``embed``, ``commit``, ``caption``, ``faiss``, ``done``; SECONDS is ``time.monotonic()``),
so that a test can kill the run inside a chosen phase. Without it, nothing is written.
"""
from __future__ import annotations

import os
import sys
import time

#: Environment variable that turns the markers on.
TRACE_ENV = "RETR_TRACE_PHASES"


def phase(name: str) -> None:
    """Mark the start of phase ``name`` (one stderr line when ``$RETR_TRACE_PHASES`` is set)."""
    if os.environ.get(TRACE_ENV):
        sys.stderr.write(f"retr-phase: {name} {time.monotonic():.3f}\n")
        sys.stderr.flush()
