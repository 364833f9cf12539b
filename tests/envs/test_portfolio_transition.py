"""portfolio_step through PortfolioEnv: hand-computed examples, each to the cent.

The panel is ``hand_panel()`` (two assets, six bars of round prices; see its docstring). Every
expected number below is worked out by hand in the comment beside it.
"""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.envs import PortfolioEnv
from tests.envs.portfolio_frames import blank_rows, hand_panel

CENT = 0.005


def make(frame=None, **kwargs):
    kwargs.setdefault("commission", 0.001)
    kwargs.setdefault("slippage", 0.0005)
    env = PortfolioEnv(
        hand_panel() if frame is None else frame, features=(), window_size=1,
        episode_length=None, **kwargs,
    )  # fmt: skip
    start = kwargs.get("start_bar", 0)
    env.reset(options={"start": start})
    return env


def test_commission_and_slippage_from_cash():
    # V = 10,000 at the open of bar 1; targets A 60%, B 20%; c = 0.0015 on the asset legs only:
    # V' = V - c (0.6 V' + 0.2 V')  =>  V' = 10,000 / 1.0012 = 9,988.0144
    # traded 0.8 V' = 7,990.41: fees 7.99, slippage 3.995; units A 59.928 @100, B 39.952 @50
    # close of bar 1: cash 1,997.60 + 59.928 x 110 + 39.952 x 45 = 10,387.53
    env = make()
    _, reward, _, _, info = env.step(np.array([0.6, 0.2], np.float64))
    assert info["fees"] == pytest.approx(7.99, abs=CENT)
    assert info["slippage_cost"] == pytest.approx(4.00, abs=CENT)
    np.testing.assert_allclose(info["trades"], [5992.81, 1997.60], atol=CENT)
    assert info["equity"] == pytest.approx(10387.53, abs=CENT)
    assert info["cash_weight"] * info["equity"] == pytest.approx(1997.60, abs=CENT)
    assert reward == pytest.approx(np.log(10387.534958 / 10000), abs=1e-9)
    assert info["turnover"] == pytest.approx(0.799041, abs=1e-6)


def test_rebalance_between_assets_solves_the_piecewise_linear_value():
    # open of bar 2: A 59.928 x 105 = 6,292.45, B 39.952 x 48 = 1,917.70, cash 1,997.60: V = 10,207.75
    # targets 30% / 30%: A sells, B buys, so V' = V - c (h_A - 0.3 V') - c (0.3 V' - h_B)
    # = V - c (h_A - h_B) = 10,207.75 - 0.0015 x 4,374.75 = 10,201.19
    # trades A -3,232.09, B +1,142.66; fees 4.37, slippage 2.19
    # close of bar 2: 0.4 V' cash + 0.3 V' / 105 x 104 + 0.3 V' / 48 x 50 = 10,299.56
    env = make()
    env.step(np.array([0.6, 0.2], np.float64))
    *_, info = env.step(np.array([0.3, 0.3], np.float64))
    np.testing.assert_allclose(info["trades"], [-3232.09, 1142.66], atol=CENT)
    assert info["fees"] == pytest.approx(4.37, abs=CENT)
    assert info["slippage_cost"] == pytest.approx(2.19, abs=CENT)
    assert info["equity"] == pytest.approx(10299.56, abs=CENT)


def test_no_trade_band_keeps_holdings_within_the_band():
    # after the first step the weights at the open of bar 2 are A 6,292.45 / 10,207.75 = 0.6164
    # and B 0.1879; targets 0.62 / 0.20 are within the 0.05 band: no order, no cost, and the
    # account is marked at the close of bar 2: 1,997.60 + 59.928 x 104 + 39.952 x 50 = 10,227.73
    env = make(rebalance_band=0.05)
    env.step(np.array([0.6, 0.2], np.float64))
    *_, info = env.step(np.array([0.62, 0.2], np.float64))
    assert info["fees"] == 0.0 and info["slippage_cost"] == 0.0
    np.testing.assert_array_equal(info["trades"], 0.0)
    assert info["equity"] == pytest.approx(10227.73, abs=CENT)
    # a target outside the band trades that asset only: B from 0.188 to 0.30
    *_, info = env.step(np.array([0.62, 0.30], np.float64))
    assert info["trades"][0] == 0.0 and info["trades"][1] > 0.0


def test_borrow_on_short_value_at_the_close():
    # long A 50%, short B 50% with no trading costs: 50 A @100, -100 B @50, cash 10,000
    # close of bar 1: borrow 0.001 x 100 x 45 = 4.50; equity 10,000 + 5,500 - 4,500 - 4.50
    env = make(weights="long_short", commission=0.0, slippage=0.0, borrow_rate=0.001)
    *_, info = env.step(np.array([0.5, -0.5], np.float64))
    assert info["borrow_cost"] == pytest.approx(4.50, abs=CENT)
    assert info["equity"] == pytest.approx(10995.50, abs=CENT)


def test_financing_on_borrowed_cash_at_the_close():
    # long A 100% and B 50% (gross 1.5 allowed): 100 A @100, 100 B @50, cash -5,000
    # close of bar 1: financing 0.001 x 5,000 = 5.00; equity -5,005 + 11,000 + 4,500 = 10,495.00
    env = make(weights="long_short", max_gross=1.5, max_net=1.5, commission=0.0, slippage=0.0,
               financing_rate=0.001)  # fmt: skip
    *_, info = env.step(np.array([1.0, 0.5], np.float64))
    assert info["financing_cost"] == pytest.approx(5.00, abs=CENT)
    assert info["equity"] == pytest.approx(10495.00, abs=CENT)


