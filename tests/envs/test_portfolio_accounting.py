"""The portfolio ledger (accounting.solve_rebalance_scale and friends): properties with hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantgym.envs import PortfolioEnv
from quantgym.envs.accounting import (
    close_positions,
    mark_portfolio,
    rebalance_weights,
    solve_rebalance_scale,
)
from tests.envs.portfolio_frames import wide_panel

pytestmark = pytest.mark.simd_parity
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
N_BARS = 40
FRAMES = {seed: wide_panel(N_BARS, n_assets=4, seed=seed, vol=0.03) for seed in range(4)}


def problem(seed: int, n: int, batch: int, long_short: bool):
    rng = np.random.default_rng(seed)
    low = -1.0 if long_short else 0.0
    a = rng.uniform(low, 1.0, (batch, n)) * (rng.random((batch, n)) < 0.8)
    a /= np.maximum(np.abs(a).sum(axis=1, keepdims=True), 1.0)
    h = rng.uniform(low * 5_000, 5_000, (batch, n)) * (rng.random((batch, n)) < 0.7)
    c = rng.uniform(0.0, 0.03, (batch, n))
    value = np.abs(h).sum(axis=1) + rng.uniform(100.0, 5_000.0, batch)
    return a, h, c, value


@PROPS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12), long_short=st.booleans(),
       k=st.sampled_from([1.0, 0.7]))  # fmt: skip
def test_solved_value_satisfies_its_equation(seed, n, long_short, k):
    a, h, c, value = problem(seed, n, 5, long_short)
    y = solve_rebalance_scale(np.full(5, k), a, h, c, value)
    residual = k * y + (c * np.abs(a * y[:, None] - h)).sum(axis=1) - value
    np.testing.assert_array_less(np.abs(residual), 1e-12 * value)
    for i in range(5):  # one account (1-D arrays) gives the batch's answer
        assert solve_rebalance_scale(k, a[i], h[i], c[i], value[i]) == pytest.approx(
            y[i], rel=1e-14
        )


@PROPS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12), long_short=st.booleans())
def test_solved_value_with_sqrt_impact_satisfies_its_equation(seed, n, long_short):
    a, h, c, value = problem(seed, n, 5, long_short)
    d = np.random.default_rng(seed + 1).uniform(0.0, 5e-4, a.shape)
    y = solve_rebalance_scale(np.ones(5), a, h, c, value, d)
    size = np.abs(a * y[:, None] - h)
    residual = y + (c * size + d * size**1.5).sum(axis=1) - value
    np.testing.assert_array_less(np.abs(residual), 1e-12 * value)
    linear = solve_rebalance_scale(np.ones(5), a, h, c, value)
    assert (y <= linear * (1 + 1e-15)).all()  # impact only adds cost


@PROPS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12))
def test_zero_costs_keep_the_value_exactly(seed, n):
    a, h, _, value = problem(seed, n, 5, True)
    y = solve_rebalance_scale(np.ones(5), a, h, np.zeros_like(a), value)
    np.testing.assert_array_equal(y, value)


@PROPS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 8), long_short=st.booleans())
def test_costs_charged_are_the_asset_legs_only(seed, n, long_short):
    """fees + slippage = sum_i (commission_i + slippage_i) |trade_i| + fixed fees: no cash term."""
    rng = np.random.default_rng(seed)
    a, h, _, value = problem(seed, n, 3, long_short)
    price = rng.uniform(10.0, 200.0, (3, n))
    units = h / price
    cash = value - h.sum(axis=1)
    commission, slip = rng.uniform(0, 0.01, n), rng.uniform(0, 0.01, (3, n))
    trading = rng.random((3, n)) < 0.8
    new_units, new_cash, trade, fees, slippage = rebalance_weights(
        units, cash, price, a, trading, commission, slip, 1.5
    )
    orders = (trading & ((a != 0) | (h != 0))).sum(axis=1)
    np.testing.assert_allclose(
        fees, (commission * np.abs(trade)).sum(axis=1) + 1.5 * orders, rtol=1e-12
    )
    np.testing.assert_allclose(slippage, (slip * np.abs(trade)).sum(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(trade[~trading], 0.0)
    np.testing.assert_array_equal(new_units[~trading], units[~trading])
    before = cash + (units * price).sum(axis=1)
    after = new_cash + (new_units * price).sum(axis=1)
    np.testing.assert_allclose(after, before - fees - slippage, rtol=1e-12)


def test_moving_cash_into_assets_pays_on_the_asset_leg_only():
    # 10,000 cash -> 80% in one asset at c = 0.01: V' = 10,000 / 1.008, cost 0.01 x 0.8 V'.
    # (An L1 distance over weights with cash would charge 0.01 x 1.6 V'.)
    units, cash, trade, fees, _ = rebalance_weights(
        np.zeros(1), 10_000.0, np.array([100.0]), np.array([0.8]), np.array([True]),
        np.array([0.01]), np.array([0.0]), 0.0,
    )  # fmt: skip
    assert fees == pytest.approx(0.01 * 0.8 * 10_000 / 1.008, rel=1e-15)
    assert cash + units[0] * 100.0 == pytest.approx(10_000 / 1.008, rel=1e-15)


def test_long_only_cap_never_borrows_when_holdings_cannot_trade():
    # asset 0 cannot trade (worth 6,000); 4,000 cash; target 100% in asset 1: it gets what is left
    price = np.array([100.0, 50.0])
    units, cash, trade, fees, slip = rebalance_weights(
        np.array([60.0, 0.0]), 4_000.0, price, np.array([0.0, 1.0]), np.array([False, True]),
        np.full(2, 0.001), np.zeros(2), 0.0, budget_cap=True,
    )  # fmt: skip
    assert cash == pytest.approx(0.0, abs=1e-9)
    assert trade[1] == pytest.approx(4_000.0 / 1.001, rel=1e-14)
    assert units[0] == 60.0


def test_batched_functions_equal_one_account_at_a_time():
    rng = np.random.default_rng(3)
    n, e = 5, 6
    units = rng.normal(0.0, 20.0, (e, n))
    cash = rng.uniform(-2_000.0, 5_000.0, e)
    price = rng.uniform(10.0, 100.0, (e, n))
    closing = rng.random((e, n)) < 0.4
    commission, slip, borrow = (
        rng.uniform(0, 0.01, n),
        rng.uniform(0, 0.01, (e, n)),
        rng.uniform(0, 1e-3, n),
    )
    batch_close = close_positions(units, cash, price, closing, commission, slip, 1.0)
    batch_mark = mark_portfolio(units, cash, price, borrow, 1e-4)
    for i in range(e):
        single = close_positions(units[i], cash[i], price[i], closing[i], commission, slip[i], 1.0)
        for b, s in zip(batch_close, single, strict=True):
            np.testing.assert_allclose(b[i], s, rtol=1e-15)
        marked = mark_portfolio(units[i], cash[i], price[i], borrow, 1e-4)
        for b, s in zip(batch_mark, marked, strict=True):
            np.testing.assert_allclose(b[i], s, rtol=1e-15)


def run(seed, actions, **kwargs):
    kwargs.setdefault("commission", 0.0)
    kwargs.setdefault("slippage", 0.0)
    env = PortfolioEnv(FRAMES[seed], features=(), window_size=1, episode_length=None, **kwargs)
    env.reset(options={"start": 0})
    infos = []
    for a in actions:
        *_, terminated, truncated, info = env.step(a)
        infos.append(info)
        if terminated or truncated:
            break
    return env, infos


weights = st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4).map(np.array)


@PROPS
@given(seed=st.integers(0, 3), acts=st.lists(weights, min_size=1, max_size=N_BARS - 1))
def test_zero_costs_growth_is_weights_times_price_relatives(seed, acts):
    frame = FRAMES[seed]
    o = frame.xs("open", axis=1, level=1).to_numpy()
    c = frame.xs("close", axis=1, level=1).to_numpy()
    env = PortfolioEnv(
        frame, features=(), window_size=1, episode_length=None, commission=0.0, slippage=0.0
    )
    env.reset(options={"start": 0})
    for a in acts:
        t = env.bar
        value_open = env.cash + float(env.units @ o[t + 1])
        w = a / max(a.sum(), 1.0)
        *_, terminated, truncated, info = env.step(a)
        expected = value_open * (float(w @ (c[t + 1] / o[t + 1])) + 1.0 - w.sum())
        assert info["equity"] == pytest.approx(expected, rel=1e-12)
        if terminated or truncated:
            break


@PROPS
@given(seed=st.integers(0, 3), acts=st.lists(weights, min_size=1, max_size=N_BARS - 1),
       commission=st.floats(0.0, 0.01), slippage=st.floats(0.0, 0.01), band=st.sampled_from([0.0, 0.02]))  # fmt: skip
def test_costs_never_increase_wealth(seed, acts, commission, slippage, band):
    _, free = run(seed, acts, rebalance_band=band)
    _, costly = run(seed, acts, commission=commission, slippage=slippage, rebalance_band=band)
    assert costly[-1]["equity"] <= free[-1]["equity"] * (1 + 1e-12)


@PROPS
@given(seed=st.integers(0, 3), acts=st.lists(weights, min_size=1, max_size=N_BARS - 1),
       commission=st.floats(0.0, 0.01))  # fmt: skip
def test_log_rewards_sum_to_log_growth(seed, acts, commission):
    env = PortfolioEnv(
        FRAMES[seed], features=(), window_size=1, episode_length=None, commission=commission
    )
    env.reset(options={"start": 0})
    total = 0.0
    for a in acts:
        _, r, terminated, truncated, info = env.step(a)
        total += r
        if terminated or truncated:
            break
    assert total == pytest.approx(np.log(info["equity"] / 10_000.0), abs=1e-10)
