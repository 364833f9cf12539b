"""Price relatives and wealth with two-way proportional fees (the post-trade value solved exactly)."""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.policies.portfolio import UCRP, olps_wealth, price_relatives, wealth_path


def test_price_relatives_with_listing_and_gaps():
    close = np.array([[10.0, np.nan], [11.0, np.nan], [np.nan, 5.0], [12.1, 6.0], [13.31, np.nan]])
    x = price_relatives(close)
    expected = [[1, 1], [1.1, 1], [1, 1], [1.1, 1.2], [1.1, 1]]  # across the gap: 12.1 / 11
    np.testing.assert_allclose(x, expected, rtol=1e-15)


def test_zero_fee_wealth_is_the_product_of_portfolio_relatives_with_cash():
    x = np.array([[1.0, 1.0], [2.0, 0.5], [1.0, 1.5]])
    b = np.array([[0.5, 0.5], [0.25, 0.25], [0.0, 1.0]])  # half cash in period 1
    np.testing.assert_allclose(
        wealth_path(b, x), [1.0, 1.0, 1.0 * (0.5 + 0.5 + 0.125), 1.125 * 1.5]
    )


def test_two_way_fees_by_hand_to_the_cent():
    """10,000 in cash, 1% fee on buys and sells, 50/50 targets."""
    x = np.array([[1.1, 0.9], [1.0, 1.0]])
    b = np.full((2, 2), 0.5)
    value = wealth_path(b, x, fee=0.01) * 10_000
    # buy 50/50 from cash: V' = 10,000 - 0.01 V'  ->  9,900.99
    first = 10_000 / 1.01
    assert value[1] == pytest.approx(first, abs=0.005)  # the move nets to zero: 9,900.99
    # holdings 5,445.54 and 4,455.45; sell A and buy B: V' = V - 0.01 (5,445.54 - 4,455.45)
    assert value[1] == pytest.approx(9900.99, abs=0.005)
    assert value[2] == pytest.approx(first - 0.01 * (0.55 - 0.45) * first, abs=1e-9)
    assert round(value[2], 2) == 9891.09


def test_each_rebalance_solves_its_equation():
    rng = np.random.default_rng(1)
    x = np.exp(rng.normal(0, 0.05, size=(30, 4)))
    b = rng.dirichlet(np.ones(4), size=30) * rng.uniform(0.5, 1.0, size=(30, 1))
    fee = 0.003
    wealth = wealth_path(b, x, fee)
    holdings, value = np.zeros(4), 1.0
    for t in range(30):
        traded = wealth[t + 1] / (1 + (x[t] - 1) @ b[t])  # V' from the path
        assert traded == pytest.approx(
            value - fee * np.abs(b[t] * traded - holdings).sum(), rel=1e-13
        )
        holdings, value = b[t] * traded * x[t], wealth[t + 1]


def test_fees_lower_wealth_and_are_charged_on_both_sides():
    x = np.exp(np.random.default_rng(2).normal(0, 0.02, size=(100, 3)))
    assert olps_wealth(UCRP(), x, fee=0.001) < olps_wealth(UCRP(), x)
    # swap everything from A to B: sell 1 and buy 1 of value, both pay
    b = np.array([[1.0, 0.0], [0.0, 1.0]])
    after = wealth_path(b, np.ones((2, 2)), fee=0.01)
    assert after[1] == pytest.approx(1 / 1.01)
    assert after[2] == pytest.approx(after[1] * (1 - 0.01) / (1 + 0.01))


@pytest.mark.parametrize(
    ("weights", "fee", "match"),
    [
        (np.full((2, 2), 0.5), -0.1, "fee"),
        (np.full((2, 2), 0.5), 1.0, "fee"),
        (np.full((3, 2), 0.5), 0.0, "shape"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), 0.0, "non-negative"),
        (np.array([[np.nan, 0.5], [0.5, 0.5]]), 0.0, "finite"),
    ],
)
def test_bad_input_is_refused(weights, fee, match):
    with pytest.raises(ValueError, match=match):
        wealth_path(weights, np.ones((2, 2)), fee)


def test_bad_closes_and_algorithm_are_refused():
    with pytest.raises(ValueError, match="close"):
        price_relatives(np.array([[1.0, -2.0]]))
    with pytest.raises(ValueError, match="close"):
        price_relatives(np.ones(3))
    with pytest.raises(ValueError, match="algorithm"):
        olps_wealth("ucrp", np.ones((2, 2)))
