"""``PortfolioLayout``: everything ``PortfolioEnv`` and ``PortfolioVectorEnv`` share but the
stepping: the panel, the spaces, the observation layout, the per-asset cost arrays, the action
mapping, episode bounds and the names of the info record.

Observation (flat ``Box(float32)``, or a ``Dict`` of the same parts with
``observation_mode="dict"``), in this order:

=================  ==============  ====================================================================
part               shape           content at decision bar t
=================  ==============  ====================================================================
``windows``        ``(N, W, F)``   each asset's features of bars ``t-W+1 .. t`` (oldest first)
``cross_section``  ``(N, C)``      cross-sectional ranks and z-scores at t
``weights``        ``(N + 1,)``    current weights marked at the close of t; the last entry is cash
``mask``           ``(N,)``        1 where the asset is tradable at t, else 0
=================  ==============  ====================================================================

``layout.slices[part]`` and ``layout.shapes[part]`` locate each part in the flat vector;
``layout.split(obs)`` returns the parts reshaped (works on a batch ``(..., D)`` too).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from gymnasium import spaces

from quantgym.envs.layout import resolve_start
from quantgym.envs.portfolio.actions import (
    check_actions,
    long_only_weights,
    long_short_weights,
    make_action_space,
    softmax_weights,
)
from quantgym.envs.portfolio.config import PortfolioConfig, per_asset
from quantgym.envs.portfolio.panel import PanelData
from quantgym.envs.slippage import make_slippage

__all__ = ["PortfolioLayout", "OBSERVATION_PARTS", "STEP_INFO_KEYS", "RESET_INFO_KEYS"]

OBSERVATION_PARTS = ("windows", "cross_section", "weights", "mask")
#: Keys of ``info`` after every step (``"regime"`` too on synthetic markets).
STEP_INFO_KEYS = (
    "equity", "weights", "cash_weight", "trades", "fees", "slippage_cost", "borrow_cost",
    "financing_cost", "turnover", "bar", "timestamp",
)  # fmt: skip
#: Keys of ``info`` after ``reset``.
RESET_INFO_KEYS = ("equity", "weights", "cash_weight", "bar", "timestamp")


class _AssetSeries:
    """One asset's present bars, with the attributes a slippage model reads from ``MarketData``."""

    def __init__(self, close: np.ndarray, volume: np.ndarray, timestamps: np.ndarray) -> None:
        self.close, self.volume, self.timestamps = close, volume, timestamps

    def __len__(self) -> int:
        return len(self.close)


def _slippage_arrays(spec: Any, panel: PanelData) -> tuple[np.ndarray, np.ndarray | None]:
    """``(rates (T, N), impact coefficients (T, N) or None)``: a number or one per asset (fixed
    rates), or a model of :mod:`quantgym.envs.slippage` run on each asset's own bars (0 where
    the asset has no bar)."""
    n = panel.n_assets
    if np.ndim(spec) == 1 and not isinstance(spec, (str, dict)):
        return np.broadcast_to(per_asset("slippage", spec, n), (len(panel), n)).copy(), None
    model = make_slippage(spec)
    impact = hasattr(model, "impact_coefficients")
    if impact and getattr(model, "max_participation", None) is not None:
        raise ValueError("slippage 'max_participation' is not supported by PortfolioEnv")
    rates = np.zeros((len(panel), n))
    coef = np.zeros((len(panel), n)) if impact else None
    for j, asset in enumerate(panel.assets):
        rows = np.flatnonzero(panel.present[:, j])
        series = _AssetSeries(panel.close[rows, j], panel.volume[rows, j], panel.timestamps[rows])
        try:
            rates[rows, j] = model.rates(series)  # type: ignore[arg-type]  # duck-typed
            if coef is not None:
                coef[rows, j] = model.impact_coefficients(series)  # type: ignore[attr-defined]
        except ValueError as exc:
            hint = " (the panel is close-only: it has no volume)" if panel.close_only else ""
            raise ValueError(f"asset {asset!r}: {exc}{hint}") from None
    if not (np.all(np.isfinite(rates)) and (rates >= 0).all()):
        raise ValueError("the slippage model must give finite, non-negative rates")
    return rates, coef


