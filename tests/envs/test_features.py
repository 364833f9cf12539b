"""Tests for quantgym.envs.features: shapes, formulas, causality (no look-ahead) and validation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantgym.envs.features import (
    CALENDAR_FEATURES,
    DEFAULT_FEATURES,
    PRICE_FEATURES,
    RAW_WARMUP,
    SCALE_ONLY,
    FeatureSet,
    compute_features,
    is_intraday,
    raw_features,
)

# Longest indicator warm-up (MACD would be row 33: 26 closes, then its 9-bar signal).
SLOWEST_FIRST_ROW = 60  # momentum_60 needs 60 earlier closes
MACD_FIRST_ROW = 33  # MACD line after 26 closes, its 9-bar signal after 8 more


def make_bars(
    n: int,
    freq: str = "D",
    seed: int = 0,
    *,
    first_close: float = 100.0,
    index: pd.DatetimeIndex | None = None,
) -> pd.DataFrame:
    """Geometric random walk OHLCV bars with low <= open, close <= high and positive volume."""
    rng = np.random.default_rng(seed)
    close = first_close * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    prev = np.r_[first_close, close[:-1]]
    open_ = prev * np.exp(rng.normal(0.0, 0.002, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.004, n)))
    volume = rng.lognormal(10.0, 0.5, n)
    if index is None:
        index = pd.date_range("2001-01-01", periods=n, freq=freq, name="timestamp")
    data = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    return pd.DataFrame(data, index=index)


def replace_future(frame: pd.DataFrame, t: int, rng: np.random.Generator) -> pd.DataFrame:
    """``frame`` with every row after ``t`` replaced by different valid bars (same timestamps)."""
    n_new = len(frame) - t - 1
    new = make_bars(
        n_new,
        seed=int(rng.integers(1 << 31)),
        first_close=float(frame["close"].iloc[t]),
        index=frame.index[t + 1 :],
    )
    out = frame.copy()
    for col in frame.columns:
        fresh = new[col] if col in new else pd.Series(rng.normal(size=n_new), index=new.index)
        out.loc[out.index[t + 1 :], col] = fresh.to_numpy()
    return out


def assert_causal(
    fn: Callable[[pd.DataFrame], np.ndarray],
    frame: pd.DataFrame,
    *,
    n_checks: int = 4,
    seed: int = 0,
    lo: int = 1,
) -> None:
    """Rows <= t of ``fn(frame)`` must be bit-identical when only bars after t change."""
    rng = np.random.default_rng(seed)
    base = fn(frame)
    for t in rng.choice(np.arange(lo, len(frame) - 1), size=n_checks, replace=False):
        perturbed = replace_future(frame, int(t), rng)
        assert (perturbed["close"].iloc[t + 1 :] != frame["close"].iloc[t + 1 :]).all()
        np.testing.assert_array_equal(
            fn(perturbed)[: t + 1],
            base[: t + 1],
            err_msg=f"rows <= {t} changed when only bars after {t} changed",
        )


def rolling_z(x: np.ndarray, t: int, window: int) -> float:
    """Reference z-score of x[t] against x[t-window+1 .. t] (ddof=1), clipped to [-5, 5]."""
    w = x[t - window + 1 : t + 1]
    return float(np.clip((x[t] - w.mean()) / w.std(ddof=1), -5, 5))


def rolling_scale(x: np.ndarray, t: int, window: int) -> float:
    """Reference x[t] over the RMS of x[t-window+1 .. t] (not demeaned), clipped to [-5, 5]."""
    w = x[t - window + 1 : t + 1]
    return float(np.clip(x[t] / np.sqrt(np.mean(w**2)), -5, 5))


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    return make_bars(1500, "D", seed=1)


@pytest.fixture(scope="module")
def hourly() -> pd.DataFrame:
    return make_bars(1500, "h", seed=2)


# --- shapes, names, warm-up ------------------------------------------------------------------


def test_default_names_cover_price_then_calendar() -> None:
    assert DEFAULT_FEATURES == PRICE_FEATURES + CALENDAR_FEATURES
    assert len(PRICE_FEATURES) == 12 and len(CALENDAR_FEATURES) == 4
    assert len(set(DEFAULT_FEATURES)) == len(DEFAULT_FEATURES)


def test_daily_default_shape_names_warmup(daily: pd.DataFrame) -> None:
    fs = compute_features(daily)
    assert fs.names == PRICE_FEATURES
    assert fs.values.shape == (len(daily), 12) and fs.values.dtype == np.float64
    assert fs.warmup == SLOWEST_FIRST_ROW + 250 - 1 == 309
    assert np.isnan(fs.values[: fs.warmup]).all()
    assert np.isfinite(fs.values[fs.warmup :]).all()
    assert np.abs(fs.values[fs.warmup :]).max() <= 5.0


def test_intraday_default_adds_calendar(hourly: pd.DataFrame) -> None:
    fs = compute_features(hourly)
    assert fs.names == DEFAULT_FEATURES
    assert fs.values.shape == (len(hourly), 16)
    assert fs.warmup == 309
    assert np.isfinite(fs.values[fs.warmup :]).all()
    cal = fs.to_frame(hourly.index)[list(CALENDAR_FEATURES)].iloc[fs.warmup :]
    hours = cal.index.hour.to_numpy()
    np.testing.assert_allclose(cal["hour_sin"], np.sin(2 * np.pi * hours / 24), atol=1e-12)
    np.testing.assert_allclose(cal["hour_cos"], np.cos(2 * np.pi * hours / 24), atol=1e-12)
    dow = cal.index.dayofweek.to_numpy()
    np.testing.assert_allclose(cal["dow_sin"], np.sin(2 * np.pi * dow / 7), atol=1e-12)
    np.testing.assert_allclose(cal["dow_cos"], np.cos(2 * np.pi * dow / 7), atol=1e-12)


def test_tz_aware_intraday_uses_local_clock() -> None:
    index = pd.date_range("2021-03-20", periods=600, freq="h", tz="Europe/London", name="timestamp")
    fs = compute_features(make_bars(600, index=index))
    assert fs.names == DEFAULT_FEATURES
    hour_sin = fs.to_frame(index)["hour_sin"].iloc[fs.warmup :]
    expected = np.sin(2 * np.pi * hour_sin.index.hour.to_numpy() / 24)
    np.testing.assert_allclose(hour_sin, expected, atol=1e-12)


@pytest.mark.parametrize("window", [2, 20, 100])
def test_warmup_follows_normalize_window(daily: pd.DataFrame, window: int) -> None:
    fs = compute_features(daily, normalize_window=window)
    assert fs.warmup == SLOWEST_FIRST_ROW + window - 1
    assert np.isfinite(fs.values[fs.warmup :]).all()


@pytest.mark.parametrize(
    ("freq", "expected"),
    [
        ("min", True),
        ("15min", True),
        ("h", True),
        ("4h", True),
        ("D", False),
        ("B", False),
        ("W", False),
    ],
)
def test_is_intraday_by_median_spacing(freq: str, expected: bool) -> None:
    assert is_intraday(pd.date_range("2020-01-01", periods=50, freq=freq)) is expected


def test_is_intraday_ignores_weekend_gaps_and_short_index() -> None:
    hours = pd.date_range("2020-01-06", periods=24 * 21, freq="h")
    assert is_intraday(hours[hours.dayofweek < 5]) is True
    assert is_intraday(pd.DatetimeIndex(["2020-01-01"])) is False
    with pytest.raises(ValueError, match="DatetimeIndex"):
        is_intraday(pd.RangeIndex(10))


def test_does_not_mutate_frame(daily: pd.DataFrame) -> None:
    before = daily.copy()
    compute_features(daily)

    def mutating(frame: pd.DataFrame) -> pd.DataFrame:
        frame["close"] = 0.0
        return frame[["open"]]

    compute_features(daily, mutating)
    pd.testing.assert_frame_equal(daily, before)


# --- formulas ----------------------------------------------------------------------------------


def test_raw_features_match_reference_formulas(daily: pd.DataFrame) -> None:
    raw = raw_features(daily)
    o, h, lo, c = (daily[k].to_numpy() for k in ("open", "high", "low", "close"))
    log_ret = np.r_[np.nan, np.diff(np.log(c))]
    np.testing.assert_allclose(raw["log_return"], log_ret, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(raw["bar_range"], (h - lo) / c, rtol=1e-12)
    np.testing.assert_allclose(raw["body"], (c - o) / o, rtol=1e-12)
    t = 700
    np.testing.assert_allclose(raw["realized_vol"].iloc[t], np.std(log_ret[t - 19 : t + 1], ddof=1))
    tr = np.maximum.reduce(
        [h - lo, np.abs(h - np.r_[np.nan, c[:-1]]), np.abs(lo - np.r_[np.nan, c[:-1]])]
    )
    np.testing.assert_allclose(raw["atr"].iloc[t], tr[t - 13 : t + 1].mean() / c[t])
    window = c[t - 19 : t + 1]
    lower, width = window.mean() - 2 * window.std(), 4 * window.std()
    np.testing.assert_allclose(raw["bollinger_b"].iloc[t], (c[t] - lower) / width)
    lv = np.log1p(daily["volume"].to_numpy())[t - 19 : t + 1]
    np.testing.assert_allclose(raw["volume_z"].iloc[t], (lv[-1] - lv.mean()) / lv.std())
    diff = np.diff(c)[t - 14 : t]
    gain, loss = np.maximum(diff, 0).mean(), np.maximum(-diff, 0).mean()
    np.testing.assert_allclose(raw["rsi"].iloc[t], 100 * gain / (gain + loss))


def test_raw_warmup_table_matches_leading_nans(daily: pd.DataFrame) -> None:
    raw = raw_features(daily)
    leading = {name: int(raw[name].isna().cummin().sum()) for name in PRICE_FEATURES}
    assert leading == RAW_WARMUP
    assert raw.iloc[max(RAW_WARMUP.values()) :].notna().all().all()


def test_yang_zhang_matches_reference(daily: pd.DataFrame) -> None:
    raw = raw_features(daily)
    o, h, lo, c = (daily[k].to_numpy() for k in ("open", "high", "low", "close"))
    t, n = 900, 20
    s = slice(t - n + 1, t + 1)
    overnight = np.log(o[s] / c[t - n : t])
    open_close = np.log(c[s] / o[s])
    rs = np.log(h[s] / c[s]) * np.log(h[s] / o[s]) + np.log(lo[s] / c[s]) * np.log(lo[s] / o[s])
    k = 0.34 / (1.34 + (n + 1) / (n - 1))
    expected = np.sqrt(overnight.var(ddof=1) + k * open_close.var(ddof=1) + (1 - k) * rs.mean())
    np.testing.assert_allclose(raw["yang_zhang_vol"].iloc[t], expected, rtol=1e-10)
    assert raw["yang_zhang_vol"].iloc[:20].isna().all() and raw["yang_zhang_vol"].iloc[20] > 0


def test_macd_uses_finite_window_ema(daily: pd.DataFrame) -> None:
    c = daily["close"]
    raw = raw_features(daily)["macd_hist"].to_numpy()
    assert np.isnan(raw[:MACD_FIRST_ROW]).all() and np.isfinite(raw[MACD_FIRST_ROW:]).all()
    macd = c.ewm(span=12, adjust=True).mean() - c.ewm(span=26, adjust=True).mean()
    signal = macd.iloc[25:].ewm(span=9, adjust=True).mean().reindex(c.index)
    reference = ((macd - signal) / c).to_numpy()
    # Until the shortest window (4 * 12 rows) fills, every window is partial: equal to pandas ewm.
    early = slice(MACD_FIRST_ROW, 4 * 12)
    np.testing.assert_allclose(raw[early], reference[early], rtol=1e-9)
    assert not np.allclose(raw[4 * 12 :], reference[4 * 12 :], rtol=1e-9)
    # Later the dropped tail (weights < exp(-8)) makes only a small difference.
    late = slice(500, None)
    assert np.abs(raw[late] - reference[late]).max() < 0.05 * np.abs(reference[late]).max()


@pytest.mark.parametrize(
    ("step", "expected"), [(1.001, 100.0), (0.999, 0.0), (1.0, 50.0)], ids=["up", "down", "flat"]
)
def test_rsi_extremes(step: float, expected: float) -> None:
    frame = make_bars(60)
    close = 100.0 * step ** np.arange(60)
    frame = frame.assign(open=close, high=close * 1.001, low=close * 0.999, close=close)
    np.testing.assert_allclose(raw_features(frame)["rsi"].iloc[14:], expected)


def test_default_values_are_clipped_rolling_zscores_or_rms_scaled(daily: pd.DataFrame) -> None:
    window = 60
    fs = compute_features(daily, normalize_window=window)
    raw = raw_features(daily).to_numpy()
    for t in (fs.warmup, fs.warmup + 1, 400, len(daily) - 1):
        expected = [
            (rolling_scale if name in SCALE_ONLY else rolling_z)(raw[:, j], t, window)
            for j, name in enumerate(PRICE_FEATURES)
        ]
        np.testing.assert_allclose(fs.values[t], expected, rtol=1e-8, atol=1e-10)


def test_outlier_is_clipped_to_five() -> None:
    frame = make_bars(600, seed=3)
    t = 500
    frame.loc[frame.index[t], ["high", "close"]] = frame["close"].iloc[t] * 1.5
    fs = compute_features(frame)
    values = fs.to_frame()
    assert values["log_return"].iloc[t] == 5.0 and values["bar_range"].iloc[t] == 5.0


# --- causality ---------------------------------------------------------------------------------


@pytest.mark.parametrize("freq", ["D", "h"])
def test_default_features_have_no_lookahead(freq: str) -> None:
    frame = make_bars(700, freq, seed=4)
    assert_causal(lambda f: compute_features(f).values, frame, n_checks=5, seed=5)


def test_no_lookahead_inside_warmup_with_short_window() -> None:
    frame = make_bars(200, seed=6)
    assert_causal(lambda f: compute_features(f, normalize_window=5).values, frame, n_checks=6, lo=1)


def test_truncating_the_future_leaves_the_past_bit_identical(hourly: pd.DataFrame) -> None:
    full = compute_features(hourly)
    for t in (full.warmup, 700, 1100):
        part = compute_features(hourly.iloc[: t + 1])
        assert part.warmup == full.warmup
        np.testing.assert_array_equal(part.values, full.values[: t + 1])


def test_features_have_finite_memory(daily: pd.DataFrame) -> None:
    """Rolling windows only: dropping old bars changes nothing once every window is refilled."""
    start = 137
    full = compute_features(daily).values
    late = compute_features(daily.iloc[start:]).values
    memory = SLOWEST_FIRST_ROW + 4 * 26 + 4 * 9 + 250  # generous bound on the trailing window
    np.testing.assert_allclose(late[memory:], full[start + memory :], rtol=1e-9, atol=1e-9)


def _next_return(frame: pd.DataFrame) -> pd.DataFrame:
    """Leak: the next bar's return (the last bar, which has none, gets 0)."""
    return pd.DataFrame({"next_return": np.log(frame["close"]).diff().shift(-1).fillna(0.0)})


