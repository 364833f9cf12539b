"""``MarketData``: validated float64 OHLCV arrays plus a causal feature matrix.

This is the only entry point for prices into the env: a DataFrame, a CSV path, a bundled
sample (``"sample:googl"``), a synthetic market (``"synthetic:regime"``, a
:class:`~quantgym.envs.synthetic.SyntheticMarket`) or an existing ``MarketData``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quantgym.envs.features import compute_features
from quantgym.envs.validation import check_min_rows, validate_ohlcv

__all__ = ["MarketData", "infer_bars_per_year", "load_source", "normalise_frame"]

_TIME_COLUMNS = ("timestamp", "date", "datetime", "time")
_DAYFIRST = re.compile(r"^\d{2}\.\d{2}\.\d{4}")


def infer_bars_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year from the bar spacing: 252 for daily bars (trading days), 52 weekly,
    12 monthly; intraday bars are counted per calendar year of data."""
    if len(index) < 3:
        return 252.0
    step = np.median(np.diff(index.asi8)) / 1e9 / 86400.0  # days
    if step >= 25:
        return 12.0
    if step >= 5:
        return 52.0
    if step >= 1:
        return 252.0 / round(step)
    span_years = (index[-1] - index[0]).total_seconds() / (365.25 * 86400.0)
    return float(len(index) / span_years) if span_years > 0 else 252.0


def _parse_time(values: pd.Series) -> pd.DatetimeIndex:
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.DatetimeIndex(values)
    first = str(values.iloc[0]) if len(values) else ""
    try:
        if _DAYFIRST.match(first):
            return pd.DatetimeIndex(pd.to_datetime(values, format="%d.%m.%Y %H:%M:%S.%f"))
        return pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601"))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot parse timestamps (first value {first!r}): {exc}") from None


def normalise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Lower-case columns and move a timestamp column into a DatetimeIndex named ``timestamp``."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(df).__name__}")
    frame = df.rename(columns=lambda c: str(c).strip().lower())
    if not isinstance(frame.index, pd.DatetimeIndex):
        col = next((c for c in _TIME_COLUMNS if c in frame.columns), None)
        if col is None:
            raise ValueError(
                "market data needs a DatetimeIndex or one of the columns "
                f"{list(_TIME_COLUMNS)}; got columns {list(frame.columns)}"
            )
        frame = frame.set_index(pd.Index(_parse_time(frame[col]))).drop(columns=[col])
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    try:
        frame.index = index.as_unit("ns")  # pandas may parse to s/us; all integer math assumes ns
    except pd.errors.OutOfBoundsDatetime:
        raise ValueError(
            f"timestamps {index[0]} .. {index[-1]} do not fit in datetime64[ns] "
            f"({pd.Timestamp.min.date()} .. {pd.Timestamp.max.date()}); for a long synthetic "
            "series pass a finer bar frequency, e.g. market_kwargs={'freq': 'h'}, or a later start"
        ) from None
    frame.index.name = "timestamp"
    if frame.columns.duplicated().any():
        raise ValueError(f"duplicate column names after lower-casing: {list(frame.columns)}")
    return frame


def _to_timestamp(value: Any, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"{name}={value!r} is not a date/timestamp") from None


def load_source(
    data: Any, market_kwargs: dict | None
) -> tuple[pd.DataFrame, np.ndarray | None, dict | None, str]:
    """Resolve any source ``TradingEnv`` accepts into ``(frame, regime, params, name)``: the raw
    frame (not yet normalised), the hidden regime path and parameters of a synthetic market
    (else ``None``) and a short name of the source."""
    from quantgym.envs.synthetic import SyntheticMarket, generate_market

    if data is None:
        data = "synthetic:regime"
    if isinstance(data, SyntheticMarket):
        return (
            data.frame,
            data.regime,
            data.params,
            f"synthetic:{data.params.get('kind', 'custom')}",
        )
    if isinstance(data, pd.DataFrame):
        return data, None, None, "dataframe"
    if isinstance(data, (str, os.PathLike)):
        text = os.fspath(data)
        if text.startswith("sample:"):
            from quantgym.envs.sample_data import load_sample

            return load_sample(text.split(":", 1)[1]), None, None, text
        if text.startswith("synthetic:"):
            market = generate_market(text.split(":", 1)[1], **(market_kwargs or {}))
            return market.frame, market.regime, market.params, text
        if not os.path.isfile(text):
            raise ValueError(
                f"data={text!r} is not a file, 'sample:googl'/'sample:eurusd' or 'synthetic:<kind>'"
            )
        try:
            frame = pd.read_csv(text)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise ValueError(f"cannot read CSV {text!r}: {exc}") from None
        return frame, None, None, os.path.basename(text)
    raise ValueError(
        "data must be None, a DataFrame, a CSV path, 'sample:<name>', 'synthetic:<kind>', "
        f"a SyntheticMarket or a MarketData; got {type(data).__name__}"
    )


