"""``EnvConfig``: the validated constructor arguments shared by ``TradingEnv`` and
``TradingVectorEnv`` (one place for argument checks and derived market arrays)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from quantgym.checks import check_fraction, check_positive_int
from quantgym.envs.market_data import MarketData
from quantgym.envs.rewards import make_reward
from quantgym.envs.slippage import make_slippage
from quantgym.envs.validation import check_min_rows

__all__ = ["EnvConfig", "ACCOUNT_FEATURES"]

#: Account features appended after the market window, in this order.
ACCOUNT_FEATURES = ("position", "exposure", "unrealized_pnl", "drawdown", "time_in_position")


@dataclasses.dataclass
class EnvConfig:
    """Constructor arguments of ``TradingEnv-v0`` (see ``TradingEnv`` for their meaning)."""

    data: Any = None
    market: str = "regime"
    market_kwargs: dict | None = None
    start: Any = None
    end: Any = None
    features: Any = None
    window_size: int = 32
    positions: Sequence[float] = (-1.0, 0.0, 1.0)
    action_type: str = "discrete"
    max_leverage: float = 1.0
    commission: float = 0.001
    fixed_fee: float = 0.0
    slippage: Any = 0.0005
    borrow_rate: float = 0.0
    financing_rate: float = 0.0
    maintenance_margin: float | None = None
    liquidation_fee: float = 0.0
    on_liquidation: str = "terminate"
    rebalance: str = "on_change"
    initial_equity: float = 10_000.0
    reward: Any = "log_return"
    reward_kwargs: dict | None = None
    episode_length: int | None = 1000
    bars_per_year: float | None = None
    normalize_window: int = 250
    render_mode: str | None = None

    def validate(self) -> None:
        """Check every scalar argument, raising ``ValueError`` naming the argument."""
        check_positive_int("window_size", self.window_size)
        if self.action_type not in ("discrete", "continuous"):
            raise ValueError(
                f"action_type must be 'discrete' or 'continuous', got {self.action_type!r}"
            )
        try:
            positions = tuple(float(p) for p in self.positions)
        except (TypeError, ValueError):
            raise ValueError(
                f"positions must be a sequence of numbers, got {self.positions!r}"
            ) from None
        if not positions or not all(np.isfinite(positions)):
            raise ValueError(
                f"positions must be a non-empty sequence of finite numbers, got {self.positions!r}"
            )
        self.positions = positions
        if not (np.isfinite(self.max_leverage) and 0 < self.max_leverage <= 100):
            raise ValueError(f"max_leverage must be in (0, 100], got {self.max_leverage}")
        check_fraction("commission", self.commission, upper=0.5)
        check_fraction("borrow_rate", self.borrow_rate, upper=0.5)
        check_fraction("financing_rate", self.financing_rate, upper=0.5)
        if self.maintenance_margin is not None:
            check_fraction("maintenance_margin", self.maintenance_margin, upper=0.99)
        check_fraction("liquidation_fee", self.liquidation_fee, upper=0.5)
        if self.on_liquidation not in ("terminate", "flat"):
            raise ValueError(
                f"on_liquidation must be 'terminate' or 'flat', got {self.on_liquidation!r}"
            )
        if self.rebalance not in ("on_change", "every_bar"):
            raise ValueError(
                f"rebalance must be 'on_change' or 'every_bar', got {self.rebalance!r}"
            )
        if not (np.isfinite(self.fixed_fee) and self.fixed_fee >= 0):
            raise ValueError(f"fixed_fee must be >= 0, got {self.fixed_fee}")
        if not (np.isfinite(self.initial_equity) and self.initial_equity > 0):
            raise ValueError(f"initial_equity must be > 0, got {self.initial_equity}")
        if self.episode_length is not None:
            check_positive_int("episode_length", self.episode_length)
        if self.render_mode not in (None, "ansi", "rgb_array"):
            raise ValueError(
                f"render_mode must be None, 'ansi' or 'rgb_array', got {self.render_mode!r}"
            )

    def build_market(self) -> MarketData:
        """Load and validate the market, and check it is long enough for the window."""
        data = self.data
        if data is None:
            data = f"synthetic:{self.market}"
        market = MarketData.from_source(
            data,
            start=self.start,
            end=self.end,
            features=self.features,
            bars_per_year=self.bars_per_year,
            normalize_window=self.normalize_window,
            market_kwargs=self.market_kwargs,
        )
        check_min_rows(
            len(market),
            market.warmup + self.window_size + 2,
            f"{market.warmup} feature warm-up + window_size {self.window_size} + 2",
        )
        if self.first_bar(market) >= market.last_bar:
            raise ValueError(
                f"no bar left to trade: the first observable bar is {self.first_bar(market)} "
                f"but the data ends at bar {market.last_bar} (start={self.start}, end={self.end})"
            )
        return market

    def first_bar(self, market: MarketData) -> int:
        """First bar an episode may start at: features valid over the whole window."""
        return max(market.first_bar, market.warmup + self.window_size - 1)

    def make_reward(self) -> Any:
        return make_reward(self.reward, self.reward_kwargs)

    def slippage_rates(self, market: MarketData) -> np.ndarray:
        rates = np.asarray(make_slippage(self.slippage).rates(market), dtype=np.float64)
        if rates.shape != (len(market),) or not np.all(np.isfinite(rates)) or (rates < 0).any():
            raise ValueError("slippage model must return one finite, non-negative rate per bar")
        return rates

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly kwargs (the data source is described, not embedded)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "data" and value is not None and not isinstance(value, str):
                value = f"<{type(value).__name__}>"
            elif callable(value) and not isinstance(value, type):
                value = getattr(value, "__name__", repr(value))
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out
