"""OPENBLAS_CORETYPE chosen from the CPU flags before faiss loads (retrieval.store.blas)."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def test_choose_coretype():
    from retrieval.store.blas import choose_coretype

    assert choose_coretype({"avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"}) == "SkylakeX"
    assert choose_coretype({"avx2", "fma", "avx512f"}) == "Haswell"
    assert choose_coretype({"sse4_2"}) is None


def _coretype_after_search(env_extra: dict) -> str:
    code = ("import os; from retrieval.store import ann; ann.resolve(None, 1); from retrieval.store.blas import import_faiss; "
            "import_faiss(); print(os.environ.get('OPENBLAS_CORETYPE', ''))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env.update(env_extra)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


def test_set_before_faiss_loads_and_user_value_kept():
    from retrieval.store.blas import choose_coretype, cpu_flags

    assert _coretype_after_search({}) == (choose_coretype(cpu_flags()) or "")
    assert _coretype_after_search({"OPENBLAS_CORETYPE": "Zen"}) == "Zen"
