"""``PortfolioEnv``: allocate across N assets with an exact, honest ledger."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from quantgym.envs.accounting import portfolio_weights
from quantgym.envs.metrics import performance_metrics
from quantgym.envs.portfolio.config import PortfolioConfig
from quantgym.envs.portfolio.layout import PortfolioLayout
from quantgym.envs.portfolio.transition import portfolio_step
from quantgym.envs.rewards import EQUITY_FLOOR, LogReturn, step_context

__all__ = ["PortfolioEnv"]

# One row of history per step: these scalars, then the N weights, then the N traded values.
_SCALAR_KEYS = (
    "bar", "equity", "reward", "fees", "slippage_cost", "borrow_cost", "financing_cost",
    "turnover", "cash_weight", "gross_target",
)  # fmt: skip


class PortfolioEnv(gym.Env):
    """Allocate a portfolio across N assets by choosing target weights each bar.

    ## Description
    The agent observes every asset's window of causal features, cross-sectional ranks, its
    current weights and which assets are tradable, and chooses target weights (cash is the
    remainder). Orders fill at the next bar's open; the portfolio is marked at that bar's close.
    ``gym.make("PortfolioEnv-v0")`` with no arguments trades a seeded synthetic market of 8 assets
    with a market factor, 2 sectors and hidden bull / bear / rotation regimes
    (:mod:`quantgym.envs.portfolio.factor_market`).

    ## Timing
    ```
    bar:        t (closed)            t+1
                |---- obs_t ----|     open[t+1]: rebalance to target weights a_t (costs)
                 agent picks a_t      close[t+1]: mark equity, reward r_t, obs_t+1
    ```
    Nothing in ``obs_t`` or ``r_(t-1)`` depends on any bar after ``t`` (tested by perturbing
    the future). On close-only data (the OLPS sets) the open of t+1 *is* the close of t, so
    orders fill at the close they were decided at, as in the OLPS literature.

    ## Action Space
    | ``weights`` / ``action_transform`` | space | target weights |
    |-----------------------|------------------------|----------------------------------------------|
    | "long_only" (default) | `Box(0, 1, (N,))` | the action; scaled to sum 1 when its sum exceeds 1; cash = 1 - sum |
    | "long_only", "softmax" | `Box(-1, 1, (N+1,))` | `softmax(a / softmax_temperature)` over tradable assets and cash (last) |
    | "long_short" | `Box(-1, 1, (N,))` | the action scaled down proportionally so that gross <= `max_gross` and abs(net) <= `max_net` |

    An asset not tradable at t gets weight 0. Why not softmax by default: near-zero logits (an
    untrained network) give the uniform portfolio, so learners collapse to 1/N; a softmax
    cannot say 0 or hold cash (see :mod:`quantgym.envs.portfolio.actions`). ``rebalance_band=b``:
    an asset whose weight at the open is within ``b`` of its target is not traded.

    ## Observation Space
    Flat `Box(-inf, inf, (N*W*F + N*C + 2N + 1,), float32)`, or a `Dict` of the parts with
    ``observation_mode="dict"`` (for SB3's ``MultiInputPolicy``):

    | part | shape | content |
    |------|-------|---------|
    | windows | `(N, W, F)` | each asset's causal features of bars t-W+1..t (0 before warm-up, after delisting) |
    | cross_section | `(N, C)` | rank and z-score of 20-bar momentum and volatility across tradable assets |
    | weights | `(N + 1,)` | weights at the close of t, cash last |
    | mask | `(N,)` | 1 where tradable at t |

    ``env.unwrapped.layout.slices`` / ``.shapes`` / ``.split(obs)`` reshape the flat vector.

    ## Rewards
    ``"log_return"`` (default): ``log(V_t+1 / V_t)``, so rewards sum to the log growth; also
    ``"differential_sharpe"``, ``"risk_adjusted"`` or a callable ``fn(RewardContext)`` (its
    ``position`` is the target gross exposure, ``traded_notional`` the total traded value).

    ## Costs
    | argument | meaning |
    |----------|---------|
    | ``commission`` | fraction of traded value; a number or one per asset (default 0.001) |
    | ``slippage`` | fraction of traded value, one per asset, or a model of :mod:`quantgym.envs.slippage` run on each asset's own bars: ``"volatility"``, ``"spread"``, ``{"model": "sqrt_impact", "half_spread", "impact", "window"}`` (cost fraction ``half_spread + impact * sigma_i * sqrt(q_i / V_i)`` with the asset's trailing volatility and mean volume) |
    | ``fixed_fee`` | per order (per asset traded) |
    | ``borrow_rate`` | per bar on short value at the close; a number or one per asset |
    | ``financing_rate`` | per bar on borrowed (negative) cash at the close |

    The post-trade value ``V'`` is solved exactly: ``V' = V - fees - sum_i c_i |w_i V' - h_i|``
    (``h_i`` the value held at the open) is piecewise linear and monotone in ``V'`` and is
    solved on its segment; with ``sqrt_impact`` by safeguarded Newton to machine precision.
    Costs are paid on the asset legs only, never on the cash leg.

    ## Universe
    An asset with no data yet is not tradable (mask 0, weight forced to 0). A missing bar inside
    an asset's data is not tradable that bar: its holding is kept and marked at the last known
    close (never a later price). An asset whose data ends before the panel does is delisted:
    its position is closed at its last close, with costs, and it stays untradable. In long-only
    mode, holdings that cannot trade keep their value and the other targets shrink so that no
    cash is borrowed.

    ## Episode End
    Terminated: equity <= 0 (bankruptcy). Truncated: ``episode_length`` steps or the data ends.

    ## Info
    After ``step``: ``equity``, ``weights`` (N,), ``cash_weight``, ``trades`` (N,, signed
    traded value), ``fees`` (commission + fixed fees), ``slippage_cost``, ``borrow_cost``,
    ``financing_cost``, ``turnover`` (traded value / previous equity), ``bar``, ``timestamp``;
    ``regime`` on synthetic markets. ``env.layout.info_keys`` lists them (both envs).

    ## Arguments
    See :class:`~quantgym.envs.portfolio.config.PortfolioConfig`: ``data`` (None = synthetic
    ``factor_regime``; a panel DataFrame, CSV/Parquet path, ``"sample:nyse_o"``,
    ``"sample:sp500_20"``, a PanelData), ``market_kwargs``, ``start``/``end``, ``features``,
    ``normalize_window=250``, ``price_relatives=False``, ``window_size=16``,
    ``weights="long_only"``, ``action_transform=None``, ``softmax_temperature=0.1``,
    ``max_gross=1``, ``max_net=1``, ``rebalance_band=0``, ``commission=0.001``,
    ``slippage=0.0005``, ``fixed_fee=0``, ``borrow_rate=0``, ``financing_rate=0``,
    ``initial_equity=10_000``, ``reward``, ``episode_length=1000``, ``observation_mode="flat"``.

    ## Version History
    * v0: initial release.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 30}

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        try:
            config = PortfolioConfig(data=data, **kwargs)
        except TypeError as exc:
            raise ValueError(f"PortfolioEnv: {exc}") from None
        self.config = config
        self.layout = layout = PortfolioLayout.build(config)
        self.panel = panel = layout.panel
        self.render_mode = config.render_mode
        self.assets = panel.assets
        self.n_assets = panel.n_assets
        self.window_size = layout.window_size
        self.feature_names = panel.feature_names
        self.action_space = layout.action_space
        self.observation_space = layout.observation_space
        self._windows = panel.window_view(layout.window_size)
        self._reward_fn = config.make_reward()
        self._log_reward = isinstance(self._reward_fn, LogReturn)
        self._initial = float(config.initial_equity)
        self._equity_floor = EQUITY_FLOOR * self._initial
        self._timestamps = list(panel.timestamps)
        self._regime = None if panel.regime is None else panel.regime.tolist()
        self._reset_account(layout.first_bar, layout.first_bar)

    # -- public state ------------------------------------------------------------------
    @property
    def bar(self) -> int:
        """Index of the last closed bar the agent has seen (the current decision bar)."""
        return self._t

    @property
    def equity(self) -> float:
        """Portfolio value marked at the close of the current bar."""
        return self._equity

    @property
    def units(self) -> np.ndarray:
        """Units held per asset (negative when short)."""
        return self._units

    @property
    def cash(self) -> float:
        return self._cash

    @property
    def weights(self) -> np.ndarray:
        """Asset weights at the close of the current bar (cash: ``1 - weights.sum()``)."""
        return self._weights

    @property
    def first_bar(self) -> int:
        """First bar an episode can start at (feature warm-up and window included)."""
        return self.layout.first_bar

    @property
    def episode_end(self) -> int:
        """Bar at which the current episode is truncated."""
        return self._end

    # -- gymnasium API -----------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        start, end = self.layout.episode_bounds(self.np_random, (options or {}).get("start"))
        self._reset_account(start, end)
        self._reward_fn.reset()
        return self._observation(), self._reset_info()

    def _reset_account(self, start: int, end: int) -> None:
        n = self.n_assets
        self._t, self._end = start, end
        self._units = np.zeros(n)
        self._cash = self._equity = self._peak = self._initial
        self._weights = np.zeros(n)
        self._cash_weight = 1.0
        self._done = False
        self._hist: list[tuple] = []
        self._hist_weights: list[np.ndarray] = []
        self._hist_trades: list[np.ndarray] = []

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if self._done:
            raise ValueError("step() called after the episode ended; call reset() first")
        layout, t = self.layout, self._t
        targets = layout.targets(action, t)
        out = portfolio_step(layout, t, self._units, self._cash, targets)
        units, cash, equity = out.units, float(out.cash), float(out.equity)
        equity_prev, peak_prev = self._equity, self._peak
        terminated = equity <= 0.0
        if terminated:  # bankrupt: nothing left to trade with
            units, cash, equity = np.zeros(self.n_assets), 0.0, 0.0
        t += 1
        peak = max(peak_prev, equity)
        traded = float(out.traded_value)
        gross = float(np.sum(np.abs(targets)))
        fees, slip = float(out.fees), float(out.slippage_cost)
        borrow, financing = float(out.borrow_cost), float(out.financing_cost)
        if self._log_reward:
            reward = math.log(max(equity, self._equity_floor) / equity_prev)
        else:
            ctx = step_context(equity_prev, equity, peak_prev, peak, gross, traded, fees, slip,
                               borrow + financing, self._initial)  # fmt: skip
            reward = float(self._reward_fn(ctx))
        weights, cash_weight = portfolio_weights(units, cash, self.panel.mark_close[t], equity)
        self._t, self._units, self._cash, self._equity, self._peak = t, units, cash, equity, peak
        self._weights, self._cash_weight = weights, float(cash_weight)
        truncated = t >= self._end and not terminated
        self._done = terminated or truncated
        turnover = traded / equity_prev
        self._hist.append((t, equity, reward, fees, slip, borrow, financing, turnover,
                           self._cash_weight, gross))  # fmt: skip
        self._hist_weights.append(weights)
        self._hist_trades.append(out.trades)
        info = {
            "equity": equity,
            "weights": weights,
            "cash_weight": self._cash_weight,
            "trades": out.trades,
            "fees": fees,
            "slippage_cost": slip,
            "borrow_cost": borrow,
            "financing_cost": financing,
            "turnover": turnover,
            "bar": t,
            "timestamp": self._timestamps[t],
        }
        if self._regime is not None:
            info["regime"] = self._regime[t]
        return self._observation(), reward, terminated, truncated, info

    def _observation(self) -> Any:
        obs = self.layout.observe(self._t, self._weights, self._cash_weight, self._windows)
        return self.layout.format_observation(obs)

    def _reset_info(self) -> dict:
        info = {
            "equity": self._equity,
            "weights": self._weights.copy(),
            "cash_weight": self._cash_weight,
            "bar": self._t,
            "timestamp": self._timestamps[self._t],
        }
        if self._regime is not None:
            info["regime"] = self._regime[self._t]
        return info

    # -- analysis ----------------------------------------------------------------------
    def history(self) -> pd.DataFrame:
        """The episode so far, one row per step, indexed by the timestamp of the marked bar:
        the scalars of ``info`` plus ``weight_<asset>`` and ``trade_<asset>`` columns."""
        rows = np.array(self._hist, dtype=np.float64).reshape(-1, len(_SCALAR_KEYS))
        bars = rows[:, 0].astype(np.int64)
        n = self.n_assets
        weights = np.array(self._hist_weights).reshape(-1, n)
        trades = np.array(self._hist_trades).reshape(-1, n)
        frame = pd.DataFrame(
            {
                "bar": bars,
                **{k: rows[:, j] for j, k in enumerate(_SCALAR_KEYS) if k != "bar"},
                **{f"weight_{a}": weights[:, j] for j, a in enumerate(self.assets)},
                **{f"trade_{a}": trades[:, j] for j, a in enumerate(self.assets)},
            },
            index=pd.DatetimeIndex(self.panel.timestamps[bars], name="timestamp"),
        )
        if self.panel.regime is not None:
            frame["regime"] = self.panel.regime[bars]
        return frame

    def metrics(self) -> dict[str, float]:
        """Performance of the episode so far (:func:`quantgym.envs.metrics.performance_metrics`:
        exposure is the target gross exposure, turnover the traded value / mean equity)."""
        rows = np.array(self._hist, dtype=np.float64).reshape(-1, len(_SCALAR_KEYS))
        col = {k: rows[:, j] for j, k in enumerate(_SCALAR_KEYS)}
        equity = np.concatenate([[self._initial], col["equity"]])
        return performance_metrics(
            equity,
            bars_per_year=self.panel.bars_per_year,
            positions=col["gross_target"],
            trade_notional=col["turnover"] * equity[:-1],
            fees=col["fees"],
        )

    def render(self) -> Any:  # str for "ansi", (H, W, 3) uint8 for "rgb_array"
        from quantgym.envs.portfolio.render import render_portfolio_ansi, render_portfolio_rgb

        if self.render_mode == "ansi":
            last = self._hist[-1] if self._hist else None
            return render_portfolio_ansi(
                pd.Timestamp(self._timestamps[self._t]), self._t, self._equity, self._initial,
                self.assets, self._weights, self._cash_weight,
                0.0 if last is None else last[3] + last[4],
            )  # fmt: skip
        if self.render_mode == "rgb_array":
            frame = self.history()
            weights = frame[[f"weight_{a}" for a in self.assets]].to_numpy()
            equity = np.concatenate([[self._initial], frame["equity"].to_numpy()])
            return render_portfolio_rgb(weights, equity)
        return None
