"""Where a result came from: the CPU, numpy's SIMD code paths and the library versions.

numpy picks its kernels for ``np.log``/``np.exp`` and friends at import time from the CPU's
features (AVX2, AVX-512, NEON, SVE ...). The kernels differ from each other and from the C
library by an ulp on a few percent of inputs, so the same seeds give bit-identical results on one
machine and results equal within floating tolerance across machines. Every benchmark record
carries :func:`machine_info` so a reader can tell which path produced it.

``python -m quantgym.machine --dispatched`` prints numpy's dispatched (above-baseline) CPU
features, space-separated: the value of ``NPY_DISABLE_CPU_FEATURES`` that forces numpy's
baseline SIMD path on this machine (``make test`` runs the env parity tests once more that way).
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

__all__ = ["cpu_model", "numpy_simd", "dispatched_features", "machine_info"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _simd_module() -> Any:
    try:
        from numpy._core import _multiarray_umath  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import _multiarray_umath

    return _multiarray_umath


def numpy_simd() -> dict[str, list[str]]:
    """numpy's SIMD picture: ``baseline`` (compiled in), ``found`` (dispatched features this CPU
    has and numpy uses) and ``disabled`` (``NPY_DISABLE_CPU_FEATURES``)."""
    umath = _simd_module()
    features = umath.__cpu_features__
    return {
        "baseline": list(umath.__cpu_baseline__),
        "found": [name for name in umath.__cpu_dispatch__ if features.get(name)],
        "disabled": os.environ.get("NPY_DISABLE_CPU_FEATURES", "").split(),
    }


def dispatched_features() -> list[str]:
    """Every above-baseline feature numpy can dispatch to (disabling them all forces the
    baseline path; names this CPU lacks are ignored by numpy)."""
    return list(_simd_module().__cpu_dispatch__)


def machine_info() -> dict[str, Any]:
    """CPU model, architecture, core count, Python and numpy SIMD paths, for result records."""
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy_simd": numpy_simd(),
    }


if __name__ == "__main__":  # pragma: no cover - exercised by `make test`
    if sys.argv[1:] == ["--dispatched"]:
        print(" ".join(dispatched_features()))
    else:
        import json

        print(json.dumps(machine_info(), indent=1))
