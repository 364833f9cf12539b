"""Cells: the record schema, batched evaluation equal to the per-window loop, kinds and roles,
failures as records, determinism of a learner cell."""

from __future__ import annotations

import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest

import quantgym
from quantgym.agents.registry import agent_class, make_agent
from quantgym.benchmark.cells import (
    agent_kind,
    agent_role,
    build_market,
    cells_for,
    not_applicable,
    plan_for,
    run_cell,
)
from quantgym.benchmark.records import strip_volatile
from quantgym.evaluation import evaluate
from tests.benchmark.conftest import tiny_suite

UNIT_KEYS = {
    "unit", "fold", "start", "end", "start_time", "end_time", "n_bars", "log_growth",
    "total_return", "sharpe", "sortino", "max_drawdown", "turnover", "costs", "n_trades",
}  # fmt: skip


class BatchlessAgent:
    """A causal custom agent whose predict refuses batches: evaluated window by window."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        obs = np.asarray(observation)
        if obs.ndim != 1:
            raise ValueError("one observation at a time")
        return np.int64(2 if obs[-1] >= 0 else 0), state  # long unless the last feature < 0


class FailingAgent:
    """predict always raises: its cell must become an error record."""

    def __init__(self, **kwargs) -> None:
        pass

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        raise RuntimeError("deliberate failure in predict")


def _cell(agent: str, **suite):
    return cells_for(tiny_suite(agents=[agent], **suite))[0][0]


def test_record_follows_the_schema() -> None:
    cell = _cell("sma_crossover")
    record = run_cell(cell)
    assert record["status"] == "ok", record["error"]
    assert record["schema"] == 1 and record["cell_id"] == cell.cell_id
    assert record["cell"] == json.loads(json.dumps(cell.to_dict()))
    assert (record["market"], record["agent"], record["seed"]) == (
        "synthetic:regime",
        "sma_crossover",
        0,
    )
    assert (record["kind"], record["role"], record["reference"]) == (
        "rule",
        "causal",
        "bayes_filter_expert",
    )
    assert record["error"] is None
    assert [u["unit"] for u in record["units"]] == list(range(cell.n_windows))
    for u in record["units"]:
        assert set(u) == UNIT_KEYS
        assert u["fold"] is None and u["n_bars"] == cell.window_bars == u["end"] - u["start"]
        assert math.isclose(math.exp(u["log_growth"]) - 1, u["total_return"], rel_tol=1e-9)
        assert u["max_drawdown"] >= 0 and u["costs"] >= 0 and u["turnover"] >= 0
    assert record["bars_per_year"] == 252.0
    curves = record["curves"]
    assert curves["x"][0] == 0 and curves["x"][-1] == cell.window_bars
    for name in ("log_equity", "drawdown"):
        q = curves[name]
        assert len(q["q25"]) == len(q["q50"]) == len(q["q75"]) == len(curves["x"])
        assert np.all(np.array(q["q25"]) <= np.array(q["q75"]) + 1e-12)
    assert curves["log_equity"]["q50"][0] == 0.0
    assert set(record["timing"]) == {"train_s", "eval_s"}
    assert set(record["provenance"]) == {"git_rev", "versions", "machine", "created_at"}
    json.dumps(record, allow_nan=False)  # strict JSON


@pytest.mark.parametrize("agent", ["bayes_filter_expert", "sma_crossover", "mean_reversion"])
def test_batched_evaluation_equals_quantgym_evaluate_per_window(agent) -> None:
    """The vector env over all windows gives what ``evaluate`` gives window by window."""
    cell = _cell(agent)
    record = run_cell(cell)
    market, first_bar = build_market(cell)
    plan = plan_for(cell, market, first_bar)
    for i, unit in enumerate(plan.units[:3]):
        env = gym.make(
            quantgym.ENV_ID,
            data=market,
            end=market.timestamps[plan.units[-1].end],
            episode_length=unit.n_steps,
        )
        result = evaluate(
            make_agent(agent, env=env),
            env,
            starts=[unit.start],
            seed=cell.seed + i,
        )
        got = record["units"][i]
        assert got["total_return"] == pytest.approx(result.total_return, rel=1e-12, abs=1e-12)
        assert got["sharpe"] == pytest.approx(result.episodes[0]["sharpe"], rel=1e-9)
        assert got["n_trades"] == result.episodes[0]["n_trades"]


def test_agent_without_batch_predict_runs_window_by_window() -> None:
    cell = _cell("test_cells:BatchlessAgent")
    record = run_cell(cell)
    assert record["status"] == "ok", record["error"]
    assert (record["kind"], record["role"]) == ("custom", "causal")
    assert len(record["units"]) == cell.n_windows
    assert len({u["log_growth"] for u in record["units"]}) > 1


def test_failing_agent_becomes_an_error_record() -> None:
    record = run_cell(_cell("test_cells:FailingAgent"))
    assert record["status"] == "error" and record["units"] == []
    assert "Traceback" in record["error"] and "deliberate failure in predict" in record["error"]
    json.dumps(record, allow_nan=False)


@pytest.mark.parametrize(
    ("agent", "kind", "role"),
    [
        ("buy_and_hold", "rule", "causal"),
        ("mean_reversion", "rule", "causal"),
        ("bayes_filter_expert", "expert", "causal"),
        ("regime_expert", "expert", "privileged"),
        ("hindsight_oracle", "oracle", "future"),
        ("ppo_lstm", "online", "causal"),
        ("bc", "offline", "causal"),
        ("supervised", "offline", "causal"),
    ],
)
def test_kind_and_role(agent, kind, role) -> None:
    cls = agent_class(agent)
    assert (agent_kind(cls), agent_role(cls)) == (kind, role)


def test_agents_that_refuse_a_market_are_left_out_with_the_reason() -> None:
    assert not_applicable("regime_expert", "synthetic:regime") is None
    assert "regime" in not_applicable("regime_expert", "synthetic:gbm")
    assert not_applicable("ppo_mlp", "sample:googl") is None
    cells, skipped = cells_for(tiny_suite(markets=["gbm"], agents=["flat", "regime_expert"]))
    assert [c.agent for c in cells] == ["flat"]
    assert skipped[0]["agent"] == "regime_expert" and skipped[0]["market"] == "synthetic:gbm"


@pytest.mark.parametrize(("agent", "steps"), [("ppo_mlp", 2048), ("supervised", 50)])
def test_learner_cell_is_deterministic(agent, steps) -> None:
    cell = dataclasses.replace(_cell(agent, dataset_steps=300), train_steps=steps)
    first, second = run_cell(cell), run_cell(cell)
    assert first["status"] == "ok", first["error"]
    assert first["train"]["steps"] == steps
    assert strip_volatile(first) == strip_volatile(second)


def test_walk_forward_learner_trains_per_fold() -> None:
    cell = dataclasses.replace(
        cells_for(tiny_suite(markets=["sample:googl"], agents=["ppo_mlp"]))[0][0], train_steps=2048
    )
    record = run_cell(cell)
    assert record["status"] == "ok", record["error"]
    assert [u["fold"] for u in record["units"]] == list(range(cell.n_folds))
    assert record["train"] == {"steps": 2048}
    assert record["reference"] == "buy_and_hold"


def test_shared_dataset_cache_does_not_change_the_record(tmp_path) -> None:
    cell = dataclasses.replace(_cell("supervised", dataset_steps=300), train_steps=50)
    fresh = run_cell(cell)
    first = run_cell(cell, cache_dir=tmp_path)  # collects and saves
    assert len(list(tmp_path.glob("*.npz"))) == 1
    second = run_cell(cell, cache_dir=tmp_path)  # loads
    assert fresh["status"] == "ok", fresh["error"]
    assert strip_volatile(first) == strip_volatile(fresh) == strip_volatile(second)
