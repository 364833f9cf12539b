"""Cross-sectional features: each asset's signal ranked and z-scored across the assets tradable
at the same bar.

Per asset, on its own bars (a missing bar is skipped, never filled): ``momentum_20 =
log(close_t / close_{t-20 bars})`` and ``volatility_20`` = the sample std of its last 20 log
returns. At bar t each is compared across the assets tradable at t with a defined value:

=========================  ======================================================================
xs_rank_momentum_20        rank scaled to [-1, 1] (-1 lowest, +1 highest; 0 with one asset)
xs_zscore_momentum_20      ``(x - mean) / std`` across those assets (0 when the std is 0)
xs_rank_volatility_20      as above, for ``volatility_20``
xs_zscore_volatility_20
=========================  ======================================================================

Row t uses bar t and earlier bars only. Assets not tradable at t, or whose signal is not yet
defined, get NaN (0 in the observation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CROSS_SECTION_FEATURES",
    "asset_signals",
    "cross_sectional_rank",
    "cross_sectional_zscore",
    "cross_section_features",
]

CROSS_SECTION_FEATURES: tuple[str, ...] = (
    "xs_rank_momentum_20",
    "xs_zscore_momentum_20",
    "xs_rank_volatility_20",
    "xs_zscore_volatility_20",
)
_LOOKBACK = 20


def asset_signals(close: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(momentum_20, volatility_20)``, each ``(T, N)``, computed per asset on its own present
    bars and NaN elsewhere (and during the first 20 bars of each asset)."""
    momentum = np.full(close.shape, np.nan)
    volatility = np.full(close.shape, np.nan)
    for j in range(close.shape[1]):
        rows = np.flatnonzero(present[:, j])
        log_close = np.log(close[rows, j])
        mom = np.full(rows.size, np.nan)
        mom[_LOOKBACK:] = log_close[_LOOKBACK:] - log_close[:-_LOOKBACK]
        returns = pd.Series(np.diff(log_close, prepend=np.nan))
        momentum[rows, j] = mom
        volatility[rows, j] = returns.rolling(_LOOKBACK, min_periods=_LOOKBACK).std().to_numpy()
    return momentum, volatility


def cross_sectional_rank(values: np.ndarray) -> np.ndarray:
    """Per row, the rank of each finite value among the row's finite values, scaled to [-1, 1]
    (ties keep column order); NaN stays NaN."""
    finite = np.isfinite(values)
    keyed = np.where(finite, values, np.inf)
    ranks = np.argsort(np.argsort(keyed, axis=1, kind="stable"), axis=1, kind="stable")
    count = finite.sum(axis=1, keepdims=True)
    scaled = np.where(count > 1, 2.0 * ranks / np.maximum(count - 1, 1) - 1.0, 0.0)
    return np.where(finite, scaled, np.nan)


def cross_sectional_zscore(values: np.ndarray) -> np.ndarray:
    """Per row, ``(x - mean) / std`` over the row's finite values (population std; 0 where the
    std is 0 or one value); NaN stays NaN."""
    finite = np.isfinite(values)
    count = finite.sum(axis=1, keepdims=True)
    filled = np.where(finite, values, 0.0)
    mean = filled.sum(axis=1, keepdims=True) / np.maximum(count, 1)
    centred = np.where(finite, values - mean, 0.0)
    std = np.sqrt((centred**2).sum(axis=1, keepdims=True) / np.maximum(count, 1))
    z = np.where(std > 1e-15, centred / np.where(std > 1e-15, std, 1.0), 0.0)
    return np.where(finite, z, np.nan)


def cross_section_features(
    close: np.ndarray, present: np.ndarray, tradable: np.ndarray
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The ``(T, N, C)`` cross-sectional features and their names (``CROSS_SECTION_FEATURES``)."""
    momentum, volatility = asset_signals(close, present)
    columns = []
    for signal in (momentum, volatility):
        masked = np.where(tradable, signal, np.nan)
        columns += [cross_sectional_rank(masked), cross_sectional_zscore(masked)]
    return np.stack(columns, axis=-1), CROSS_SECTION_FEATURES
