"""``PanelData``: a validated price panel of T bars x N assets plus its causal features.

The only entry point for multi-asset prices into ``PortfolioEnv``: a DataFrame (wide OHLCV,
long, or wide close-only), a CSV/Parquet path, ``"sample:<name>"``, ``"synthetic:factor_regime"``
(see :mod:`quantgym.envs.portfolio.panel_io`) or an existing ``PanelData``.

Arrays are ``(T, N)`` float64 with NaN where an asset has no bar:

============  ====================================================================================
present       the asset has a bar at t
tradable      present, and not delisted: an order decided at t may be sent. An asset whose data
              ends before the panel's last row is *delisted* at its last row: the env closes the
              position at that close (an announced delisting) and the asset stays untradable
mark_close    the last known close at or before t (0 before listing): what holdings are marked at;
              a missing bar is never filled from the future
open_mark     the open at t, or the last known close before t when t has no bar
============  ====================================================================================

**Close-only data** (one price per asset and bar, how the OLPS sets come): the open of bar t is
the close of the asset's previous bar (its own close at its first bar), and high/low are the
larger/smaller of the two; volume is unknown (NaN, so ``"sqrt_impact"`` slippage is refused).
So an order decided at the close of t fills at the close of t, as in the OLPS literature, and the
portfolio earns ``close_{t+1} / close_t``.

Features. Per asset, the causal features of :mod:`quantgym.envs.features` on the asset's own bars
(default: ``PRICE_FEATURES``, plus the calendar features on intraday data; on close-only data
``CLOSE_ONLY_FEATURES``; ``features=()`` for none): ``(T, N, F)``, NaN before an asset's
``warmup`` bars have passed and after it is delisted; on a missing bar the asset's previous row
is repeated (the past only). Cross-sectional features ``(T, N, C)``: see
:mod:`quantgym.envs.portfolio.cross_section`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quantgym.envs.features import compute_features
from quantgym.envs.market_data import infer_bars_per_year
from quantgym.envs.portfolio.cross_section import cross_section_features
from quantgym.envs.portfolio.panel_io import RawPanel, load_panel_source
from quantgym.envs.portfolio.panel_validation import validate_panel

__all__ = ["CLOSE_ONLY_FEATURES", "PanelData", "last_known", "listing", "per_asset_features"]

#: Default per-asset features of close-only panels (those that need no open, range or volume).
CLOSE_ONLY_FEATURES: tuple[str, ...] = (
    "log_return",
    "rsi",
    "macd_hist",
    "bollinger_b",
    "realized_vol",
    "momentum_20",
    "momentum_60",
)


def last_known(values: np.ndarray, present: np.ndarray, before: float = 0.0) -> np.ndarray:
    """``values`` carried forward over the rows where ``present`` is False (``(T, N)``), ``before``
    ahead of each column's first present row: the last known value, never a later one."""
    rows = np.arange(values.shape[0])[:, None]
    last = np.maximum.accumulate(np.where(present, rows, -1), axis=0)
    picked = np.take_along_axis(values, np.maximum(last, 0), axis=0)
    return np.where(last >= 0, picked, before)


