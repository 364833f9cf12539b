"""Read a price panel from any supported source into ``(timestamps, assets, fields)`` arrays.

Forms accepted (field names case-insensitive, asset names kept as given):

==============================  ==================================================================
wide OHLCV                      DataFrame with two column levels, asset x field (either order):
                                ``df[("AAPL", "close")]``; fields ``open, high, low, close,
                                volume`` (``close`` alone is enough)
long                            DataFrame with an ``asset`` column, a timestamp (index or a
                                ``timestamp``/``date``/``datetime``/``time`` column) and fields;
                                assets in sorted order
wide close-only                 DataFrame with one column of closes per asset (the OLPS form);
                                ``price_relatives=True`` reads ``p_t / p_{t-1}`` instead
CSV / Parquet path              any of the above (a CSV whose second header row names fields is
                                read as wide OHLCV)
``"sample:<name>"``             a bundled set (:mod:`quantgym.envs.portfolio.samples`)
``"synthetic:factor_regime"``   the seeded factor/regime market (``market_kwargs`` go to it)
==============================  ==================================================================

Timestamps: a ``DatetimeIndex`` or a time column, parsed as :func:`quantgym.envs.market_data.
normalise_frame` does (time zones to naive UTC). Values are only reshaped here; every check is
:func:`quantgym.envs.portfolio.panel_validation.validate_panel`'s.
"""

from __future__ import annotations

import csv
import gzip
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantgym.envs.market_data import normalise_frame
from quantgym.envs.portfolio.factor_market import FactorMarket, generate_factor_market
from quantgym.envs.portfolio.panel_validation import PANEL_FIELDS, check_asset_names
from quantgym.envs.portfolio.samples import load_portfolio_sample

__all__ = [
    "RawPanel",
    "panel_from_frame",
    "relatives_to_prices",
    "read_panel_file",
    "load_panel_source",
]

_TIME_NAMES = ("timestamp", "date", "datetime", "time")


@dataclass(frozen=True)
class RawPanel:
    """A panel before validation: ``fields[name]`` is ``(T, N)`` float64, NaN where missing."""

    index: pd.DatetimeIndex
    assets: tuple[str, ...]
    fields: dict[str, np.ndarray]
    name: str
    regime: np.ndarray | None = None
    params: dict | None = None


def _time_index(frame: pd.DataFrame) -> tuple[pd.DatetimeIndex, pd.DataFrame]:
    """The bar timestamps (naive, ns) and the frame without its time column."""
    names = [c[0] if isinstance(c, tuple) else c for c in frame.columns]
    hits = [j for j, c in enumerate(names) if str(c).strip().lower() in _TIME_NAMES]
    if isinstance(frame.index, pd.DatetimeIndex) or (
        not hits and str(frame.index.name).strip().lower() in _TIME_NAMES  # e.g. a CSV's index
    ):
        values: Any = frame.index
    else:
        if not hits:
            raise ValueError(
                "a panel needs a DatetimeIndex or a timestamp/date column; undated data (such as "
                "OLPS price relatives) can be given one, e.g. "
                "frame.index = pd.bdate_range('2000-01-03', periods=len(frame))"
            )
        values = frame.iloc[:, hits[0]].to_numpy()
        frame = frame.drop(columns=frame.columns[hits[0]])
    index = normalise_frame(pd.DataFrame({"timestamp": values})).index
    return pd.DatetimeIndex(index, name="timestamp"), frame


def _numeric(values: pd.DataFrame | pd.Series, what: str) -> np.ndarray:
    try:
        return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not numeric") from None


def _from_wide_fields(frame: pd.DataFrame) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    levels = [[str(v).strip().lower() for v in frame.columns.get_level_values(k)] for k in (0, 1)]
    is_field = [set(lv) <= set(PANEL_FIELDS) for lv in levels]
    if is_field[0] == is_field[1]:
        raise ValueError(
            "a two-level column index must have one level of asset names and one of fields "
            f"{list(PANEL_FIELDS)}; got levels {sorted(set(levels[0]))[:8]} and "
            f"{sorted(set(levels[1]))[:8]}"
        )
    field_level = 0 if is_field[0] else 1
    fields_of = levels[field_level]
    assets_of = [str(v) for v in frame.columns.get_level_values(1 - field_level)]
    assets = tuple(dict.fromkeys(assets_of))
    wanted = tuple(f for f in PANEL_FIELDS if f in fields_of)
    pairs = list(zip(assets_of, fields_of, strict=True))
    position = {pair: j for j, pair in enumerate(pairs)}
    if len(position) != len(pairs):
        twice = sorted({a for a, f in pairs if pairs.count((a, f)) > 1})
        raise ValueError(
            f"duplicate asset names in the panel: {twice} (a column asset x field appears twice)"
        )
    fields = {}
    for f in wanted:
        missing = [a for a in assets if (a, f) not in position]
        if missing:
            raise ValueError(f"asset {missing[0]!r} has no {f!r} column but other assets do")
        cols = [position[(a, f)] for a in assets]
        fields[f] = _numeric(frame.iloc[:, cols], f"field {f!r}")
    return assets, fields