@dataclass(frozen=True, eq=False)
class MarketData:
    """Validated market arrays shared (read-only) by every env built on them.

    Row ``i`` is bar ``i``; ``features[i]`` uses bars ``<= i`` only. Episodes may occupy
    bars ``first_bar .. last_bar``; the env additionally needs ``window_size - 1`` bars of
    feature history before its first observation.
    """

    frame: pd.DataFrame
    features: np.ndarray
    feature_names: tuple[str, ...]
    warmup: int
    first_bar: int
    bars_per_year: float
    name: str = "market"
    regime: np.ndarray | None = None
    market_params: dict | None = None
    open: np.ndarray = field(init=False, repr=False)
    high: np.ndarray = field(init=False, repr=False)
    low: np.ndarray = field(init=False, repr=False)
    close: np.ndarray = field(init=False, repr=False)
    volume: np.ndarray = field(init=False, repr=False)
    timestamps: np.ndarray = field(init=False, repr=False)
    features32: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for col in ("open", "high", "low", "close", "volume"):
            arr = np.ascontiguousarray(self.frame[col].to_numpy(dtype=np.float64))
            arr.flags.writeable = False
            set_(self, col, arr)
        ts = self.frame.index.to_numpy(dtype="datetime64[ns]")
        ts.flags.writeable = False
        set_(self, "timestamps", ts)
        f32 = np.ascontiguousarray(np.nan_to_num(self.features, nan=0.0), dtype=np.float32)
        f32.flags.writeable = False
        set_(self, "features32", f32)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_source(
        cls,
        data: Any = None,
        *,
        start: Any = None,
        end: Any = None,
        features: Any = None,
        name: str | None = None,
        bars_per_year: float | None = None,
        normalize_window: int = 250,
        market_kwargs: dict | None = None,
    ) -> MarketData:
        """Build from any supported source. ``end`` drops later bars before anything is
        computed (they are never loaded); ``start`` moves the first tradable bar while
        earlier bars still serve as feature history (past data only)."""
        if isinstance(data, MarketData):
            if start is None and end is None and features is None:
                return data
            regime, params, src_name = data.regime, data.market_params, data.name
            frame = data.frame
            bars_per_year = bars_per_year or data.bars_per_year
        else:
            frame, regime, params, src_name = load_source(data, market_kwargs)
        frame = normalise_frame(frame)
        start_ts, end_ts = _to_timestamp(start, "start"), _to_timestamp(end, "end")
        if start_ts is not None and end_ts is not None and start_ts > end_ts:
            raise ValueError(f"start={start_ts} is after end={end_ts}")
        if end_ts is not None:
            keep = frame.index <= end_ts
            frame = frame.loc[keep]
            regime = None if regime is None else np.asarray(regime)[: int(keep.sum())]
        validate_ohlcv(frame)
        extra = [c for c in frame.columns if c not in ("open", "high", "low", "close", "volume")]
        base = frame[["open", "high", "low", "close", "volume"]].astype(np.float64)
        fs = compute_features(
            pd.concat([base, frame[extra]], axis=1) if extra else base,
            features,
            normalize_window=normalize_window,
        )
        first = fs.warmup
        if start_ts is not None:
            first = max(first, int(np.searchsorted(frame.index.asi8, start_ts.value, side="left")))
        check_min_rows(len(frame), fs.warmup + 2, f"{fs.warmup} feature warm-up bars + 2")
        if first > len(frame) - 2:
            raise ValueError(
                f"no tradable bars: the range starts at row {first} of {len(frame)} "
                f"(start={start_ts}, end={end_ts}, feature warm-up {fs.warmup})"
            )
        return cls(
            frame=base,
            features=fs.values,
            feature_names=tuple(fs.names),
            warmup=fs.warmup,
            first_bar=first,
            bars_per_year=float(bars_per_year or infer_bars_per_year(frame.index)),
            name=name or src_name,
            regime=None if regime is None else np.asarray(regime, dtype=np.int64),
            market_params=params,
        )

    # -- views -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.close)

    @property
    def last_bar(self) -> int:
        """Index of the last bar (episodes end there: no next open to trade at)."""
        return len(self.close) - 1

    @property
    def n_features(self) -> int:
        return self.features.shape[1]

    @property
    def date_range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """Timestamps of the first and last tradable bars."""
        return self.frame.index[self.first_bar], self.frame.index[-1]

    @property
    def fingerprint(self) -> str:
        """Stable hash of the OHLCV arrays and timestamps (identifies the data in datasets)."""
        digest = getattr(self, "_fingerprint", None)
        if digest is None:
            h = hashlib.sha256()
            for arr in (
                self.timestamps.view(np.int64),
                self.open,
                self.high,
                self.low,
                self.close,
                self.volume,
            ):
                h.update(np.ascontiguousarray(arr).tobytes())
            digest = h.hexdigest()[:16]
            object.__setattr__(self, "_fingerprint", digest)
        return digest

    def window_view(self, window_size: int) -> np.ndarray:
        """Read-only strided view ``(n - window_size + 1, window_size * F)`` of float32 features:
        row ``k`` is the flattened window of bars ``k .. k + window_size - 1`` (no copy)."""
        f = self.features32
        n, nf = f.shape
        rows = n - window_size + 1
        return np.lib.stride_tricks.as_strided(
            f, shape=(rows, window_size * nf), strides=(f.strides[0], f.strides[1]), writeable=False
        )

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary used in dataset and result metadata."""
        first, last = self.date_range
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "n_bars": len(self),
            "first_bar": self.first_bar,
            "start": str(first),
            "end": str(last),
            "bars_per_year": self.bars_per_year,
            "feature_names": list(self.feature_names),
        }
