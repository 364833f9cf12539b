"""Square-root market impact: size-dependent cost, participation, capped fills."""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.envs import MarketData, SqrtImpactSlippage, TradingEnv
from quantgym.envs.accounting import impact_fill
from tests.conftest import random_walk_frame

FRAME = random_walk_frame(400, seed=4, vol=0.02)


def first_fill(initial_equity: float, **model) -> tuple[TradingEnv, dict]:
    env = TradingEnv(FRAME, window_size=4, episode_length=None, commission=0.0,
                     initial_equity=initial_equity, slippage={"model": "sqrt_impact", **model})  # fmt: skip
    env.reset(options={"start": env.first_bar})
    *_, info = env.step(2)  # long 1x
    return env, info


def test_cost_matches_the_square_root_law_by_hand():
    env, info = first_fill(1e7, half_spread=0.0002, impact=0.8, window=10)
    t = env.first_bar  # order decided at the close of t, filled at open[t + 1]
    log_ret = np.diff(np.log(FRAME["close"].to_numpy()[: t + 1]))
    sigma = np.std(log_ret[-10:], ddof=1)
    volume = FRAME["volume"].to_numpy()[t - 9 : t + 1].mean()
    quantity = 1e7 / FRAME["open"].iloc[t + 1]
    rate = 0.0002 + 0.8 * sigma * np.sqrt(quantity / volume)
    assert info["participation"] == pytest.approx(quantity / volume, rel=1e-12)
    assert info["slippage_cost"] == pytest.approx(rate * 1e7, rel=1e-9)


def test_cost_rate_is_monotone_in_size_and_tends_to_the_half_spread():
    rates = [first_fill(e, half_spread=0.0003)[1] for e in (1.0, 1e2, 1e4, 1e6, 1e8)]
    per_unit = [i["slippage_cost"] / abs(i["trade"] * e) for i, e in
                zip(rates, (1.0, 1e2, 1e4, 1e6, 1e8), strict=True)]  # fmt: skip
    assert all(a < b for a, b in zip(per_unit, per_unit[1:], strict=False))
    assert per_unit[0] == pytest.approx(0.0003, rel=0.1)  # impact vanishes with size


def test_zero_order_pays_nothing_and_has_zero_participation():
    env, _ = first_fill(1e6)
    *_, info = env.step(2)  # same target: no order
    assert info["slippage_cost"] == 0.0 and info["participation"] == 0.0
    assert info["unfilled"] == 0.0


def test_max_participation_caps_the_fill_reports_the_rest_and_works_it_later():
    env, info = first_fill(1e7, max_participation=0.5)
    assert info["participation"] == pytest.approx(0.5, rel=1e-12)
    assert info["unfilled"] > 0.5  # most of a 1x order of 1e7 (~5 days' volume) is left
    filled = [info["trade"]]
    for _ in range(200):
        *_, terminated, truncated, info = env.step(2)
        filled.append(info["trade"])
        assert info["participation"] <= 0.5 * (1 + 1e-12)
        if info["unfilled"] == 0.0 or terminated or truncated:
            break
    assert info["unfilled"] == 0.0, "the order was never completed"
    assert env.units * FRAME["close"].iloc[env.bar] / env.equity == pytest.approx(1.0, rel=0.05)


def test_impact_coefficients_use_past_bars_only():
    model = SqrtImpactSlippage(window=5)
    base = MarketData.from_source(FRAME)
    coef = model.impact_coefficients(base)
    t = 150
    future = FRAME.copy()
    future.iloc[t + 1 :, :] = future.iloc[t + 1 :, :].to_numpy() * 2.0
    changed = model.impact_coefficients(MarketData.from_source(future))
    np.testing.assert_array_equal(changed[: t + 1], coef[: t + 1])
    assert not np.array_equal(changed[t + 1 :], coef[t + 1 :])


def test_impact_fill_agrees_on_floats_and_arrays():
    rng = np.random.default_rng(1)
    n = 40
    args = [rng.choice([-1.0, 0.0, 1.0], n), rng.choice([-1.0, 0.0, 1.0], n), rng.normal(0, 50, n),
            rng.uniform(5e3, 2e4, n), rng.uniform(50, 150, n), rng.uniform(0, 1e-3, n),
            rng.uniform(0, 1e-3, n), rng.uniform(1e2, 1e4, n), rng.uniform(1.0, 300.0, n)]  # fmt: skip
    batched = impact_fill(*args, 0.001, 1.0)
    for i in range(n):
        single = impact_fill(*(float(a[i]) for a in args), 0.001, 1.0)
        assert single == tuple(float(b[i]) for b in batched)


def test_zero_volume_is_refused():
    frame = FRAME.assign(volume=0.0)
    with pytest.raises(ValueError, match="positive volume"):
        TradingEnv(frame, slippage="sqrt_impact")


@pytest.mark.parametrize(
    ("params", "match"),
    [({"impact": -1.0}, "impact"), ({"window": 1}, "window"), ({"max_participation": 0.0}, "max_participation"),
     ({"half_spread": 0.9}, "half_spread")],
)  # fmt: skip
def test_bad_impact_parameters_raise(params, match):
    with pytest.raises(ValueError, match=match):
        SqrtImpactSlippage(**params)
