"""Rendering for ``TradingEnv``: a one-line text summary and an RGB chart, numpy only.

``render_rgb_array`` rasterises its lines itself (no matplotlib), so ``render_mode="rgb_array"``
works without the ``plot`` extra and is cheap enough for video recording: a 2000-bar
episode renders in about a millisecond. Each series is stretched over the full panel
width; a column that covers several bars draws their min-max envelope, so spikes survive
down-sampling and the line has no gaps.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["render_ansi", "render_rgb_array"]

_FRAME = (170, 170, 170)
_GRID_SHADE = 0.92
_BASELINE = (150, 150, 150)
_PRICE = (33, 37, 41)
_EQUITY = (31, 100, 180)
_LONG = np.array((190, 235, 196), dtype=np.float64)  # tint at |position| == max |position|
_SHORT = np.array((250, 200, 204), dtype=np.float64)

_MARGIN = 6  # white border around the panels, px
_GAP = 10  # between the two panels, px
_PAD = 3  # inside each frame, so lines never touch it, px
_LINE_WIDTH = 2  # px
_MIN_WIDTH = 32
_MIN_HEIGHT = 48


# --------------------------------------------------------------------------- text


def _format_timestamp(value: object) -> str:
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return "NaT"
        value = value.astype("datetime64[us]").item()  # datetime.datetime
    if isinstance(value, _dt.datetime):
        if value.hour == value.minute == value.second == 0:
            return value.strftime("%Y-%m-%d")
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, _dt.date):
        return value.strftime("%Y-%m-%d")
    return str(value)


def _format_price(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100.0:
        return f"{value:,.2f}"
    if magnitude >= 1.0:
        return f"{value:.4f}"
    return f"{value:.6g}"


def render_ansi(row: Mapping[str, Any]) -> str:
    """One line describing the latest step, e.g.::

        2017-03-01 10:00 | bar 123 | close 1.0523 | pos +1.00 | equity 10,234.12 (+2.34%) | trade +1.00 | fees 1.20

    ``row`` is a dict such as a step's ``info``, or a row of ``env.history()`` (a pandas
    Series, whose name is its timestamp): the keys ``timestamp``, ``bar``,
    ``close``, ``position``, ``equity``, ``trade`` (signed fraction of equity traded) and
    ``fees`` are shown when present. With ``initial_equity`` the equity also shows the
    return since the start of the episode; ``slippage_cost`` is added to ``fees``.
    ``trade`` is only shown when nonzero.
    """
    is_series = not isinstance(row, Mapping) and hasattr(row, "get") and hasattr(row, "index")
    if not (isinstance(row, Mapping) or is_series):
        raise ValueError(f"row must be a mapping or a history row, got {type(row).__name__}")
    parts: list[str] = []
    timestamp = row.get("timestamp")
    if timestamp is None and is_series:
        timestamp = getattr(row, "name", None)
    if timestamp is not None:
        parts.append(_format_timestamp(timestamp))
    if row.get("bar") is not None:
        parts.append(f"bar {int(row['bar'])}")
    if row.get("close") is not None:
        parts.append(f"close {_format_price(float(row['close']))}")
    if row.get("position") is not None:
        parts.append(f"pos {float(row['position']):+.2f}")
    if row.get("equity") is not None:
        equity = float(row["equity"])
        text = f"equity {equity:,.2f}"
        initial = row.get("initial_equity")
        if initial is not None and float(initial) > 0.0:
            text += f" ({equity / float(initial) - 1.0:+.2%})"
        parts.append(text)
    trade = row.get("trade")
    if trade is not None and float(trade) != 0.0:
        parts.append(f"trade {float(trade):+.2f}")
    if row.get("fees") is not None:
        fees = float(row["fees"]) + float(row.get("slippage_cost") or 0.0)
        parts.append(f"fees {fees:,.2f}")
    return " | ".join(parts)


# --------------------------------------------------------------------------- image


def _as_series(values: object, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D array of numbers ({exc})") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    return array


def _check_size(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _column_extent(values: np.ndarray, n_columns: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per pixel column, the lowest and highest value the polyline through ``values`` covers.

    Sample ``i`` sits at x = i * (n_columns - 1) / (n - 1). Column ``c`` spans the line from
    x = c - 1/2 to c + 1/2 (interpolated at both ends) plus every sample inside it, so
    consecutive columns overlap and the drawn line is gap-free. Non-finite samples are
    skipped (the line joins their neighbours). Returns None when nothing is finite.
    """
    n = values.size
    finite = np.isfinite(values)
    if not finite.any():
        return None
    if n == 1 or finite.sum() == 1:  # a single value: a flat line across the panel
        level = np.full(n_columns, values[finite][0])
        return level, level
    x = np.arange(n, dtype=np.float64) * ((n_columns - 1) / (n - 1))
    x, y = x[finite], values[finite]
    edges = np.interp(np.arange(n_columns + 1) - 0.5, x, y)  # value at each column boundary
    lo = np.minimum(edges[:-1], edges[1:])
    hi = np.maximum(edges[:-1], edges[1:])
    columns = np.minimum(np.rint(x).astype(np.intp), n_columns - 1)  # sorted
    starts = np.flatnonzero(np.concatenate(([True], columns[1:] != columns[:-1])))
    used = columns[starts]
    lo[used] = np.minimum(lo[used], np.minimum.reduceat(y, starts))
    hi[used] = np.maximum(hi[used], np.maximum.reduceat(y, starts))
    return lo, hi


