"""Causal market features: the default indicator set, column selection and custom callables.

Every default feature at bar ``t`` is a function of bars ``t - K .. t`` only, for a fixed
``K``: indicators use trailing rolling windows (exponential averages are *finite* exponentially
weighted windows), and normalisation uses the trailing ``normalize_window`` rows up to and
including ``t``: directional features (``SCALE_ONLY``: returns, body, momentum) are divided by
their trailing root mean square, so a persistent drift (a trend, a market regime) survives;
the others get a trailing z-score. Nothing is back-filled: rows where any feature is not yet
defined are the leading ``warmup`` rows of the result and hold NaN.

Default features (``PRICE_FEATURES``, normalised as above and clipped to ``[-5, 5]``):

==================  ==================================================================
log_return          ``log(close_t / close_{t-1})``
bar_range           ``(high - low) / close``
body                ``(close - open) / open``
volume_z            z-score of ``log1p(volume)`` over 20 bars
rsi                 RSI(14) from 14-bar simple means of gains and losses (Cutler's RSI)
macd_hist           MACD(12, 26, 9) histogram divided by close
bollinger_b         Bollinger %B(20, 2)
atr                 ATR(14) (14-bar mean of the true range) divided by close
realized_vol        20-bar sample std of log returns
yang_zhang_vol      Yang-Zhang volatility over 20 bars (per bar, not annualised)
momentum_20         ``log(close_t / close_{t-20})``
momentum_60         ``log(close_t / close_{t-60})``
==================  ==================================================================

Calendar features (``CALENDAR_FEATURES``, not normalised, only for intraday data, see
:func:`is_intraday`): sin/cos of the time of day (hours, fractional) and of the day of week.

Raw return features (``features="returns"``, see :func:`return_feature_names`): history is
*not* summarised, so an encoder has to find where in its window the signal sits. Each bar
contributes its close-to-close ``log_return``; ``"+gaps"`` adds ``gap_return``
(``log(open_t / close_{t-1})``, the overnight gap) and ``intraday_return``
(``log(close_t / open_t)``); ``"+volume"`` adds ``volume_z``. The returns are divided by their
trailing RMS over ``normalize_window`` bars (as the directional defaults are) and ``volume_z``
is the default one, all clipped to ``[-5, 5]``: ``"returns"``, ``"returns+volume"``,
``"returns+gaps"``, ``"returns+gaps+volume"``. No momentum, RSI, MACD or volatility summary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "CALENDAR_FEATURES",
    "DEFAULT_FEATURES",
    "PRICE_FEATURES",
    "RAW_WARMUP",
    "RETURN_OPTIONS",
    "RETURN_WARMUP",
    "SCALE_ONLY",
    "FeatureSet",
    "callable_columns",
    "compute_features",
    "is_intraday",
    "raw_features",
    "raw_return_features",
    "return_feature_names",
]

PRICE_FEATURES: tuple[str, ...] = (
    "log_return",
    "bar_range",
    "body",
    "volume_z",
    "rsi",
    "macd_hist",
    "bollinger_b",
    "atr",
    "realized_vol",
    "yang_zhang_vol",
    "momentum_20",
    "momentum_60",
)
# Directional features: scaled by their trailing RMS, not demeaned. A rolling z-score would
# subtract the trailing mean and with it the drift of a regime that outlasts the window.
SCALE_ONLY: frozenset[str] = frozenset(
    {"log_return", "body", "momentum_20", "momentum_60", "gap_return", "intraday_return"}
)
CALENDAR_FEATURES: tuple[str, ...] = ("hour_sin", "hour_cos", "dow_sin", "dow_cos")
# Output order of the default set; the calendar names are included only for intraday data.
DEFAULT_FEATURES: tuple[str, ...] = PRICE_FEATURES + CALENDAR_FEATURES

OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")
# Leading NaN rows of each raw (un-normalised) price feature: its indicator warm-up.
RAW_WARMUP: dict[str, int] = {
    "log_return": 1,
    "bar_range": 0,
    "body": 0,
    "volume_z": 19,
    "rsi": 14,
    "macd_hist": 33,  # MACD line after 26 closes, its 9-bar signal after 8 more
    "bollinger_b": 19,
    "atr": 14,
    "realized_vol": 20,
    "yang_zhang_vol": 20,
    "momentum_20": 20,
    "momentum_60": 60,
}
# Raw return features: leading NaN rows before normalisation, and the options of "returns+...".
RETURN_WARMUP: dict[str, int] = {
    "log_return": 1,
    "gap_return": 1,
    "intraday_return": 0,
    "volume_z": 19,
}
RETURN_OPTIONS: dict[str, tuple[str, ...]] = {
    "gaps": ("gap_return", "intraday_return"),
    "volume": ("volume_z",),
}
CLIP = 5.0
# Floor on standard deviations: flat, zero-volume stretches (FX weekends) give std == 0.
EPS = 1e-12
# Finite EMA windows span this many `span`s: the dropped tail weight is about exp(-8) ~ 3e-4.
EMA_WINDOW_SPANS = 4

FeatureSpec = None | str | Sequence[str] | Callable[[pd.DataFrame], object]


@dataclass(frozen=True)
class FeatureSet:
    """A feature matrix aligned with the bars of a frame.

    Attributes:
        values: ``(n, F)`` float64; rows ``[:warmup]`` are NaN, every later value is finite.
        names: the ``F`` column names, in order.
        warmup: number of leading rows where some feature is not yet defined.
    """

    values: np.ndarray
    names: tuple[str, ...]
    warmup: int

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(
                f"values must have shape (n, {len(self.names)}) to match names; "
                f"got {self.values.shape}"
            )
        if not 0 <= self.warmup < self.values.shape[0]:
            raise ValueError(f"warmup must be in [0, {self.values.shape[0]}); got {self.warmup}")

    def to_frame(self, index: pd.Index | None = None) -> pd.DataFrame:
        """The features as a DataFrame (``index`` defaults to a RangeIndex)."""
        return pd.DataFrame(self.values, index=index, columns=list(self.names))


def is_intraday(index: pd.Index) -> bool:
    """True when the median spacing of ``index`` (a DatetimeIndex) is below one day.

    The median is taken over the whole index: the bar frequency is treated as a static
    property of the data set (it decides which columns exist, never their values).
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"index must be a pandas DatetimeIndex; got {type(index).__name__}")
    if len(index) < 2:
        return False
    spacing = (index[1:] - index[:-1]).total_seconds()
    return bool(np.median(spacing.to_numpy()) < 86_400.0)