def listing(present: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(first_row (N,), last_row (N,), tradable (T, N))`` of a presence mask ``(T, N)``: an
    asset whose data ends before the last row is delisted from its last row on."""
    t_len = present.shape[0]
    first = np.argmax(present, axis=0)
    last = t_len - 1 - np.argmax(present[::-1], axis=0)
    delisted = (last < t_len - 1)[None, :] & (np.arange(t_len)[:, None] >= last[None, :])
    return first, last, present & ~delisted


def _ohlcv_frames(index: pd.DatetimeIndex, fields: dict[str, np.ndarray], present: np.ndarray):
    """One OHLCV DataFrame per asset over its present bars (volume 0 when unknown)."""
    volume = fields["volume"]
    for j in range(present.shape[1]):
        rows = np.flatnonzero(present[:, j])
        data = {f: fields[f][rows, j] for f in ("open", "high", "low", "close")}
        data["volume"] = np.nan_to_num(volume[rows, j], nan=0.0)
        yield rows, pd.DataFrame(data, index=index[rows])


def per_asset_features(
    index: pd.DatetimeIndex,
    fields: dict[str, np.ndarray],
    present: np.ndarray,
    features: Any,
    normalize_window: int,
) -> tuple[np.ndarray, tuple[str, ...], int]:
    """``(values (T, N, F), names, warmup)``: ``compute_features`` on each asset's own bars,
    carried over missing bars; NaN before warm-up (an asset too short to warm up stays NaN)."""
    t_len, n = present.shape
    if isinstance(features, (list, tuple)) and len(features) == 0:
        return np.zeros((t_len, n, 0)), (), 0
    frames = list(_ohlcv_frames(index, fields, present))
    longest = int(np.argmax([rows.size for rows, _ in frames]))
    first = compute_features(frames[longest][1], features, normalize_window=normalize_window)
    names, warmup = first.names, first.warmup
    out = np.full((t_len, n, len(names)), np.nan)
    for j, (rows, frame) in enumerate(frames):
        if j == longest:
            compact = first.values
        elif rows.size <= warmup:
            continue  # listed too briefly to warm up: its features stay undefined
        else:
            fs = compute_features(frame, features, normalize_window=normalize_window)
            if fs.names != names:
                raise ValueError(f"asset {j}: features {fs.names} differ from {names}")
            compact = fs.values
        life = slice(rows[0], rows[-1] + 1)
        position = np.cumsum(present[life, j]) - 1  # index of the last present bar <= t
        out[life, j] = compact[position]
    return out, tuple(names), int(warmup)


def _close_only_bars(close: np.ndarray, present: np.ndarray) -> dict[str, np.ndarray]:
    """open = the asset's previous close (its own close at its first bar); high, low around."""
    previous = np.vstack(
        [np.full((1, close.shape[1]), np.nan), last_known(close, present, np.nan)[:-1]]
    )
    open_ = np.where(present, np.where(np.isnan(previous), close, previous), np.nan)
    return {
        "open": open_,
        "high": np.fmax(open_, close) + np.where(present, 0.0, np.nan),
        "low": np.fmin(open_, close) + np.where(present, 0.0, np.nan),
        "close": close,
    }


@dataclass(frozen=True, eq=False)
class PanelData:
    """Validated panel arrays shared (read-only) by every env built on them (module docstring).

    ``timestamps`` ``(T,)``; OHLCV ``(T, N)``; ``features`` ``(T, N, F)``; ``cross_section``
    ``(T, N, C)``. Episodes may start at ``first_bar`` (the first asset's feature warm-up done, or
    ``start``) and end at ``last_bar``.
    """

    timestamps: np.ndarray
    assets: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    close_only: bool
    features: np.ndarray
    feature_names: tuple[str, ...]
    warmup: int
    cross_section: np.ndarray
    cross_section_names: tuple[str, ...]
    first_bar: int
    bars_per_year: float
    name: str = "panel"
    regime: np.ndarray | None = None
    market_params: dict | None = None
    present: np.ndarray = field(init=False, repr=False)
    tradable: np.ndarray = field(init=False, repr=False)
    first_row: np.ndarray = field(init=False, repr=False)
    last_row: np.ndarray = field(init=False, repr=False)
    mark_close: np.ndarray = field(init=False, repr=False)
    open_mark: np.ndarray = field(init=False, repr=False)
    features32: np.ndarray = field(init=False, repr=False)
    cross_section32: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        present = np.isfinite(self.close)
        first, last, tradable = listing(present)
        mark = last_known(self.close, present)
        previous = np.vstack([np.zeros((1, len(self.assets))), mark[:-1]])
        derived = {
            "present": present,
            "tradable": tradable,
            "first_row": first,
            "last_row": last,
            "mark_close": mark,
            "open_mark": np.where(present, self.open, previous),
            "features32": np.ascontiguousarray(
                np.nan_to_num(self.features, nan=0.0).transpose(1, 0, 2), dtype=np.float32
            ),
            "cross_section32": np.nan_to_num(self.cross_section, nan=0.0).astype(np.float32),
        }
        for name, arr in derived.items():
            set_(self, name, arr)
        for name in ("timestamps", "open", "high", "low", "close", "volume", "features",
                     "cross_section", *derived):  # fmt: skip
            getattr(self, name).flags.writeable = False

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_source(
        cls,
        data: Any = None,
        *,
        start: Any = None,
        end: Any = None,
        features: Any = None,
        normalize_window: int = 250,
        bars_per_year: float | None = None,
        market_kwargs: dict | None = None,
        price_relatives: bool = False,
        name: str | None = None,
    ) -> PanelData:
        """Load, validate and featurise any supported source. ``end`` drops later bars before
        anything is computed; ``start`` moves the first tradable bar (earlier bars still serve as
        feature history)."""
        if isinstance(data, PanelData):
            if start is None and end is None and features is None:
                return data
            raise ValueError(
                "a PanelData is used as it is: build a new one to change start, end or features"
            )
        raw = load_panel_source(data, market_kwargs, price_relatives)
        return cls.from_raw(raw, start=start, end=end, features=features,
                            normalize_window=normalize_window, bars_per_year=bars_per_year,
                            name=name)  # fmt: skip

    @classmethod
    def from_raw(
        cls,
        raw: RawPanel,
        *,
        start: Any = None,
        end: Any = None,
        features: Any = None,
        normalize_window: int = 250,
        bars_per_year: float | None = None,
        name: str | None = None,
    ) -> PanelData:
        """Build from a :class:`~quantgym.envs.portfolio.panel_io.RawPanel` (see ``from_source``)."""
        index, fields, regime = raw.index, dict(raw.fields), raw.regime
        start_ts, end_ts = (
            None if x is None else _timestamp(x, k) for k, x in (("start", start), ("end", end))
        )
        if start_ts is not None and end_ts is not None and start_ts > end_ts:
            raise ValueError(f"start={start_ts} is after end={end_ts}")
        if end_ts is not None:
            keep = np.asarray(index <= end_ts)
            index, fields = index[keep], {f: v[keep] for f, v in fields.items()}
            regime = None if regime is None else regime[keep]
        validate_panel(index, raw.assets, fields)
        close = fields["close"]
        present = np.isfinite(close)
        close_only = "open" not in fields
        bars = (
            _close_only_bars(close, present)
            if close_only
            else {f: fields[f] for f in ("open", "high", "low", "close")}
        )
        bars["volume"] = fields.get("volume", np.full(close.shape, np.nan))
        if features is None and close_only:
            features = CLOSE_ONLY_FEATURES
        values, names, warmup = per_asset_features(index, bars, present, features, normalize_window)
        first_rows, _, tradable = listing(present)
        xs, xs_names = cross_section_features(close, present, tradable)
        first_bar = int(first_rows.min()) + warmup
        if start_ts is not None:
            first_bar = max(
                first_bar, int(np.searchsorted(index.asi8, start_ts.value, side="left"))
            )
        if first_bar > len(index) - 2:
            raise ValueError(
                f"no tradable bars: the first observable bar is {first_bar} of {len(index)} "
                f"(feature warm-up {warmup}, start={start_ts}, end={end_ts})"
            )
        return cls(
            timestamps=index.to_numpy(dtype="datetime64[ns]"),
            assets=tuple(str(a) for a in raw.assets),
            **{f: np.ascontiguousarray(bars[f], dtype=np.float64) for f in ("open", "high", "low", "close", "volume")},
            close_only=close_only,
            features=values,
            feature_names=names,
            warmup=warmup,
            cross_section=xs,
            cross_section_names=xs_names,
            first_bar=first_bar,
            bars_per_year=float(bars_per_year or infer_bars_per_year(index)),
            name=name or raw.name,
            regime=None if regime is None else np.asarray(regime, dtype=np.int64),
            market_params=raw.params,
        )  # fmt: skip

    # -- views -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_cross_section(self) -> int:
        return len(self.cross_section_names)

    @property
    def last_bar(self) -> int:
        """Index of the last bar (episodes end there: no next open to trade at)."""
        return len(self.timestamps) - 1

    @property
    def fingerprint(self) -> str:
        """Stable hash of the timestamps, asset names and OHLCV arrays."""
        digest = getattr(self, "_fingerprint", None)
        if digest is None:
            h = hashlib.sha256("\x1f".join(self.assets).encode())
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
        """Read-only strided view ``(T - window_size + 1, N, window_size, F)`` of the float32
        features: entry ``k`` holds every asset's window of bars ``k .. k + window_size - 1``."""
        f = self.features32  # (N, T, F)
        n, t_len, nf = f.shape
        return np.lib.stride_tricks.as_strided(
            f,
            shape=(t_len - window_size + 1, n, window_size, nf),
            strides=(f.strides[1], f.strides[0], f.strides[1], f.strides[2]),
            writeable=False,
        )

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary used in dataset and result metadata."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "n_bars": len(self),
            "n_assets": self.n_assets,
            "assets": list(self.assets),
            "first_bar": self.first_bar,
            "start": str(pd.Timestamp(self.timestamps[self.first_bar])),
            "end": str(pd.Timestamp(self.timestamps[-1])),
            "bars_per_year": self.bars_per_year,
            "close_only": self.close_only,
            "feature_names": list(self.feature_names),
            "cross_section_names": list(self.cross_section_names),
        }


def _timestamp(value: Any, name: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a date/timestamp") from None
