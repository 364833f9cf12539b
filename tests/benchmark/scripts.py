"""Load a ``benchmarks/`` script as a module for its tests (the scripts are not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_script(stem: str, module_name: str) -> ModuleType:
    """``benchmarks/<stem>.py`` executed as the module ``module_name``, registered in
    ``sys.modules`` first (dataclasses defined in a script look their module up there)."""
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