@dataclasses.dataclass(frozen=True, eq=False)
class PortfolioLayout:
    """The shared, read-only set-up of one portfolio env configuration (module docstring).

    Per-bar cost arrays are indexed by the bar an order is decided at (``slippage_rates[t]`` is
    paid on the fill at ``open[t + 1]``), prices by their own bar.
    """

    config: PortfolioConfig
    panel: PanelData
    first_bar: int
    window_size: int
    shapes: dict[str, tuple[int, ...]]
    slices: dict[str, slice]
    obs_dim: int
    action_space: spaces.Box
    observation_space: spaces.Space
    commission: np.ndarray
    slippage_rates: np.ndarray
    impact_coef: np.ndarray | None
    borrow_rate: np.ndarray
    delisting: np.ndarray
    info_keys: tuple[str, ...]
    reset_info_keys: tuple[str, ...]

    @classmethod
    def build(cls, config: PortfolioConfig) -> PortfolioLayout:
        """Validate ``config``, load its panel and build the layout both envs step on."""
        config.validate()
        return cls.from_config(config, config.build_panel())

    @classmethod
    def from_config(cls, config: PortfolioConfig, panel: PanelData) -> PortfolioLayout:
        """Build from a validated config and its panel."""
        n, w = panel.n_assets, config.window_size
        shapes = {
            "windows": (n, w, panel.n_features),
            "cross_section": (n, panel.n_cross_section),
            "weights": (n + 1,),
            "mask": (n,),
        }
        slices, offset = {}, 0
        for part in OBSERVATION_PARTS:
            size = int(np.prod(shapes[part]))
            slices[part] = slice(offset, offset + size)
            offset += size
        if config.observation_mode == "dict":
            observation_space: spaces.Space = spaces.Dict(
                {
                    part: spaces.Box(0.0, 1.0, shapes[part], np.float32)
                    if part == "mask"
                    else spaces.Box(-np.inf, np.inf, shapes[part], np.float32)
                    for part in OBSERVATION_PARTS
                }
            )
        else:
            observation_space = spaces.Box(-np.inf, np.inf, (offset,), np.float32)
        commission = per_asset("commission", config.commission, n)
        rates, coef = _slippage_arrays(config.slippage, panel)
        worst = float(np.max(commission[None, :] + rates)) * config.max_exposure
        if worst >= 1.0:
            raise ValueError(
                f"commission + slippage ({worst:.3g} of the traded value at the largest exposure) "
                "must stay below 1: a trade would cost more than it moves"
            )
        t_len = len(panel)
        delisting = np.zeros((t_len, n), dtype=bool)
        gone = np.flatnonzero(panel.last_row < t_len - 1)
        delisting[panel.last_row[gone], gone] = True
        regime = ("regime",) if panel.regime is not None else ()
        return cls(
            config=config,
            panel=panel,
            first_bar=config.first_bar(panel),
            window_size=w,
            shapes=shapes,
            slices=slices,
            obs_dim=offset,
            action_space=make_action_space(n, config.weights, config.action_transform),
            observation_space=observation_space,
            commission=commission,
            slippage_rates=rates,
            impact_coef=coef,
            borrow_rate=per_asset("borrow_rate", config.borrow_rate, n),
            delisting=delisting,
            info_keys=STEP_INFO_KEYS + regime,
            reset_info_keys=RESET_INFO_KEYS + regime,
        )

    # -- actions -------------------------------------------------------------------------
    @property
    def long_only(self) -> bool:
        return self.config.weights == "long_only"

    def targets(self, actions: Any, t: Any, batch: int | None = None) -> np.ndarray:
        """Validated actions at decision bar(s) ``t`` -> target weights ``(..., N)``."""
        a = check_actions(actions, self.action_space, batch)
        tradable = self.panel.tradable[t]
        cfg = self.config
        if cfg.action_transform == "softmax":
            return softmax_weights(a, tradable, cfg.softmax_temperature)
        if self.long_only:
            return long_only_weights(a, tradable)
        return long_short_weights(a, tradable, cfg.max_gross, cfg.max_net)

    # -- observations --------------------------------------------------------------------
    def observation_table(self, max_bytes: int = 512 * 2**20) -> np.ndarray | None:
        """``(T, D)`` float32: every part of the observation that depends on the bar only
        (windows, cross-section, mask; weights left zero), so a batch gathers its rows at once;
        ``None`` when it would exceed ``max_bytes``. Rows before the first full window are zero
        (no episode observes them)."""
        t_len = len(self.panel)
        if t_len * self.obs_dim * 4 > max_bytes:
            return None
        table = np.zeros((t_len, self.obs_dim), dtype=np.float32)
        rows = np.arange(self.window_size - 1, t_len)
        part = table[rows]
        self.fill_bar_parts(part, rows, self.panel.window_view(self.window_size))
        table[rows] = part
        return table

    def fill_bar_parts(self, out: np.ndarray, t: Any, windows: np.ndarray) -> None:
        """Write the parts that depend on the bar only (windows, cross-section, mask) of bar(s)
        ``t`` into flat observation(s) ``out`` ``(..., D)``."""
        lead = np.shape(t)
        s = self.slices
        out[..., s["windows"]] = windows[np.asarray(t) - (self.window_size - 1)].reshape(
            lead + (-1,)
        )
        out[..., s["cross_section"]] = self.panel.cross_section32[t].reshape(lead + (-1,))
        out[..., s["mask"]] = self.panel.tradable[t]

    def observe(
        self, t: Any, weights: np.ndarray, cash_weight: Any, windows: np.ndarray,
        table: np.ndarray | None = None,
    ) -> np.ndarray:  # fmt: skip
        """The flat observation(s) at bar(s) ``t`` (an int, or ``(num_envs,)``): ``windows`` is
        ``panel.window_view(window_size)``, ``table`` an optional :meth:`observation_table` (same
        values, gathered at once); ``weights`` ``(..., N)`` and ``cash_weight`` ``(...)`` are the
        account's at the close of t."""
        if table is None:
            obs = np.empty(np.shape(t) + (self.obs_dim,), dtype=np.float32)
            self.fill_bar_parts(obs, t, windows)
        else:
            obs = table[t]  # a fresh array (fancy indexing beat np.take(out=) here, profiled)
        w = self.slices["weights"]
        obs[..., w.start : w.stop - 1] = weights
        obs[..., w.stop - 1] = cash_weight
        return obs

    def split(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """The parts of flat observation(s) ``(..., D)``, reshaped (views, no copy)."""
        lead = np.shape(obs)[:-1]
        return {
            p: obs[..., self.slices[p]].reshape(lead + self.shapes[p]) for p in OBSERVATION_PARTS
        }

    def format_observation(self, obs: np.ndarray) -> Any:
        """``obs`` as the env's observation space wants it (flat, or the dict of parts)."""
        return self.split(obs) if self.config.observation_mode == "dict" else obs

    # -- episodes ------------------------------------------------------------------------
    def episode_bounds(self, rng: np.random.Generator, start: Any = None) -> tuple[int, int]:
        """``(start_bar, end_bar)``: ``start`` (a bar or a timestamp) or a start drawn uniformly
        from ``rng`` so that a full ``episode_length`` fits (the same draw as ``TradingEnv``)."""
        first, last = self.first_bar, self.panel.last_bar
        length = self.config.episode_length
        if start is not None:
            begin = resolve_start(self.panel, start)  # type: ignore[arg-type]  # reads timestamps
            if not first <= begin < last:
                raise ValueError(
                    f"options['start']={start!r} is bar {begin}, outside the tradable bars [{first}, {last - 1}]"
                )
        elif length is None or last - first <= length:
            begin = first
        else:
            begin = int(rng.integers(first, last - length + 1))
        return begin, (last if length is None else min(begin + length, last))
