"""OLPS algorithms: hand-worked updates, the step convention and simplex constraints."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quantgym.policies.portfolio import (
    CORN,
    EG,
    OLMAR,
    ONS,
    PAMR,
    UBAH,
    UCRP,
    Anticor,
    olps_wealth,
    price_relatives,
)

# three periods after the dummy first relative x_0 = 1 (a series read from prices)
X = np.array([[1.0, 1.0], [2.0, 1.0], [0.5, 1.0], [1.0, 3.0]])


def test_ucrp_wealth_by_hand():
    # 1/2 each every period: (2 + 1)/2 * (0.5 + 1)/2 * (1 + 3)/2 = 1.5 * 0.75 * 2
    assert olps_wealth(UCRP(), X) == pytest.approx(2.25, rel=1e-15)


def test_ubah_wealth_by_hand_and_drifting_weights():
    # half in each, never rebalanced: (2 * 0.5 * 1 + 1 * 1 * 3) / 2
    assert olps_wealth(UBAH(), X) == pytest.approx(2.0, rel=1e-15)
    path = UBAH().weight_path(X)
    np.testing.assert_allclose(path[2], [2 / 3, 1 / 3])  # after x_1 = (2, 1)


def test_eg_multiplicative_update_by_hand():
    b = EG(eta=0.05).step(np.array([2.0, 1.0]), np.array([0.5, 0.5]), X[:2])
    expected = np.array([math.exp(0.05 * 2 / 1.5), math.exp(0.05 * 1 / 1.5)])
    np.testing.assert_allclose(b, expected / expected.sum(), rtol=1e-15)
    np.testing.assert_allclose(EG(eta=0.0).weight_path(X)[-1], [0.5, 0.5])


def test_olmar_update_by_hand():
    history = np.array([[1.0, 1.0], [1.25, 0.8], [0.8, 1.25]])
    algo = OLMAR(window=2, eps=1.02)
    # predicted relative: mean(p_(t-1), p_t) / p_t = (1 + 1 / x_t) / 2 = (1.125, 0.9)
    np.testing.assert_allclose(algo.predict(history), [1.125, 0.9])
    # lam = (1.02 - 1.0125) / (2 * 0.1125^2) = 0.2963; b = 1/2 +- lam * 0.1125
    b = algo.step(history[-1], np.array([0.5, 0.5]), history)
    np.testing.assert_allclose(b, [0.5 + 1 / 30, 0.5 - 1 / 30], rtol=1e-12)
    assert b @ algo.predict(history) == pytest.approx(1.02)
    # a large eps pushes the step off the simplex: projected onto the better vertex
    np.testing.assert_allclose(
        OLMAR(window=2, eps=10).step(None, np.array([0.5, 0.5]), history), [1, 0]
    )


def test_olmar_warm_up_predicts_the_price_since_the_start():
    history = np.array([[1.0, 1.0], [1.1, 0.9], [1.1, 0.9]])
    np.testing.assert_allclose(OLMAR(window=5).predict(history), [1.21, 0.81])
    path = OLMAR().weight_path(X)
    np.testing.assert_allclose(path[1], [0.5, 0.5])  # min_history = 1: no step on x_0


@pytest.mark.parametrize(
    ("variant", "C", "expected"),
    [
        (0, 500.0, [0.375, 0.625]),  # lam = 0.05 / 0.08
        (1, 0.1, [0.48, 0.52]),  # lam = min(C, 0.625)
        (2, 500.0, [0.5 - 0.2 * 0.05 / 0.081, 0.5 + 0.2 * 0.05 / 0.081]),  # + 1/(2C)
    ],
)
def test_pamr_update_by_hand(variant, C, expected):
    b = PAMR(eps=0.95, C=C, variant=variant).step(np.array([1.2, 0.8]), np.array([0.5, 0.5]), None)
    np.testing.assert_allclose(b, expected, rtol=1e-12)


def test_pamr_is_passive_below_eps_and_on_equal_moves():
    b0 = np.array([0.3, 0.7])
    np.testing.assert_array_equal(PAMR(eps=1.5).step(np.array([1.2, 0.8]), b0, None), b0)
    np.testing.assert_allclose(PAMR(eps=0.5).step(np.array([1.1, 1.1]), b0, None), b0)


def test_ons_mixes_towards_uniform_with_eta():
    np.testing.assert_allclose(ONS(eta=1.0).weight_path(X)[-1], [0.5, 0.5])


ALGORITHMS = [UBAH(), UCRP(), EG(), OLMAR(), PAMR(), PAMR(variant=1), PAMR(variant=2), ONS(),
              Anticor(window=3), CORN(window=3)]  # fmt: skip


@settings(max_examples=12, deadline=None)
@given(
    arrays(
        np.float64, st.tuples(st.integers(2, 14), st.integers(2, 4)), elements=st.floats(0.5, 2.0)
    ),
    st.sampled_from(ALGORITHMS),
)
def test_weights_always_lie_on_the_simplex(x, algorithm):
    path = algorithm.weight_path(x)
    assert path.shape == (x.shape[0] + 1, x.shape[1])
    assert (path >= -1e-12).all()
    total = path.sum(axis=1)
    assert (total <= 1 + 1e-9).all()
    if not isinstance(algorithm, CORN):  # CORN may hold cash, as universal-portfolios' does
        np.testing.assert_allclose(total, 1.0, atol=1e-9)


def test_olmar_with_every_asset_predicted_alike_keeps_its_weights():
    """Equal relatives give equal predictions: OLMAR has no direction to move in. The mean's
    rounding (~1e-16) once became lam ~1e33 and weights that summed to 0 (found by the
    property test above)."""
    path = OLMAR().weight_path(np.full((6, 3), 1.6875))
    np.testing.assert_allclose(path, np.full((7, 3), 1 / 3), rtol=0, atol=1e-12)


def test_weight_path_is_causal():
    rng = np.random.default_rng(3)
    x = np.exp(rng.normal(0, 0.03, size=(40, 3)))
    changed = x.copy()
    changed[25:] = np.exp(rng.normal(0, 0.03, size=(15, 3)))
    for algorithm in ALGORITHMS:
        np.testing.assert_array_equal(
            algorithm.weight_path(x)[:26], algorithm.weight_path(changed)[:26]
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda: EG(eta=-1.0),
        lambda: ONS(delta=0.0),
        lambda: ONS(eta=2.0),
        lambda: OLMAR(window=1),
        lambda: OLMAR(eps=0.5),
        lambda: PAMR(variant=3),
        lambda: PAMR(eps=-1.0),
    ],
)
def test_bad_parameters_are_refused(make):
    with pytest.raises(ValueError):
        make()


# universal-portfolios 0.4.17's final wealth on NYSE(O) with its defaults and no fees
# (benchmarks/olps_exactness.py reruns it side by side in the library's own venv)
NYSE_O_REFERENCE = [
    (UCRP(), 26.677762504313133),
    (UBAH(), 14.211137593562762),
    (EG(), 26.702839934667324),
    (OLMAR(), 8.216760252857275e16),
    (PAMR(), 5086909007825900.0),
]


@pytest.fixture(scope="module")
def nyse_o():
    from quantgym.envs.portfolio import load_portfolio_sample

    return price_relatives(load_portfolio_sample("nyse_o").to_numpy())


@pytest.mark.parametrize(("algorithm", "reference"), NYSE_O_REFERENCE)
def test_nyse_o_wealth_matches_universal_portfolios(nyse_o, algorithm, reference):
    assert olps_wealth(algorithm, nyse_o) == pytest.approx(reference, rel=1e-6)
