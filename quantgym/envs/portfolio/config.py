"""``PortfolioConfig``: the validated constructor arguments shared by ``PortfolioEnv`` and
``PortfolioVectorEnv`` (one place for argument checks)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from quantgym._io import jsonable
from quantgym.checks import check_choice, check_fraction, check_positive, check_positive_int
from quantgym.envs.portfolio.actions import ACTION_TRANSFORMS, WEIGHT_MODES
from quantgym.envs.portfolio.panel import PanelData
from quantgym.envs.rewards import make_reward

__all__ = ["PortfolioConfig", "OBSERVATION_MODES", "per_asset"]

OBSERVATION_MODES = ("flat", "dict")


def per_asset(name: str, value: Any, n_assets: int, upper: float = 0.5) -> np.ndarray:
    """A scalar or one value per asset, each a fraction in ``[0, upper]``, as ``(N,)`` float64."""
    if np.ndim(value) == 0:
        return np.full(n_assets, check_fraction(name, value, upper=upper))
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or {n_assets} numbers, got {value!r}") from None
    if arr.shape != (n_assets,):
        raise ValueError(
            f"{name} must be a number or {n_assets} numbers (one per asset), got shape {arr.shape}"
        )
    for j, x in enumerate(arr):
        check_fraction(f"{name}[{j}]", x, upper=upper)
    return arr


@dataclasses.dataclass
class PortfolioConfig:
    """Constructor arguments of ``PortfolioEnv-v0`` (see ``PortfolioEnv`` for their meaning)."""

    data: Any = None
    market: str = "factor_regime"
    market_kwargs: dict | None = None
    start: Any = None
    end: Any = None
    features: Any = None
    normalize_window: int = 250
    price_relatives: bool = False
    window_size: int = 16
    weights: str = "long_only"
    action_transform: str | None = None
    softmax_temperature: float = 0.1
    max_gross: float = 1.0
    max_net: float = 1.0
    rebalance_band: float = 0.0
    commission: Any = 0.001
    fixed_fee: float = 0.0
    slippage: Any = 0.0005
    borrow_rate: Any = 0.0
    financing_rate: float = 0.0
    initial_equity: float = 10_000.0
    reward: Any = "log_return"
    reward_kwargs: dict | None = None
    episode_length: int | None = 1000
    bars_per_year: float | None = None
    observation_mode: str = "flat"
    render_mode: str | None = None

    def validate(self) -> None:
        """Check every scalar argument, raising ``ValueError`` naming the argument."""
        check_positive_int("window_size", self.window_size)
        check_positive_int("normalize_window", self.normalize_window, minimum=2)
        check_choice("weights", self.weights, WEIGHT_MODES)
        check_choice("action_transform", self.action_transform, ACTION_TRANSFORMS)
        if self.action_transform == "softmax" and self.weights != "long_only":
            raise ValueError(
                "action_transform='softmax' gives long-only weights: use weights='long_only'"
            )
        check_positive("softmax_temperature", self.softmax_temperature)
        check_positive("max_gross", self.max_gross)
        check_positive("max_net", self.max_net)
        if self.max_gross > 10 or self.max_net > self.max_gross:
            raise ValueError(
                f"need 0 < max_net <= max_gross <= 10, got max_gross={self.max_gross}, max_net={self.max_net}"
            )
        check_fraction("rebalance_band", self.rebalance_band, upper=1.0)
        check_fraction("financing_rate", self.financing_rate, upper=0.5)
        if not (np.isfinite(self.fixed_fee) and self.fixed_fee >= 0):
            raise ValueError(f"fixed_fee must be >= 0, got {self.fixed_fee}")
        check_positive("initial_equity", self.initial_equity)
        if self.episode_length is not None:
            check_positive_int("episode_length", self.episode_length)
        check_choice("observation_mode", self.observation_mode, OBSERVATION_MODES)
        check_choice("render_mode", self.render_mode, (None, "ansi", "rgb_array"))

    @property
    def max_exposure(self) -> float:
        """The largest gross exposure the targets can have (1 in long-only mode)."""
        return 1.0 if self.weights == "long_only" else float(self.max_gross)

    def build_panel(self) -> PanelData:
        """Load and validate the panel and check it is long enough for the window."""
        data = f"synthetic:{self.market}" if self.data is None else self.data
        if isinstance(data, PanelData) and not (
            self.start is None and self.end is None and self.features is None
        ):
            raise ValueError(
                "start, end and features apply when the panel is loaded: pass the raw data, not a PanelData"
            )
        panel = PanelData.from_source(
            data,
            start=self.start,
            end=self.end,
            features=self.features,
            normalize_window=self.normalize_window,
            bars_per_year=self.bars_per_year,
            market_kwargs=self.market_kwargs,
            price_relatives=self.price_relatives,
        )
        if self.first_bar(panel) >= panel.last_bar:
            raise ValueError(
                f"no bar left to trade: the first observable bar is {self.first_bar(panel)} "
                f"(feature warm-up {panel.warmup} + window_size {self.window_size} - 1) but the data "
                f"ends at bar {panel.last_bar}"
            )
        return panel

    def first_bar(self, panel: PanelData) -> int:
        """First bar an episode may start at: a full window of defined features for the first
        listed asset."""
        return max(
            panel.first_bar, int(panel.first_row.min()) + panel.warmup + self.window_size - 1
        )

    def make_reward(self) -> Any:
        return make_reward(self.reward, self.reward_kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly kwargs (the data source is described, not embedded)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if out["data"] is not None and not isinstance(out["data"], str):
            out["data"] = f"<{type(out['data']).__name__}>"
        return jsonable(out)
