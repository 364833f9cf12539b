"""benchmarks/compare.py end to end on a tiny suite in a temporary folder."""

from __future__ import annotations

import json

import pytest

from quantgym.benchmark.records import RESULTS_FILE, read_records
from tests.benchmark.scripts import load_script


def _compare():
    return load_script("compare", "compare_cli")


TINY_YAML = """
markets: [synthetic:regime]
agents: [buy_and_hold, sma_crossover, bayes_filter_expert, regime_expert, hindsight_oracle,
         {name: ppo_mlp, train_steps: 2048}]
seeds: [0, 1]
window_bars: 200
n_windows: 6
train_bars: 2000
embargo_bars: 50
"""


def test_smoke_pipeline_end_to_end(tmp_path, capsys) -> None:
    """Records parse, the table is printed and written, the plots exist."""
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_YAML)
    out = tmp_path / "out"
    code = _compare().main(["--suite", str(suite), "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    records = read_records(out / RESULTS_FILE)
    assert len(records) == 12 and all(r["status"] == "ok" for r in records)
    assert {r["cell"]["suite"] for r in records} == {"tiny"}
    for agent in ("sma_crossover", "regime_expert", "ppo_mlp"):
        assert agent in printed
    assert list(out.glob("*.md")) and list(out.glob("*.csv")) and list(out.glob("*.png"))
    for path in out.glob("*.json"):
        json.loads(path.read_text())
    assert "wrote" in printed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--markets", "nowhere"], "unknown market"),
        (["--agents", "no_such_agent"], "unknown agent"),
        (["--seeds", "x"], "--seeds must be integers"),
        (["--suite", "no_such_suite"], "neither a YAML file"),
    ],
)
def test_bad_arguments_exit_2(argv, message, tmp_path, capsys) -> None:
    assert _compare().main([*argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