def raw_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``PRICE_FEATURES`` before normalisation, indexed like ``frame``.

    Leading rows where an indicator's window is not yet full are NaN.
    """
    _require_ohlcv(frame)
    o, h, lo, c, v = (frame[col].to_numpy(dtype=np.float64) for col in OHLCV)
    prev_c = _lag(c)

    log_ret = np.log(c / prev_c)
    gain = np.maximum(c - prev_c, 0.0)
    loss = np.maximum(prev_c - c, 0.0)
    true_range = np.fmax(h - lo, np.maximum(np.abs(h - prev_c), np.abs(lo - prev_c)))
    true_range[0] = np.nan  # needs the previous close

    ema_fast = _finite_ema(c, 12)
    ema_slow = _finite_ema(c, 26)
    macd = ema_fast - ema_slow
    macd_hist = (macd - _finite_ema(macd, 9)) / c

    log_v = np.log1p(v)
    mean_gain, mean_loss = _roll_mean(gain, 14), _roll_mean(loss, 14)
    sma20, sd20 = _roll_mean(c, 20), _roll_std(c, 20, ddof=0)
    lv_mean, lv_sd = _roll_mean(log_v, 20), _roll_std(log_v, 20, ddof=0)

    out = {
        "log_return": log_ret,
        "bar_range": (h - lo) / c,
        "body": (c - o) / o,
        "volume_z": _safe_ratio(log_v - lv_mean, lv_sd, EPS, fill=0.0),
        "rsi": 100.0 * _safe_ratio(mean_gain, mean_gain + mean_loss, EPS * c, fill=0.5),
        "macd_hist": macd_hist,
        "bollinger_b": 0.5 + _safe_ratio(c - sma20, 4.0 * sd20, EPS * c, fill=0.0),
        "atr": _roll_mean(true_range, 14) / c,
        "realized_vol": _roll_std(log_ret, 20, ddof=1),
        "yang_zhang_vol": _yang_zhang(o, h, lo, c, prev_c, 20),
        "momentum_20": np.log(c / _shift(c, 20)),
        "momentum_60": np.log(c / _shift(c, 60)),
    }
    return pd.DataFrame(out, index=frame.index, columns=list(PRICE_FEATURES))


def compute_features(
    frame: pd.DataFrame,
    features: FeatureSpec = None,
    *,
    normalize_window: int = 250,
) -> FeatureSet:
    """Compute a causal feature matrix for ``frame``.

    Args:
        frame: float64 columns open, high, low, close, volume (plus any extra columns) with a
            sorted, unique DatetimeIndex.
        features: ``None`` for the default set (``PRICE_FEATURES`` rolling z-scored, plus
            ``CALENDAR_FEATURES`` when :func:`is_intraday`); ``"returns"`` (optionally
            ``"+gaps"``, ``"+volume"``) for raw normalised returns, see
            :func:`return_feature_names`; a list/tuple of names, each a
            column of ``frame`` used as-is or a name in ``DEFAULT_FEATURES`` which gives that
            default feature (a default name wins over a frame column of the same name); or a
            callable ``fn(frame)`` returning a DataFrame indexed like ``frame`` or an array of
            ``n`` rows, used as-is. Leading NaN rows are allowed in selected/custom columns.
        normalize_window: rows (up to and including ``t``) of the rolling z-score applied to
            the price features.

    Returns:
        A :class:`FeatureSet`; ``warmup`` is the largest leading-NaN count over columns and
        all of rows ``[:warmup]`` are set to NaN.

    Raises:
        ValueError: naming the argument, column or first bad timestamp.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame; got {type(frame).__name__}")
    if len(frame) == 0:
        raise ValueError("frame has no rows")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise ValueError(f"frame index must be a DatetimeIndex; got {type(frame.index).__name__}")
    if isinstance(normalize_window, bool) or not isinstance(normalize_window, int | np.integer):
        raise ValueError(f"normalize_window must be an int; got {normalize_window!r}")
    if normalize_window < 2:
        raise ValueError(f"normalize_window must be >= 2; got {normalize_window}")

    if features is None:
        names = PRICE_FEATURES + (CALENDAR_FEATURES if is_intraday(frame.index) else ())
        columns = _default_columns(frame, names, int(normalize_window))
    elif isinstance(features, str):
        names = return_feature_names(features)
        columns = _return_columns(frame, names, int(normalize_window))
    elif isinstance(features, list | tuple):
        names, columns = _selected_columns(frame, features, int(normalize_window))
    elif callable(features):
        names, columns = callable_columns(frame, features)
    else:
        raise ValueError(
            "features must be None, 'returns[+gaps][+volume]', a list/tuple of column names or "
            "a callable; "
            f"got {type(features).__name__} {features!r:.80}"
        )
    return _assemble(frame.index, names, columns)


