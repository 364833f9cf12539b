"""benchmarks/offline_quality.py end to end at its --quick budgets in a temporary folder."""

from __future__ import annotations

import json

from tests.benchmark.scripts import load_script


def _offline_quality():
    return load_script("offline_quality", "offline_quality_cli")


def _reject_constant(name: str) -> None:
    raise ValueError(f"not valid JSON: {name}")


def test_quick_run_writes_strict_json_with_a_null_critic_target(tmp_path) -> None:
    """The results file parses without NaN/Infinity; the critic row has no target, the
    fixed-target rows have finite, increasing targets; the plot is written."""
    out, plot = tmp_path / "oq.json", tmp_path / "oq.png"
    argv = ["--quick", "--agents", "dt", "--datasets", "mixed", "--seeds", "1"]
    code = _offline_quality().main([*argv, "--out", str(out), "--plot", str(plot)])
    assert code == 0
    result = json.loads(out.read_text(), parse_constant=_reject_constant)
    conditioning = result["conditioning"]
    assert conditioning["critic"]["target"] is None
    targets = [conditioning[k]["target"] for k in ("low (p10)", "median", "high (p90)")]
    assert targets == sorted(targets)
    assert all(isinstance(t, float) for t in targets)
    assert "dt (critic)" in result["table"] and "dt (target)" in result["table"]
    assert plot.stat().st_size > 0
