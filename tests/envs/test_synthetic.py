"""Tests of quantgym.envs.synthetic: generators, OHLC validity and the exact filters."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantgym.envs.synthetic import (
    SYNTHETIC_KINDS,
    SyntheticMarket,
    bayes_filter_positions,
    generate_market,
    hmm_forward_filter,
    ou_expected_return,
    regime_expected_return,
)

__all__: list[str] = []


def _log_returns(market: SyntheticMarket) -> np.ndarray:
    return np.diff(np.log(market.frame["close"].to_numpy()), prepend=np.nan)


@pytest.fixture(scope="module")
def long_regime_market() -> SyntheticMarket:
    return generate_market("regime", n_bars=100_000, seed=0)


# ----------------------------------------------------------------------------- generation


@pytest.mark.parametrize("kind", SYNTHETIC_KINDS)
def test_same_seed_reproduces_and_other_seed_differs(kind: str) -> None:
    a = generate_market(kind, n_bars=500, seed=7)
    b = generate_market(kind, n_bars=500, seed=7)
    c = generate_market(kind, n_bars=500, seed=8)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.params == b.params
    if kind == "regime":
        np.testing.assert_array_equal(a.regime, b.regime)
    assert not np.allclose(a.frame["close"].to_numpy(), c.frame["close"].to_numpy())


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(SYNTHETIC_KINDS),
    seed=st.integers(0, 2**32 - 1),
    n_bars=st.integers(1, 300),
)
def test_frame_is_valid_ohlcv(kind: str, seed: int, n_bars: int) -> None:
    market = generate_market(kind, n_bars=n_bars, seed=seed)
    frame = market.frame
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "timestamp"
    assert len(frame) == n_bars
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    values = frame.to_numpy()
    assert np.all(np.isfinite(values)) and np.all(values > 0)
    body_low = np.minimum(frame["open"], frame["close"])
    body_high = np.maximum(frame["open"], frame["close"])
    assert (frame["low"] <= body_low).all()
    assert (body_high <= frame["high"]).all()
    params = json.loads(json.dumps(market.params))
    assert params["kind"] == kind and params["seed"] == seed and params["n_bars"] == n_bars
    if kind in ("regime", "crash"):  # the crash market's regimes set its crash rate
        assert market.regime is not None and market.regime.shape == (n_bars,)
        assert market.regime.dtype.kind == "i"
        assert set(np.unique(market.regime)) <= {0, 1, 2}
    else:
        assert market.regime is None


def test_default_timestamps_are_business_days_from_1990() -> None:
    frame = generate_market("gbm", n_bars=10, seed=0).frame
    expected = pd.bdate_range("1990-01-01", periods=10)
    assert list(frame.index) == list(expected)
    assert frame.index[0] == pd.Timestamp("1990-01-01")


def test_freq_parameter_gives_hourly_bars() -> None:
    market = generate_market("regime", n_bars=30, seed=0, freq="h", start="2020-01-01")
    assert (np.diff(market.frame.index.to_numpy()) == np.timedelta64(1, "h")).all()
    assert market.frame.index[0] == pd.Timestamp("2020-01-01")
    assert market.params["freq"] == "h"


def test_regime_params_describe_the_model() -> None:
    params = generate_market("regime", n_bars=10, seed=0).params
    assert params["regime_names"] == ["bull", "bear", "sideways"]
    assert params["drifts"] == [0.002, -0.002, 0.0]
    assert params["vols"] == [0.01, 0.01, 0.01]
    transition = np.asarray(params["transition"])
    assert isinstance(params["transition"], list) and transition.shape == (3, 3)
    np.testing.assert_allclose(np.diag(transition), 1 - 1 / 200)
    np.testing.assert_allclose(transition.sum(axis=1), 1.0)
    initial = np.asarray(params["initial_distribution"])
    np.testing.assert_allclose(initial @ transition, initial)  # stationary by default
    mr = generate_market("mean_reversion", n_bars=10, seed=0).params
    assert {"theta", "mu", "sigma"} <= set(mr)


@pytest.mark.parametrize("mean_duration", [50.0, 200.0])
def test_regimes_persist_for_mean_duration(mean_duration: float) -> None:
    market = generate_market("regime", n_bars=200_000, seed=3, mean_duration=mean_duration)
    changes = np.flatnonzero(np.diff(market.regime))
    runs = np.diff(changes)  # complete runs only
    assert abs(runs.mean() - mean_duration) < 0.1 * mean_duration
    np.testing.assert_allclose(np.bincount(market.regime) / market.regime.size, 1 / 3, atol=0.05)


def test_regime_returns_follow_the_regime_drift_and_vol(
    long_regime_market: SyntheticMarket,
) -> None:
    market = long_regime_market
    returns = _log_returns(market)[1:]
    regime = market.regime[1:]
    drifts = np.asarray(market.params["drifts"])
    for k, drift in enumerate(drifts):
        r = returns[regime == k]
        assert abs(r.mean() - drift) < 4 * 0.01 / math.sqrt(r.size)
        assert abs(r.std() - 0.01) < 0.0003
    # The overnight gap is small and zero-mean; the intraday part carries the rest.
    frame = market.frame
    gap = np.log(frame["open"].to_numpy()[1:] / frame["close"].to_numpy()[:-1])
    assert abs(gap.std() - 0.1 * 0.01) < 0.00005
    assert abs(gap.mean()) < 4 * 0.001 / math.sqrt(gap.size)


def test_custom_regime_transition_is_used() -> None:
    transition = [[0.9, 0.1], [0.2, 0.8]]
    market = generate_market(
        "regime", n_bars=50_000, seed=1, drifts=[0.001, -0.001], vols=0.02, transition=transition
    )
    assert market.params["transition"] == transition
    assert market.params["vols"] == [0.02, 0.02]
    assert market.params["regime_names"] == ["regime_0", "regime_1"]
    # Stationary distribution of this chain is (2/3, 1/3).
    assert abs((market.regime == 0).mean() - 2 / 3) < 0.03


# ----------------------------------------------------------------------------- filters


def test_filter_is_causal() -> None:
    market = generate_market("regime", n_bars=400, seed=5)
    returns = _log_returns(market)
    posterior = hmm_forward_filter(returns, market.params)
    t = 200
    perturbed = returns.copy()
    perturbed[t + 1 :] += np.random.default_rng(0).normal(0.0, 0.05, perturbed.size - t - 1)
    posterior_perturbed = hmm_forward_filter(perturbed, market.params)
    np.testing.assert_array_equal(posterior[: t + 1], posterior_perturbed[: t + 1])
    assert not np.allclose(posterior[t + 1 :], posterior_perturbed[t + 1 :])


def test_filter_rows_are_distributions_and_recover_the_regime(
    long_regime_market: SyntheticMarket,
) -> None:
    market = long_regime_market
    posterior = hmm_forward_filter(_log_returns(market), market.params)
    assert posterior.shape == (len(market.frame), 3)
    assert np.all(posterior >= 0)
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0, atol=1e-12)
    # The argmax of the causal posterior is the Bayes-optimal classifier; at the default signal
    # to noise (drift 0.2 vol, bull vs sideways is slow to tell apart) it scores ~0.66-0.71,
    # against 0.36 for always guessing the most frequent regime.
    accuracy = (posterior.argmax(axis=1) == market.regime).mean()
    assert accuracy > 0.6
    # The direction of the forecast is right most of the time in bull and bear regimes.
    expected = regime_expected_return(posterior, market.params)
    drift = np.asarray(market.params["drifts"])[market.regime]
    trending = drift != 0
    assert (np.sign(expected[trending]) == np.sign(drift[trending])).mean() > 0.85


def test_filter_is_near_perfect_on_a_well_separated_market() -> None:
    market = generate_market("regime", n_bars=20_000, seed=2, drifts=[0.01, -0.01, 0.0])
    posterior = hmm_forward_filter(_log_returns(market), market.params)
    assert (posterior.argmax(axis=1) == market.regime).mean() > 0.9


def test_windowed_filter_reads_the_newest_bars_only(long_regime_market: SyntheticMarket) -> None:
    market = long_regime_market
    returns = _log_returns(market)
    full = hmm_forward_filter(returns, market.params)
    windowed = hmm_forward_filter(returns, market.params, window=20)
    t = 5000
    alone = hmm_forward_filter(returns[t - 19 : t + 1], market.params)[-1]
    np.testing.assert_allclose(windowed[t], alone, rtol=0, atol=1e-12)
    perturbed = returns.copy()
    perturbed[: t - 19] += 0.05  # the past beyond the window does not matter
    np.testing.assert_allclose(
        hmm_forward_filter(perturbed, market.params, window=20)[t], windowed[t], rtol=0, atol=1e-12
    )
    # 20 bars tell the regime less often than the whole history
    hits = (windowed.argmax(axis=1) == market.regime).mean()
    assert 0.3 < hits < (full.argmax(axis=1) == market.regime).mean() - 0.05
    np.testing.assert_array_equal(
        hmm_forward_filter(returns, market.params, window=len(returns)), full
    )


def test_filter_treats_nan_as_missing() -> None:
    params = generate_market("regime", n_bars=1, seed=0).params
    posterior = hmm_forward_filter(np.array([np.nan, 0.03, np.nan]), params)
    np.testing.assert_allclose(posterior[0], params["initial_distribution"])
    np.testing.assert_allclose(posterior[2], posterior[1] @ np.asarray(params["transition"]))
    assert posterior[1].argmax() == 0  # a +3 sigma return points to bull


def test_regime_expected_return_is_posterior_transition_drift() -> None:
    params = generate_market("regime", n_bars=1, seed=0).params
    transition = np.asarray(params["transition"])
    drifts = np.asarray(params["drifts"])
    expected = regime_expected_return(np.eye(3), params)
    np.testing.assert_allclose(expected, transition @ drifts, atol=1e-18)
    assert expected[0] > 0 > expected[1]
    assert expected[2] == 0.0  # symmetric neighbours: exactly no forecast in sideways


def test_bayes_filter_positions_accepts_market_or_log_close() -> None:
    market = generate_market("regime", n_bars=2_000, seed=4)
    log_close = np.log(market.frame["close"].to_numpy())
    positions = bayes_filter_positions(market, band=0.0005)
    np.testing.assert_array_equal(
        positions, bayes_filter_positions((log_close, market.params), band=0.0005)
    )
    assert set(np.unique(positions)) <= {-1.0, 0.0, 1.0}
    assert positions[0] == 0.0  # no information before the first return


def test_ou_expected_return_reverts_toward_mu() -> None:
    market = generate_market("mean_reversion", n_bars=50_000, seed=0, theta=0.05)
    mu = market.params["mu"]
    log_close = np.log(market.frame["close"].to_numpy())
    expected = ou_expected_return(log_close, market.params)
    gap_from_mean = log_close - mu
    assert np.all(np.sign(expected) == -np.sign(gap_from_mean))
    # Realised next-bar returns confirm it: regression slope on (mu - x) is 1 - exp(-theta).
    next_return = np.diff(log_close)
    slope = np.polyfit(-gap_from_mean[:-1], next_return, 1)[0]
    assert abs(slope - (1 - math.exp(-0.05))) < 0.01


# ----------------------------------------------------------------------------- bad input


def test_unknown_kind_lists_the_valid_kinds() -> None:
    with pytest.raises(ValueError, match="kind 'brownian'") as info:
        generate_market("brownian")
    assert all(kind in str(info.value) for kind in SYNTHETIC_KINDS)


@pytest.mark.parametrize(
    ("kind", "kwargs", "name"),
    [
        ("gbm", {"theta": 0.1}, "theta"),
        ("regime", {"vol": 0.01}, "vol"),
        ("gbm", {"vol": -0.01}, "vol"),
        ("gbm", {"n_bars": 0}, "n_bars"),
        ("gbm", {"seed": -1}, "seed"),
        ("gbm", {"seed": 1.5}, "seed"),
        ("gbm", {"freq": "not-a-freq"}, "freq"),
        ("gbm", {"initial_price": 0.0}, "initial_price"),
        ("regime", {"mean_duration": 0.5}, "mean_duration"),
        ("regime", {"vols": [0.01, -0.01, 0.01]}, "vols"),
        ("regime", {"drifts": [0.001, 0.0], "vols": [0.01, 0.01, 0.01]}, "drifts"),
        ("regime", {"transition": [[0.5, 0.6], [0.5, 0.5]], "drifts": [0, 0]}, "transition"),
        ("regime", {"transition": [[0.5, 0.5], [0.5, 0.5]]}, "transition"),
        ("regime", {"mean_duration": 50, "transition": np.eye(3).tolist()}, "mean_duration"),
        ("regime", {"initial_distribution": [1.0, 0.0]}, "initial_distribution"),
        ("mean_reversion", {"theta": 0.0}, "theta"),
        ("mean_reversion", {"sigma": float("nan")}, "sigma"),
    ],
)
def test_bad_parameter_raises_value_error_naming_it(kind: str, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        generate_market(kind, **{"n_bars": 10, **kwargs})


def test_filters_reject_wrong_params() -> None:
    gbm = generate_market("gbm", n_bars=10, seed=0)
    with pytest.raises(ValueError, match="regime"):
        hmm_forward_filter(np.zeros(10), gbm.params)
    with pytest.raises(ValueError, match="vols"):
        hmm_forward_filter(np.zeros(10), {"transition": [[1.0, 0.0], [0.0, 1.0]], "drifts": [0, 0]})
    with pytest.raises(ValueError, match="log_returns"):
        hmm_forward_filter(np.array([0.0, np.inf]), generate_market(n_bars=1).params)
    with pytest.raises(ValueError, match="posterior"):
        regime_expected_return(np.ones((4, 2)), generate_market(n_bars=1).params)
    with pytest.raises(ValueError, match="mean_reversion"):
        ou_expected_return(np.zeros(3), gbm.params)
