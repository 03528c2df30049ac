"""Which int8 quantisation suits the CPU that runs it (no ONNX Runtime import here).

ONNX Runtime's CPU kernels (MLAS) multiply uint8 activations by int8 weights (U8S8) with
``VPMADDUBSW`` on x86 CPUs without VNNI (AVX2, AVX-512 without VNNI): it adds pairs of
uint8 x int8 products into int16 with saturation, so large activations times large weights
overflow and are clipped. The EfficientNet-Lite0 image path quantised U8S8 then lands at a
mean cosine of 0.90 to float32 on an AMD EPYC with AVX2 only (docs/int8.md), while CPUs with
VNNI (``VPDPBUSD``: products summed into int32, no saturation) keep it above 0.98. With uint8
weights (U8U8) MLAS widens to int16 before multiplying (``VPMADDWD``), without saturation, on
every x86 CPU. See ONNX Runtime's quantisation guide, "When and why do I need to try U8U8?"
(onnxruntime.ai/docs/performance/model-optimizations/quantization.html) and Intel's VNNI
notes (2019). ARM64 kernels (``UMULL``/``SDOT``) do not saturate either way.

:func:`int8_settings` decides the settings from :func:`cpu_features`; the decision is recorded
next to the int8 model (so a model made on another CPU is made again) and in the index (meta
``image_precision``). U8U8 is accurate on x86 without VNNI but has no fused kernels there: it
costs 4 to 6 times the CPU of float32 (docs/int8.md), which defeats int8's purpose, so
:func:`int8_refusal` refuses int8 on such CPUs and photos are embedded in float32.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass

#: /proc/cpuinfo flags (Linux x86) meaning an int8 dot product into int32 without saturation
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "avx_vnni_int8"})


@dataclass(frozen=True)
class Int8Settings:
    """How to quantise the image model to int8 on one kind of CPU.

    Attributes:
        weight_type: ``"int8"`` (U8S8: uint8 activations x int8 weights) or ``"uint8"`` (U8U8).
        per_channel: one weight scale per output channel (else one per tensor).
        reduce_range: 7-bit weights (one way around int16 saturation; less precise than U8U8).
        reason: the CPU feature that decided, in words.
    """

    weight_type: str
    per_channel: bool
    reduce_range: bool
    reason: str

    def describe(self) -> str:
        """One line, e.g. ``U8U8 per-channel (x86 without VNNI)``, recorded in the index and beside the model."""
        kind = "U8S8" if self.weight_type == "int8" else "U8U8"
        return (f"{kind} {'per-channel' if self.per_channel else 'per-tensor'}"
                f"{' reduce-range' if self.reduce_range else ''} ({self.reason})")


def cpu_features() -> tuple[str, frozenset[str]]:
    """(machine architecture, lower-case CPU feature flags) of this CPU.

    Flags come from ``/proc/cpuinfo`` on Linux, else from NumPy's runtime dispatch table (its
    names lower-cased, ``AVX512VNNI`` -> ``avx512_vnni``); empty when neither is available.
    """
    arch = platform.machine().lower()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags.update(value.split())
                    break
    except OSError:
        pass
    if not flags:
        try:
            from numpy._core._multiarray_umath import __cpu_features__ as np_flags
        except ImportError:  # NumPy < 2
            try:
                from numpy.core._multiarray_umath import __cpu_features__ as np_flags
            except ImportError:
                np_flags = {}
        names = {"AVX512VNNI": "avx512_vnni", "AVX5124VNNIW": "avx512_4vnniw", "ASIMDDP": "asimddp"}
        flags = {names.get(k, k.lower()) for k, on in np_flags.items() if on}
    return arch, frozenset(f.lower() for f in flags)


def int8_refusal(arch: str | None = None, flags: frozenset[str] | set[str] | None = None) -> str | None:
    """Why int8 is not used on a CPU (default: this one), as one line; None where it is used.

    Refused on x86 without VNNI: U8S8 saturates there (mean cosine 0.91 to float32 on an AMD EPYC
    with AVX2 only), reduce_range stays under 0.98 (0.979), and U8U8, accurate (0.994), runs 4 to 6
    times slower than float32 (docs/int8.md).
    """
    s = int8_settings(arch, flags)
    if s.reason == "x86 without VNNI":
        return ("RETR_IMAGE_PRECISION=int8 is refused on this CPU (x86 without VNNI): its int8 models are "
                "either inaccurate or slower than float32 (docs/int8.md); embedding in float32")
    return None


def int8_settings(arch: str | None = None, flags: frozenset[str] | set[str] | None = None) -> Int8Settings:
    """The int8 quantisation for a CPU (default: this one, :func:`cpu_features`).

    x86 with VNNI: U8S8 per-channel (MLAS's fastest int8 path, accurate there); x86 without
    VNNI: U8U8 per-channel (U8S8 saturates there, see the module docstring); ARM64: U8S8
    per-channel; any other architecture: U8U8 per-channel (no saturation on any MLAS kernel).
    """
    if arch is None or flags is None:
        a, f = cpu_features()
        arch = a if arch is None else arch
        flags = f if flags is None else flags
    arch = arch.lower()
    flags = {x.lower() for x in flags}
    if arch in ("x86_64", "amd64", "i386", "i686", "x86"):
        if flags & VNNI_FLAGS:
            s = Int8Settings("int8", True, False, "x86 with VNNI")
        else:
            s = Int8Settings("uint8", True, False, "x86 without VNNI")
    elif arch in ("aarch64", "arm64"):
        s = Int8Settings("int8", True, False, "ARM64")
    else:
        s = Int8Settings("uint8", True, False, arch or "unknown CPU")
    return s
