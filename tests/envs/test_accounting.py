"""Accounting properties of the ledger, checked through the env with hypothesis."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantgym.envs import TradingEnv
from quantgym.envs.accounting import account_features, mark, positive_part, rebalance
from tests.conftest import simple_feature_frame

N_BARS = 60
FRAMES = {seed: simple_feature_frame(N_BARS, seed) for seed in range(8)}
pytestmark = pytest.mark.simd_parity
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_env(seed: int, **kwargs) -> TradingEnv:
    kwargs.setdefault("commission", 0.0)
    kwargs.setdefault("slippage", 0.0)
    return TradingEnv(FRAMES[seed], features=["x"], window_size=1, episode_length=None, **kwargs)


def run(env: TradingEnv, actions) -> tuple[list[float], list[dict]]:
    env.reset(options={"start": 0})
    rewards, infos = [], []
    for a in actions:
        _, r, terminated, truncated, info = env.step(a)
        rewards.append(r)
        infos.append(info)
        if terminated or truncated:
            break
    return rewards, infos


seeds = st.integers(0, len(FRAMES) - 1)
actions = st.lists(st.integers(0, 2), min_size=1, max_size=N_BARS - 1)
costs = st.floats(0.0, 0.01)


@PROPS
@given(seed=seeds, n=st.integers(1, N_BARS - 1))
def test_long_from_first_fill_tracks_price_exactly(seed, n):
    env = make_env(seed)
    _, infos = run(env, [2] * n)
    frame = FRAMES[seed]
    first_fill = frame["open"].iloc[1]
    for info in infos:
        expected = 10_000.0 * frame["close"].iloc[info["bar"]] / first_fill
        assert info["equity"] == pytest.approx(expected, rel=1e-12)


@PROPS
@given(seed=seeds, acts=actions, commission=costs, slippage=costs, fixed_fee=st.floats(0.0, 5.0))
def test_costs_never_increase_final_equity(seed, acts, commission, slippage, fixed_fee):
    _, free = run(make_env(seed), acts)
    _, costly = run(
        make_env(seed, commission=commission, slippage=slippage, fixed_fee=fixed_fee), acts
    )
    assert costly[-1]["equity"] <= free[-1]["equity"] * (1 + 1e-12)


@PROPS
@given(seed=seeds, n=st.integers(1, N_BARS - 1), borrow=costs)
def test_flat_position_leaves_equity_unchanged(seed, n, borrow):
    rewards, infos = run(
        make_env(seed, commission=0.001, slippage=0.001, borrow_rate=borrow), [1] * n
    )
    assert all(info["equity"] == 10_000.0 for info in infos)
    assert all(r == 0.0 for r in rewards)


@PROPS
@given(seed=seeds, acts=actions, commission=costs, slippage=costs)
def test_log_rewards_sum_to_log_growth(seed, acts, commission, slippage):
    rewards, infos = run(make_env(seed, commission=commission, slippage=slippage), acts)
    assert math.fsum(rewards) == pytest.approx(math.log(infos[-1]["equity"] / 10_000.0), abs=1e-10)


@PROPS
@given(seed=seeds, acts=actions, commission=costs, slippage=costs, borrow=costs)
def test_each_step_equity_change_is_pnl_minus_reported_costs(
    seed, acts, commission, slippage, borrow
):
    """Mark-to-market identity: old units over the gap + new units over the bar - costs."""
    env = make_env(seed, commission=commission, slippage=slippage, borrow_rate=borrow)
    frame = FRAMES[seed]
    o, c = frame["open"].to_numpy(), frame["close"].to_numpy()
    env.reset(options={"start": 0})
    for a in acts:
        units_before, equity_before, t = env.units, env.equity, env.bar
        *_, terminated, truncated, info = env.step(a)
        units_after = env.units
        pnl = units_before * (o[t + 1] - c[t]) + units_after * (c[t + 1] - o[t + 1])
        costs_paid = info["fees"] + info["slippage_cost"] + info["borrow_cost"]
        assert info["equity"] == pytest.approx(
            equity_before + pnl - costs_paid, rel=1e-10, abs=1e-8
        )
        assert info["trade"] * equity_before == pytest.approx(
            (units_after - units_before) * o[t + 1], rel=1e-10, abs=1e-8
        )
        if terminated or truncated:
            break


@PROPS
@given(seed=seeds, acts=actions, commission=costs, fixed_fee=st.floats(0.0, 5.0))
def test_reported_fees_are_the_equity_drop_they_cause(seed, acts, commission, fixed_fee):
    """From the same state, the same order with and without commission ends the bar with
    equities that differ by exactly the fees reported in info."""
    env = make_env(seed, commission=commission, fixed_fee=fixed_fee)
    env.reset(options={"start": 0})
    for a in acts:
        free = copy.deepcopy(env)
        free._commission = free._fixed_fee = 0.0
        *_, terminated, truncated, info = env.step(a)
        *_, free_info = free.step(a)
        assert free_info["fees"] == 0.0
        assert free_info["equity"] - info["equity"] == pytest.approx(
            info["fees"], rel=1e-9, abs=1e-9
        )
        if terminated or truncated:
            break


def test_kernel_functions_agree_on_floats_and_arrays():
    rng = np.random.default_rng(0)
    n = 64
    args = dict(
        target=rng.choice([-1.0, 0.0, 0.5, 1.0], n), current_target=rng.choice([-1.0, 0.0, 1.0], n),
        units=rng.normal(0, 50, n), cash=rng.uniform(5_000, 20_000, n), open_price=rng.uniform(50, 150, n),
        slippage_rate=rng.uniform(0, 0.01, n),
    )  # fmt: skip
    batched = rebalance(**args, commission=0.001, fixed_fee=1.0)
    for i in range(n):
        single = rebalance(
            **{k: float(v[i]) for k, v in args.items()}, commission=0.001, fixed_fee=1.0
        )
        assert single == tuple(float(b[i]) for b in batched)
    units, cash = batched[0], batched[1]
    marked = mark(units, cash, args["open_price"] * 1.01, 0.001)
    feats = account_features(
        args["target"], units, args["open_price"], marked[1], cash, marked[1], np.arange(n) * 1.0
    )
    for i in range(n):
        m = mark(float(units[i]), float(cash[i]), float(args["open_price"][i] * 1.01), 0.001)
        assert m == tuple(float(x[i]) for x in marked)
        f = account_features(
            float(args["target"][i]),
            float(units[i]),
            float(args["open_price"][i]),
            m[1],
            float(cash[i]),
            m[1],
            float(i),
        )
        assert f == tuple(float(x[i]) for x in feats)


@pytest.mark.parametrize("x", [-2.5, -0.0, 0.0, 3.25, 1e-300])
def test_positive_part_is_exact(x):
    assert positive_part(x) == max(x, 0.0)
