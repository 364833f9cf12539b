"""Hindsight bounds: the best stock and the best constant rebalanced portfolio."""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.policies.portfolio import BCRP, UCRP, BestStock, olps_wealth, wealth_path


def _relatives(seed=0, n=200, m=3):
    rng = np.random.default_rng(seed)
    return np.exp(rng.normal([0.001, 0.0, -0.0005][:m], 0.02, size=(n, m)))


def test_best_stock_holds_the_asset_that_grew_most():
    x = np.array([[1.0, 1.0, 1.0], [1.5, 1.2, 0.5], [0.9, 1.2, 3.0]])  # growth 1.35, 1.44, 1.5
    path = BestStock().weight_path(x)
    np.testing.assert_array_equal(path, np.tile([0.0, 0.0, 1.0], (4, 1)))
    assert olps_wealth(BestStock(), x) == pytest.approx(1.5)


def test_bcrp_beats_every_constant_portfolio_on_a_grid():
    x = _relatives()
    best = olps_wealth(BCRP(), x)
    for b0 in np.linspace(0, 1, 11):
        for b1 in np.linspace(0, 1 - b0, 5):
            b = np.array([b0, b1, 1 - b0 - b1])
            assert wealth_path(np.tile(b, (len(x), 1)), x)[-1] <= best * (1 + 1e-10)
    assert best >= olps_wealth(UCRP(), x) and best >= max(np.prod(x, axis=0)) * (1 - 1e-10)


def test_bounds_use_the_future():
    assert BCRP.uses_future and BestStock.uses_future and not UCRP.uses_future


def test_nyse_o_bcrp_matches_universal_portfolios():
    """universal-portfolios 0.4.17 gives 248.50357; its SLSQP stops a little short of the
    optimum (ours, with the exact gradient, is 248.50369: 4.8e-7 higher)."""
    from quantgym.envs.portfolio import load_portfolio_sample
    from quantgym.policies.portfolio import price_relatives

    x = price_relatives(load_portfolio_sample("nyse_o").to_numpy())
    wealth = olps_wealth(BCRP(), x)
    assert wealth == pytest.approx(248.50357002423158, rel=1e-6)
    assert wealth >= 248.50357002423158