def test_delisted_asset_is_sold_at_its_last_close_with_costs():
    # B's data ends at bar 3. Decide at bar 2: all in B. Open of bar 3 (B 50):
    # V' = 10,000 / 1.0015 = 9,985.02, 199.7004 B. Close of bar 3 (B 40): marked 7,988.02, then
    # sold at that close paying 0.0015 x 7,988.02 = 11.98: equity 7,976.04 (all cash).
    # fees 9.99 + 7.99 = 17.97, slippage 4.99 + 3.99 = 8.99 (0.0005 x 9,985.02 + 0.0005 x 7,988.02)
    frame = blank_rows(hand_panel(), "B", [4, 5])
    env = make(frame)
    env.reset(options={"start": 2})
    obs, _, _, _, info = env.step(np.array([0.0, 1.0], np.float64))
    assert info["equity"] == pytest.approx(7976.04, abs=CENT)
    assert info["fees"] == pytest.approx(17.97, abs=CENT)
    assert info["slippage_cost"] == pytest.approx(8.99, abs=CENT)
    assert info["cash_weight"] == pytest.approx(1.0)
    np.testing.assert_array_equal(env.units, 0.0)
    assert info["turnover"] == pytest.approx((9985.02 + 7988.02) / 10000, abs=1e-6)
    mask = env.layout.split(obs)["mask"]
    np.testing.assert_array_equal(mask, [1.0, 0.0])  # delisted: never tradable again
    *_, info = env.step(np.array([0.0, 1.0], np.float64))  # its weight is forced to 0
    assert info["fees"] == 0.0 and info["equity"] == pytest.approx(7976.04, abs=CENT)


def test_asset_not_listed_yet_gets_weight_zero():
    frame = blank_rows(hand_panel(), "A", [0, 1])
    env = make(frame)
    obs, *_ = env.step(np.array([1.0, 0.0], np.float64))  # A is not tradable at bar 0
    assert env.equity == 10_000.0 and env.cash == 10_000.0
    np.testing.assert_array_equal(env.layout.split(obs)["mask"], [0.0, 1.0])
    env.step(np.array([1.0, 0.0], np.float64))  # bar 1: still not listed (first bar is 2)
    assert env.equity == 10_000.0
    *_, info = env.step(np.array([1.0, 0.0], np.float64))  # bar 2: listed, fills at open of 3
    assert info["weights"][0] > 0.99


def test_missing_bar_keeps_the_holding_marked_at_the_last_close():
    # all in B at the open of bar 1 (200 B @50, no costs); B has no bar 2. Decide at bar 1 to
    # move into A: B cannot be sold at bar 2, and with everything in B there is no cash for A
    # (long-only never borrows). Close of bar 2: B marked at its last close 45: 9,000, not 50.
    frame = blank_rows(hand_panel(), "B", [2])
    env = make(frame, commission=0.0, slippage=0.0)
    env.step(np.array([0.0, 1.0], np.float64))
    obs, _, _, _, info = env.step(np.array([1.0, 0.0], np.float64))
    assert info["equity"] == pytest.approx(9000.0, abs=CENT)
    np.testing.assert_allclose(env.units, [0.0, 200.0])
    np.testing.assert_array_equal(env.layout.split(obs)["mask"], [1.0, 0.0])
    assert info["cash_weight"] == pytest.approx(0.0, abs=1e-12)
    env.step(np.array([1.0, 0.0], np.float64))  # bar 2: B untradable, kept; close 3: B 40
    assert env.equity == pytest.approx(8000.0, abs=CENT)
    *_, info = env.step(np.array([1.0, 0.0], np.float64))  # bar 3: B sold at the open of 4
    np.testing.assert_allclose(env.units, [80.0, 0.0])  # 8,000 / 100
    assert info["equity"] == pytest.approx(8000.0, abs=CENT)


def test_close_only_panel_fills_at_the_previous_close():
    # close-only: the open of bar t+1 is the close of bar t, so with zero costs a step earns
    # exactly sum_i w_i close_i(t+1) / close_i(t)
    frame = hand_panel().xs("close", axis=1, level=1)
    env = make(frame, commission=0.0, slippage=0.0)
    *_, info = env.step(np.array([0.5, 0.5], np.float64))
    assert info["equity"] == pytest.approx(10_000 * (0.5 * 110 / 100 + 0.5 * 45 / 50), rel=1e-15)
    *_, info = env.step(np.array([0.25, 0.5], np.float64))
    expected = 10_000 * (0.5 * 1.1 + 0.5 * 0.9) * (0.25 * 104 / 110 + 0.5 * 50 / 45 + 0.25)
    assert info["equity"] == pytest.approx(expected, rel=1e-14)


def test_fixed_fee_per_order():
    # two orders from cash, fixed fee 2 each, no other cost: V' = 10,000 - 4 (the fixed fees
    # come out of the value first) and 0.5 V' goes into each asset
    env = make(commission=0.0, slippage=0.0, fixed_fee=2.0)
    *_, info = env.step(np.array([0.5, 0.5], np.float64))
    assert info["fees"] == pytest.approx(4.00, abs=CENT)
    np.testing.assert_allclose(info["trades"], [4998.0, 4998.0], atol=CENT)
