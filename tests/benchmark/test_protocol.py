"""Protocol: disjoint windows, train/test separation, walk-forward folds, long series."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import quantgym
from quantgym.benchmark.cells import Cell, _train, build_market, cells_for, plan_for
from quantgym.benchmark.protocol import BarRange, window_plan
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


def test_offline_training_data_comes_only_from_the_train_range(monkeypatch) -> None:
    """The dataset a learner is fitted on holds only bars of its train range."""
    from quantgym.agents.registry import agent_class

    seen = {}

    class Recorder:
        offline = True

        def __init__(self, **kwargs):
            pass

        def fit(self, dataset, n_steps=None):
            seen["bars"] = np.asarray(dataset.infos["bar"])
            seen["env_kwargs"] = dict(dataset.metadata["env_kwargs"])

    cell = cells_for(tiny_suite(agents=["bc"], dataset_steps=300))[0][0]
    market, first_bar = build_market(cell)
    plan = plan_for(cell, market, first_bar)
    train = plan.trains[0]
    _train(Recorder, "offline", cell, market, train)
    bars = seen["bars"]
    assert bars.size >= 300
    assert bars.min() >= train.start and bars.max() <= train.end
    # its metadata rebuilds the cell's own series (the supervised agent relabels from it)
    kwargs = {k: v for k, v in seen["env_kwargs"].items() if k not in ("start", "end")}
    rebuilt = gym.make(quantgym.ENV_ID, **kwargs).unwrapped.market
    np.testing.assert_array_equal(rebuilt.close, market.close)
    assert agent_class("bc").offline


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


def test_cell_records_protocol_settings_only_where_they_apply() -> None:
    suite = tiny_suite(markets=["regime", "sample:googl"], agents=["flat", "bc"])
    cells, _ = cells_for(suite)
    by = {(c.market, c.agent): c for c in cells}
    syn, real = by[("synthetic:regime", "flat")], by[("sample:googl", "bc")]
    assert (syn.window_bars, syn.n_folds, syn.dataset_steps) == (200, None, None)
    assert (real.window_bars, real.n_folds, real.dataset_steps) == (None, 5, 600)
    assert isinstance(syn, Cell) and syn.cell_id != real.cell_id
