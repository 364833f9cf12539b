"""Scoring: batched evaluation equal to the per-window loop, the unbatched fallback, unit rows,
curve quantiles."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import quantgym
from quantgym.agents import agent_class, make_agent
from quantgym.benchmark import protocol
from quantgym.benchmark.listing import agent_factory, cells_for
from quantgym.benchmark.protocol import BarRange, build_market, plan_for
from quantgym.benchmark.scoring import (
    LOG_GROWTH_FLOOR,
    curve_quantiles,
    evaluate_units,
    fixed_agent,
    log_growth,
    scored_fields,
    unit_row,
)
from quantgym.evaluation import evaluate
from tests.benchmark.conftest import tiny_suite


class BatchlessAgent:
    """A causal custom agent whose predict refuses batches: evaluated window by window."""

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        obs = np.asarray(observation)
        if obs.ndim != 1:
            raise ValueError("one observation at a time")
        return np.int64(2 if obs[-1] >= 0 else 0), state  # long unless the last feature < 0


def _setup(agent: str):
    cell = cells_for(tiny_suite(agents=[agent]))[0][0]
    market, first_bar = build_market(cell)
    return cell, market, plan_for(cell, market, first_bar)


@pytest.mark.parametrize("agent", ["bayes_filter_expert", "sma_crossover", "mean_reversion"])
def test_batched_evaluation_equals_quantgym_evaluate_per_window(agent) -> None:
    """The vector env over all windows gives what ``evaluate`` gives window by window."""
    cell, market, plan = _setup(agent)
    make = agent_factory(agent_class(agent), cell)
    equities, metrics = evaluate_units(make, cell, market, plan.units)
    assert len(equities) == len(metrics) == len(plan.units)
    for i, unit in enumerate(plan.units[:3]):
        env = gym.make(
            quantgym.ENV_ID,
            data=market,
            end=market.timestamps[plan.units[-1].end],
            episode_length=unit.n_steps,
        )
        result = evaluate(make_agent(agent, env=env), env, starts=[unit.start], seed=cell.seed + i)
        got = unit_row(unit, market, equities[i], metrics[i])
        assert got["total_return"] == pytest.approx(result.total_return, rel=1e-12, abs=1e-12)
        assert got["sharpe"] == pytest.approx(result.episodes[0]["sharpe"], rel=1e-9)
        assert got["n_trades"] == result.episodes[0]["n_trades"]


def test_agent_without_batch_predict_runs_window_by_window() -> None:
    cell, market, plan = _setup("flat")
    agent = BatchlessAgent()
    equities, metrics = evaluate_units(fixed_agent(agent), cell, market, plan.units)
    assert [len(e) for e in equities] == [u.n_steps + 1 for u in plan.units]
    growth = {
        unit_row(u, market, e, m)["log_growth"]
        for u, e, m in zip(plan.units, equities, metrics, strict=True)
    }
    assert len(growth) > 1


def test_fixed_agent_is_the_same_agent_for_every_env() -> None:
    agent = BatchlessAgent()
    make = fixed_agent(agent)
    assert make(None) is agent and make(gym.make(quantgym.ENV_ID)) is agent


def test_log_growth_is_the_log_of_final_over_initial_floored() -> None:
    assert log_growth(np.array([2.0, 3.0, 4.0])) == pytest.approx(math.log(2.0))
    assert log_growth([100.0, 50.0]) == pytest.approx(math.log(0.5))
    for bankrupt in ([1.0, 0.0], [1.0, -0.5], [1.0, 1e-12]):  # 0, below 0, below the floor
        assert log_growth(bankrupt) == LOG_GROWTH_FLOOR


def test_unit_row_floors_a_bankrupt_unit_and_names_its_bars() -> None:
    _, market, _ = _setup("flat")
    unit = protocol.TestUnit(3, None, 100, 104, BarRange(0, 50))
    metrics = {
        "total_return": -1.0,
        "sharpe": 0.0,
        "sortino": 0.0,
        "max_drawdown": -1.0,
        "turnover": 1.0,
        "costs": 0.0,
        "n_trades": 1,
    }
    row = unit_row(unit, market, np.array([1.0, 0.5, 0.0]), metrics)
    assert row["log_growth"] == LOG_GROWTH_FLOOR and math.isfinite(row["log_growth"])
    assert (row["unit"], row["start"], row["end"], row["n_bars"]) == (3, 100, 104, 4)
    assert row["max_drawdown"] == 1.0  # stored as a positive fraction
    assert row["start_time"] == pd.Timestamp(market.timestamps[100]).isoformat()
    assert row["start_time"] < row["end_time"]


def test_curve_quantiles_are_ordered_and_truncated_to_the_shortest_unit() -> None:
    rng = np.random.default_rng(0)
    equities = [np.exp(np.cumsum(rng.normal(0, 0.01, n))) for n in (51, 61, 71)]
    curves = curve_quantiles(equities, points=11)
    assert curves["x"] == list(range(0, 51, 5))
    for name in ("log_equity", "drawdown"):
        q = {k: np.array(v) for k, v in curves[name].items()}
        assert len(q["q50"]) == 11
        assert np.all(q["q25"] <= q["q50"] + 1e-12) and np.all(q["q50"] <= q["q75"] + 1e-12)
    assert curves["log_equity"]["q50"][0] == 0.0
    assert min(curves["drawdown"]["q25"]) >= 0.0


def test_scored_fields_follow_the_plan_order() -> None:
    cell, market, plan = _setup("buy_and_hold")
    make = agent_factory(agent_class("buy_and_hold"), cell)
    equities, metrics = evaluate_units(make, cell, market, plan.units)
    by_unit = {u.unit: e for u, e in zip(plan.units, equities, strict=True)}
    m_by_unit = {u.unit: m for u, m in zip(plan.units, metrics, strict=True)}
    fields = scored_fields(plan.units, market, by_unit, m_by_unit, curve_points=20)
    assert set(fields) == {"units", "bars_per_year", "curves"}
    assert [r["unit"] for r in fields["units"]] == [u.unit for u in plan.units]
    assert fields["bars_per_year"] == float(market.bars_per_year)
    assert len(fields["curves"]["x"]) == 20
