"""``EnvLayout``: everything ``TradingEnv`` and ``TradingVectorEnv`` share but the stepping.

``EnvLayout.build(config)`` builds it once from the validated arguments: the market, the
spaces, the observation layout, the per-bar price and cost arrays, the ledger options,
episode bounds and the names of the info record. The two envs keep their own ``step``
(Python floats for one account, numpy arrays for many) and read everything else from here,
so a new option is set up in one place.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from gymnasium import spaces

from quantgym.envs.config import ACCOUNT_FEATURES, EnvConfig
from quantgym.envs.market_data import MarketData
from quantgym.envs.slippage import make_slippage

__all__ = ["EnvLayout", "STEP_INFO_KEYS", "RESET_INFO_KEYS", "resolve_start"]

#: Keys of ``info`` after every step (more with financing, margin or impact: ``info_keys``).
STEP_INFO_KEYS = (
    "equity", "position", "trade", "fees", "slippage_cost", "borrow_cost", "bar", "timestamp",
)  # fmt: skip
#: Keys of ``info`` after ``reset``.
RESET_INFO_KEYS = ("equity", "position", "bar", "timestamp")
FINANCING_INFO_KEYS = ("financing_cost",)
MARGIN_INFO_KEYS = ("liquidated", "liquidation_price")
IMPACT_INFO_KEYS = ("participation", "unfilled")


def resolve_start(market: MarketData, start: Any) -> int:
    """A bar index from an int or a timestamp (the first bar at or after it)."""
    import pandas as pd

    if isinstance(start, (int, np.integer)) and not isinstance(start, bool):
        return int(start)
    try:
        ts = pd.Timestamp(start)
    except (TypeError, ValueError):
        raise ValueError(
            f"options['start'] must be a bar index or a timestamp, got {start!r}"
        ) from None
    return int(np.searchsorted(market.timestamps, ts.to_datetime64(), side="left"))


@dataclasses.dataclass(frozen=True, eq=False)
class EnvLayout:
    """The shared, read-only set-up of one env configuration (see the module docstring).

    Per-bar arrays are indexed by the bar an order is decided at (``rates[t]`` is paid on the
    fill at ``open[t + 1]``) except prices, indexed by their own bar.
    """

    config: EnvConfig
    market: MarketData
    first_bar: int
    window_size: int
    n_market_features: int
    n_account_features: int
    market_dim: int
    obs_dim: int
    action_space: spaces.Space
    observation_space: spaces.Box
    positions: tuple[float, ...]
    continuous: bool
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    slippage_rates: np.ndarray
    impact_coef: np.ndarray | None
    average_volume: np.ndarray | None
    max_units: np.ndarray | None
    info_keys: tuple[str, ...]

    @classmethod
    def build(cls, config: EnvConfig) -> EnvLayout:
        """Validate ``config``, load its market and build the layout both envs step on."""
        config.validate()
        return cls.from_config(config, config.build_market())

    @classmethod
    def from_config(cls, config: EnvConfig, market: MarketData) -> EnvLayout:
        """Build from a validated config and its market."""
        window = config.window_size
        n_account = len(ACCOUNT_FEATURES)
        market_dim = window * market.n_features
        continuous = config.action_type == "continuous"
        action_space: spaces.Space = (
            spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
            if continuous
            else spaces.Discrete(len(config.positions))
        )
        model = make_slippage(config.slippage)
        impact = hasattr(model, "impact_coefficients")
        keys = STEP_INFO_KEYS
        if config.financing_rate:
            keys += FINANCING_INFO_KEYS
        if config.maintenance_margin is not None:
            keys += MARGIN_INFO_KEYS
        if impact:
            keys += IMPACT_INFO_KEYS
        if market.regime is not None:
            keys += ("regime",)
        return cls(
            config=config,
            market=market,
            first_bar=config.first_bar(market),
            window_size=window,
            n_market_features=market.n_features,
            n_account_features=n_account,
            market_dim=market_dim,
            obs_dim=market_dim + n_account,
            action_space=action_space,
            observation_space=spaces.Box(
                -np.inf, np.inf, shape=(market_dim + n_account,), dtype=np.float32
            ),
            positions=tuple(config.positions),
            continuous=continuous,
            open=market.open,
            high=market.high,
            low=market.low,
            close=market.close,
            slippage_rates=config.slippage_rates(market),
            impact_coef=model.impact_coefficients(market) if impact else None,  # type: ignore[attr-defined]
            average_volume=model.average_volume(market) if impact else None,  # type: ignore[attr-defined]
            max_units=model.max_units(market) if impact else None,  # type: ignore[attr-defined]
            info_keys=keys,
        )

    # -- options the steppers branch on ----------------------------------------------------
    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.market.feature_names

    @property
    def reset_info_keys(self) -> tuple[str, ...]:
        return RESET_INFO_KEYS + (("regime",) if self.market.regime is not None else ())

    @property
    def has_impact(self) -> bool:
        """Size-dependent slippage (``slippage="sqrt_impact"``)."""
        return self.impact_coef is not None

    @property
    def has_margin(self) -> bool:
        """Liquidation checks at the bar's adverse extreme (``maintenance_margin`` set)."""
        return self.config.maintenance_margin is not None

    @property
    def every_bar(self) -> bool:
        """``rebalance="every_bar"``: exposure restored to the target each bar."""
        return self.config.rebalance == "every_bar"

    @property
    def liquidation_fee_rate(self) -> float:
        """Commission + liquidation fee per unit of liquidated notional (slippage apart)."""
        return float(self.config.commission) + float(self.config.liquidation_fee)

    # -- episodes --------------------------------------------------------------------------
    def episode_bounds(self, rng: np.random.Generator, start: Any = None) -> tuple[int, int]:
        """``(start_bar, end_bar)`` of a new episode: ``start`` (a bar or a timestamp) or a
        start drawn uniformly from ``rng`` so that a full ``episode_length`` fits."""
        last = self.market.last_bar
        length = self.config.episode_length
        if start is not None:
            s = resolve_start(self.market, start)
            if not self.first_bar <= s < last:
                raise ValueError(
                    f"options['start']={start!r} is bar {s}, outside the tradable "
                    f"bars [{self.first_bar}, {last - 1}]"
                )
        elif length is None or last - self.first_bar <= length:
            s = self.first_bar
        else:
            s = int(rng.integers(self.first_bar, last - length + 1))
        return s, (last if length is None else min(s + length, last))