# --- feature paths -------------------------------------------------------------------------


def _default_columns(
    frame: pd.DataFrame, names: Sequence[str], normalize_window: int
) -> list[np.ndarray]:
    wanted = set(names)
    columns: dict[str, np.ndarray] = {}
    price = [name for name in PRICE_FEATURES if name in wanted]
    if price:
        needed = max(RAW_WARMUP[name] for name in price) + normalize_window
        if len(frame) < needed:
            raise ValueError(
                f"frame has {len(frame)} rows but the default features {price} need at least "
                f"{needed} (indicator warm-up + normalize_window={normalize_window})"
            )
        normed = _rolling_zscore(raw_features(frame), normalize_window)
        columns.update({name: normed[:, j] for j, name in enumerate(PRICE_FEATURES)})
    if wanted & set(CALENDAR_FEATURES):
        columns.update(_calendar(frame.index))
    return [columns[name] for name in names]


def return_feature_names(spec: str) -> tuple[str, ...]:
    """Columns of a raw-returns feature set: ``"returns"`` -> ``("log_return",)``, and each
    ``"+option"`` (``"gaps"``: ``gap_return, intraday_return``; ``"volume"``: ``volume_z``)
    appends its columns, e.g. ``"returns+volume"`` -> ``("log_return", "volume_z")``."""
    base, *options = spec.split("+")
    valid = " or ".join(f"'returns+{o}'" for o in RETURN_OPTIONS)
    if base != "returns":
        raise ValueError(
            f"features={spec!r} is not a feature set name ('returns', {valid}; options combine: "
            "'returns+gaps+volume'); otherwise pass None, a list/tuple of column names or a "
            "callable"
        )
    bad = [o for o in options if o not in RETURN_OPTIONS]
    if bad or len(set(options)) != len(options):
        raise ValueError(
            f"features={spec!r}: options must be distinct names out of {list(RETURN_OPTIONS)}, "
            f"got {options}"
        )
    return ("log_return",) + tuple(
        c for o in RETURN_OPTIONS if o in options for c in RETURN_OPTIONS[o]
    )


