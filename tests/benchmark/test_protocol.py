"""Protocol: disjoint windows, train/test separation, walk-forward folds, long series."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import quantgym
from quantgym.benchmark.listing import cells_for
from quantgym.benchmark.protocol import (
    BarRange,
    bar_timestamp,
    build_market,
    market_env_kwargs,
    plan_for,
    window_plan,
)
from tests.benchmark.conftest import tiny_suite


def _assert_separated(plan) -> None:
    units = sorted(plan.units, key=lambda u: u.start)
    for a, b in zip(units, units[1:], strict=False):
        assert a.end < b.start, f"units {a.unit} and {b.unit} share bars"
    for unit in units:
        assert unit.train.end < unit.start, f"unit {unit.unit} starts inside its train range"
        assert not unit.train.overlaps(unit.bars)


def test_window_plan_is_disjoint_and_after_train() -> None:
    plan = window_plan(40, 100_000, train_bars=1000, embargo_bars=30, n_windows=50, window_bars=99)
    assert plan.protocol == "windows" and len(plan.units) == 50
    assert plan.trains == [BarRange(40, 1039)]
    assert plan.units[0].start == 1039 + 30 + 1
    assert {u.n_steps for u in plan.units} == {99}
    _assert_separated(plan)
    with pytest.raises(ValueError, match="n_windows=50"):
        window_plan(40, 5_000, train_bars=1000, embargo_bars=30, n_windows=50, window_bars=99)


def test_synthetic_cell_plan_fits_its_series() -> None:
    cell = cells_for(tiny_suite())[0][0]
    market, first_bar = build_market(cell)
    plan = plan_for(cell, market, first_bar)
    assert len(plan.units) == cell.n_windows
    assert plan.units[-1].end <= market.last_bar
    assert plan.units[0].train.start == first_bar
    _assert_separated(plan)
    other, _ = build_market(dataclasses.replace(cell, seed=1))  # the series depends on the seed
    assert not np.array_equal(market.close, other.close)


@pytest.mark.parametrize("market", ["sample:googl", "sample:eurusd"])
def test_walk_forward_folds_expand_and_never_touch_their_test(market) -> None:
    cells, _ = cells_for(tiny_suite(markets=[market], agents=["flat"]))
    cell = cells[0]
    assert cell.protocol == "walk_forward" and cell.window_bars is None
    data, first_bar = build_market(cell)
    plan = plan_for(cell, data, first_bar)
    assert [u.fold for u in plan.units] == list(range(cell.n_folds))
    assert len(plan.trains) == cell.n_folds
    assert plan.units[-1].end == data.last_bar  # folds are anchored at the end
    starts = [u.train.start for u in plan.units]
    assert len(set(starts)) == 1  # expanding: one origin, growing ends
    assert all(a.train.end < b.train.end for a, b in zip(plan.units, plan.units[1:], strict=False))
    for unit in plan.units:
        assert unit.start - unit.train.end - 1 == cell.embargo_bars
    _assert_separated(plan)


def test_market_env_kwargs_load_the_seeded_series_or_the_data_source() -> None:
    syn = cells_for(tiny_suite())[0][0]
    kwargs = market_env_kwargs(syn)
    assert kwargs["market"] == "regime" and kwargs["market_kwargs"]["seed"] == syn.seed
    market, _ = build_market(syn)
    assert len(market) == kwargs["market_kwargs"]["n_bars"]
    real = cells_for(tiny_suite(markets=["sample:googl"], agents=["flat"]))[0][0]
    assert market_env_kwargs(real) == {"data": "sample:googl"}


def test_bar_timestamp_is_what_the_env_takes_as_its_end() -> None:
    cell = cells_for(tiny_suite())[0][0]
    market, first_bar = build_market(cell)
    end = bar_timestamp(market, first_bar + 500)
    env = gym.make(quantgym.ENV_ID, data=market, end=end)
    assert int(env.unwrapped.market.last_bar) == first_bar + 500


def test_long_synthetic_series_fit_in_datetime64() -> None:
    env = gym.make(quantgym.ENV_ID, data="synthetic:regime", market_kwargs={"n_bars": 130_000})
    stamps = env.unwrapped.market.timestamps
    assert len(stamps) == 130_000
    assert np.all(np.diff(stamps.astype("int64")) > 0)
    short = gym.make(quantgym.ENV_ID, data="synthetic:regime", market_kwargs={"n_bars": 1000})
    assert str(short.unwrapped.market.timestamps[0])[:10] == "1990-01-01"  # unchanged default
    with pytest.raises(ValueError, match=r"do not fit in datetime64\[ns\].*freq"):
        gym.make(
            quantgym.ENV_ID,
            data="synthetic:regime",
            market_kwargs={"n_bars": 130_000, "start": "1990-01-01"},
        )
