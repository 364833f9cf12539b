"""Anticor and CORN: one step against universal-portfolios' loops and hand-made patterns."""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.policies.portfolio import CORN, Anticor
from quantgym.policies.portfolio.pattern import lagged_correlation, window_correlations


def _anticor_loops(history, w, last_b):
    """universal-portfolios' Python loops, written out for one step."""
    older, recent = history[-2 * w : -w], history[-w:]
    m = history.shape[1]
    corr = np.array(
        [[np.corrcoef(recent[:, i], older[:, j])[0, 1] for j in range(m)] for i in range(m)]
    )
    mu = recent.mean(axis=0)
    claim = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            if i != j and mu[i] > mu[j] and corr[i, j] > 0:
                claim[i, j] = corr[i, j] + max(0, -corr[i, i]) + max(0, -corr[j, j])
    transfer = np.zeros((m, m))
    for i in range(m):
        if claim[i].sum() > 0:
            transfer[i] = last_b[i] * claim[i] / claim[i].sum()
    return last_b + transfer.sum(axis=0) - transfer.sum(axis=1)


@pytest.mark.parametrize("seed", range(5))
def test_anticor_step_matches_the_reference_loops(seed):
    rng = np.random.default_rng(seed)
    history = np.exp(rng.normal(0, 0.02, size=(12, 4)))
    last_b = rng.dirichlet(np.ones(4))
    np.testing.assert_allclose(
        Anticor(window=4).step(history[-1], last_b, history),
        _anticor_loops(history, 4, last_b),
        atol=1e-12,
    )
    assert Anticor(window=7).step(history[-1], last_b, history) is last_b  # < 2 windows


def test_corn_follows_the_period_after_the_similar_window():
    # the last window (rows 3-4) repeats rows 0-1, which asset 0 followed by winning (row 2)
    history = np.array([[1.1, 0.9], [0.9, 1.1], [1.3, 0.8], [1.1, 0.9], [0.9, 1.1]])
    np.testing.assert_allclose(
        CORN(window=2, rho=0.99).step(history[-1], np.array([0.5, 0.5]), history), [1, 0], atol=1e-8
    )
    losing = history.copy()
    losing[2] = [0.9, 0.8]  # everything fell after the similar window: cash
    b = CORN(window=2, rho=0.99).step(losing[-1], np.array([0.5, 0.5]), losing)
    np.testing.assert_allclose(b, [0, 0], atol=1e-8)
    b = CORN(window=2, rho=0.99, allow_cash=False).step(losing[-1], np.array([0.5, 0.5]), losing)
    np.testing.assert_allclose(b, [1, 0], atol=1e-8)


def test_lagged_correlation_and_window_correlations():
    older = np.array([[1.0, 2.0], [2.0, 1.0], [3.0, 3.0]])
    recent = np.array([[2.0, 5.0], [4.0, 5.0], [6.0, 5.0]])
    corr = lagged_correlation(older, recent)
    assert corr[0, 0] == pytest.approx(1.0) and np.isnan(corr[0, 1])  # constant column
    history = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0], [2.0, 1.0]])
    np.testing.assert_allclose(window_correlations(history, 2), [1.0, -1.0])


def test_bad_parameters_are_refused():
    for make in (lambda: Anticor(window=1), lambda: CORN(rho=2.0), lambda: CORN(window=1)):
        with pytest.raises(ValueError):
            make()