def _from_long(frame: pd.DataFrame) -> tuple[pd.DatetimeIndex, tuple[str, ...], dict]:
    frame = normalise_frame(frame)
    unknown = [c for c in frame.columns if c != "asset" and c not in PANEL_FIELDS]
    if unknown:
        raise ValueError(
            f"long panel has unknown column(s) {unknown}; expected 'asset', a timestamp and "
            f"fields {list(PANEL_FIELDS)}"
        )
    asset = frame["asset"].astype(str)
    keys = pd.MultiIndex.from_arrays([frame.index, asset])
    dup = np.flatnonzero(keys.duplicated())
    if dup.size:
        raise ValueError(
            f"asset {asset.iloc[dup[0]]!r} has two rows at timestamp {frame.index[dup[0]]}"
        )
    assets = tuple(sorted(pd.unique(asset)))  # sorted: independent of the row order
    index = pd.DatetimeIndex(frame.index.unique().sort_values(), name="timestamp")
    fields = {}
    for f in (f for f in PANEL_FIELDS if f in frame.columns):
        wide = pd.DataFrame({"v": frame[f].to_numpy(), "a": asset.to_numpy()}, index=frame.index)
        table = wide.pivot(columns="a", values="v").reindex(index=index, columns=list(assets))
        fields[f] = _numeric(table, f"field {f!r}")
    return index, assets, fields


def panel_from_frame(
    frame: pd.DataFrame, price_relatives: bool = False, name: str = "dataframe"
) -> RawPanel:
    """A :class:`RawPanel` from a wide OHLCV, long or wide close-only DataFrame."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    if isinstance(frame.columns, pd.MultiIndex):
        if frame.columns.nlevels != 2:
            raise ValueError(f"a wide panel has 2 column levels, got {frame.columns.nlevels}")
        index, rest = _time_index(frame)
        assets, fields = _from_wide_fields(rest)
    elif "asset" in {str(c).strip().lower() for c in frame.columns}:
        index, assets, fields = _from_long(frame)
    else:
        index, rest = _time_index(frame)
        assets = tuple(str(c) for c in rest.columns)
        check_asset_names(assets)
        bad = [
            a
            for a, dtype in zip(assets, rest.dtypes, strict=True)
            if not pd.api.types.is_numeric_dtype(dtype)
        ]
        if bad:
            raise ValueError(f"close column(s) {bad[:5]} of the wide panel are not numeric")
        fields = {"close": _numeric(rest, "close")}
    if price_relatives:
        if set(fields) != {"close"}:
            raise ValueError("price_relatives=True reads close-only data (one column per asset)")
        fields = {"close": relatives_to_prices(fields["close"])}
    return RawPanel(index=index, assets=assets, fields=fields, name=name)


def relatives_to_prices(relatives: np.ndarray) -> np.ndarray:
    """Prices from price relatives ``x_t = p_t / p_{t-1}`` (``p`` = 1 before each asset's
    first relative); NaN rows stay NaN and are skipped by the product."""
    return np.where(np.isnan(relatives), np.nan, np.nancumprod(relatives, axis=0))


def _is_wide_fields_csv(path: str) -> bool:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        rows = [row for _, row in zip(range(2), csv.reader(f), strict=False)]
    if len(rows) < 2:
        return False
    second = {c.strip().lower() for c in rows[1]}
    return "close" in second and "asset" not in {c.strip().lower() for c in rows[0]}


def read_panel_file(path: str) -> pd.DataFrame:
    """Read a CSV (optionally gzipped) or Parquet panel file into a DataFrame."""
    if not os.path.isfile(path):
        raise ValueError(f"data={path!r} is not a file, 'sample:<name>' or 'synthetic:<kind>'")
    if path.endswith((".parquet", ".pq")):
        try:
            return pd.read_parquet(path)
        except ImportError as exc:
            raise ValueError(f"reading Parquet needs pyarrow or fastparquet: {exc}") from None
    try:
        if _is_wide_fields_csv(path):
            return pd.read_csv(path, header=[0, 1], index_col=0)
        return pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"cannot read CSV {path!r}: {exc}") from None


def _from_factor_market(market: FactorMarket) -> RawPanel:
    fields = {f: getattr(market, f) for f in PANEL_FIELDS}
    return RawPanel(
        index=market.index,
        assets=market.assets,
        fields=fields,
        name=f"synthetic:{market.params['kind']}",
        regime=market.regime,
        params=market.params,
    )


def load_panel_source(
    data: Any, market_kwargs: dict | None = None, price_relatives: bool = False
) -> RawPanel:
    """Resolve ``data`` (see the module docstring; ``None`` = the default synthetic market)."""
    if data is None:
        data = "synthetic:factor_regime"
    if isinstance(data, FactorMarket):
        return _from_factor_market(data)
    if isinstance(data, pd.DataFrame):
        return panel_from_frame(data, price_relatives)
    if isinstance(data, (str, os.PathLike)):
        text = os.fspath(data)
        if text.startswith("sample:"):
            return panel_from_frame(load_portfolio_sample(text.split(":", 1)[1]), False, text)
        if text.startswith("synthetic:"):
            kind = text.split(":", 1)[1]
            return _from_factor_market(generate_factor_market(kind, **(market_kwargs or {})))
        return panel_from_frame(read_panel_file(text), price_relatives, os.path.basename(text))
    raise ValueError(
        "data must be None, a DataFrame, a CSV/Parquet path, 'sample:<name>', "
        f"'synthetic:factor_regime', a FactorMarket or a PanelData; got {type(data).__name__}"
    )
