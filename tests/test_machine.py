"""quantgym.machine: what a record says about the CPU, and the switch to numpy's baseline path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from quantgym.machine import dispatched_features, machine_info, numpy_simd


def test_machine_info_names_the_cpu_and_numpys_simd_paths():
    info = machine_info()
    assert info["cpu"] and info["arch"] and info["python"].count(".") == 2
    simd = numpy_simd()
    assert simd["baseline"], "numpy always has a compiled-in baseline"
    assert set(simd["found"]) <= set(dispatched_features())
    json.dumps(info)  # records hold it as JSON


def _child(env_value: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    if env_value is not None:
        env["NPY_DISABLE_CPU_FEATURES"] = env_value
    code = "import json; from quantgym.machine import numpy_simd; print(json.dumps(numpy_simd()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_disabling_the_dispatched_features_forces_the_baseline_path():
    """What `make test`'s second run relies on: with every dispatched feature disabled, numpy
    uses none of them (on a CPU without any, the list was empty to begin with)."""
    printed = subprocess.run([sys.executable, "-m", "quantgym.machine", "--dispatched"],
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert printed == dispatched_features()
    forced = _child(" ".join(printed))
    assert forced["found"] == []
    assert forced["disabled"] == printed
    assert _child(None)["disabled"] == []
