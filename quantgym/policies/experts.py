"""Synthetic-market experts: the privileged regime expert, the Bayes-filter expert, and the
exact experts of the ``lagged`` and ``crash`` markets."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from quantgym.checks import check_optional_positive_int
from quantgym.policies.binding import (
    REFERENCE_COST,
    EnvBoundAgent,
    band_positions,
)

__all__ = [
    "RegimeExpert",
    "BayesFilterExpert",
    "LagExpert",
    "CrashExpert",
    "flat_band_positions",
    "kelly_positions",
]

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
        return self._default_band() * self.binding.cost_rate / REFERENCE_COST

    def _default_band(self) -> float:
        """The band at ``REFERENCE_COST`` (15 bp per unit traded)."""
        from quantgym.envs.synthetic import DEFAULT_BAYES_BAND

        return DEFAULT_BAYES_BAND

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

    @dataclasses.dataclass
    class Config(_BandedExpert.Config):
        """``filter_window``: on ``regime``, read only the newest ``filter_window`` returns
        (:func:`~quantgym.envs.synthetic.hmm_forward_filter`'s ``window``): what a perfect
        reader of that much history earns, a bound for policies that see a window; ``None``
        (default): every return so far."""

        filter_window: int | None = None

    def _validate(self) -> None:
        super()._validate()
        check_optional_positive_int("filter_window", self.config.filter_window)

    def _expected_returns(self) -> np.ndarray:
        from quantgym.envs.synthetic import (
            hmm_forward_filter,
            ou_expected_return,
            regime_expected_return,
        )

        params = self._params(("regime", "mean_reversion", "gbm"))
        log_close = np.log(self.binding.market.close)
        window = self.config.filter_window
        if params["kind"] == "regime":
            returns = np.diff(log_close, prepend=np.nan)
            posterior = hmm_forward_filter(returns, params, window=window)
            return regime_expected_return(posterior, params)
        if window is not None:
            raise ValueError(
                f"filter_window applies to the 'regime' market only, not {params['kind']!r}"
            )
        if params["kind"] == "mean_reversion":
            return ou_expected_return(log_close, params)
        return np.full(log_close.shape, float(params.get("drift", 0.0)))


def flat_band_positions(expected: np.ndarray, band: float, allow_short: bool = True) -> np.ndarray:
    """+1 where ``expected > band``, -1 (0 without shorts) where ``expected < -band``, else 0:
    trade a one-bar signal only when it beats the band, and be flat otherwise."""
    expected = np.asarray(expected, dtype=np.float64)
    short = -1.0 if allow_short else 0.0
    return np.where(expected > band, 1.0, np.where(expected < -band, short, 0.0))


def kelly_positions(
    growth: np.ndarray, grid: np.ndarray, current: np.ndarray, band: float
) -> np.ndarray:
    """For each row, the entry of ``grid`` that maximises ``growth[i, j] - band * |grid[j] -
    current[i]|``: the position of highest expected log growth net of a no-trade band (ties go
    to the lower grid index). ``growth`` (B, P), ``grid`` (P,), ``current`` (B,)."""
    grid = np.asarray(grid, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64).reshape(-1, 1)
    score = np.asarray(growth, dtype=np.float64) - band * np.abs(grid[None, :] - current)
    return grid[np.argmax(score, axis=1)]


class LagExpert(_BandedExpert):
    """The exact expert of the ``lagged`` market, its reference (100 of the normalized score).

    The forecast is exact (the conditional expectation given every close so far): ``E[r_{t+1} | closes <= t] = drift - strength * d_{t+1-lag}`` when
    bar ``t + 1 - lag`` was a shock (``|d| > threshold``, ``d`` its return less the drift), else
    the drift (:func:`quantgym.envs.synthetic_lagged.lag_expected_return`). The signal lasts one
    bar, so the expert trades its sign when ``|forecast| > band`` and is flat otherwise (holding
    a position with no forecast only adds variance). The default band is
    ``DEFAULT_LAG_BAND`` (a one-bar round trip at 15 bp per unit traded) scaled by the env's
    cost; on the default market every signal is at least ``strength * threshold = 0.0125``, so
    any band below that trades the same bars.

    Measured by ``benchmarks/market_calibration.py --kinds lagged crash`` (default market, 15 bp
    per unit traded): it nets 6.85 bp per bar over 3 x 200k bars, 84% of its 8.16 bp gross edge,
    while the same rule reading the newest bar instead of bar t + 1 - lag nets -1.26 bp; in
    ``TradingEnv`` it earns 0.75 log growth per 1,000-bar window (16 windows), 9.5% of the
    hindsight oracle's 7.95 (a bound that sees the future: what is left is the noise no causal
    forecast can predict).
    """

    name: ClassVar[str] = "lag_expert"

    def _default_band(self) -> float:
        from quantgym.envs.synthetic_lagged import DEFAULT_LAG_BAND

        return DEFAULT_LAG_BAND

    def _expected_returns(self) -> np.ndarray:
        from quantgym.envs.synthetic_lagged import lag_expected_return

        params = self._params(("lagged",))
        return lag_expected_return(np.log(self.binding.market.close), params)

    def desired_positions(self, bars: np.ndarray, current_positions: np.ndarray) -> np.ndarray:
        return flat_band_positions(self.expected[bars], self._band, self.config.allow_short)


class CrashExpert(_BandedExpert):
    """The exact-filter Kelly expert of the ``crash`` market, its reference (100 of the
    normalized score). The filter and the growth forecast are exact; the trading rule looks one
    holding period ahead (with a band for costs), so it is the stated reference rather than a
    proven optimum over whole paths.

    The exact HMM filter on the bars' gaps and intraday returns gives ``P(regime_t | bars <=
    t)``; a target decided at bar t takes the gap at the open of bar t + 2, whose regime is
    ``posterior_t @ transition @ transition``. For each position ``p`` of the env's grid
    (``positions``, shorts dropped with ``allow_short=False``) the expected log growth
    ``E[log(1 + p (e^x - 1))]`` over that holding period is known
    (:func:`quantgym.envs.synthetic_crash.crash_expected_growth`); the expert holds the ``p``
    that maximises it less ``band * |p - current|`` (Kelly over the grid with a no-trade band):
    long while calm, out of the market (short, if allowed) once crashes reveal a stressed spell.
    The default band is ``DEFAULT_CRASH_BAND`` (measured at 15 bp per unit traded) scaled by the
    env's cost.

    Measured by ``benchmarks/market_calibration.py --kinds lagged crash`` (default market, 15 bp
    per unit traded, 3 x 200k bars): it nets 2.58 bp per bar, 0.59 of the 4.36 bp the same rule
    earns on the true (hidden) regime and twice buy-and-hold's 1.20 bp; in ``TradingEnv``,
    0.158 log growth per 1,000-bar window against buy-and-hold's -0.071 (16 windows; 2.3% of
    the hindsight oracle's 6.91).
    """

    name: ClassVar[str] = "crash_expert"

    def _default_band(self) -> float:
        from quantgym.envs.synthetic_crash import DEFAULT_CRASH_BAND

        return DEFAULT_CRASH_BAND

    def _precompute(self) -> None:
        from quantgym.envs.synthetic_crash import crash_expected_growth, crash_forward_filter

        params = self._params(("crash",))
        market = self.binding.market
        grid = np.unique(self.binding.target_values())
        if not self.config.allow_short:
            grid = grid[grid >= 0.0]
        if grid.size == 0:
            raise ValueError("CrashExpert with allow_short=False needs a position >= 0 in the grid")
        posterior = crash_forward_filter(market.open, market.close, params)
        self.grid = grid
        self.growth = np.ascontiguousarray(crash_expected_growth(posterior, params, grid))
        self.growth.flags.writeable = False
        self._band = self.band

    def desired_positions(self, bars: np.ndarray, current_positions: np.ndarray) -> np.ndarray:
        return kelly_positions(self.growth[bars], self.grid, current_positions, self._band)