def _full_sample_zscore(frame: pd.DataFrame) -> pd.DataFrame:
    """Leak: normalising with the mean/std of the whole sample, future bars included."""
    close = frame["close"]
    return ((close - close.mean()) / close.std()).to_frame("close_z")


@pytest.mark.parametrize("leaky", [_next_return, _full_sample_zscore])
def test_leak_canary_is_caught_by_assert_causal(
    daily: pd.DataFrame, leaky: Callable[[pd.DataFrame], pd.DataFrame]
) -> None:
    with pytest.raises(AssertionError, match="changed when only bars after"):
        assert_causal(lambda f: compute_features(f, leaky).values, daily.iloc[:300])


def test_naive_shifted_leak_is_rejected_by_validation(daily: pd.DataFrame) -> None:
    """A plain ``shift(-1)`` leaves a NaN in the last row, which is not a leading NaN."""
    stamp = daily.index[-1]
    with pytest.raises(ValueError, match=rf"'next'.*row {len(daily) - 1} \(timestamp {stamp}\)"):
        compute_features(daily, lambda f: f["close"].pct_change().shift(-1).rename("next"))


def test_default_features_do_not_track_the_next_return() -> None:
    frame = make_bars(6000, seed=7)
    next_return = np.log(frame["close"]).diff().shift(-1).to_numpy()
    canary = compute_features(
        frame, lambda f: pd.DataFrame({"leak": np.log(f["close"]).diff().shift(-1).fillna(0.0)})
    )
    fs = compute_features(frame)
    rows = slice(fs.warmup, len(frame) - 1)
    leak_corr = np.corrcoef(canary.values[rows, 0], next_return[rows])[0, 1]
    assert leak_corr == pytest.approx(1.0)
    for j, name in enumerate(fs.names):
        corr = np.corrcoef(fs.values[rows, j], next_return[rows])[0, 1]
        assert abs(corr) < 0.1, f"{name} correlates {corr:.3f} with the next bar's return"


