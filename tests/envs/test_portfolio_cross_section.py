"""Cross-sectional ranks and z-scores across the assets tradable at each bar."""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.envs.portfolio.cross_section import (
    CROSS_SECTION_FEATURES,
    asset_signals,
    cross_section_features,
    cross_sectional_rank,
    cross_sectional_zscore,
)


def test_rank_and_zscore_over_the_finite_values_of_each_row():
    x = np.array([[3.0, 1.0, 2.0, np.nan], [5.0, np.nan, np.nan, np.nan], [1.0, 1.0, 4.0, 4.0]])
    np.testing.assert_array_equal(cross_sectional_rank(x)[0], [1.0, -1.0, 0.0, np.nan])
    np.testing.assert_array_equal(cross_sectional_rank(x)[1], [0.0, np.nan, np.nan, np.nan])
    z = cross_sectional_zscore(x)
    np.testing.assert_allclose(z[0, :3], [1.2247448714, -1.2247448714, 0.0])
    np.testing.assert_array_equal(z[1, 0], 0.0)  # one asset: no dispersion
    np.testing.assert_allclose(z[2], [-1.0, -1.0, 1.0, 1.0])


def test_signals_use_each_assets_own_bars_and_untradable_assets_are_left_out():
    t_len = 45
    close = np.exp(np.cumsum(np.full((t_len, 3), 0.01), axis=0) * np.array([1.0, 2.0, 3.0]))
    present = np.ones((t_len, 3), dtype=bool)
    present[30, 1] = False
    close[30, 1] = np.nan
    momentum, volatility = asset_signals(close, present)
    assert np.isnan(momentum[:20]).all()
    assert momentum[20, 0] == pytest.approx(np.log(close[20, 0] / close[0, 0]), rel=1e-12)
    # asset 1 skips its missing bar: 20 of its own bars back from bar 40 is bar 19
    assert momentum[40, 1] == pytest.approx(np.log(close[40, 1] / close[19, 1]), rel=1e-12)
    assert np.isnan(momentum[30, 1])
    tradable = present.copy()
    tradable[:, 2] = False
    values, names = cross_section_features(close, present, tradable)
    assert names == CROSS_SECTION_FEATURES and values.shape == (t_len, 3, 4)
    assert np.isnan(values[:, 2]).all()
    np.testing.assert_array_equal(values[25, :2, 0], [-1.0, 1.0])  # asset 1 has the higher momentum
