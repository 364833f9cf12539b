"""Checks of a price panel (T bars x N assets): one small function per rule.

Each raises ``ValueError`` naming the asset, the column and the first bad row with its
timestamp, in the spirit of :mod:`quantgym.envs.validation` (whose timestamp and row-count
checks are reused). ``validate_panel`` composes them.

Missing data: an asset's life runs from its first to its last row with a close. Outside it the
asset is not listed; inside it a row where *every* field is NaN is a missing bar (allowed: the
asset cannot trade that bar). A row where some fields are present and others NaN, and any
infinite value, is an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from quantgym.envs.validation import check_min_rows, check_timestamps

__all__ = [
    "PANEL_FIELDS",
    "check_asset_names",
    "check_panel_fields",
    "check_no_infinite",
    "check_complete_rows",
    "check_listed",
    "check_panel_prices",
    "check_panel_bars",
    "validate_panel",
]

#: Fields a panel may carry; ``close`` is required, ``open``/``high``/``low`` come together.
PANEL_FIELDS = ("open", "high", "low", "close", "volume")


def _where(index: pd.DatetimeIndex, assets: Sequence[str], bad: np.ndarray, column: str) -> str:
    """``asset 'X' column 'close' at row 12 (2020-01-15) and 3 more`` for the first bad cell."""
    rows, cols = np.nonzero(bad)
    first = int(np.argmin(rows * bad.shape[1] + cols))
    i, j = int(rows[first]), int(cols[first])
    more = f" and {rows.size - 1} more" if rows.size > 1 else ""
    return f"asset {assets[j]!r} column {column!r} at row {i} ({index[i]}){more}"


def check_asset_names(assets: Sequence[str]) -> None:
    """At least one asset and no name twice."""
    if len(assets) == 0:
        raise ValueError("the panel has no assets")
    names = pd.Index([str(a) for a in assets])
    dupes = sorted(set(names[names.duplicated()]))
    if dupes:
        raise ValueError(f"duplicate asset names in the panel: {dupes}")


def check_panel_fields(fields: Mapping[str, np.ndarray]) -> None:
    """``close`` present; ``open``, ``high``, ``low`` all present or all absent; nothing else."""
    unknown = sorted(set(fields) - set(PANEL_FIELDS))
    if unknown:
        raise ValueError(f"unknown panel field(s) {unknown}; expected some of {list(PANEL_FIELDS)}")
    if "close" not in fields:
        raise ValueError(f"the panel needs a 'close' field; got {sorted(fields)}")
    ohl = [f for f in ("open", "high", "low") if f in fields]
    if ohl and len(ohl) != 3:
        raise ValueError(
            f"the panel has {ohl} but not all of open, high, low: give all three or close only"
        )


def check_no_infinite(index: pd.DatetimeIndex, assets: Sequence[str], fields: Mapping) -> None:
    """No infinite value anywhere (NaN marks a missing bar; inf is an error)."""
    for name, values in fields.items():
        bad = np.isinf(values)
        if bad.any():
            raise ValueError(f"infinite value: {_where(index, assets, bad, name)}")


def check_listed(index: pd.DatetimeIndex, assets: Sequence[str], close: np.ndarray) -> None:
    """Every asset has at least one close."""
    empty = np.flatnonzero(~np.isfinite(close).any(axis=0))
    if empty.size:
        raise ValueError(f"asset {assets[int(empty[0])]!r} has no close in any row")


def check_complete_rows(
    index: pd.DatetimeIndex, assets: Sequence[str], fields: Mapping[str, np.ndarray]
) -> None:
    """Each row of an asset is complete (every field finite) or missing (every field NaN)."""
    present = np.isfinite(fields["close"])
    for name, values in fields.items():
        bad = np.isnan(values) & present
        if bad.any():
            raise ValueError(f"NaN in a bar that has a close: {_where(index, assets, bad, name)}")
        bad = np.isfinite(values) & ~present
        if bad.any():
            raise ValueError(
                f"value without a close (close is NaN): {_where(index, assets, bad, name)}"
            )


def check_panel_prices(
    index: pd.DatetimeIndex, assets: Sequence[str], fields: Mapping[str, np.ndarray]
) -> None:
    """Prices > 0 and volume >= 0 wherever present."""
    for name, values in fields.items():
        with np.errstate(invalid="ignore"):
            bad = values < 0 if name == "volume" else values <= 0
        if bad.any():
            what = "negative volume" if name == "volume" else "price <= 0"
            raise ValueError(f"{what}: {_where(index, assets, bad, name)}")


def check_panel_bars(
    index: pd.DatetimeIndex, assets: Sequence[str], fields: Mapping[str, np.ndarray]
) -> None:
    """``low <= open, close <= high`` on every present bar (when the panel has OHLC)."""
    if "high" not in fields:
        return
    high, low = fields["high"], fields["low"]
    with np.errstate(invalid="ignore"):
        bad = high < low
        if bad.any():
            raise ValueError(f"high < low: {_where(index, assets, bad, 'high')}")
        for name in ("open", "close"):
            x = fields[name]
            bad = (x < low) | (x > high)
            if bad.any():
                raise ValueError(f"{name} outside [low, high]: {_where(index, assets, bad, name)}")


def validate_panel(
    index: pd.DatetimeIndex,
    assets: Sequence[str],
    fields: Mapping[str, np.ndarray],
    min_rows: int = 3,
) -> None:
    """Run every check on a panel: ``fields`` maps field names to ``(T, N)`` float64 arrays."""
    check_asset_names(assets)
    check_panel_fields(fields)
    check_timestamps(index)
    check_min_rows(len(index), min_rows, "a bar to observe, a bar to trade at and one to mark")
    check_no_infinite(index, assets, fields)
    check_listed(index, assets, fields["close"])
    check_complete_rows(index, assets, fields)
    check_panel_prices(index, assets, fields)
    check_panel_bars(index, assets, fields)
