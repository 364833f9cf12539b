"""The ``lagged`` market: reproducible bars, the reversal at exactly ``lag``, the exact forecast."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from quantgym import ENV_ID
from quantgym.envs.synthetic import SyntheticMarket, generate_market
from quantgym.envs.synthetic_lagged import (
    LAGGED_DEFAULTS,
    lag_expected_return,
    lagged_return_variance,
    resolve_lagged_params,
)

__all__: list[str] = []

N_LONG = 100_000


def _returns(market: SyntheticMarket) -> np.ndarray:
    close = market.frame["close"].to_numpy()
    return np.diff(np.log(close), prepend=math.log(market.params["initial_price"]))


@pytest.fixture(scope="module")
def long_market() -> SyntheticMarket:
    return generate_market("lagged", n_bars=N_LONG, seed=11)


def test_same_seed_gives_the_same_bars_and_another_seed_does_not() -> None:
    a = generate_market("lagged", n_bars=2000, seed=3, lag=3)
    b = generate_market("lagged", n_bars=2000, seed=3, lag=3)
    c = generate_market("lagged", n_bars=2000, seed=4, lag=3)
    np.testing.assert_allclose(a.frame.to_numpy(), b.frame.to_numpy(), rtol=1e-12)
    assert a.frame.index.equals(b.frame.index) and a.params == b.params
    assert not np.allclose(a.frame["close"].to_numpy(), c.frame["close"].to_numpy())
    assert a.regime is None and a.params["kind"] == "lagged"
    assert {k: a.params[k] for k in LAGGED_DEFAULTS} == {**LAGGED_DEFAULTS, "lag": 3}


def test_shock_regression_at_the_lag_recovers_minus_strength(long_market) -> None:
    """OLS of r_t on the shock-marked d_{t-k}: the slope is -strength within a 99.9% CI."""
    p = long_market.params
    k, threshold = p["lag"], p["threshold"]
    d = _returns(long_market) - p["drift"]
    x = np.where(np.abs(d[:-k]) > threshold, d[:-k], 0.0)
    y = d[k:]
    slope = float(x @ y / (x @ x))
    resid = y - slope * x
    se = math.sqrt(float(resid @ resid) / (y.size - 1) / float(x @ x))
    assert abs(slope + p["strength"]) < 3.3 * se, (slope, se)
    assert se < 0.02  # the test has power: the CI is narrower than +-0.07 around -0.5


def test_only_the_lag_carries_signal(long_market) -> None:
    """Autocorrelation is strongly negative at lag k and indistinguishable from 0 at 1..k-1,
    k+1..2k-1: a policy reading the newest bar has nothing to trade."""
    r = _returns(long_market)
    k = long_market.params["lag"]
    bound = 4.0 / math.sqrt(r.size)  # |rho| under no autocorrelation, ~4 standard errors
    for lag in range(1, 2 * k):
        rho = np.corrcoef(r[:-lag], r[lag:])[0, 1]
        if lag == k:
            assert rho < -0.15
        else:
            assert abs(rho) < bound, (lag, rho)


def test_forecast_is_the_conditional_expectation(long_market) -> None:
    """The next return less the forecast has mean 0, is uncorrelated with the forecast and has
    the innovation's variance; the forecast is exactly the drift on quiet bars."""
    r = _returns(long_market)
    forecast = lag_expected_return(
        np.log(long_market.frame["close"].to_numpy()), long_market.params
    )
    resid = r[1:] - forecast[:-1]
    variance = lagged_return_variance(long_market.params)
    assert abs(resid.mean()) < 4.0 * math.sqrt(variance / resid.size)
    signal = forecast[:-1] != long_market.params["drift"]
    slope = np.polyfit(forecast[:-1][signal], r[1:][signal], 1)[0]
    assert slope == pytest.approx(1.0, abs=0.1)
    assert resid.var() == pytest.approx(variance, rel=0.05)
    assert 0.02 < signal.mean() < 0.06  # about 4% of bars follow a shock by `lag`


def test_forecast_is_causal() -> None:
    """Entry t is the same whether the closes after t exist or not, and whatever they are."""
    market = generate_market("lagged", n_bars=3000, seed=2)
    log_close = np.log(market.frame["close"].to_numpy())
    full = lag_expected_return(log_close, market.params)
    for t in (10, 1500, 2998):
        np.testing.assert_array_equal(lag_expected_return(log_close[: t + 1], market.params),
                                      full[: t + 1])  # fmt: skip
    shuffled = log_close.copy()
    shuffled[1501:] = np.random.default_rng(0).permutation(shuffled[1501:])
    changed = lag_expected_return(shuffled, market.params)
    np.testing.assert_array_equal(changed[:1501], full[:1501])
    assert not np.array_equal(changed[1501:], full[1501:])


def test_forecast_needs_the_right_lag() -> None:
    """Entry t reads bar t + 1 - lag: before bar lag - 1 there is nothing to read."""
    market = generate_market("lagged", n_bars=500, seed=0, lag=7, threshold=0.0)
    forecast = lag_expected_return(np.log(market.frame["close"].to_numpy()), market.params)
    assert np.all(forecast[:6] == 0.0) and np.all(forecast[6:] != 0.0)
    r = _returns(market)
    np.testing.assert_allclose(forecast[6:], -0.5 * r[: 500 - 6], rtol=1e-9, atol=1e-15)


def test_env_loads_the_market_with_its_parameters() -> None:
    env = gym.make(ENV_ID, data="synthetic:lagged", market_kwargs={"n_bars": 800, "lag": 4})
    market = env.unwrapped.market
    assert market.market_params["kind"] == "lagged" and market.market_params["lag"] == 4
    assert market.name == "synthetic:lagged"
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and "regime" not in info
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lag": 0}, "lag"),
        ({"lag": 2.5}, "lag"),
        ({"strength": 1.0}, "strength"),
        ({"strength": -1.5}, "strength"),
        ({"threshold": -0.01}, "threshold"),
        ({"vol": 0.0}, "vol"),
        ({"shock_prob": 1.5}, "shock_prob"),
        ({"shock_vol": -0.01}, "shock_vol"),
        ({"drift": float("nan")}, "drift"),
        ({"theta": 0.1}, "theta"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        generate_market("lagged", n_bars=100, seed=0, **kwargs)


def test_forecast_rejects_other_markets() -> None:
    with pytest.raises(ValueError, match="lagged"):
        lag_expected_return(np.zeros(10), {"kind": "gbm"})
    with pytest.raises(ValueError, match="log_close"):
        lag_expected_return(np.zeros((2, 2)), resolve_lagged_params({}))
