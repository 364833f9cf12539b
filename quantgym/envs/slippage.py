"""Slippage models: a per-bar rate (fraction of traded notional) paid on fills.

A model turns the market into an array ``rates[t]``: the slippage paid by an order decided
at the close of bar ``t`` and filled at the open of bar ``t + 1``. Rates only use bars
``<= t``, so slippage never looks ahead.

``SqrtImpactSlippage`` also depends on the order's size (the square-root law of market
impact): besides the per-bar half-spread it gives per-bar impact coefficients that the ledger
(:func:`quantgym.envs.accounting.impact_fill`) applies to each order's quantity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from quantgym.checks import check_fraction, check_positive_int

if TYPE_CHECKING:
    from quantgym.envs.market_data import MarketData

__all__ = [
    "SlippageModel",
    "FixedSlippage",
    "SpreadSlippage",
    "VolatilitySlippage",
    "SqrtImpactSlippage",
    "make_slippage",
]


@runtime_checkable
class SlippageModel(Protocol):
    """Anything with ``rates(market) -> float64 array (n_bars,)``."""

    def rates(self, market: MarketData) -> np.ndarray: ...


@dataclass(frozen=True)
class FixedSlippage:
    """A constant fraction of traded notional (``rate=0.0005`` is 5 bp)."""

    rate: float = 0.0005

    def __post_init__(self) -> None:
        check_fraction("slippage rate", self.rate, upper=0.5)

    def rates(self, market: MarketData) -> np.ndarray:
        return np.full(len(market), float(self.rate))


@dataclass(frozen=True)
class SpreadSlippage:
    """Crossing a quoted bid-ask ``spread`` (fraction of price) costs half of it per fill."""

    spread: float = 0.001

    def __post_init__(self) -> None:
        check_fraction("spread", self.spread, upper=0.5)

    def rates(self, market: MarketData) -> np.ndarray:
        return np.full(len(market), 0.5 * float(self.spread))


@dataclass(frozen=True)
class VolatilitySlippage:
    """Rate ``= k * sigma_t + min_rate`` with ``sigma_t`` the std of the last ``window``
    close-to-close log returns up to bar ``t`` (expanding at the start): thin, volatile
    markets cost more to trade."""

    k: float = 0.05
    window: int = 20
    min_rate: float = 0.0

    def __post_init__(self) -> None:
        check_fraction("k", self.k, upper=10.0)
        check_positive_int("window", self.window, minimum=2)
        check_fraction("min_rate", self.min_rate, upper=0.5)

    def rates(self, market: MarketData) -> np.ndarray:
        sigma = _trailing_volatility(market.close, self.window)
        return np.minimum(self.k * sigma + self.min_rate, 0.5)


def _trailing_volatility(close: np.ndarray, window: int) -> np.ndarray:
    """Std of the last ``window`` close-to-close log returns up to each bar (0 before 2)."""
    import pandas as pd

    log_ret = pd.Series(np.diff(np.log(close), prepend=np.log(close[0])))
    sigma = log_ret.rolling(window, min_periods=2).std().to_numpy()
    return np.nan_to_num(sigma, nan=0.0)


@dataclass(frozen=True)
class SqrtImpactSlippage:
    """Cost fraction ``= half_spread + impact * sigma_t * sqrt(q / V_t)`` for an order of ``q``
    units decided at the close of bar ``t`` (the square-root law of market impact).

    ``sigma_t`` is the std of the last ``window`` close-to-close log returns and ``V_t`` the
    mean volume of the last ``window`` bars, both up to bar ``t`` (expanding at the start).
    ``q / V_t`` is the order's participation, reported as ``info["participation"]``. With
    ``max_participation`` set, at most ``max_participation * V_t`` units fill per bar; the rest
    is reported as ``info["unfilled"]`` and sent again at the next open.
    """

    half_spread: float = 0.0005
    impact: float = 1.0
    window: int = 20
    max_participation: float | None = None

    def __post_init__(self) -> None:
        check_fraction("half_spread", self.half_spread, upper=0.5)
        check_fraction("impact", self.impact, upper=100.0)
        check_positive_int("window", self.window, minimum=2)
        if self.max_participation is not None and not (
            np.isfinite(self.max_participation) and self.max_participation > 0
        ):
            raise ValueError(f"max_participation must be > 0 or None, got {self.max_participation}")

    def rates(self, market: MarketData) -> np.ndarray:
        return np.full(len(market), float(self.half_spread))

    def average_volume(self, market: MarketData) -> np.ndarray:
        """Trailing mean volume ``V_t`` in units; raises ``ValueError`` where it is not > 0."""
        csum = np.concatenate([[0.0], np.cumsum(market.volume)])
        idx = np.arange(len(market))
        lo = np.maximum(idx + 1 - self.window, 0)
        adv = (csum[idx + 1] - csum[lo]) / (idx + 1 - lo)
        bad = np.flatnonzero(~(adv > 0))
        if bad.size:
            raise ValueError(
                "slippage='sqrt_impact' needs positive volume: the trailing mean volume is "
                f"{adv[bad[0]]} at bar {int(bad[0])} ({market.timestamps[bad[0]]})"
            )
        return adv

    def impact_coefficients(self, market: MarketData) -> np.ndarray:
        """``impact * sigma_t / sqrt(V_t)``: the impact rate of an order of ``q`` units is this
        times ``sqrt(q)``."""
        sigma = _trailing_volatility(market.close, self.window)
        return self.impact * sigma / np.sqrt(self.average_volume(market))

    def max_units(self, market: MarketData) -> np.ndarray:
        """Most units that fill per bar (the largest float without ``max_participation``)."""
        if self.max_participation is None:
            return np.full(len(market), np.finfo(np.float64).max)
        return self.max_participation * self.average_volume(market)


_MODELS: dict[str, type] = {
    "fixed": FixedSlippage,
    "spread": SpreadSlippage,
    "volatility": VolatilitySlippage,
    "sqrt_impact": SqrtImpactSlippage,
}


def make_slippage(spec: Any) -> SlippageModel:
    """Build a model from a number (fixed rate), a name (``"fixed"``, ``"spread"``,
    ``"volatility"``, ``"sqrt_impact"`` with default parameters), a dict ``{"model": name, **params}`` or a model."""
    if isinstance(spec, SlippageModel) and not isinstance(spec, (str, dict)):
        return spec
    if isinstance(spec, (int, float, np.floating)) and not isinstance(spec, bool):
        return FixedSlippage(float(spec))
    if isinstance(spec, str):
        spec = {"model": spec}
    if isinstance(spec, dict):
        params = dict(spec)
        name = params.pop("model", None)
        if name not in _MODELS:
            raise ValueError(f"unknown slippage model {name!r}; choose from {sorted(_MODELS)}")
        try:
            return _MODELS[name](**params)
        except TypeError as exc:
            raise ValueError(f"bad parameters for slippage model {name!r}: {exc}") from None
    raise ValueError(
        f"slippage must be a fraction, a model name {sorted(_MODELS)}, a dict or a SlippageModel; got {spec!r}"
    )