# --- flat / zero-volume bars -----------------------------------------------------------------


def test_flat_zero_volume_bars_stay_finite() -> None:
    """FX-like hourly data: weekends of flat zero-volume bars and one flat stretch > the window."""
    frame = make_bars(2000, "h", seed=8)
    flat = (frame.index.dayofweek >= 5) | ((np.arange(2000) >= 600) & (np.arange(2000) < 1100))
    close = frame["close"].to_numpy().copy()
    for i in np.flatnonzero(flat):
        close[i] = close[i - 1]
    for col in ("open", "high", "low", "close"):
        frame.loc[flat, col] = close[flat]
    frame.loc[flat, "volume"] = 0.0
    fs = compute_features(frame)
    assert np.isfinite(fs.values[fs.warmup :]).all()
    assert np.abs(fs.values[fs.warmup :, :10]).max() <= 5.0
    # Bars 1000..1099 see a fully flat 250-bar window: zero std, reported as 0.
    values = fs.to_frame()
    for name in ("log_return", "bar_range", "body", "volume_z", "rsi", "atr", "realized_vol"):
        assert (values[name].iloc[1000:1100] == 0.0).all(), name


def test_constant_market_is_finite_and_centred() -> None:
    frame = make_bars(400)
    frame[["open", "high", "low", "close"]] = 50.0
    frame["volume"] = 0.0
    fs = compute_features(frame)
    assert fs.warmup == 309
    assert np.isfinite(fs.values[fs.warmup :]).all()
    np.testing.assert_allclose(fs.values[fs.warmup :], 0.0, atol=1e-4)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    flat_fraction=st.floats(0.0, 0.9),
    zero_volume=st.floats(0.0, 1.0),
    gap=st.floats(-0.3, 0.3),
    window=st.integers(2, 40),
)
def test_random_markets_give_bounded_finite_features(
    seed: int, flat_fraction: float, zero_volume: float, gap: float, window: int
) -> None:
    rng = np.random.default_rng(seed)
    frame = make_bars(150, "h", seed=seed)
    flat = rng.random(150) < flat_fraction
    frame.loc[flat, ["open", "high", "low"]] = frame.loc[flat, "close"].to_numpy()[:, None]
    frame.loc[rng.random(150) < zero_volume, "volume"] = 0.0
    frame.loc[frame.index[75:], ["open", "high", "low", "close"]] *= np.exp(gap)
    fs = compute_features(frame, normalize_window=window)
    assert fs.warmup == SLOWEST_FIRST_ROW + window - 1
    assert np.isfinite(fs.values[fs.warmup :]).all()
    assert np.abs(fs.values[fs.warmup :, :12]).max() <= 5.0
    assert np.abs(fs.values[fs.warmup :, 12:]).max() <= 1.0


