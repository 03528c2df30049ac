"""Pick faiss-cpu's OpenBLAS kernels on CPUs its bundled OpenBLAS does not recognise.

faiss-cpu 1.15 bundles OpenBLAS 0.3.15, which does not know CPUs newer than its release
(e.g. Sapphire Rapids: model 143) and falls back to its generic ``Prescott`` (SSE3) kernels.
FAISS runs BLAS ``sgemm`` for batched flat search (20 queries or more at once), IVF k-means
training and IVF cell assignment; on this project's 2-core Xeon (AVX-512) a flat search of
1,000 queries over 10,000 vectors took 3,366 ms with Prescott, 685-804 ms with ``SkylakeX``
kernels and 970-1,205 ms with ``Haswell`` (docs/bench.md). Single-query search, retr's
query path, does not use BLAS.

OpenBLAS reads ``OPENBLAS_CORETYPE`` once, when the library is loaded, so
:func:`configure_openblas` must run before ``import faiss``; retr imports FAISS only through
:func:`import_faiss`. A value the user has set is never changed.
"""
from __future__ import annotations

import os
import sys

ENV = "OPENBLAS_CORETYPE"


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``); empty where unreadable."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_coretype(flags: set[str]) -> str | None:
    """The OpenBLAS core type for a CPU with these flags: ``SkylakeX`` with AVX-512 (F, BW, DQ, VL),
    ``Haswell`` with AVX2 and FMA, None otherwise (leave OpenBLAS's own detection alone)."""
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def configure_openblas() -> str | None:
    """Set ``OPENBLAS_CORETYPE`` for this process (and its children) from the CPU flags, unless it is
    set already or faiss is already loaded (too late). Returns the value in effect, or None."""
    if ENV in os.environ or "faiss" in sys.modules or sys.platform != "linux":
        return os.environ.get(ENV)
    ct = choose_coretype(cpu_flags())
    if ct:
        os.environ[ENV] = ct
    return ct


def import_faiss():
    """``import faiss``, after :func:`configure_openblas`."""
    configure_openblas()
    import faiss

    return faiss
