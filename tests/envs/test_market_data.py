"""MarketData: sources, date ranges and one clear ValueError per bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantgym.envs import MarketData, TradingEnv, load_sample
from tests.conftest import random_walk_frame


def test_sources_dataframe_csv_sample_synthetic(tmp_path, walk_frame):
    path = tmp_path / "bars.csv"
    walk_frame.rename(columns=str.upper).reset_index().rename(columns={"timestamp": "Date"}).to_csv(
        path, index=False
    )
    from_csv = MarketData.from_source(str(path))
    from_df = MarketData.from_source(walk_frame)
    np.testing.assert_allclose(from_csv.close, from_df.close, rtol=1e-12)
    assert from_csv.n_features == from_df.n_features
    googl = MarketData.from_source("sample:googl")
    assert len(googl) == 2335 and googl.bars_per_year == 252.0
    eurusd = MarketData.from_source("sample:eurusd")
    assert len(eurusd) == 6225 and 6000 < eurusd.bars_per_year < 6400
    assert {"hour_sin", "hour_cos"} <= set(eurusd.feature_names)
    synth = MarketData.from_source("synthetic:gbm", market_kwargs={"n_bars": 500, "seed": 3})
    assert len(synth) == 500 and synth.regime is None


def test_load_sample_frame():
    frame = load_sample("googl")
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index[0] == pd.Timestamp("2009-05-22") and frame.index.is_monotonic_increasing
    with pytest.raises(ValueError, match="unknown sample"):
        load_sample("nope")


def test_end_drops_future_bars_and_start_moves_first_tradable_bar(walk_frame):
    full = MarketData.from_source(walk_frame)
    cut = walk_frame.index[390]
    md = MarketData.from_source(walk_frame, start=walk_frame.index[340], end=cut)
    assert len(md) == 391 and md.timestamps[-1] == cut.to_datetime64()
    assert md.first_bar == 340
    np.testing.assert_array_equal(md.features, full.features[:391])
    env = TradingEnv(
        walk_frame, start=walk_frame.index[340], end=cut, window_size=4, episode_length=None
    )
    _, info = env.reset()
    assert info["bar"] == 340
    # a start inside the feature warm-up is moved to the first bar with valid features
    assert MarketData.from_source(walk_frame, start=walk_frame.index[10]).first_bar == full.warmup


def test_case_insensitive_columns_and_timestamp_column(walk_frame):
    df = walk_frame.reset_index().rename(columns={"timestamp": "Time", "close": "CLOSE"})
    assert len(MarketData.from_source(df)) == len(walk_frame)


def _bad(frame, mutate):
    frame = frame.copy()
    mutate(frame)
    return frame


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda f: f.drop(columns=["volume"], inplace=True), "missing column"),
        (lambda f: f.iloc.__setitem__((5, 3), np.nan), r"'close' has NaN/inf values at row 5"),
        (lambda f: f.iloc.__setitem__((7, 0), np.inf), r"'open' has NaN/inf values at row 7"),
        (lambda f: f.iloc.__setitem__((9, 2), -1.0), r"'low' has prices <= 0 at row 9"),
        (lambda f: f.iloc.__setitem__((11, 1), f.iloc[11, 2] * 0.5), r"high < low at row 11"),
        (
            lambda f: f.iloc.__setitem__((13, 3), f.iloc[13, 1] * 1.5),
            r"close outside \[low, high\] at row 13",
        ),
    ],
)
def test_bad_values_name_column_and_row(walk_frame, mutate, match):
    with pytest.raises(ValueError, match=match):
        MarketData.from_source(_bad(walk_frame, mutate))


def test_unsorted_and_duplicate_timestamps(walk_frame):
    swapped = walk_frame.iloc[[0, 2, 1, *range(3, len(walk_frame))]]
    with pytest.raises(ValueError, match=r"not sorted.*sort_index"):
        MarketData.from_source(swapped)
    dup = walk_frame.copy()
    dup.index = dup.index[[0, 0, *range(2, len(dup))]]
    with pytest.raises(ValueError, match="duplicate timestamp"):
        MarketData.from_source(dup)


def test_too_few_rows_for_warmup_and_window():
    small = random_walk_frame(300)
    with pytest.raises(ValueError, match="at least"):
        TradingEnv(small, window_size=64)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("no/such/file.csv", "not a file"),
        (42, "data must be"),
        (pd.DataFrame({"open": [1.0]}), "DatetimeIndex"),
    ],
)
def test_bad_sources(data, match):
    with pytest.raises(ValueError, match=match):
        MarketData.from_source(data)


def test_bad_date_range(walk_frame):
    with pytest.raises(ValueError, match="after end"):
        MarketData.from_source(walk_frame, start="2020-01-01", end="2019-01-01")
    with pytest.raises(ValueError, match="no tradable bars"):
        MarketData.from_source(walk_frame, start="2100-01-01")


def test_fingerprint_is_stable_and_data_sensitive(walk_frame):
    a = MarketData.from_source(walk_frame).fingerprint
    assert a == MarketData.from_source(walk_frame.copy()).fingerprint
    changed = walk_frame.copy()
    changed.iloc[-1, 3] = changed.iloc[-1, 3] * 1.0000001
    changed.iloc[-1, 1] = max(changed.iloc[-1, 1], changed.iloc[-1, 3])
    assert MarketData.from_source(changed).fingerprint != a