# --- list-of-columns path ----------------------------------------------------------------------


def test_list_of_columns_used_as_is(daily: pd.DataFrame) -> None:
    fs = compute_features(daily, ["close", "volume"])
    assert fs.names == ("close", "volume") and fs.warmup == 0
    np.testing.assert_array_equal(fs.values, daily[["close", "volume"]].to_numpy())


def test_list_mixes_frame_columns_and_default_features(daily: pd.DataFrame) -> None:
    frame = daily.assign(signal=np.r_[[np.nan] * 5, np.arange(len(daily) - 5.0)])
    fs = compute_features(frame, ("signal", "rsi", "hour_sin"))
    assert fs.names == ("signal", "rsi", "hour_sin")
    assert fs.warmup == 14 + 250 - 1  # rsi's own warm-up, not the whole default set's
    assert np.isnan(fs.values[: fs.warmup]).all()
    default = compute_features(daily)
    rows = slice(default.warmup, None)
    np.testing.assert_array_equal(fs.values[rows, 1], default.to_frame()["rsi"].iloc[rows])
    np.testing.assert_array_equal(fs.values[fs.warmup :, 0], frame["signal"].iloc[fs.warmup :])
    assert (fs.values[fs.warmup :, 2] == 0.0).all()  # daily bars sit at midnight