def raw_return_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The raw return features before normalisation (``log_return``, ``gap_return``,
    ``intraday_return``, ``volume_z``), indexed like ``frame``; leading rows NaN as in
    ``RETURN_WARMUP``."""
    _require_ohlcv(frame)
    o, c, v = (frame[col].to_numpy(dtype=np.float64) for col in ("open", "close", "volume"))
    prev_c = _lag(c)
    log_v = np.log1p(v)
    lv_mean, lv_sd = _roll_mean(log_v, 20), _roll_std(log_v, 20, ddof=0)
    out = {
        "log_return": np.log(c / prev_c),
        "gap_return": np.log(o / prev_c),
        "intraday_return": np.log(c / o),
        "volume_z": _safe_ratio(log_v - lv_mean, lv_sd, EPS, fill=0.0),
    }
    return pd.DataFrame(out, index=frame.index, columns=list(RETURN_WARMUP))


def _return_columns(
    frame: pd.DataFrame, names: Sequence[str], normalize_window: int
) -> list[np.ndarray]:
    needed = max(RETURN_WARMUP[name] for name in names) + normalize_window
    if len(frame) < needed:
        raise ValueError(
            f"frame has {len(frame)} rows but the return features {list(names)} need at least "
            f"{needed} (warm-up + normalize_window={normalize_window})"
        )
    raw = raw_return_features(frame)[list(names)]
    normed = _rolling_zscore(raw, normalize_window)
    return [normed[:, j] for j in range(len(names))]


def _selected_columns(
    frame: pd.DataFrame, features: Sequence[str], normalize_window: int
) -> tuple[tuple[str, ...], list[np.ndarray]]:
    if len(features) == 0:
        raise ValueError("features is an empty list; pass None for the default set")
    bad = [f for f in features if not isinstance(f, str)]
    if bad:
        raise ValueError(f"features must be column names (str); got {bad!r}")
    dupes = sorted({f for f in features if features.count(f) > 1})
    if dupes:
        raise ValueError(f"features has duplicate names: {dupes}")
    missing = [f for f in features if f not in DEFAULT_FEATURES and f not in frame.columns]
    if missing:
        raise ValueError(
            f"features not found: {missing}; available frame columns: "
            f"{[str(c) for c in frame.columns]}; default features: {list(DEFAULT_FEATURES)}"
        )
    defaults = [f for f in features if f in DEFAULT_FEATURES]
    default_cols = dict(
        zip(defaults, _default_columns(frame, defaults, normalize_window), strict=True)
    )
    columns = [
        default_cols[f] if f in default_cols else _numeric_column(frame[f], f) for f in features
    ]
    return tuple(features), columns


def callable_columns(
    frame: pd.DataFrame, fn: Callable[[pd.DataFrame], object]
) -> tuple[tuple[str, ...], list[np.ndarray]]:
    """The columns a user's ``features`` callable returns for ``frame``, checked (one row per
    bar, same index, numeric): ``(names, [column arrays])``, before any NaN or warm-up check."""
    label = getattr(fn, "__name__", type(fn).__name__)
    result = fn(frame.copy())  # a copy: the callable must not be able to edit the market data
    n = len(frame)
    if isinstance(result, pd.Series):
        result = result.to_frame(name=result.name if result.name is not None else label)
    if isinstance(result, pd.DataFrame):
        if len(result) != n:
            raise ValueError(
                f"features callable {label!r} returned {len(result)} rows; frame has {n}"
            )
        if not result.index.equals(frame.index):
            raise ValueError(
                f"features callable {label!r} returned a DataFrame whose index does not match "
                "the frame's index (same timestamps, same order)"
            )
        names = tuple(str(c) for c in result.columns)
        series = [result.iloc[:, j] for j in range(result.shape[1])]
    elif isinstance(result, np.ndarray):
        arr = result[:, None] if result.ndim == 1 else result
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(
                f"features callable {label!r} returned an array of shape {result.shape}; "
                f"expected ({n},) or ({n}, F)"
            )
        names = tuple(f"{label}_{j}" for j in range(arr.shape[1]))
        series = [pd.Series(arr[:, j]) for j in range(arr.shape[1])]
    else:
        raise ValueError(
            f"features callable {label!r} must return a DataFrame or ndarray; "
            f"got {type(result).__name__}"
        )
    if not names:
        raise ValueError(f"features callable {label!r} returned no columns")
    dupes = sorted({x for x in names if names.count(x) > 1})
    if dupes:
        raise ValueError(f"features callable {label!r} returned duplicate columns: {dupes}")
    return names, [_numeric_column(s, name) for s, name in zip(series, names, strict=True)]


def _assemble(
    index: pd.DatetimeIndex, names: Sequence[str], columns: list[np.ndarray]
) -> FeatureSet:
    n = len(index)
    values = np.empty((n, len(names)), dtype=np.float64)
    warmup = 0
    for j, (name, col) in enumerate(zip(names, columns, strict=True)):
        nan = np.isnan(col)
        lead = n if nan.all() else int(np.argmin(nan))
        if lead == n:
            raise ValueError(f"feature {name!r} is NaN in every row of {n}")
        bad = ~np.isfinite(col[lead:])
        if bad.any():
            row = lead + int(np.argmax(bad))
            raise ValueError(
                f"feature {name!r} has a non-finite value ({col[row]}) after its leading NaN "
                f"rows, first at row {row} (timestamp {index[row]})"
            )
        values[:, j] = col
        warmup = max(warmup, lead)
    if warmup >= n:  # pragma: no cover - each column has a finite row, so warmup < n
        raise ValueError(f"no row has every feature defined ({n} rows)")
    values[:warmup] = np.nan  # a warm-up row is unusable as a whole
    return FeatureSet(values=values, names=tuple(names), warmup=warmup)


def _numeric_column(col: pd.Series, name: str) -> np.ndarray:
    dtype = col.dtype
    if (
        not pd.api.types.is_numeric_dtype(dtype)
        or pd.api.types.is_complex_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
    ):
        raise ValueError(f"feature column {name!r} is not numeric (dtype {dtype})")
    arr = col.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(arr).all():
        raise ValueError(f"feature column {name!r} is all NaN")
    return arr


# --- indicator building blocks -------------------------------------------------------------


def _require_ohlcv(frame: pd.DataFrame) -> None:
    missing = [c for c in OHLCV if c not in frame.columns]
    if missing:
        raise ValueError(
            f"frame is missing columns {missing} needed by the default features; "
            f"available: {[str(c) for c in frame.columns]}"
        )


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """``x[t - k]`` at row t (NaN for the first k rows)."""
    out = np.full_like(x, np.nan)
    out[k:] = x[:-k]
    return out


def _lag(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    out[0] = np.nan
    out[1:] = x[:-1]
    return out


def _roll_mean(x: np.ndarray, window: int) -> np.ndarray:
    # pandas' rolling kernels run forward through the rows, so row t never sees rows > t.
    return pd.Series(x).rolling(window, min_periods=window).mean().to_numpy()


def _roll_std(x: np.ndarray, window: int, *, ddof: int) -> np.ndarray:
    return pd.Series(x).rolling(window, min_periods=window).std(ddof=ddof).to_numpy()


def _safe_ratio(
    num: np.ndarray, den: np.ndarray, floor: float | np.ndarray, *, fill: float
) -> np.ndarray:
    """``num / den``, or ``fill`` where ``|den| <= floor`` (a flat window); NaN stays NaN."""
    out = np.full_like(num, np.nan)
    defined = ~(np.isnan(num) | np.isnan(den))
    flat = defined & (np.abs(den) <= floor)
    ok = defined & ~flat
    out[ok] = num[ok] / den[ok]
    out[flat] = fill
    return out


def _finite_ema(x: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average over a finite trailing window of ``4 * span`` rows.

    Weights ``(1 - alpha)**k`` (``alpha = 2 / (span + 1)``) for lags ``k < 4 * span``,
    normalised over the lags available, so the first rows equal pandas'
    ``ewm(span, adjust=True)`` and the value never depends on rows further back. ``x`` may
    start with NaN; the result is NaN until ``span`` valid rows have been seen.
    """
    n = len(x)
    nan = np.isnan(x)
    start = n if nan.all() else int(np.argmin(nan))
    out = np.full(n, np.nan)
    valid = x[start:]
    m = len(valid)
    if m < span:
        return out
    alpha = 2.0 / (span + 1.0)
    length = EMA_WINDOW_SPANS * span
    weights = (1.0 - alpha) ** np.arange(length)
    acc = np.zeros(m)
    # One vectorised pass per lag: every element sums its own lags in the same order,
    # so the result at row t is bit-identical whatever the rows after t hold.
    for k in range(min(length, m)):
        acc[k:] += weights[k] * valid[: m - k]
    norm = np.cumsum(weights)[np.minimum(np.arange(m), length - 1)]
    ema = acc / norm
    ema[: span - 1] = np.nan
    out[start:] = ema
    return out


