"""Classical allocation on rolling windows (skfolio): weights, causality, missing library."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from quantgym.policies.portfolio.allocation import (
    ALLOCATION_METHODS,
    RollingAllocation,
    allocate,
    require_skfolio,
)

pytest.importorskip("skfolio")


def _returns(seed=0, n=250, vols=(0.01, 0.02, 0.03, 0.015)):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0005, vols, size=(n, len(vols)))


@pytest.mark.parametrize("method", ALLOCATION_METHODS)
def test_weights_are_long_only_and_fully_invested(method):
    w = allocate(method, _returns())
    assert w.shape == (4,) and (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=1e-6)


def test_min_variance_matches_the_closed_form():
    r = _returns()
    inv = np.linalg.solve(np.cov(r, rowvar=False), np.ones(4))
    expected = inv / inv.sum()  # all positive here: the long-only constraint is slack
    assert (expected > 0).all()
    np.testing.assert_allclose(allocate("min_variance", r), expected, atol=1e-4)


def test_mean_variance_is_cash_when_no_asset_has_a_positive_mean():
    r = -np.abs(_returns())
    np.testing.assert_array_equal(allocate("mean_variance", r), np.zeros(4))
    w = allocate("mean_variance", r, objective="utility", risk_aversion=5.0)
    assert w.sum() == pytest.approx(1.0, abs=1e-6)


def _panel(seed=0, n=300):
    relatives = np.vstack([np.ones((1, 4)), 1.0 + _returns(seed, n - 1)])
    tradable = np.ones((n, 4), dtype=bool)
    tradable[:150, 3] = False  # asset 3 lists at bar 150
    return relatives, tradable, np.array([0, 0, 0, 150])


@pytest.mark.parametrize("method", ALLOCATION_METHODS)
def test_rolling_weights_are_causal(method):
    relatives, tradable, first = _panel()
    changed = relatives.copy()
    changed[201:] = 1.0 + _returns(9, 99)
    a = RollingAllocation(method, lookback=60)
    b = RollingAllocation(method, lookback=60)
    for bar in (100, 180, 200):
        np.testing.assert_array_equal(
            a.weights_at(relatives, tradable, first, bar),
            b.weights_at(changed, tradable, first, bar),
        )


def test_rolling_eligibility_and_warm_up():
    relatives, tradable, first = _panel()
    alloc = RollingAllocation("hrp", lookback=60)
    np.testing.assert_allclose(alloc.weights_at(relatives, tradable, first, 30), [1 / 3] * 3 + [0])
    assert alloc.weights_at(relatives, tradable, first, 180)[3] == 0.0  # listed < 60 bars ago
    assert alloc.weights_at(relatives, tradable, first, 260)[3] > 0.0


def test_missing_skfolio_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "skfolio", None)
    monkeypatch.setitem(sys.modules, "skfolio.optimization", None)
    with pytest.raises(ImportError, match=r"quantgym\[portfolio\]"):
        require_skfolio()
    with pytest.raises(ImportError, match="portfolio"):
        allocate("hrp", _returns())


@pytest.mark.parametrize(
    "make",
    [
        lambda: allocate("kelly", _returns()),
        lambda: allocate("hrp", _returns()[:1]),
        lambda: allocate("mean_variance", _returns(), objective="sortino"),
        lambda: RollingAllocation("hrp", lookback=1),
        lambda: RollingAllocation("nope"),
    ],
)
def test_bad_input_is_refused(make):
    with pytest.raises(ValueError):
        make()