def test_default_name_wins_over_frame_column(daily: pd.DataFrame) -> None:
    frame = daily.assign(rsi=1.0)
    fs = compute_features(frame, ["rsi"])
    np.testing.assert_array_equal(fs.values, compute_features(daily, ["rsi"]).values)


def test_integer_and_bool_columns_are_accepted(daily: pd.DataFrame) -> None:
    frame = daily.assign(n=np.arange(len(daily)), up=daily["close"].diff() > 0)
    fs = compute_features(frame, ["n", "up"])
    assert fs.values.dtype == np.float64 and fs.values[3, 0] == 3.0
    assert set(np.unique(fs.values[:, 1])) <= {0.0, 1.0}


# --- callable path -----------------------------------------------------------------------------


def test_callable_returning_dataframe(daily: pd.DataFrame) -> None:
    def momentum(frame: pd.DataFrame) -> pd.DataFrame:
        log_c = np.log(frame["close"])
        return pd.DataFrame({"mom5": log_c.diff(5), "mom10": log_c.diff(10)})

    fs = compute_features(daily, momentum)
    assert fs.names == ("mom5", "mom10") and fs.warmup == 10
    expected = np.log(daily["close"]).diff(5).to_numpy()
    np.testing.assert_array_equal(fs.values[10:, 0], expected[10:])
    assert_causal(lambda f: compute_features(f, momentum).values, daily.iloc[:200])


