"""Input validation for market data and env arguments: one small function per rule.

Each check raises ``ValueError`` naming the offending argument, column or row, in the
spirit of ``gymnasium.utils.env_checker``. ``validate_ohlcv`` composes the data checks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "OHLCV_COLUMNS",
    "check_required_columns",
    "check_finite",
    "check_positive_prices",
    "check_bar_consistency",
    "check_timestamps",
    "check_min_rows",
    "validate_ohlcv",
]

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")


def _first_rows(frame: pd.DataFrame, mask: np.ndarray, limit: int = 3) -> str:
    rows = np.flatnonzero(mask)[:limit]
    labels = [f"row {i} ({frame.index[i]})" for i in rows]
    more = f" and {int(mask.sum()) - len(rows)} more" if mask.sum() > len(rows) else ""
    return ", ".join(labels) + more


def check_required_columns(frame: pd.DataFrame, required: Sequence[str] = OHLCV_COLUMNS) -> None:
    """All of ``required`` (already lower-cased) must be columns of ``frame``."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"market data is missing column(s) {missing}; got columns {list(frame.columns)} "
            "(names are matched case-insensitively)"
        )


def check_finite(frame: pd.DataFrame, columns: Sequence[str] = OHLCV_COLUMNS) -> None:
    """No NaN or infinite values in ``columns``."""
    for col in columns:
        values = frame[col].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(f"column {col!r} has NaN/inf values at {_first_rows(frame, bad)}")


def check_positive_prices(frame: pd.DataFrame) -> None:
    """Prices must be strictly positive and volume non-negative."""
    for col in PRICE_COLUMNS:
        bad = frame[col].to_numpy(dtype=np.float64) <= 0
        if bad.any():
            raise ValueError(f"column {col!r} has prices <= 0 at {_first_rows(frame, bad)}")
    bad = frame["volume"].to_numpy(dtype=np.float64) < 0
    if bad.any():
        raise ValueError(f"column 'volume' is negative at {_first_rows(frame, bad)}")


def check_bar_consistency(frame: pd.DataFrame) -> None:
    """``low <= open, close <= high`` on every bar."""
    o, h, lo, c = (frame[k].to_numpy(dtype=np.float64) for k in PRICE_COLUMNS)
    bad = h < lo
    if bad.any():
        raise ValueError(f"high < low at {_first_rows(frame, bad)}")
    for name, x in (("close", c), ("open", o)):
        bad = (x < lo) | (x > h)
        if bad.any():
            raise ValueError(f"{name} outside [low, high] at {_first_rows(frame, bad)}")


def check_timestamps(index: pd.Index) -> None:
    """Timestamps must be a DatetimeIndex, strictly increasing (sorted, no duplicates)."""
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError("market data needs a DatetimeIndex or a 'timestamp'/'date'/'time' column")
    if index.hasnans:
        raise ValueError("timestamps contain NaT")
    values = index.asi8
    dup = np.flatnonzero(values[1:] == values[:-1])
    if dup.size:
        raise ValueError(
            f"duplicate timestamp {index[dup[0] + 1]} at row {dup[0] + 1}; "
            "drop duplicates, e.g. df[~df.index.duplicated()]"
        )
    back = np.flatnonzero(values[1:] < values[:-1])
    if back.size:
        raise ValueError(
            f"timestamps are not sorted: row {back[0] + 1} ({index[back[0] + 1]}) comes before "
            f"row {back[0]} ({index[back[0]]}); call df.sort_index() first"
        )


def check_min_rows(n_rows: int, needed: int, what: str) -> None:
    """At least ``needed`` rows, else explain what they are needed for."""
    if n_rows < needed:
        raise ValueError(f"market data has {n_rows} rows but needs at least {needed} ({what})")


def validate_ohlcv(frame: pd.DataFrame) -> None:
    """Run every data check on a lower-cased OHLCV frame with a DatetimeIndex."""
    check_required_columns(frame)
    check_timestamps(frame.index)
    check_finite(frame)
    check_positive_prices(frame)
    check_bar_consistency(frame)