def _yang_zhang(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, prev_c: np.ndarray, window: int
) -> np.ndarray:
    overnight = np.log(o / prev_c)
    open_close = np.log(c / o)
    rogers_satchell = np.log(h / c) * np.log(h / o) + np.log(lo / c) * np.log(lo / o)
    rogers_satchell[0] = np.nan  # keep every component on the same window of bars 1..t
    k = 0.34 / (1.34 + (window + 1) / (window - 1))
    var = (
        _roll_std(overnight, window, ddof=1) ** 2
        + k * _roll_std(open_close, window, ddof=1) ** 2
        + (1.0 - k) * _roll_mean(rogers_satchell, window)
    )
    return np.sqrt(np.maximum(var, 0.0))  # rounding can leave a tiny negative variance


def _rolling_zscore(raw: pd.DataFrame, window: int) -> np.ndarray:
    """Trailing normalisation over ``window`` rows up to and including t, clipped to
    [-CLIP, CLIP]: ``x / rms`` for ``SCALE_ONLY`` columns, ``(x - mean) / std`` for the rest."""
    values = raw.to_numpy()
    rolling = raw.reset_index(drop=True).rolling(window, min_periods=window)
    mean = rolling.mean().to_numpy()
    std = rolling.std(ddof=1).to_numpy()
    rms = np.sqrt(
        (raw.reset_index(drop=True) ** 2).rolling(window, min_periods=window).mean().to_numpy()
    )
    scale_only = np.array([name in SCALE_ONLY for name in raw.columns])
    z = np.where(
        scale_only[None, :],
        values / np.maximum(rms, EPS),
        (values - mean) / np.maximum(std, EPS),
    )
    return np.clip(z, -CLIP, CLIP)


def _calendar(index: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    hours = (index.hour + index.minute / 60.0 + index.second / 3600.0).to_numpy(dtype=np.float64)
    days = index.dayofweek.to_numpy(dtype=np.float64)
    hour_angle = 2.0 * np.pi * hours / 24.0
    dow_angle = 2.0 * np.pi * days / 7.0
    return {
        "hour_sin": np.sin(hour_angle),
        "hour_cos": np.cos(hour_angle),
        "dow_sin": np.sin(dow_angle),
        "dow_cos": np.cos(dow_angle),
    }
