"""Slippage models: a per-bar rate (fraction of traded notional) paid on fills.

A model turns the market into an array ``rates[t]``: the slippage paid by an order decided
at the close of bar ``t`` and filled at the open of bar ``t + 1``. Rates only use bars
``<= t``, so slippage never looks ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from quantgym.envs.validation import check_fraction, check_positive_int

if TYPE_CHECKING:
    from quantgym.envs.market_data import MarketData

__all__ = [
    "SlippageModel",
    "FixedSlippage",
    "SpreadSlippage",
    "VolatilitySlippage",
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
        import pandas as pd

        log_ret = pd.Series(np.diff(np.log(market.close), prepend=np.log(market.close[0])))
        sigma = log_ret.rolling(self.window, min_periods=2).std().to_numpy()
        sigma = np.nan_to_num(sigma, nan=0.0)
        return np.minimum(self.k * sigma + self.min_rate, 0.5)


_MODELS: dict[str, type] = {
    "fixed": FixedSlippage,
    "spread": SpreadSlippage,
    "volatility": VolatilitySlippage,
}


def make_slippage(spec: Any) -> SlippageModel:
    """Build a model from a number (fixed rate), a name (``"fixed"``, ``"spread"``,
    ``"volatility"`` with default parameters), a dict ``{"model": name, **params}`` or a model."""
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
