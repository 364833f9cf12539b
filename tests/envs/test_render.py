"""Tests for quantgym.envs.render: the ansi line and the numpy-only RGB chart."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from quantgym.envs.render import render_ansi, render_rgb_array

pytestmark = pytest.mark.filterwarnings("error")

WIDTH, HEIGHT = 640, 400
# At 640x400 the top panel spans rows 6-232 and the bottom one rows 243-393.
TOP_ROWS = slice(0, 237)
BOTTOM_ROWS = slice(238, HEIGHT)
INNER_COLUMNS = slice(12, WIDTH - 12)


def random_walk(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))


def is_price_line(img: np.ndarray) -> np.ndarray:
    """Dark pixels: the price line (frames and grid lines are light gray)."""
    return (img < 100).all(axis=-1)


def is_equity_line(img: np.ndarray) -> np.ndarray:
    """Blue pixels: the equity line."""
    rgb = img.astype(int)
    return (rgb[..., 2] > 150) & (rgb[..., 0] < 80)


def is_greenish(img: np.ndarray) -> np.ndarray:
    rgb = img.astype(int)
    return (rgb[..., 1] > rgb[..., 0] + 20) & (rgb[..., 1] > rgb[..., 2] + 20)


def is_reddish(img: np.ndarray) -> np.ndarray:
    rgb = img.astype(int)
    return (rgb[..., 0] > rgb[..., 1] + 20) & (rgb[..., 0] > rgb[..., 2] + 20)


# ------------------------------------------------------------------ rgb_array


@pytest.mark.parametrize(("width", "height"), [(640, 400), (320, 240), (64, 48), (1001, 333)])
def test_shape_and_dtype(width: int, height: int) -> None:
    close = random_walk(300)
    img = render_rgb_array(close, np.ones(300), close * 100, width=width, height=height)
    assert img.shape == (height, width, 3)
    assert img.dtype == np.uint8


def test_background_is_tinted_by_position() -> None:
    n = 300
    positions = np.repeat([1.0, -1.0, 0.0], n // 3)  # long, short, flat thirds
    img = render_rgb_array(random_walk(n), positions, random_walk(n, seed=1))
    top = img[TOP_ROWS]
    long_cols, short_cols, flat_cols = slice(30, 190), slice(240, 400), slice(450, 610)
    assert is_greenish(top[:, long_cols]).mean() > 0.75
    assert is_reddish(top[:, short_cols]).mean() > 0.75
    assert not is_reddish(top[:, long_cols]).any()
    assert not is_greenish(top[:, short_cols]).any()
    flat = top[:, flat_cols]
    assert not (is_greenish(flat) | is_reddish(flat)).any()
    assert not (is_greenish(img[BOTTOM_ROWS]) | is_reddish(img[BOTTOM_ROWS])).any()


def test_smaller_positions_get_a_paler_tint() -> None:
    positions = np.repeat([1.0, 0.25], 100)
    img = render_rgb_array(np.full(200, 5.0), positions, np.ones(200)).astype(int)
    strong, pale = img[30, 100], img[30, 540]  # row 30 is above the flat mid-panel line
    assert strong[1] > strong[0] and pale[1] > pale[0]
    assert (pale[1] - pale[0]) < (strong[1] - strong[0])


@pytest.mark.parametrize("n", [1, 2, 7, 300, 2000, 10_000])
def test_lines_cover_every_column(n: int) -> None:
    img = render_rgb_array(random_walk(n), np.ones(n), random_walk(n, seed=2))
    assert is_price_line(img[TOP_ROWS, INNER_COLUMNS]).any(axis=0).all()
    assert is_equity_line(img[BOTTOM_ROWS, INNER_COLUMNS]).any(axis=0).all()
    assert not is_price_line(img[BOTTOM_ROWS]).any()
    assert not is_equity_line(img[TOP_ROWS]).any()


def test_line_goes_up_when_the_series_goes_up() -> None:
    img = render_rgb_array(np.linspace(1.0, 2.0, 50), None, np.linspace(2.0, 1.0, 50))
    price_rows = [np.flatnonzero(is_price_line(img[:, c]))[0] for c in (20, WIDTH - 20)]
    equity_rows = [np.flatnonzero(is_equity_line(img[:, c]))[0] for c in (20, WIDTH - 20)]
    assert price_rows[1] < price_rows[0]  # rising price: higher (smaller row) on the right
    assert equity_rows[1] > equity_rows[0]


def test_spike_survives_downsampling() -> None:
    close = np.full(5000, 10.0)
    close[::2] = 10.1
    close[2777] = 20.0  # one bar among 5000 drawn on ~620 columns
    img = render_rgb_array(close, None, np.ones(5000))
    line_rows = np.flatnonzero(is_price_line(img[:, INNER_COLUMNS]).any(axis=1))
    assert line_rows.min() < 20  # the spike reaches the top of the panel


@pytest.mark.parametrize(
    "close",
    [
        np.array([]),
        np.array([3.0]),
        np.full(50, 3.0),
        np.full(50, np.nan),
        np.array([1.0, np.nan, 2.0, np.inf, 3.0, -np.inf]),
        np.array([1e308, -1e308, 1e308]),
    ],
)
def test_degenerate_inputs_do_not_crash(close: np.ndarray) -> None:
    positions = np.where(np.arange(close.size) % 2 == 0, 1.0, np.nan)
    img = render_rgb_array(close, positions, close)
    assert img.shape == (HEIGHT, WIDTH, 3) and img.dtype == np.uint8


def test_empty_series_leave_a_blank_canvas() -> None:
    img = render_rgb_array([], [], [])
    assert not (is_price_line(img) | is_equity_line(img)).any()
    assert not (is_greenish(img) | is_reddish(img)).any()
    assert (img[20:220, INNER_COLUMNS] == 255).all()  # inside the top frame: plain white


def test_constant_and_nan_series_still_draw_a_line() -> None:
    close = np.full(100, 7.0)
    close[40:60] = np.nan  # a gap is bridged
    img = render_rgb_array(close, None, np.full(100, 1e4))
    assert is_price_line(img[TOP_ROWS, INNER_COLUMNS]).any(axis=0).all()
    assert is_equity_line(img[BOTTOM_ROWS, INNER_COLUMNS]).any(axis=0).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"positions": np.ones(9)}, "positions"),
        ({"close": np.ones((10, 1))}, "close"),
        ({"equity": [["x"]]}, "equity"),
        ({"width": 4}, "width"),
        ({"height": 10.5}, "height"),
        ({"width": True}, "width"),
    ],
)
def test_bad_input_raises_value_error(kwargs: dict, match: str) -> None:
    args = {"close": np.ones(10), "positions": np.ones(10), "equity": np.ones(10)} | kwargs
    with pytest.raises(ValueError, match=match):
        render_rgb_array(**args)


def test_a_2000_bar_episode_compresses_into_the_image() -> None:
    """More bars than pixel columns: every column still shows the price line, and the long
    and short stretches both tint the background (no bar range is dropped)."""
    n = 2000
    close, equity = random_walk(n), random_walk(n + 1, seed=3)
    positions = np.repeat(np.random.default_rng(0).choice([-1.0, 0.0, 1.0], 40), 50)
    img = render_rgb_array(close, positions, equity)
    assert img.shape == (400, 640, 3)
    price_columns = is_price_line(img[:, INNER_COLUMNS]).any(axis=0)
    assert price_columns.mean() > 0.95
    assert is_greenish(img).any() and is_reddish(img).any()
    assert is_equity_line(img[:, INNER_COLUMNS]).any(axis=0).mean() > 0.95


# ------------------------------------------------------------------ ansi


def full_row() -> dict:
    return {
        "timestamp": np.datetime64("2017-03-01T10:00:00"),
        "bar": 123,
        "close": 1.0523,
        "position": 1.0,
        "equity": 10_234.12,
        "initial_equity": 10_000.0,
        "trade": 2.0,
        "fees": 1.2,
    }


def test_ansi_contains_every_field() -> None:
    line = render_ansi(full_row())
    assert line == (
        "2017-03-01 10:00 | bar 123 | close 1.0523 | pos +1.00 | "
        "equity 10,234.12 (+2.34%) | trade +2.00 | fees 1.20"
    )
    assert "\n" not in line


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (np.datetime64("2020-01-02"), "2020-01-02 |"),
        (np.datetime64("2020-01-02T13:30:00.000000000"), "2020-01-02 13:30 |"),
        (pd.Timestamp("2021-06-30 09:00", tz="UTC"), "2021-06-30 09:00 |"),
        (dt.date(2019, 5, 6), "2019-05-06 |"),
        (np.datetime64("NaT"), "NaT |"),
    ],
)
def test_ansi_formats_timestamps(timestamp: object, expected: str) -> None:
    assert render_ansi({"timestamp": timestamp, "bar": 0}).startswith(expected)


def test_ansi_skips_missing_fields_and_zero_trades() -> None:
    row = full_row()
    row.update(trade=0.0, position=-0.5, close=1234.5, slippage_cost=0.3)
    del row["initial_equity"], row["timestamp"]
    line = render_ansi(row)
    assert line == "bar 123 | close 1,234.50 | pos -0.50 | equity 10,234.12 | fees 1.50"
    assert render_ansi({}) == ""


def test_ansi_accepts_numpy_scalars() -> None:
    row = {key: np.float64(value) for key, value in full_row().items() if key != "timestamp"}
    row["bar"] = np.int64(7)
    assert "bar 7 | close 1.0523 | pos +1.00" in render_ansi(row)


def test_ansi_accepts_a_history_row() -> None:
    history = pd.DataFrame(
        {"bar": [5, 6], "close": [101.0, 102.5], "position": [0.0, -1.0], "equity": [1e4, 9e3]},
        index=pd.DatetimeIndex(["2022-01-03 15:00", "2022-01-03 16:00"], name="timestamp"),
    )
    line = render_ansi(history.iloc[-1])
    assert line == "2022-01-03 16:00 | bar 6 | close 102.50 | pos -1.00 | equity 9,000.00"


def test_ansi_rejects_non_mappings() -> None:
    with pytest.raises(ValueError, match="row"):
        render_ansi([1, 2, 3])  # type: ignore[arg-type]
