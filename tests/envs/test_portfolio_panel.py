"""PanelData: every source form, the universe arrays, per-asset features, one ValueError per bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantgym.envs import PanelData
from quantgym.envs.features import compute_features
from quantgym.envs.portfolio.panel import CLOSE_ONLY_FEATURES, last_known
from tests.envs.portfolio_frames import blank_rows, wide_panel

FEATS = {"features": ("log_return", "momentum_20"), "normalize_window": 10}


def long_form(frame: pd.DataFrame) -> pd.DataFrame:
    stacked = frame.stack(level=0, future_stack=True).rename_axis(["timestamp", "asset"])
    return stacked.reset_index().dropna(subset=["close"])


def test_wide_long_csv_and_close_only_sources_agree(tmp_path):
    frame = wide_panel(80, 3)
    wide = PanelData.from_source(frame, **FEATS)
    swapped = PanelData.from_source(frame.swaplevel(axis=1), **FEATS)  # field x asset
    long = PanelData.from_source(long_form(frame).sample(frac=1.0, random_state=0), **FEATS)
    frame.to_csv(tmp_path / "wide.csv")
    long_form(frame).to_csv(tmp_path / "long.csv", index=False)
    from_csv = PanelData.from_source(str(tmp_path / "wide.csv"), **FEATS)
    from_long_csv = PanelData.from_source(str(tmp_path / "long.csv"), **FEATS)
    for other in (swapped, long, from_csv, from_long_csv):
        assert other.assets == ("A0", "A1", "A2")
        np.testing.assert_allclose(other.close, wide.close, rtol=1e-12)
        np.testing.assert_allclose(other.open, wide.open, rtol=1e-12)
        np.testing.assert_array_equal(other.timestamps, wide.timestamps)
    closes = frame.xs("close", axis=1, level=1)
    close_only = PanelData.from_source(
        closes.reset_index().rename(columns={"timestamp": "Date"}), normalize_window=10
    )
    assert close_only.close_only and close_only.feature_names == CLOSE_ONLY_FEATURES
    assert np.isnan(close_only.volume).all()
    closes.to_csv(tmp_path / "closes.csv")
    np.testing.assert_allclose(
        PanelData.from_source(str(tmp_path / "closes.csv"), features=()).close,
        wide.close,
        rtol=1e-12,
    )


def test_parquet_source(tmp_path):
    pytest.importorskip("pyarrow")
    frame = wide_panel(60, 2)
    frame.to_parquet(tmp_path / "p.parquet")
    panel = PanelData.from_source(str(tmp_path / "p.parquet"), **FEATS)
    np.testing.assert_allclose(panel.close, frame.xs("close", axis=1, level=1).to_numpy())


def test_close_only_open_is_the_previous_close_and_relatives_give_prices():
    closes = pd.DataFrame({"X": [10.0, 11.0, np.nan, 12.1], "Y": [np.nan, 5.0, 5.5, 5.0]},
                          index=pd.bdate_range("2021-01-04", periods=4))  # fmt: skip
    panel = PanelData.from_source(closes, features=())
    np.testing.assert_array_equal(
        panel.open[:, 0], [10.0, 10.0, np.nan, 11.0]
    )  # after a gap: last close
    np.testing.assert_array_equal(panel.open[:, 1], [np.nan, 5.0, 5.0, 5.5])
    np.testing.assert_array_equal(panel.high[:, 1], [np.nan, 5.0, 5.5, 5.5])
    relatives = pd.DataFrame({"X": [1.1, 1.1, 0.5]}, index=pd.bdate_range("2021-01-04", periods=3))
    rel = PanelData.from_source(relatives, price_relatives=True, features=())
    np.testing.assert_allclose(rel.close[:, 0], [1.1, 1.21, 0.605])


def test_listing_delisting_and_missing_bars():
    frame = blank_rows(blank_rows(blank_rows(wide_panel(60, 3), "A0", slice(0, 10)), "A1", slice(50, 60)),
                       "A2", [20, 21])  # fmt: skip
    panel = PanelData.from_source(frame, **FEATS)
    np.testing.assert_array_equal(panel.first_row, [10, 0, 0])
    np.testing.assert_array_equal(panel.last_row, [59, 49, 59])
    assert not panel.tradable[:10, 0].any() and panel.tradable[10:, 0].all()
    assert (
        panel.tradable[:49, 1].all() and not panel.tradable[49:, 1].any()
    )  # delisted at its last bar
    assert not panel.tradable[[20, 21], 2].any() and panel.tradable[[19, 22], 2].all()
    close = frame.xs("close", axis=1, level=1).to_numpy()
    assert panel.mark_close[21, 2] == close[19, 2]  # the last known close, never a later one
    assert panel.mark_close[5, 0] == 0.0 and panel.mark_close[59, 1] == close[49, 1]
    assert panel.open_mark[20, 2] == close[19, 2]
    assert np.isnan(panel.close[20, 2])


def test_per_asset_features_equal_the_single_asset_features_on_its_own_bars():
    frame = blank_rows(wide_panel(90, 2), "A1", [40, 41])
    panel = PanelData.from_source(frame, **FEATS)
    own = frame["A1"].drop(index=frame.index[[40, 41]])
    expected = compute_features(own, FEATS["features"], normalize_window=10).values
    rows = np.flatnonzero(panel.present[:, 1])
    np.testing.assert_array_equal(panel.features[rows, 1], expected)
    np.testing.assert_array_equal(
        panel.features[[40, 41], 1], panel.features[[39, 39], 1]
    )  # carried
    assert panel.warmup == 29 and np.isnan(panel.features[:29]).all()


def test_asset_listed_too_briefly_to_warm_up_keeps_undefined_features():
    frame = blank_rows(wide_panel(80, 2), "A1", slice(0, 70))
    panel = PanelData.from_source(frame, **FEATS)
    assert np.isnan(panel.features[:, 1]).all() and panel.tradable[70:79, 1].all()
    assert (panel.features32[1] == 0).all()


def test_last_known_never_uses_a_later_value():
    values = np.array([[np.nan], [1.0], [np.nan], [3.0]])
    np.testing.assert_array_equal(last_known(values, ~np.isnan(values))[:, 0], [0.0, 1.0, 1.0, 3.0])


def test_first_bar_start_end_and_describe():
    frame = wide_panel(80, 2)
    panel = PanelData.from_source(frame, start=frame.index[50], end=frame.index[70], **FEATS)
    assert len(panel) == 71 and panel.first_bar == 50
    info = panel.describe()
    assert (
        info["n_assets"] == 2 and info["assets"] == ["A0", "A1"] and len(info["fingerprint"]) == 16
    )
    assert (
        PanelData.from_source(frame, **FEATS).fingerprint
        != PanelData.from_source(wide_panel(80, 2, seed=1), **FEATS).fingerprint
    )


def _mutate(frame, asset, field, row, value):
    out = frame.copy()
    out.iloc[row, out.columns.get_loc((asset, field))] = value
    return out


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda f: _mutate(f, "A1", "close", 5, np.inf), r"infinite value: asset 'A1' column 'close' at row 5"),
        (lambda f: _mutate(f, "A1", "open", 7, np.nan), r"NaN in a bar that has a close: asset 'A1' column 'open' at row 7"),
        (lambda f: _mutate(f, "A0", "close", 3, -1.0), r"price <= 0: asset 'A0' column 'close' at row 3"),
        (lambda f: _mutate(f, "A0", "volume", 4, -5.0), r"negative volume: asset 'A0'"),
        (lambda f: _mutate(f, "A1", "low", 9, 1e6), r"high < low: asset 'A1' column 'high' at row 9"),
        (lambda f: _mutate(f, "A0", "close", 2, 1e6), r"close outside \[low, high\]: asset 'A0'"),
        (lambda f: f.iloc[::-1], "not sorted"),
        (lambda f: pd.concat([f.iloc[:5], f.iloc[4:]]), "duplicate timestamp"),
        (lambda f: f.iloc[:2], "needs at least 3"),
        (lambda f: f.rename(columns={"A1": "A0"}, level=0), r"duplicate asset names in the panel: \['A0'\]"),
        (lambda f: f.drop(columns=[("A1", "high")]), "asset 'A1' has no 'high' column"),
        (lambda f: f.drop(columns=[c for c in f.columns if c[1] == "close"]), "needs a 'close' field"),
        (lambda f: blank_rows(f, "A1", slice(0, None)), "asset 'A1' has no close in any row"),
        (lambda f: f.reset_index(drop=True), "DatetimeIndex or a timestamp"),
    ],
)  # fmt: skip
def test_bad_panels_raise_value_error_naming_the_problem(make, match):
    with pytest.raises(ValueError, match=match):
        PanelData.from_source(make(wide_panel(40, 2)), features=())


def test_duplicate_assets_in_close_only_and_long_forms():
    closes = pd.DataFrame(
        np.ones((5, 2)), columns=["X", "X"], index=pd.bdate_range("2021-01-04", periods=5)
    )
    with pytest.raises(ValueError, match=r"duplicate asset names in the panel: \['X'\]"):
        PanelData.from_source(closes, features=())
    long = long_form(wide_panel(20, 2))
    with pytest.raises(ValueError, match="asset 'A0' has two rows"):
        PanelData.from_source(pd.concat([long, long.iloc[:1]]), features=())
    with pytest.raises(ValueError, match="unknown column"):
        PanelData.from_source(long.assign(extra=1.0), features=())
    with pytest.raises(ValueError, match="not a file"):
        PanelData.from_source("/no/such/panel.csv")
    with pytest.raises(ValueError, match="unknown portfolio sample"):
        PanelData.from_source("sample:nope")