@pytest.mark.parametrize("two_d", [False, True])
def test_callable_returning_ndarray(daily: pd.DataFrame, two_d: bool) -> None:
    def spread(frame: pd.DataFrame) -> np.ndarray:
        x = (frame["high"] - frame["low"]).to_numpy()
        return np.stack([x, 2 * x], axis=1) if two_d else x

    fs = compute_features(daily, spread)
    assert fs.names == (("spread_0", "spread_1") if two_d else ("spread_0",))
    np.testing.assert_allclose(fs.values[:, 0], daily["high"] - daily["low"])


def test_callable_returning_series(daily: pd.DataFrame) -> None:
    fs = compute_features(daily, lambda f: f["close"].pct_change().rename("ret"))
    assert fs.names == ("ret",) and fs.warmup == 1


# --- bad input ---------------------------------------------------------------------------------


def _with_nan_at(frame: pd.DataFrame, row: int, value: float) -> pd.DataFrame:
    col = np.arange(len(frame), dtype=float)
    col[row] = value
    return frame.assign(x=col)


@pytest.mark.parametrize(
    ("features", "match"),
    [
        (
            ["close", "nope", "also_missing"],
            r"not found: \['nope', 'also_missing'\].*available.*'close'",
        ),
        ([], "empty"),
        (["close", "close"], r"duplicate.*'close'"),
        (["close", 3], "column names"),
        ("close", "list/tuple of column names or a callable"),
        (42, "list/tuple of column names or a callable"),
        ({"close": 1}, "list/tuple of column names or a callable"),
        (["label"], r"'label' is not numeric"),
        (["empty"], r"'empty' is all NaN"),
        (lambda f: f[["close"]].iloc[:-1], "returned 199 rows; frame has 200"),
        (lambda f: f[["close"]].reset_index(drop=True), "index does not match"),
        (lambda f: f[["close"]].iloc[::-1], "index does not match"),
        (lambda f: [1.0] * len(f), "must return a DataFrame or ndarray"),
        (lambda f: f[[]], "no columns"),
        (lambda f: np.zeros((len(f), 2, 2)), r"array of shape \(200, 2, 2\)"),
        (lambda f: np.zeros(len(f) + 1), r"expected \(200,\) or \(200, F\)"),
        (lambda f: f[["close", "close"]], r"duplicate columns: \['close'\]"),
        (lambda f: f[["label"]], "not numeric"),
    ],
)
def test_bad_features_raise(features: object, match: str) -> None:
    frame = make_bars(200).assign(label="a", empty=np.nan)
    with pytest.raises(ValueError, match=match):
        compute_features(frame, features)  # type: ignore[arg-type]


