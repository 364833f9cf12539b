"""Small in-memory panels for the portfolio env tests (no test collected here)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def wide_panel(
    n_bars: int = 120, n_assets: int = 3, seed: int = 0, vol: float = 0.01
) -> pd.DataFrame:
    """A wide OHLCV panel (columns asset x field): independent random walks with gaps and wicks."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2018-01-01", periods=n_bars, name="timestamp")
    columns = {}
    for j in range(n_assets):
        close = 50.0 * (j + 1) * np.exp(np.cumsum(rng.normal(0.0, vol, n_bars)))
        prev = np.concatenate([[50.0 * (j + 1)], close[:-1]])
        open_ = prev * np.exp(rng.normal(0.0, vol / 4, n_bars))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n_bars)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n_bars)))
        volume = rng.lognormal(10.0, 0.5, n_bars)
        for field, values in zip(("open", "high", "low", "close", "volume"),
                                 (open_, high, low, close, volume), strict=True):  # fmt: skip
            columns[(f"A{j}", field)] = values
    return pd.DataFrame(columns, index=index)


def blank_rows(frame: pd.DataFrame, asset: str, rows: slice | list) -> pd.DataFrame:
    """``frame`` with every field of ``asset`` NaN on ``rows`` (positions): not listed / missing."""
    out = frame.copy()
    cols = [c for c in out.columns if c[0] == asset]
    index = out.index[rows]
    out.loc[index, cols] = np.nan
    return out


def hand_panel() -> pd.DataFrame:
    """Two assets over six bars with round prices for hand-computed examples.

    ========  ======  =======  ======  =======
    bar       A open  A close  B open  B close
    ========  ======  =======  ======  =======
    0         100     100      50      50
    1         100     110      50      45
    2         105     104      48      50
    3         104     100      50      40
    4         100     100      40      40
    5         100     120      40      40
    ========  ======  =======  ======  =======
    """
    a_open = [100, 100, 105, 104, 100, 100]
    a_close = [100, 110, 104, 100, 100, 120]
    b_open = [50, 50, 48, 50, 40, 40]
    b_close = [50, 45, 50, 40, 40, 40]
    index = pd.bdate_range("2020-01-06", periods=6, name="timestamp")
    columns = {}
    for asset, o, c in (("A", a_open, a_close), ("B", b_open, b_close)):
        o, c = np.asarray(o, float), np.asarray(c, float)
        columns[(asset, "open")] = o
        columns[(asset, "high")] = np.maximum(o, c) + 1.0
        columns[(asset, "low")] = np.minimum(o, c) - 1.0
        columns[(asset, "close")] = c
        columns[(asset, "volume")] = np.full(6, 1e6)
    return pd.DataFrame(columns, index=index)
