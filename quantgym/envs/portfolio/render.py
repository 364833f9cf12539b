"""Rendering for ``PortfolioEnv``: a one-line text summary and an RGB chart, numpy only.

``render_portfolio_rgb`` draws the weights over time as a stacked area (long weights stacked up
from 0, short weights down; white above them is cash) and the equity curve below, rasterised
here without matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["render_portfolio_ansi", "render_portfolio_rgb", "PALETTE"]

#: Asset colours, cycled (Tableau 10).
PALETTE = np.array(
    [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
     (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)],
    dtype=np.uint8,
)  # fmt: skip
_WHITE = 255
_AXIS = (120, 120, 120)
_EQUITY = (20, 20, 20)
_MARGIN = 6
_GAP = 10


def render_portfolio_ansi(
    timestamp: pd.Timestamp, bar: int, equity: float, initial_equity: float,
    assets: Sequence[str], weights: np.ndarray, cash_weight: float, costs: float, top: int = 3,
) -> str:  # fmt: skip
    """One line, e.g. ``2020-03-02 | bar 812 | equity 10,523.10 (+5.23%) | cash 10% | AAPL 30%,
    MSFT 25%, KO 20% | costs 1.20`` (the ``top`` largest absolute weights)."""
    order = np.argsort(-np.abs(weights), kind="stable")[:top]
    held = ", ".join(f"{assets[j]} {weights[j]:+.0%}" for j in order if weights[j] != 0.0)
    change = equity / initial_equity - 1.0 if initial_equity > 0 else 0.0
    stamp = timestamp.strftime(
        "%Y-%m-%d %H:%M" if timestamp != timestamp.normalize() else "%Y-%m-%d"
    )
    parts = [
        stamp,
        f"bar {bar}",
        f"equity {equity:,.2f} ({change:+.2%})",
        f"cash {cash_weight:.0%}",
    ]
    return " | ".join(parts + ([held] if held else []) + [f"costs {costs:,.2f}"])


def _columns(n_bars: int, width: int) -> np.ndarray:
    """The bar drawn at each pixel column."""
    if n_bars <= 1:
        return np.zeros(width, dtype=np.intp)
    return np.rint(np.arange(width) * ((n_bars - 1) / (width - 1))).astype(np.intp)


def _stacked_area(panel: np.ndarray, weights: np.ndarray) -> None:
    """Fill ``panel`` (H, W, 3) with the stacked weights ``(T, N)``, in place."""
    height, width = panel.shape[:2]
    w = np.nan_to_num(weights[_columns(len(weights), width)])  # (W, N)
    up = np.cumsum(np.maximum(w, 0.0), axis=1)
    down = np.cumsum(np.minimum(w, 0.0), axis=1)
    top = max(1.0, float(up[:, -1].max(initial=0.0)))
    bottom = min(0.0, float(down[:, -1].min(initial=0.0)))
    level = top - np.arange(height) * ((top - bottom) / (height - 1))  # value at each pixel row
    above = level[:, None] > 0.0
    # asset index under each pixel: how many stacked bounds lie below (long) / above (short) it
    idx = np.where(
        above,
        (up[None] < level[:, None, None]).sum(-1),
        (down[None] > level[:, None, None]).sum(-1),
    )
    filled = idx < w.shape[1]
    colours = PALETTE[idx % len(PALETTE)]
    panel[filled] = colours[filled]
    zero = int(round(top / (top - bottom) * (height - 1)))
    panel[min(zero, height - 1)] = _AXIS


def _line(panel: np.ndarray, values: np.ndarray) -> None:
    """Draw ``values`` across ``panel`` as a line (each column spans the bars it covers)."""
    height, width = panel.shape[:2]
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return
    lo_v, hi_v = float(finite.min()), float(finite.max())
    span = hi_v - lo_v if hi_v > lo_v else 1.0
    rows = np.rint((hi_v - np.nan_to_num(values, nan=lo_v)) / span * (height - 1)).astype(np.intp)
    bars = _columns(len(values), width + 1)
    for x in range(width):
        segment = rows[bars[x] : max(bars[x + 1], bars[x]) + 1]
        panel[segment.min() : segment.max() + 1, x] = _EQUITY


def render_portfolio_rgb(
    weights: np.ndarray, equity: np.ndarray, *, width: int = 640, height: int = 400
) -> np.ndarray:
    """``(height, width, 3)`` uint8: weights ``(T, N)`` as a stacked area on top (60%), the
    equity curve (any length, e.g. initial equity first) below. Empty inputs leave blank panels."""
    if width < 32 or height < 48:
        raise ValueError(f"width and height must be >= 32 and >= 48, got {width} x {height}")
    weights = np.asarray(weights, dtype=np.float64)
    equity = np.asarray(equity, dtype=np.float64).reshape(-1)
    if weights.ndim != 2:
        raise ValueError(f"weights must be (T, N), got shape {weights.shape}")
    canvas = np.full((height, width, 3), _WHITE, dtype=np.uint8)
    inner = width - 2 * _MARGIN
    top_h = round((height - 2 * _MARGIN - _GAP) * 0.6)
    top = canvas[_MARGIN : _MARGIN + top_h, _MARGIN : _MARGIN + inner]
    bottom = canvas[_MARGIN + top_h + _GAP : height - _MARGIN, _MARGIN : _MARGIN + inner]
    if weights.size:
        _stacked_area(top, weights)
    if equity.size:
        _line(bottom, equity)
    return canvas
