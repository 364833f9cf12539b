"""Margin, financing, liquidation and rebalancing in the ledger, through the env."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantgym.envs import TradingEnv
from quantgym.envs.accounting import finance, liquidate
from tests.conftest import random_walk_frame

PROPS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FLAT_BAR = (100.0, 100.0, 100.0, 100.0)


def bars_frame(bars: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    """OHLC bars given by hand (volume 1e6), with a trivial feature ``x``."""
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*bars, strict=True))
    index = pd.date_range("2020-01-01", periods=len(bars), freq="D", name="timestamp")
    frame = pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": 1e6}, index=index)
    frame["x"] = np.arange(len(bars), dtype=np.float64)
    return frame


def hand_env(bars, **kwargs) -> TradingEnv:
    kwargs = {"commission": 0.0, "slippage": 0.0, "window_size": 1, "episode_length": None,
              "features": ["x"], **kwargs}  # fmt: skip
    env = TradingEnv(bars_frame(bars), **kwargs)
    env.reset(options={"start": 0})
    return env


# 3x long from 10,000 at 100: 300 units, cash -20,000; level p: -20,000 + 300 p = 0.1 * 300 p.
LEVEL_LONG = 20_000.0 / (300 * 0.9)
# 3x short: -300 units, cash 40,000; level p: 40,000 - 300 p = 0.1 * 300 p.
LEVEL_SHORT = 40_000.0 / (300 * 1.1)


@pytest.mark.parametrize(
    ("side", "bar", "liquidated", "price", "equity"),
    [
        ("long", (100.0, 101.0, 70.0, 99.0), True, LEVEL_LONG, 300 * LEVEL_LONG * 0.09),  # wick
        ("long", (70.0, 72.0, 65.0, 71.0), True, 70.0, -20_000 + 300 * 70.0 * 0.99),  # gap
        ("long", (100.0, 105.0, 80.0, 104.0), False, 0.0, -20_000 + 300 * 104.0),  # recovery
        ("short", (100.0, 130.0, 99.0, 101.0), True, LEVEL_SHORT, 40_000 - 300 * LEVEL_SHORT * 1.01),
        ("short", (125.0, 128.0, 120.0, 121.0), True, 125.0, 40_000 - 300 * 125.0 * 1.01),
        ("short", (100.0, 121.0, 95.0, 96.0), False, 0.0, 40_000 - 300 * 96.0),
    ],
)  # fmt: skip
def test_liquidation_on_hand_built_bars(side, bar, liquidated, price, equity):
    positions = (0.0, 3.0) if side == "long" else (0.0, -3.0)
    env = hand_env([FLAT_BAR, FLAT_BAR, bar, FLAT_BAR], positions=positions,
                   maintenance_margin=0.1, liquidation_fee=0.01)  # fmt: skip
    *_, info = env.step(1)  # enter at 100 on a flat bar: no liquidation
    assert not info["liquidated"] and env.units == (300.0 if side == "long" else -300.0)
    _, _, terminated, _, info = env.step(1)  # hold through the bar under test
    assert info["liquidated"] is liquidated and terminated is liquidated
    assert info["liquidation_price"] == pytest.approx(price, rel=1e-12)
    assert info["equity"] == pytest.approx(equity, rel=1e-12)
    if liquidated:
        assert env.units == 0.0


def test_close_only_check_would_forgive_the_wick():
    """Without margin the same wick bar is marked at its recovered close."""
    bars = [FLAT_BAR, (100.0, 101.0, 70.0, 99.0), FLAT_BAR]
    *_, info = hand_env(bars, positions=(0.0, 3.0)).step(1)
    assert info["equity"] == pytest.approx(-20_000 + 300 * 99.0)


def test_on_liquidation_flat_continues_flat_and_can_reenter():
    bars = [
        FLAT_BAR,
        (100.0, 101.0, 70.0, 99.0),
        (99.0, 99.0, 99.0, 99.0),
        (99.0, 110, 99.0, 110.0),
    ]
    env = hand_env(bars, positions=(0.0, 3.0), maintenance_margin=0.1, on_liquidation="flat")
    _, _, terminated, _, info = env.step(1)
    assert info["liquidated"] and not terminated and env.position == 0.0
    equity = info["equity"]
    *_, info = env.step(0)
    assert info["equity"] == equity and not info["liquidated"]
    *_, info = env.step(1)  # re-enters 3x at the open of 99
    assert info["equity"] == pytest.approx(equity + 3 * equity / 99.0 * (110.0 - 99.0))


def test_financing_on_a_levered_long_matches_a_hand_computation():
    bars = [FLAT_BAR, (100.0, 103.0, 99.0, 102.0), (102.0, 106.0, 101.0, 105.0), FLAT_BAR]
    env = hand_env(bars, positions=(0.0, 2.0), financing_rate=0.001, borrow_rate=0.01)
    units, cash = 200.0, -10_000.0  # 2x of 10,000 at 100
    for close in (102.0, 105.0):
        *_, info = env.step(1)
        financing = -cash * 0.001
        cash -= financing
        assert info["financing_cost"] == pytest.approx(financing, rel=1e-12)
        assert info["borrow_cost"] == 0.0  # borrow is on short notional only
        assert info["equity"] == pytest.approx(cash + units * close, rel=1e-12)
    assert env.history()["financing_cost"].sum() == pytest.approx(10.0 + 10.01)


def test_every_bar_rebalance_keeps_a_short_at_its_size():
    frame = random_walk_frame(80, seed=3, vol=0.03)
    frame["x"] = 0.0
    env = TradingEnv(frame, features=["x"], window_size=1, episode_length=None,
                     rebalance="every_bar", commission=0.001, slippage=0.0)  # fmt: skip
    env.reset(options={"start": 0})
    held = TradingEnv(frame, features=["x"], window_size=1, episode_length=None, slippage=0.0)
    held.reset(options={"start": 0})
    o = frame["open"].to_numpy()
    for _ in range(30):
        units, cash, t = env.units, env.cash, env.bar
        *_, info = env.step(0)
        *_, held_info = held.step(0)
        equity_open = cash + units * o[t + 1]
        assert env.units * o[t + 1] / equity_open == pytest.approx(-1.0, abs=1e-9)
        assert info["fees"] > 0.0  # the drift is traded each bar
    assert held.units == pytest.approx(held.history()["trade"].iloc[0] * 10_000 / o[1])


def test_liquidate_works_on_floats_and_arrays_alike():
    rng = np.random.default_rng(0)
    n = 50
    units = rng.normal(0, 300, n)
    cash = 10_000.0 - units * 100.0
    open_, low, high = rng.uniform(90, 110, n), rng.uniform(50, 90, n), rng.uniform(110, 150, n)
    batched = liquidate(units, cash, open_, low, high, 0.1, 0.002, rng.uniform(0, 0.01, n), 1.0)
    slip = batched[5] / np.maximum(np.abs(batched[3] * units), 1e-300)
    for i in range(n):
        single = liquidate(float(units[i]), float(cash[i]), float(open_[i]), float(low[i]),
                           float(high[i]), 0.1, 0.002, float(slip[i]) if batched[2][i] else 0.0, 1.0)  # fmt: skip
        np.testing.assert_allclose([float(x) for x in single], [float(b[i]) for b in batched],
                                   rtol=1e-12)  # fmt: skip
    assert 0 < batched[2].sum() < n, "no liquidation or all liquidated: vacuous"


# -- properties ---------------------------------------------------------------------------
FRAMES = {s: random_walk_frame(60, seed=s, vol=0.05).assign(x=0.0) for s in range(6)}
seeds = st.integers(0, len(FRAMES) - 1)
action_lists = st.lists(st.integers(0, 2), min_size=1, max_size=58)


def run(seed, acts, **kwargs):
    kwargs = {"features": ["x"], "window_size": 1, "episode_length": None, **kwargs}
    env = TradingEnv(FRAMES[seed], **kwargs)
    env.reset(options={"start": 0})
    out = []
    for a in acts:
        state = (env.units, env.cash, env.bar)
        *_, terminated, truncated, info = env.step(a)
        out.append((state, info))
        if terminated or truncated:
            break
    return out


@PROPS
@given(seed=seeds, acts=st.lists(st.integers(0, 1), min_size=1, max_size=58),
       mm=st.floats(0.0, 0.9))  # fmt: skip
def test_an_unlevered_long_never_liquidates(seed, acts, mm):
    steps = run(seed, acts, positions=(0.0, 1.0), maintenance_margin=mm, commission=0.0,
                slippage=0.0)  # fmt: skip
    assert not any(info["liquidated"] for _, info in steps)


prices = st.floats(50.0, 150.0)


@PROPS
@given(units=st.floats(-500.0, 500.0).filter(lambda u: abs(u) > 1e-3), cash=st.floats(-40_000, 60_000),
       open_=prices, wick=st.floats(0.0, 0.6), mm=st.floats(0.0, 0.5), fee=st.floats(0.0, 0.02))  # fmt: skip
def test_liquidation_books_no_better_than_the_level_or_the_open(units, cash, open_, wick, mm, fee):
    low, high = open_ * (1 - wick), open_ * (1 + wick)
    new_units, new_cash, hit, price, fees, slip = liquidate(
        units, cash, open_, low, high, mm, fee, 0.001, 0.0
    )
    extreme = low if units > 0 else high
    breached = cash + units * extreme < mm * abs(units) * extreme
    assert hit == breached
    if not hit:
        assert (new_units, new_cash, price, fees, slip) == (units, cash, 0.0, 0.0, 0.0)
        return
    level = -cash / (units - mm * abs(units))
    open_breached = cash + units * open_ < mm * abs(units) * open_
    if units > 0:
        assert low - 1e-9 <= price <= min(open_, level) + 1e-9
    else:
        assert max(open_, level) - 1e-9 <= price <= high + 1e-9
    if open_breached:  # gapped through the level: the open, never the better level
        assert price == open_
    equity = new_cash
    assert new_units == 0.0 and fees >= 0.0 and slip >= 0.0
    # never more than the requirement at the level (equity there), less the costs
    assert equity <= cash + units * level - fees - slip + 1e-6 * (1 + abs(cash))
    assert equity <= mm * abs(units) * level + 1e-6 * (1 + abs(cash))


@PROPS
@given(seed=seeds, acts=action_lists, fee=st.floats(0.0, 0.05), mm=st.floats(0.0, 0.5))
def test_liquidation_fees_never_raise_equity(seed, acts, fee, mm):
    kw = dict(positions=(-5.0, 0.0, 5.0), maintenance_margin=mm, on_liquidation="flat")
    free, paid = run(seed, acts, **kw), run(seed, acts, liquidation_fee=fee, **kw)
    assert len(paid) <= len(free)  # a fee can end the episode sooner (bankruptcy), never later
    for (_, a), (_, b) in zip(free, paid, strict=False):
        assert b["equity"] <= a["equity"] * (1 + 1e-12)


@PROPS
@given(seed=seeds, acts=action_lists, rate=st.floats(0.0, 0.01))
def test_financing_never_raises_equity(seed, acts, rate):
    kw = dict(positions=(-3.0, 0.0, 3.0))
    free, paid = run(seed, acts, **kw), run(seed, acts, financing_rate=rate, **kw)
    for (_, a), (_, b) in zip(free, paid, strict=True):
        assert b["equity"] <= a["equity"] * (1 + 1e-12)
        assert b.get("financing_cost", 0.0) >= 0.0


@pytest.mark.parametrize("cash", [-5_000.0, 0.0, 3_000.0])
def test_finance_charges_only_borrowed_cash(cash):
    new_cash, cost = finance(cash, 0.001)
    assert cost == pytest.approx(max(-cash, 0.0) * 0.001) and new_cash == cash - cost


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"maintenance_margin": 1.0}, "maintenance_margin"), ({"maintenance_margin": -0.1}, "maintenance_margin"),
     ({"financing_rate": -1e-4}, "financing_rate"), ({"liquidation_fee": 0.9}, "liquidation_fee"),
     ({"on_liquidation": "pause"}, "on_liquidation"), ({"rebalance": "weekly"}, "rebalance")],
)  # fmt: skip
def test_bad_margin_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TradingEnv(**kwargs)
