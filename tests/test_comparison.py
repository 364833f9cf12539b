"""The benchmark harness: grid expansion, the train/test protocol, scores, determinism, the
offline path, result files and the CLI (tiny markets: window 8, ~80 test bars)."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

import quantgym
from quantgym import comparison
from quantgym.agents.registry import register_agent, unregister_agent
from quantgym.comparison import (
    MARKETS,
    RESULT_COLUMNS,
    TIMING_COLUMNS,
    ComparisonConfig,
    RunSpec,
    agent_kind,
    agent_label,
    expand_grid,
    format_table,
    git_revision,
    preset_config,
    print_table,
    run_comparison,
    run_one,
    summarize,
    write_results,
)
from quantgym.datasets.trajectory import TrajectoryDataset

TINY_ENV = {"window_size": 8, "normalize_window": 50, "market_kwargs": {"n_bars": 800}}
REPO = Path(__file__).resolve().parents[1]


def tiny_config(**overrides: Any) -> ComparisonConfig:
    values: dict[str, Any] = {
        "markets": ["synthetic:regime"],
        "agents": ["flat", "bayes_filter_expert"],
        "seeds": [0],
        "env_kwargs": dict(TINY_ENV),
    }
    values.update(overrides)
    return ComparisonConfig(**values)


def without_timings(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def same(a: Any, b: Any) -> bool:
    return a == b or (
        isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    )


# --------------------------------------------------------------------------------------------
# Fake learners (no torch): they record what the harness gave them
# --------------------------------------------------------------------------------------------


class MajorityOfflineAgent:
    """Offline: plays the most frequent action of its training dataset."""

    offline: ClassVar[bool] = True
    name = "majority_offline"
    seen: ClassVar[list[dict[str, Any]]] = []

    @dataclasses.dataclass
    class Config:
        seed: int = 0

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.action = np.int64(1)

    def fit(self, dataset: TrajectoryDataset, n_steps: int = 10) -> MajorityOfflineAgent:
        values, counts = np.unique(dataset.actions, return_counts=True)
        self.action = np.int64(values[np.argmax(counts)])
        type(self).seen.append({"dataset": dataset, "n_steps": n_steps, "seed": self.seed})
        return self

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return self.action, state


class LongOnlineAgent:
    """Online: 'trains' by recording its env; always long."""

    name = "long_online"
    seen: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, env, total_timesteps: int = 5) -> LongOnlineAgent:
        base = env.unwrapped
        type(self).seen.append(
            {"last": pd.Timestamp(base.market.timestamps[-1]), "steps": total_timesteps}
        )
        self.num_timesteps = total_timesteps
        return self

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.int64(2), state


@pytest.fixture
def fake_agents():
    MajorityOfflineAgent.seen.clear()
    LongOnlineAgent.seen.clear()
    register_agent("majority_offline", MajorityOfflineAgent)
    register_agent("long_online", LongOnlineAgent)
    yield
    unregister_agent("majority_offline")
    unregister_agent("long_online")


# --------------------------------------------------------------------------------------------
# Grid and validation
# --------------------------------------------------------------------------------------------


def test_expand_grid_is_markets_x_agents_x_seeds_in_order():
    config = tiny_config(
        markets=["synthetic:regime", "sample:googl"],
        agents=["flat", "random"],
        seeds=[3, 5],
        agent_kwargs={"random": {"seed": 9}},
        train_steps=7,
    )
    specs = expand_grid(config)
    assert [(s.market, s.agent, s.seed) for s in specs] == [
        (m, a, s)
        for m in ("synthetic:regime", "sample:googl")
        for a in ("flat", "random")
        for s in (3, 5)
    ]
    assert all(s.train_steps == 7 and dict(s.env_kwargs) == TINY_ENV for s in specs)
    assert [dict(s.agent_kwargs) for s in specs[2:4]] == [{"seed": 9}, {"seed": 9}]
    assert [s.record_curve for s in specs] == [True, False] * 4
    assert all(s.torch_threads == 1 for s in expand_grid(tiny_config(workers=2, torch_threads=4)))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"markets": ["synthetic:nope"]},
            "unknown market 'synthetic:nope'; valid markets: synthetic:regime",
        ),
        ({"agents": ["flat", "nope"]}, "unknown agent 'nope'; valid agents: random, flat"),
        ({"agents": ["epsilon_mix"]}, "wraps another policy"),
        ({"seeds": []}, "seeds must be a non-empty list"),
        ({"seeds": [0, 0]}, "seeds has duplicates"),
        ({"train_steps": 0}, "train_steps must be a positive integer"),
        ({"n_episodes": 3}, "n_episodes needs episode_length"),
        ({"env_kwargs": {"start": "2000-01-01"}}, "env_kwargs['start'] is set by the harness"),
        ({"agent_kwargs": {"random": {}}}, "agent_kwargs has 'random'"),
        ({"dataset_quality": "great"}, "dataset_quality must be one of"),
    ],
)
def test_bad_config_raises_value_error_naming_the_problem(overrides, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        tiny_config(**overrides).validate()


def test_unknown_agent_error_lists_every_valid_agent():
    with pytest.raises(ValueError) as info:
        preset_config("demo", agents=["ppo_nope"])
    assert all(
        name in str(info.value) for name in ("ppo_lstm", "hindsight_oracle", "sma_crossover")
    )
    with pytest.raises(ValueError, match="unknown preset 'fast'; valid presets: demo, full"):
        preset_config("fast")


def test_presets():
    demo = preset_config("demo")
    assert demo.markets == ["synthetic:regime"] and demo.seeds == [0]
    assert "ppo_lstm" in demo.agents and "hindsight_oracle" in demo.agents
    assert demo.train_steps is not None and demo.preset == "demo"
    full = preset_config("full", seeds=[1])
    assert full.markets == ["synthetic:regime", "synthetic:gbm", "sample:googl", "sample:eurusd"]
    assert full.seeds == [1] and full.train_steps is None
    assert "epsilon_mix" not in full.agents and {"ppo_mlp", "ppo_transformer"} <= set(full.agents)
    assert set(full.markets) <= set(MARKETS)


def test_agent_kinds_and_labels(fake_agents):
    from quantgym.policies import FlatAgent, HindsightOracle

    assert agent_kind(FlatAgent) == "env_bound"
    assert agent_kind(LongOnlineAgent) == "online"
    assert agent_kind(MajorityOfflineAgent) == "offline"
    assert agent_label("hindsight_oracle", HindsightOracle) == "hindsight_oracle (uses future)"
    assert agent_label("flat") == "flat"


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def test_reference_scores_100_and_flat_scores_0():
    results = run_comparison(
        tiny_config(
            markets=["synthetic:regime", "sample:googl"],
            agents=["flat", "bayes_filter_expert", "buy_and_hold"],
        ),
        progress=False,
    )
    scores = {(r["market"], r["agent"]): r["score"] for r in results.rows}
    # exact up to normalized_score's rounding: 100 * r / r
    assert scores[("synthetic:regime", "bayes_filter_expert")] == pytest.approx(100.0, rel=1e-12)
    assert scores[("sample:googl", "buy_and_hold")] == pytest.approx(100.0, rel=1e-12)
    assert scores[("synthetic:regime", "flat")] == 0.0 and scores[("sample:googl", "flat")] == 0.0
    by_key = {(r["market"], r["agent"]): r for r in results.rows}
    regime_ref = by_key[("synthetic:regime", "bayes_filter_expert")]["total_return"]
    bh = by_key[("synthetic:regime", "buy_and_hold")]
    assert bh["reference_agent"] == "bayes_filter_expert"
    assert bh["score"] == pytest.approx(100.0 * bh["total_return"] / regime_ref)
    # bayes_filter_expert rejects real data: skipped with its reason, not a row
    assert results.skipped == [
        {
            "market": "sample:googl",
            "agent": "bayes_filter_expert",
            "seed": 0,
            "reason": pytest.approx(results.skipped[0]["reason"]),
        }
    ]
    assert "needs a synthetic market" in results.skipped[0]["reason"]


def test_gbm_reference_is_buy_and_hold():
    row = run_one(RunSpec("synthetic:gbm", "flat", env_kwargs=TINY_ENV)).row
    assert row is not None and row["reference_agent"] == "buy_and_hold"
    assert row["reference_return"] != 0.0 and row["score"] == 0.0


def test_full_pass_covers_the_whole_test_range():
    import gymnasium as gym

    row = run_one(RunSpec("synthetic:regime", "buy_and_hold", env_kwargs=TINY_ENV)).row
    assert row is not None and row["n_episodes"] == 1 and row["episode_length"] is None
    full = gym.make("TradingEnv-v0", data="synthetic:regime", **TINY_ENV).unwrapped
    stamps = pd.DatetimeIndex(full.market.timestamps)
    assert pd.Timestamp(row["test_end"]) == stamps[full.market.last_bar]
    assert pd.Timestamp(row["train_end"]) < pd.Timestamp(row["test_start"])


def test_same_seed_gives_identical_rows_and_seeds_differ():
    config = tiny_config(
        agents=["random", "flat", "bayes_filter_expert"],
        seeds=[0, 1],
        episode_length=20,
        n_episodes=3,
    )
    first = run_comparison(config, progress=False).rows
    comparison._SPLITS.clear()
    comparison._REFERENCE_RETURNS.clear()
    second = run_comparison(config, progress=False).rows
    a, b = without_timings(first), without_timings(second)
    assert len(a) == 6 and all(all(same(x[k], y[k]) for k in x) for x, y in zip(a, b, strict=True))
    random_rows = [r for r in first if r["agent"] == "random"]
    assert random_rows[0]["total_return"] != random_rows[1]["total_return"]
    assert all(r["n_episodes"] == 3 and r["episode_length"] == 20 for r in first)
    # the reference is evaluated on the same starts in each seed: exactly 100
    reference = [r["score"] for r in first if r["agent"] == "bayes_filter_expert"]
    assert reference == pytest.approx([100.0, 100.0], rel=1e-12)


def test_online_learner_trains_only_on_the_train_range(fake_agents):
    result = run_one(
        RunSpec("synthetic:regime", "long_online", seed=4, train_steps=123, env_kwargs=TINY_ENV)
    )
    row = result.row
    assert row is not None and row["kind"] == "online" and row["train_steps"] == 123
    (seen,) = LongOnlineAgent.seen
    assert seen["steps"] == 123
    assert seen["last"] == pd.Timestamp(row["train_end"])  # later bars never loaded
    assert row["total_return"] == pytest.approx(
        run_one(RunSpec("synthetic:regime", "buy_and_hold", env_kwargs=TINY_ENV)).row[
            "total_return"
        ]
    )


def test_offline_learner_gets_a_train_range_dataset(fake_agents):
    spec = RunSpec(
        "synthetic:regime",
        "majority_offline",
        seed=2,
        train_steps=11,
        env_kwargs={**TINY_ENV, "episode_length": 50},
        dataset_quality="expert",
        dataset_steps=200,
    )
    row = run_one(spec).row
    assert row is not None and row["kind"] == "offline" and row["train_steps"] == 11
    (seen,) = MajorityOfflineAgent.seen
    dataset = seen["dataset"]
    assert isinstance(dataset, TrajectoryDataset) and dataset.n_steps == 200
    assert seen["n_steps"] == 11 and seen["seed"] == 2
    preset = dataset.metadata["preset"]
    assert preset["split"] == "train" and preset["quality"] == "expert"
    assert pd.Timestamp(preset["split_range"][1]) == pd.Timestamp(row["train_end"])
    timestamps = pd.to_datetime(dataset.infos["timestamp"])
    assert timestamps.max() <= pd.Timestamp(row["train_end"])
    assert math.isfinite(row["score"])


def test_results_files_are_complete_and_tagged(tmp_path):
    results = run_comparison(
        tiny_config(agents=["flat", "bayes_filter_expert", "hindsight_oracle"]),
        out=tmp_path,
        progress=False,
    )
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["git_rev"] == git_revision() and payload["git_rev"] != ""
    assert payload["quantgym_version"] == quantgym.__version__
    assert payload["config"]["agents"] == ["flat", "bayes_filter_expert", "hindsight_oracle"]
    assert [set(r) for r in payload["rows"]] == [set(RESULT_COLUMNS)] * 3
    assert payload["rows"][0]["sharpe"] is None  # NaN is written as null (strict JSON)
    # hex ids can be all digits (e.g. a short rev "9929031"): read them as text
    csv = pd.read_csv(tmp_path / "results.csv", dtype={"git_rev": str, "config_id": str})
    assert list(csv.columns) == list(RESULT_COLUMNS) and len(csv) == 3
    assert set(csv["git_rev"]) == {payload["git_rev"]}
    assert set(csv["config_id"]) == {results.config.config_id}
    assert "hindsight_oracle (uses future)" in set(csv["label"])
    for name in ("equity_curves.png", "scores.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_failed_write_keeps_the_previous_results(tmp_path, monkeypatch):
    results = run_comparison(tiny_config(), out=tmp_path, progress=False, plots=False)
    before = (tmp_path / "results.csv").read_bytes()

    def broken_to_csv(self, path, *args, **kwargs):
        Path(path).write_text("half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError, match="disk full"):
        write_results(results, tmp_path)
    assert (tmp_path / "results.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.json"]


def test_summary_and_table_sort_by_score_with_mean_and_std():
    results = run_comparison(
        tiny_config(
            agents=["flat", "random", "hindsight_oracle", "bayes_filter_expert"], seeds=[0, 1]
        ),
        progress=False,
    )
    summary = summarize(results.rows)
    assert summary.loc["synthetic:regime", "reference_return"].iloc[0] > 0
    labels = list(summary.loc["synthetic:regime"].index)
    assert labels[0] == "hindsight_oracle (uses future)" and labels[1] == "bayes_filter_expert"
    assert np.all(np.diff(summary["score_mean"].to_numpy()) <= 0)
    random_scores = [r["score"] for r in results.rows if r["agent"] == "random"]
    assert summary.loc[("synthetic:regime", "random"), "score_std"] == pytest.approx(
        np.std(random_scores, ddof=1)
    )
    text = format_table(results)
    assert "mean ± std over 2 seeds" in text and "hindsight_oracle (uses future)" in text
    printed = io.StringIO()
    print_table(results, file=printed)
    assert "hindsight_oracle (uses future)" in printed.getvalue() and "± " in printed.getvalue()
    assert text.index("bayes_filter_expert") < text.index("\nflat")


def test_losing_reference_ranks_by_return_and_says_so():
    rows = [
        {"market": "m", "label": a, "seed": 0, "reference_agent": "ref", "reference_return": -0.2,
         "score": 100.0 * ret / -0.2, "total_return": ret, "test_start": "2000-01-01",
         "test_end": "2000-06-01", **{k: 0.0 for k in ("annualized_return", "sharpe",
         "max_drawdown", "turnover", "n_trades", "fees", "costs", *TIMING_COLUMNS)}}
        for a, ret in (("ref", -0.2), ("good", 0.3), ("flat", 0.0))
    ]  # fmt: skip
    assert list(summarize(rows).loc["m"].index) == ["good", "flat", "ref"]
    results = comparison.ComparisonResults(
        config=tiny_config(), rows=rows, skipped=[], curves={}, git_rev="x", version="0",
        created_at="now",
    )  # fmt: skip
    assert "returned -20.00% <= 0: scores are undefined or sign-flipped" in format_table(results)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def load_cli():
    spec = importlib.util.spec_from_file_location("compare_cli", REPO / "benchmarks" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_preset_with_overrides(tmp_path, capsys):
    cli = load_cli()
    code = cli.main(
        [
            "--preset", "full",
            "--markets", "sample:googl",
            "--agents", "flat,buy_and_hold",
            "--seeds", "0", "1",
            "--out", str(tmp_path),
            "--no-progress",
            "--no-plots",
        ]
    )  # fmt: skip
    assert code == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["config"]["preset"] == "full" and payload["config"]["seeds"] == [0, 1]
    assert [(r["agent"], r["seed"]) for r in payload["rows"]] == [
        ("flat", 0), ("flat", 1), ("buy_and_hold", 0), ("buy_and_hold", 1)
    ]  # fmt: skip
    out = capsys.readouterr().out
    assert "sample:googl" in out and "buy_and_hold" in out and "results.json" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agents", "flat", "nope"], "error: unknown agent 'nope'; valid agents:"),
        (["--markets", "moon"], "error: unknown market 'moon'; valid markets:"),
        (["--seeds", "x"], "error: --seeds must be integers"),
        (["--n-episodes", "3"], "error: n_episodes needs episode_length"),
    ],
)
def test_cli_bad_input_prints_error_and_exits_2(argv, message, tmp_path, capsys):
    code = load_cli().main([*argv, "--out", str(tmp_path), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.startswith(message)
    assert "Traceback" not in captured.err and not (tmp_path / "results.json").exists()


# --------------------------------------------------------------------------------------------
# The process pool and a real SB3 learner (~2 s each)
# --------------------------------------------------------------------------------------------


def test_process_pool_gives_the_same_rows_as_one_process():
    config = tiny_config(agents=["random", "flat", "bayes_filter_expert"], seeds=[0, 1])
    serial = run_comparison(config, progress=False).rows
    pooled = run_comparison(dataclasses.replace(config, workers=2), progress=False).rows
    assert len(serial) == 6
    for x, y in zip(without_timings(serial), without_timings(pooled), strict=True):
        assert all(same(x[k], y[k]) for k in x)


def test_ppo_mlp_trains_on_train_range_and_is_scored():
    kwargs = {"n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1, "net_arch": [16]}
    spec = RunSpec(
        "synthetic:regime",
        "ppo_mlp",
        seed=0,
        agent_kwargs=kwargs,
        train_steps=64,
        env_kwargs={**TINY_ENV, "episode_length": 50},
    )
    first, second = run_one(spec).row, run_one(spec).row
    assert first is not None and first["kind"] == "online" and first["train_steps"] == 64
    assert math.isfinite(first["score"]) and first["train_time_s"] > 0
    assert without_timings([first]) == without_timings([second])