@pytest.mark.parametrize(("row", "value"), [(57, np.nan), (120, np.inf), (0, -np.inf)])
def test_non_finite_after_leading_rows_names_column_and_timestamp(row: int, value: float) -> None:
    frame = _with_nan_at(make_bars(200), row, value)
    stamp = str(frame.index[row])
    with pytest.raises(ValueError, match=rf"'x'.*row {row} \(timestamp {stamp}\)"):
        compute_features(frame, ["x"])
    with pytest.raises(ValueError, match=rf"'x'.*timestamp {stamp}"):
        compute_features(frame, lambda f: f[["x"]])


def test_leading_nan_rows_are_warmup_not_errors() -> None:
    frame = _with_nan_at(make_bars(200), 0, np.nan).assign(y=np.r_[[np.nan] * 7, np.ones(193)])
    fs = compute_features(frame, ["x", "y"])
    assert fs.warmup == 7 and np.isnan(fs.values[:7]).all() and np.isfinite(fs.values[7:]).all()


@pytest.mark.parametrize("window", [1, 0, -5, 2.5, True, "250"])
def test_bad_normalize_window_raises(window: object) -> None:
    with pytest.raises(ValueError, match="normalize_window"):
        compute_features(make_bars(400), normalize_window=window)  # type: ignore[arg-type]


def test_bad_frames_raise() -> None:
    frame = make_bars(400)
    with pytest.raises(ValueError, match="frame must be a pandas DataFrame"):
        compute_features(frame.to_numpy())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no rows"):
        compute_features(frame.iloc[:0])
    with pytest.raises(ValueError, match="DatetimeIndex"):
        compute_features(frame.reset_index(drop=True))
    with pytest.raises(ValueError, match=r"missing columns \['volume'\]"):
        compute_features(frame.drop(columns="volume"))
    with pytest.raises(
        ValueError, match=r"400 rows but .* need at least 560 .*normalize_window=500"
    ):
        compute_features(frame, normalize_window=500)
    with pytest.raises(ValueError, match=r"at least 310 "):
        compute_features(frame.iloc[:309])
    assert compute_features(frame.iloc[:310]).warmup == 309
    with pytest.raises(ValueError, match=r"at least 264 "):
        compute_features(frame.iloc[:263], ["rsi"])
    assert compute_features(frame.iloc[:264], ["rsi"]).warmup == 263


def test_featureset_checks_its_shape() -> None:
    with pytest.raises(ValueError, match="match names"):
        FeatureSet(values=np.zeros((5, 2)), names=("a",), warmup=0)
    with pytest.raises(ValueError, match="warmup"):
        FeatureSet(values=np.zeros((5, 1)), names=("a",), warmup=5)


def test_directional_features_keep_a_persistent_drift() -> None:
    """RMS scaling keeps a regime's drift visible; a rolling z-score would centre it away."""
    rng = np.random.default_rng(3)
    n = 1200
    close = 100 * np.exp(np.cumsum(0.002 + rng.normal(0, 0.01, n)))  # steady bull drift
    frame = make_bars(n).assign(close=close, open=close, high=close * 1.001, low=close * 0.999)
    fs = compute_features(frame).to_frame(frame.index).iloc[-500:]
    for name in ("log_return", "momentum_20", "momentum_60"):
        assert fs[name].mean() > 0.15, name
        raw = raw_features(frame)[name].to_numpy()
        centred = [rolling_z(raw, t, 250) for t in range(n - 500, n)]
        assert abs(np.mean(centred)) < fs[name].mean() / 2, name
