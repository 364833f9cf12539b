"""Rule baselines: random, flat, buy-and-hold, SMA crossover, Bollinger mean reversion."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from quantgym.policies.binding import (
    EnvBoundAgent,
    check_int,
    rolling,
)

__all__ = ["RandomAgent", "FlatAgent", "BuyAndHoldAgent", "SMACrossoverAgent", "MeanReversionAgent"]

# --------------------------------------------------------------------------------------------
# Simple baselines
# --------------------------------------------------------------------------------------------


class RandomAgent(EnvBoundAgent):
    """Uniformly random actions from a seeded generator (one per env in a batch)."""

    name: ClassVar[str] = "random"

    @dataclasses.dataclass
    class Config:
        seed: int = 0

    def _precompute(self) -> None:
        self._rng = np.random.default_rng(self.config.seed)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        obs, batched = self.binding.check_observation(observation, current=False)  # reads no bar
        actions = self.binding.random_actions(self._rng, obs.shape[0])
        return self.binding.unbatch(actions, batched), state


class _ConstantAgent(EnvBoundAgent):
    _position: ClassVar[float] = 0.0

    def _precompute(self) -> None:
        self._action = self.binding.to_actions(np.array([self._target()]))

    def _target(self) -> float:
        return self._position

    def desired_positions(self, bars: np.ndarray, current_positions: np.ndarray) -> np.ndarray:
        return np.full(bars.shape, self._target())

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        obs, batched = self.binding.check_observation(observation, current=False)  # reads no bar
        actions = np.repeat(self._action, obs.shape[0], axis=0)
        return self.binding.unbatch(actions, batched), state


class FlatAgent(_ConstantAgent):
    """Always flat (the cash baseline: return 0 when there are no costs to pay)."""

    name: ClassVar[str] = "flat"


class BuyAndHoldAgent(_ConstantAgent):
    """Always long ``position`` (default 1.0 = fully invested); trades once per episode."""

    name: ClassVar[str] = "buy_and_hold"

    @dataclasses.dataclass
    class Config:
        position: float = 1.0

    def _target(self) -> float:
        return float(self.config.position)


class SMACrossoverAgent(EnvBoundAgent):
    """Trend following: long while SMA(``fast``) of the close is above SMA(``slow``), short
    (flat if ``allow_short`` is false) while below, flat before ``slow`` bars exist.

    Both averages at bar t use closes ``t - w + 1 .. t`` only.
    """

    name: ClassVar[str] = "sma_crossover"

    @dataclasses.dataclass
    class Config:
        fast: int = 10
        slow: int = 50
        allow_short: bool = True

    def _validate(self) -> None:
        check_int("fast", self.config.fast)
        check_int("slow", self.config.slow, minimum=2)
        if self.config.fast >= self.config.slow:
            raise ValueError(f"fast ({self.config.fast}) must be < slow ({self.config.slow})")

    def _precompute(self) -> None:
        close = self.binding.market.close
        fast = rolling(close, self.config.fast, "mean")
        slow = rolling(close, self.config.slow, "mean")
        short = -1.0 if self.config.allow_short else 0.0
        with np.errstate(invalid="ignore"):
            self.signal = np.where(fast > slow, 1.0, np.where(fast < slow, short, 0.0))
        self.signal.flags.writeable = False

    def desired_positions(self, bars: np.ndarray, current_positions: np.ndarray) -> np.ndarray:
        return self.signal[bars]


class MeanReversionAgent(EnvBoundAgent):
    """Bollinger-band mean reversion over ``window`` closes (population std).

    Short when the close is above ``mean + num_std * std``, long below ``mean - num_std * std``;
    a long is closed (flat) once the close is back at or above the mean, a short once it is at
    or below it; otherwise the current position is held.
    """

    name: ClassVar[str] = "mean_reversion"

    @dataclasses.dataclass
    class Config:
        window: int = 20
        num_std: float = 2.0
        allow_short: bool = True

    def _validate(self) -> None:
        check_int("window", self.config.window, minimum=2)
        if not (math.isfinite(self.config.num_std) and self.config.num_std > 0):
            raise ValueError(f"num_std must be > 0, got {self.config.num_std!r}")

    def _precompute(self) -> None:
        close = self.binding.market.close
        mean = rolling(close, self.config.window, "mean")
        std = rolling(close, self.config.window, "std")
        width = self.config.num_std * std
        short = -1.0 if self.config.allow_short else 0.0
        with np.errstate(invalid="ignore"):
            # zone: entry signal (+1 long / short / NaN none); side: sign(close - mean).
            self.zone = np.where(
                close < mean - width, 1.0, np.where(close > mean + width, short, np.nan)
            )
            self.side = np.sign(close - mean)
        self.ready = ~np.isnan(mean)
        for arr in (self.zone, self.side, self.ready):
            arr.flags.writeable = False

    def desired_positions(self, bars: np.ndarray, current_positions: np.ndarray) -> np.ndarray:
        zone, side = self.zone[bars], self.side[bars]
        p = current_positions
        exit_ = ((p > 0) & (side >= 0)) | ((p < 0) & (side <= 0))
        hold = np.where(exit_, 0.0, p)
        out = np.where(np.isnan(zone), hold, zone)
        return np.where(self.ready[bars], out, 0.0)