def _to_rows(values: np.ndarray, vmin: float, vmax: float, height: int) -> np.ndarray:
    """Map values to pixel rows 0..height-1 (row 0 at the top = vmax)."""
    if vmax > vmin:
        scaled = (vmax - values) / (vmax - vmin) * (height - 1)
    else:  # constant series: draw it through the middle
        scaled = np.full(values.shape, (height - 1) / 2.0)
    # nan only from overflowing spans (|values| ~ 1e308): park those mid-panel.
    scaled = np.nan_to_num(scaled, nan=(height - 1) / 2.0)
    return np.clip(np.rint(scaled), 0, height - 1).astype(np.intp)


def _draw_series(
    plot: np.ndarray, values: np.ndarray, color: tuple[int, int, int], baseline: float | None = None
) -> None:
    """Draw ``values`` as a line over the whole ``plot`` view (H, W, 3), in place."""
    height, width = plot.shape[:2]
    extent = _column_extent(values, width)
    if extent is None:
        return
    lo, hi = extent
    finite = values[np.isfinite(values)]
    vmin, vmax = float(finite.min()), float(finite.max())
    if baseline is not None and math.isfinite(baseline):
        vmin, vmax = min(vmin, baseline), max(vmax, baseline)
    if vmax > vmin:  # a little headroom so extremes are not glued to the frame
        span = vmax - vmin
        vmin, vmax = vmin - 0.04 * span, vmax + 0.04 * span
    for fraction in (0.25, 0.5, 0.75):  # light horizontal grid, darkening any tint below it
        row = plot[round(fraction * (height - 1))]
        row[:] = (row * _GRID_SHADE).astype(np.uint8)
    if baseline is not None and math.isfinite(baseline) and vmax > vmin:
        base_row = _to_rows(np.array([baseline]), vmin, vmax, height)[0]
        dashes = (np.arange(width) // 4) % 2 == 0
        plot[base_row, dashes] = _BASELINE
    top = _to_rows(hi, vmin, vmax, height)  # higher value -> smaller row index
    bottom = _to_rows(lo, vmin, vmax, height)
    # Widen by the line width, centred on the path.
    top = np.clip(top - (_LINE_WIDTH - 1) // 2, 0, height - 1)
    bottom = np.clip(bottom + _LINE_WIDTH // 2, 0, height - 1)
    # Pixels of the vertical segment top..bottom of every column, without an (H, W) mask.
    lengths = bottom - top + 1
    columns = np.repeat(np.arange(width), lengths)
    offsets = np.arange(columns.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    plot[np.repeat(top, lengths) + offsets, columns] = color


def _tint_positions(area: np.ndarray, positions: np.ndarray, offset: int, n_columns: int) -> None:
    """Tint ``area``'s columns by the position held at the bar drawn there, in place.

    The line is drawn on ``n_columns`` columns starting at column ``offset`` of ``area``;
    columns outside that range (the padding) take the first/last bar's position.
    """
    n = positions.size
    if n == 0:
        return
    x = np.arange(area.shape[1]) - offset
    if n == 1:
        bars = np.zeros(x.size, dtype=np.intp)
    else:
        bars = np.clip(np.rint(x * ((n - 1) / (n_columns - 1))), 0, n - 1).astype(np.intp)
    pos = np.nan_to_num(positions[bars], nan=0.0, posinf=0.0, neginf=0.0)
    scale = float(np.abs(pos).max())
    if scale == 0.0:
        return
    strength = np.abs(pos) / scale  # continuous positions get a proportional tint
    white = np.full(3, 255.0)
    target = np.where((pos > 0.0)[:, None], _LONG, _SHORT)
    colors = white + strength[:, None] * (target - white)  # (W, 3)
    tinted = pos != 0.0
    area[:, tinted] = np.rint(colors[tinted]).astype(np.uint8)[None, :, :]


def _frame(canvas: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Draw a 1 px frame around rows top..bottom-1, cols left..right-1; return the inside view."""
    canvas[top, left:right] = _FRAME
    canvas[bottom - 1, left:right] = _FRAME
    canvas[top:bottom, left] = _FRAME
    canvas[top:bottom, right - 1] = _FRAME
    return canvas[top + 1 + _PAD : bottom - 1 - _PAD, left + 1 + _PAD : right - 1 - _PAD]


def render_rgb_array(
    close: object,
    positions: object,
    equity: object,
    *,
    width: int = 640,
    height: int = 400,
) -> np.ndarray:
    """Draw the episode: price with position-tinted background on top, equity below.

    Args:
        close: close prices, one per bar.
        positions: position held at each bar (same length as ``close``) or None; the top
            panel's background is green where long, red where short (paler for smaller
            positions), white when flat.
        equity: equity curve (any length, e.g. with the initial equity first); drawn in
            the bottom panel with a dashed line at its first value.
        width, height: image size in pixels.

    Returns:
        ``(height, width, 3)`` uint8 RGB image on a white background. Empty series leave
        their panel blank; NaN/inf values are skipped; constant series draw a flat line.
    """
    width = _check_size(width, "width", _MIN_WIDTH)
    height = _check_size(height, "height", _MIN_HEIGHT)
    price = _as_series(close, "close")
    pos = None if positions is None else _as_series(positions, "positions")
    if pos is not None and pos.size != price.size:
        raise ValueError(
            f"positions has length {pos.size} but close has {price.size}; expected one per bar"
        )
    curve = _as_series(equity, "equity")

    canvas = np.full((height, width, 3), 255, dtype=np.uint8)  # white background
    available = height - 2 * _MARGIN - _GAP
    top_height = round(available * 0.6)
    left, right = _MARGIN, width - _MARGIN
    top_panel = _frame(canvas, _MARGIN, _MARGIN + top_height, left, right)
    bottom_start = _MARGIN + top_height + _GAP
    bottom_panel = _frame(canvas, bottom_start, height - _MARGIN, left, right)

    with np.errstate(all="ignore"):
        if pos is not None:
            # Tint the whole panel interior (padding included) so the bands reach the frame.
            _tint_positions(
                canvas[_MARGIN + 1 : _MARGIN + top_height - 1, left + 1 : right - 1],
                pos,
                offset=_PAD,
                n_columns=top_panel.shape[1],
            )
        _draw_series(top_panel, price, _PRICE)
        baseline = float(curve[0]) if curve.size else None
        _draw_series(bottom_panel, curve, _EQUITY, baseline=baseline)
    return canvas
