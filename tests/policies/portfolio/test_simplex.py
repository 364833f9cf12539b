"""Simplex projections and the log-optimal constant portfolio."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quantgym.policies.portfolio.simplex import (
    check_relatives,
    log_optimal_weights,
    norm_projection,
    simplex_projection,
)


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        ([0.5, 0.5], [0.5, 0.5]),
        ([2.0, 0.0], [1.0, 0.0]),
        ([0.6, 0.6, 0.1], [0.5, 0.5, 0.0]),  # threshold (1.2 - 1) / 2 = 0.1
        ([-1.0, -1.0, -1.0], [1 / 3, 1 / 3, 1 / 3]),
    ],
)
def test_simplex_projection_by_hand(y, expected):
    np.testing.assert_allclose(simplex_projection(np.array(y)), expected, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 12), elements=st.floats(-5, 5)))
def test_simplex_projection_is_on_the_simplex_and_closest(y):
    b = simplex_projection(y)
    assert (b >= 0).all() and b.sum() == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(0)
    others = rng.dirichlet(np.ones(y.size), size=50)
    assert np.linalg.norm(b - y) <= np.linalg.norm(others - y, axis=1).min() + 1e-12


def _kkt_gap(b, y, m):
    """Largest violation of the KKT conditions of min (b-y)'M(b-y) on the simplex."""
    g = m @ (b - y)
    support = b > 0
    lam = g[support].mean()
    equal = np.ptp(g[support])
    above = max(0.0, -(g[~support] - lam).min()) if (~support).any() else 0.0
    return max(equal, above) / max(1.0, abs(lam)), abs(b.sum() - 1.0)


@pytest.mark.parametrize("seed", range(8))
def test_norm_projection_satisfies_kkt(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 25))
    g = rng.normal(size=(50, n))
    m = g.T @ g / 50 * rng.uniform(0.1, 500) + np.eye(n)
    y = rng.normal(size=n) * rng.uniform(0.05, 2) + 1 / n
    b = norm_projection(y, m)
    gap, total = _kkt_gap(b, y, m)
    assert (b >= 0).all() and total < 1e-12 and gap < 1e-9


def test_norm_projection_in_the_identity_norm_is_the_euclidean_one():
    y = np.array([0.9, 0.4, -0.2, 0.1])
    np.testing.assert_allclose(norm_projection(y, np.eye(4)), simplex_projection(y), atol=1e-12)


def test_log_optimal_weights_by_hand():
    # symmetric pair: the optimum is 1/2 each; a dominant asset takes everything
    np.testing.assert_allclose(
        log_optimal_weights(np.array([[2.0, 0.5], [0.5, 2.0]])), [0.5, 0.5], atol=1e-7
    )
    np.testing.assert_allclose(log_optimal_weights(np.array([[1.2, 1.1]] * 3)), [1, 0], atol=1e-9)
    # two assets, x = (1.5, 1) then (0.5, 1): max log(1 + b/2) + log(1 - b/2) -> b = 0
    np.testing.assert_allclose(
        log_optimal_weights(np.array([[1.5, 1.0], [0.5, 1.0]])), [0, 1], atol=1e-7
    )


def test_log_optimal_weights_with_cash_hold_cash_when_everything_loses():
    b = log_optimal_weights(np.array([[0.9, 0.8], [0.95, 0.9]]), allow_cash=True)
    np.testing.assert_allclose(b, [0.0, 0.0], atol=1e-9)
    assert log_optimal_weights(np.array([[0.9, 0.8]])).sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "bad", [np.ones(3), np.array([[1.0, np.nan]]), np.array([[1.0, 0.0]]), np.ones((0, 2))]
)
def test_bad_relatives_are_refused(bad):
    with pytest.raises(ValueError, match="x"):
        check_relatives(bad)
