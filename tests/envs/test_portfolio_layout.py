"""PortfolioLayout: per-asset cost arrays, the observation table, episode bounds."""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.envs import MarketData, PortfolioEnv
from quantgym.envs.portfolio.config import PortfolioConfig
from quantgym.envs.portfolio.layout import PortfolioLayout
from quantgym.envs.slippage import SqrtImpactSlippage, VolatilitySlippage
from tests.envs.portfolio_frames import blank_rows, wide_panel


def layout(frame, **kwargs):
    return PortfolioLayout.build(PortfolioConfig(data=frame, features=(), window_size=2, **kwargs))


def test_slippage_models_run_on_each_assets_own_bars():
    frame = blank_rows(wide_panel(80, 2), "A1", [30, 31])
    spec = {"model": "sqrt_impact", "half_spread": 1e-4, "impact": 0.7, "window": 10}
    lay = layout(frame, slippage=spec)
    own = MarketData.from_source(frame["A1"].drop(index=frame.index[[30, 31]]), features=["close"])
    model = SqrtImpactSlippage(1e-4, 0.7, 10)
    rows = np.flatnonzero(lay.panel.present[:, 1])
    np.testing.assert_allclose(lay.impact_coef[rows, 1], model.impact_coefficients(own), rtol=1e-12)
    np.testing.assert_array_equal(lay.slippage_rates[rows, 1], 1e-4)
    assert lay.slippage_rates[30, 1] == 0.0 and lay.impact_coef[30, 1] == 0.0  # no bar, no order
    vol = layout(frame, slippage="volatility")
    np.testing.assert_allclose(
        vol.slippage_rates[rows, 1], VolatilitySlippage().rates(own), rtol=1e-12
    )
    per_asset = layout(frame, slippage=[0.001, 0.002], borrow_rate=[0.0, 1e-4])
    np.testing.assert_array_equal(per_asset.slippage_rates[5], [0.001, 0.002])
    np.testing.assert_array_equal(per_asset.borrow_rate, [0.0, 1e-4])


def test_observation_table_rows_equal_the_observation_built_from_the_panel():
    env = PortfolioEnv(
        wide_panel(120, 3), features=("log_return",), normalize_window=10, window_size=4
    )
    lay = env.layout
    table = lay.observation_table()
    windows = lay.panel.window_view(4)
    t = np.arange(lay.first_bar, len(lay.panel) - 1)
    weights = np.random.default_rng(0).uniform(0, 0.3, (t.size, 3))
    cash = 1.0 - weights.sum(axis=1)
    np.testing.assert_array_equal(
        lay.observe(t, weights, cash, windows, table), lay.observe(t, weights, cash, windows)
    )
    assert lay.observation_table(max_bytes=10) is None


def test_delisting_marks_the_last_row_of_assets_that_end_early():
    frame = blank_rows(wide_panel(40, 3), "A2", slice(25, 40))
    lay = layout(frame)
    assert lay.delisting[24, 2] and lay.delisting.sum() == 1


def test_episode_bounds_draw_a_full_episode_or_take_the_given_start():
    lay = layout(wide_panel(200, 2), episode_length=50)
    rng = np.random.default_rng(0)
    for _ in range(20):
        start, end = lay.episode_bounds(rng)
        assert lay.first_bar <= start and end == start + 50 <= lay.panel.last_bar
    frame = wide_panel(200, 2)
    assert lay.episode_bounds(rng, frame.index[120]) == (120, 170)
    with pytest.raises(ValueError, match="outside the tradable bars"):
        lay.episode_bounds(rng, 199)
