"""Cells: the record schema, train-then-score per train range, failures as records,
determinism of a learner cell."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from quantgym.benchmark.cells import run_cell, train_and_score
from quantgym.benchmark.listing import cells_for
from quantgym.benchmark.protocol import build_market, plan_for
from quantgym.benchmark.records import strip_volatile
from quantgym.benchmark.scoring import evaluate_units
from tests.benchmark.conftest import tiny_suite

UNIT_KEYS = {
    "unit", "fold", "start", "end", "start_time", "end_time", "n_bars", "log_growth",
    "total_return", "sharpe", "sortino", "max_drawdown", "turnover", "costs", "n_trades",
}  # fmt: skip


class LongLearner:
    """A tiny online learner: ``fit`` counts its steps, ``predict`` goes long on a batch."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.num_timesteps = 0

    def fit(self, env, train_steps=None):
        self.num_timesteps += 10 if train_steps is None else train_steps
        return self

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.full(np.asarray(observation).shape[0], 2), state


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


def test_train_and_score_trains_once_and_scores_the_units() -> None:
    cell = dataclasses.replace(_cell("test_cells:LongLearner"), train_steps=64)
    market, first_bar = build_market(cell)
    plan = plan_for(cell, market, first_bar)
    train = plan.trains[0]
    result = train_and_score(cell, market, train, plan.units)
    assert result.agent is not None and result.agent.num_timesteps == 64
    assert result.train_steps == 64
    assert result.make_agent(None) is result.agent  # the trained agent scores every unit
    assert [len(e) for e in result.equities] == [u.n_steps + 1 for u in plan.units]
    assert len(result.metrics) == len(plan.units)
    assert min(result.train_s, result.train_cpu_s, result.eval_s) >= 0
    # the same agent scores more units: those units' equity paths match
    equities, _ = evaluate_units(result.make_agent, cell, market, plan.units[:2])
    for got, want in zip(equities, result.equities[:2], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_train_and_score_builds_an_agent_that_does_not_learn_per_env() -> None:
    cell = _cell("sma_crossover")
    market, first_bar = build_market(cell)
    plan = plan_for(cell, market, first_bar)
    result = train_and_score(cell, market, plan.trains[0], plan.units[:2])
    assert result.agent is None and result.train_steps is None
    assert len(result.equities) == 2
    record = run_cell(cell)
    want = [u["log_growth"] for u in record["units"][:2]]
    got = [float(np.log(e[-1] / e[0])) for e in result.equities]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_failing_agent_becomes_an_error_record() -> None:
    record = run_cell(_cell("test_cells:FailingAgent"))
    assert record["status"] == "error" and record["units"] == []
    assert "Traceback" in record["error"] and "deliberate failure in predict" in record["error"]
    json.dumps(record, allow_nan=False)


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
