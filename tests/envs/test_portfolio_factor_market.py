"""The factor/regime market: determinism, published moments, and the exact regime filter."""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.envs.portfolio import (
    generate_factor_market,
    predictive_moments,
    regime_filter,
    regime_filter_update,
    regime_log_likelihoods,
    windowed_regime_filter,
)


@pytest.fixture(scope="module")
def market():
    return generate_factor_market(n_bars=6000, seed=4)


def test_same_seed_same_market_and_valid_bars(market):
    again = generate_factor_market(n_bars=6000, seed=4)
    np.testing.assert_array_equal(again.close, market.close)
    np.testing.assert_array_equal(again.regime, market.regime)
    assert not np.array_equal(generate_factor_market(n_bars=6000, seed=5).close, market.close)
    assert (market.low <= np.minimum(market.open, market.close)).all()
    assert (market.high >= np.maximum(market.open, market.close)).all()
    assert market.close.shape == (6000, 8) and market.params["assets"] == list(market.assets)


def test_published_means_and_covariances_match_the_generated_returns(market):
    returns = np.diff(np.log(market.close), axis=0)
    regime = market.regime[1:]
    means, cov = np.asarray(market.params["means"]), np.asarray(market.params["covariances"])
    for k in range(4):
        r = returns[regime == k]
        se = np.sqrt(np.diag(cov[k]) / len(r))
        np.testing.assert_array_less(np.abs(r.mean(axis=0) - means[k]), 5 * se)
        np.testing.assert_allclose(np.cov(r.T), cov[k], rtol=0.2, atol=2e-5)


def test_filter_finds_the_regime_and_its_batched_update_equals_the_loop(market):
    returns = np.diff(np.log(market.close), axis=0, prepend=np.nan)
    posterior = regime_filter(returns, market.params)
    assert (posterior.argmax(axis=1) == market.regime).mean() > 0.75  # chance: 0.25
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0)
    ll = regime_log_likelihoods(returns, market.params)
    np.testing.assert_array_equal(ll[0], 0.0)  # the NaN row carries no information
    transition = np.asarray(market.params["transition"])
    prior = np.tile(np.asarray(market.params["initial_distribution"]), (2, 1))
    for t in range(5):
        post, prior = regime_filter_update(prior, np.stack([ll[t], ll[t]]), transition)
        np.testing.assert_allclose(post[0], posterior[t], rtol=1e-12)


def test_filter_is_causal(market):
    returns = np.diff(np.log(market.close), axis=0, prepend=np.nan)
    full = regime_filter(returns, market.params)
    cut = regime_filter(returns[:1000], market.params)
    np.testing.assert_array_equal(cut, full[:1000])


def test_windowed_filter_is_the_filter_restarted_window_bars_back(market):
    returns = np.diff(np.log(market.close), axis=0, prepend=np.nan)
    params, full = market.params, regime_filter(returns, market.params)
    np.testing.assert_array_equal(windowed_regime_filter(returns, params, len(returns)), full)
    windowed = windowed_regime_filter(returns, params, 16)
    np.testing.assert_array_equal(windowed[:16], full[:16])  # windows that reach bar 0
    for t in (16, 17, 500, 5999):  # the filter run on the window's 16 bars alone
        alone = regime_filter(returns[t - 15 : t + 1], params)[-1]
        np.testing.assert_allclose(windowed[t], alone, rtol=0, atol=1e-12)
    # a short memory knows less: it names the regime less often than the whole history
    hits = (windowed.argmax(axis=1) == market.regime).mean()
    assert 0.25 < hits < (full.argmax(axis=1) == market.regime).mean()
    with pytest.raises(ValueError, match="window"):
        windowed_regime_filter(returns, params, 0)


def test_predictive_moments_of_a_certain_regime():
    m = generate_factor_market(n_bars=10, seed=0, mean_duration=1e9)  # regimes never switch
    one_hot = np.eye(4)[[1]]
    mean, cov = predictive_moments(one_hot, m.params)
    np.testing.assert_allclose(mean[0], m.params["means"][1], rtol=1e-6)
    np.testing.assert_allclose(cov[0], m.params["covariances"][1], rtol=1e-6, atol=1e-15)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"n_assets": 0}, "n_assets"), ({"n_sectors": 9}, "n_sectors"), ({"market_vol": [0.1]}, "market_vol"),
     ({"typo": 1}, "unknown parameter"), ({"mean_duration": 0.5}, "mean_duration"), ({"seed": -1}, "seed")],
)  # fmt: skip
def test_bad_parameters_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_factor_market(n_bars=10, **kwargs)
    with pytest.raises(ValueError, match="unknown multi-asset synthetic kind"):
        generate_factor_market("regime")
