"""Synthetic-market experts: the privileged regime expert and the Bayes-filter expert."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from quantgym.policies.binding import (
    REFERENCE_COST,
    EnvBoundAgent,
    band_positions,
)

__all__ = ["RegimeExpert", "BayesFilterExpert"]

# --------------------------------------------------------------------------------------------
# Synthetic-market experts
# --------------------------------------------------------------------------------------------


class _BandedExpert(EnvBoundAgent):
    """Trade the sign of a per-bar expected next-bar return ``self.expected`` with a band."""

    @dataclasses.dataclass
    class Config:
        band: float | None = None
        allow_short: bool = True

    def _validate(self) -> None:
        band = self.config.band
        if band is not None and not (
            isinstance(band, (int, float)) and math.isfinite(band) and band >= 0
        ):
            raise ValueError(f"band must be None or a number >= 0, got {band!r}")

    @property
    def band(self) -> float:
        """No-trade band in expected log return per bar. Default: ``DEFAULT_BAYES_BAND`` (tuned
        for 15 bp per unit traded) scaled by the env's cost per unit traded."""
        if self.config.band is not None:
            return float(self.config.band)
        from quantgym.envs.synthetic import DEFAULT_BAYES_BAND

        return DEFAULT_BAYES_BAND * self.binding.cost_rate / REFERENCE_COST

    def _precompute(self) -> None:
        self.expected = np.ascontiguousarray(self._expected_returns(), dtype=np.float64)
        self.expected.flags.writeable = False
        self._band = self.band

    def _expected_returns(self) -> np.ndarray:
        raise NotImplementedError

    def _params(self, kinds: tuple[str, ...]) -> dict:
        params = self.binding.market.market_params
        if not params or params.get("kind") not in kinds:
            raise ValueError(
                f"{type(self).__name__} needs a synthetic market of kind {kinds} with known "
                f"parameters (market_params); got market {self.binding.market.name!r}"
            )
        return params

    def desired_positions(self, bars: np.ndarray, current_positions: np.ndarray) -> np.ndarray:
        return band_positions(
            self.expected[bars], self._band, current_positions, self.config.allow_short
        )


class RegimeExpert(_BandedExpert):
    """Privileged expert of the synthetic ``regime`` market: it reads the *hidden* regime of the
    current bar t from ``market.regime`` (no real agent can) and trades the sign of the
    expected next-bar drift ``transition[regime_t] @ drifts``, holding its position while the
    forecast is inside the no-trade band ``[-band, band]`` (so it does not pay costs to
    leave a position on a zero-drift regime)."""

    #: Reads hidden state (the true regime): a bound in benchmarks, never ranked.
    privileged: ClassVar[bool] = True

    name: ClassVar[str] = "regime_expert"

    def _expected_returns(self) -> np.ndarray:
        from quantgym.envs.synthetic import regime_expected_return

        params = self._params(("regime",))
        regime = self.binding.market.regime
        if regime is None:
            raise ValueError("RegimeExpert needs market.regime (a synthetic 'regime' market)")
        k = len(params["drifts"])
        one_hot = np.zeros((regime.size, k))
        one_hot[np.arange(regime.size), regime] = 1.0
        return regime_expected_return(one_hot, params)


class BayesFilterExpert(_BandedExpert):
    """The best causal policy on synthetic markets (the 100 of the normalized score).

    ``regime``: the HMM forward filter with the market's true parameters on the close-to-close
    log returns up to bar t gives ``P(regime_t | closes <= t)``; the expected next-bar drift is
    ``posterior_t @ transition @ drifts``. ``mean_reversion``: the OU expectation
    ``(mu - log close_t) * (1 - exp(-theta))``. ``gbm``: the constant drift. It goes long above
    ``band``, short below ``-band`` and otherwise holds its current position.
    """

    name: ClassVar[str] = "bayes_filter_expert"

    def _expected_returns(self) -> np.ndarray:
        from quantgym.envs.synthetic import (
            hmm_forward_filter,
            ou_expected_return,
            regime_expected_return,
        )

        params = self._params(("regime", "mean_reversion", "gbm"))
        log_close = np.log(self.binding.market.close)
        if params["kind"] == "regime":
            returns = np.diff(log_close, prepend=np.nan)
            return regime_expected_return(hmm_forward_filter(returns, params), params)
        if params["kind"] == "mean_reversion":
            return ou_expected_return(log_close, params)
        return np.full(log_close.shape, float(params.get("drift", 0.0)))
