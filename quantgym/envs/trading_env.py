"""``TradingEnv``: a single-instrument trading environment with honest execution."""

from __future__ import annotations

import math
import operator
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from quantgym.envs.accounting import (
    account_features,
    finance,
    impact_fill,
    liquidate,
    mark,
    rebalance,
)
from quantgym.envs.config import ACCOUNT_FEATURES, EnvConfig
from quantgym.envs.layout import EnvLayout, resolve_start
from quantgym.envs.metrics import performance_metrics
from quantgym.envs.rewards import EQUITY_FLOOR, LogReturn, step_context

__all__ = ["TradingEnv", "resolve_start"]


class TradingEnv(gym.Env):
    """Trade one instrument by choosing a target position each bar.

    ## Description
    The agent observes a window of causal market features plus its account state and
    chooses a target position as a fraction of equity. Orders fill at the next bar's open
    with slippage and commission; the portfolio is marked at that bar's close.

    ## Timing
    ```
    bar:        t (closed)            t+1
                |---- obs_t ----|     open[t+1]: fill to target a_t (+slippage, commission)
                 agent picks a_t      close[t+1]: mark equity, reward r_t, obs_t+1
    ```
    Nothing in ``obs_t`` or ``r_(t-1)`` depends on any bar after ``t``.

    ## Action Space
    | action_type  | space                | meaning                                              |
    |--------------|----------------------|------------------------------------------------------|
    | "discrete"   | `Discrete(len(positions))` | target `positions[a]`, default (-1, 0, 1) = short, flat, long |
    | "continuous" | `Box(-1, 1, (1,))`   | target `a * max_leverage`                            |

    A target equal to the current one keeps the units held (no order, no cost).

    ## Observation Space
    `Box(-inf, inf, (window_size * n_market_features + n_account_features,), float32)`:

    | slice                          | content                                                       |
    |--------------------------------|---------------------------------------------------------------|
    | `[: window_size * F]`          | market features of bars `t-window_size+1 .. t`, oldest first, row-major `(window_size, F)` |
    | `[-5]` position                | current target position                                       |
    | `[-4]` exposure                | units * close / equity (drifts with price between trades)     |
    | `[-3]` unrealized_pnl          | equity / equity when the position was entered - 1 (0 when flat) |
    | `[-2]` drawdown                | equity / peak equity - 1 (<= 0)                               |
    | `[-1]` time_in_position        | k / (k + 20), k = bars since the last trade                    |

    ## Rewards
    ``"log_return"`` (default): ``log(equity_t+1 / equity_t)``, so rewards sum to the log growth.
    ``"differential_sharpe"`` (Moody & Saffell), ``"risk_adjusted"`` (drawdown and turnover
    penalties) or a callable ``fn(RewardContext)``.

    ## Costs
    ``commission`` and ``slippage`` are fractions of traded notional (valued at the open);
    ``fixed_fee`` per order; ``borrow_rate`` per bar on short notional at the close;
    ``financing_rate`` per bar on borrowed cash (negative cash: a levered long) at the close.
    ``slippage`` may be a model: ``"fixed"``, ``"spread"``, ``"volatility"`` or
    ``"sqrt_impact"`` (``{"model": "sqrt_impact", "half_spread": 5e-4, "impact": 1.0,
    "window": 20, "max_participation": None}``): the cost fraction of an order of ``q`` units
    is ``half_spread + impact * sigma_t * sqrt(q / V_t)`` with ``sigma_t`` the trailing std of
    log returns and ``V_t`` the trailing mean volume (bars ``<= t``), so ``initial_equity``
    matters. With ``max_participation`` at most ``max_participation * V_t`` units fill per bar;
    the rest is reported and sent again at the next open.

    ## Rebalancing
    ``rebalance="on_change"`` (default): an order is sent only when the target changes (or an
    order is still partly unfilled), so the exposure drifts with the price between trades.
    ``"every_bar"``: the exposure is restored to the target at every open, paying costs on
    the drift (a held short keeps its size).

    ## Margin and Liquidation
    ``maintenance_margin=None`` (default) checks the account at the close only (bankruptcy).
    With ``maintenance_margin=m`` the account is checked after the fill at the bar's adverse
    extreme (low for a long, high for a short): if equity there is below ``m * |units| *
    price`` the position is closed at the liquidation level (equity = requirement), or at the
    open when the bar opened beyond it, paying commission, slippage and ``liquidation_fee``
    (fraction of liquidated notional). ``on_liquidation="terminate"`` (default) ends the
    episode; ``"flat"`` leaves the account flat and lets it trade on.

    ## Episode End
    Terminated: equity <= 0 (bankruptcy), or a liquidation with
    ``on_liquidation="terminate"``. Truncated: ``episode_length`` steps taken or the data
    range ends (no next open to trade at).

    ## Info
    After ``step``: ``equity``, ``position``, ``trade`` (traded notional / equity),
    ``fees``, ``slippage_cost``, ``borrow_cost``, ``bar``, ``timestamp``; plus
    ``financing_cost`` with ``financing_rate``; ``liquidated`` and ``liquidation_price`` with
    ``maintenance_margin``; ``participation`` (filled units / trailing mean volume) and
    ``unfilled`` (signed fraction of equity left unfilled) with ``"sqrt_impact"``; ``regime``
    on synthetic markets. ``env.layout.info_keys`` lists them in order (both envs).

    ## Arguments
    See :class:`quantgym.envs.config.EnvConfig`: ``data`` (None = seeded synthetic ``regime``
    market; DataFrame, CSV path, ``"sample:googl"``, ``"synthetic:gbm"``, MarketData),
    ``start``/``end`` date range, ``features``, ``window_size=32``, ``positions``,
    ``action_type``, ``max_leverage``, ``commission=0.001``, ``fixed_fee``, ``slippage=0.0005``,
    ``borrow_rate``, ``financing_rate=0``, ``maintenance_margin=None``, ``liquidation_fee=0``,
    ``on_liquidation="terminate"``, ``rebalance="on_change"``, ``initial_equity=10_000``,
    ``reward``, ``episode_length=1000``. The validated set-up shared with
    ``TradingVectorEnv`` is ``env.layout`` (:class:`quantgym.envs.layout.EnvLayout`).

    ## Version History
    * v0: initial release; financing, maintenance margin and liquidation, ``rebalance``,
      ``"sqrt_impact"`` slippage added as options whose defaults keep v0's trajectories
      bit-identical.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 30}

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        try:
            config = EnvConfig(data=data, **kwargs)
        except TypeError as exc:
            raise ValueError(f"TradingEnv: {exc}") from None
        self.config = config
        self.layout = layout = EnvLayout.build(config)
        self.render_mode = config.render_mode
        self.market = market = layout.market
        self._first_bar = layout.first_bar
        self._reward_fn = config.make_reward()

        self.window_size = layout.window_size
        self.feature_names = layout.feature_names
        self.account_feature_names = ACCOUNT_FEATURES
        self.n_market_features = layout.n_market_features
        self.n_account_features = layout.n_account_features
        self._market_dim = layout.market_dim
        self._obs_dim = layout.obs_dim
        self._obs_offset = (
            self.n_market_features - self._market_dim
        )  # window of bar t starts at t*F + offset
        self._features_flat = np.concatenate(
            [market.features32.reshape(-1), np.zeros(self.n_account_features, np.float32)]
        )
        self.action_space = layout.action_space
        self.observation_space = layout.observation_space
        self._positions = layout.positions
        self._n_actions = len(layout.positions)
        self._continuous = layout.continuous

        # Python lists/floats on the hot path: per-step numpy calls would dominate.
        self._open = layout.open.tolist()
        self._high = layout.high.tolist()
        self._low = layout.low.tolist()
        self._close = layout.close.tolist()
        self._slip = layout.slippage_rates.tolist()
        self._impact = layout.has_impact
        if layout.has_impact:
            self._impact_coef = layout.impact_coef.tolist()  # type: ignore[union-attr]
            self._adv = layout.average_volume.tolist()  # type: ignore[union-attr]
            self._max_units = layout.max_units.tolist()  # type: ignore[union-attr]
        self._margin = layout.has_margin
        self._maintenance = float(config.maintenance_margin or 0.0)
        self._liq_fee_rate = layout.liquidation_fee_rate
        self._flat_on_liquidation = config.on_liquidation == "flat"
        self._every_bar = layout.every_bar
        self._plain = not (self._impact or self._margin or self._every_bar or config.financing_rate)
        self._financing = float(config.financing_rate)
        self._regime = None if market.regime is None else market.regime.tolist()
        self._timestamps = market.timestamps
        self._timestamp_list = list(market.timestamps)  # list indexing beats numpy scalar indexing
        self._log_reward = isinstance(self._reward_fn, LogReturn)
        self._equity_floor = EQUITY_FLOOR * float(config.initial_equity)
        self._initial = float(config.initial_equity)
        self._commission = float(config.commission)
        self._fixed_fee = float(config.fixed_fee)
        self._borrow = float(config.borrow_rate)
        self._reset_account(self._first_bar, self._first_bar)

    # -- public state ------------------------------------------------------------------
    @property
    def bar(self) -> int:
        """Index of the last closed bar the agent has seen."""
        return self._t

    @property
    def position(self) -> float:
        """Current target position (fraction of equity)."""
        return self._target

    @property
    def equity(self) -> float:
        """Equity marked at the close of the current bar."""
        return self._equity

    @property
    def units(self) -> float:
        """Units of the instrument held (negative when short)."""
        return self._units

    @property
    def cash(self) -> float:
        return self._cash

    @property
    def episode_end(self) -> int:
        """Bar at which the current episode is truncated."""
        return self._end

    @property
    def first_bar(self) -> int:
        """First bar an episode can start at (feature warm-up and window included)."""
        return self._first_bar

    # -- gymnasium API -----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        start, end = self._episode_bounds(options)
        self._reset_account(start, end)
        self._reward_fn.reset()
        return self._observation(), self._reset_info()

    def _episode_bounds(self, options: dict | None) -> tuple[int, int]:
        return self.layout.episode_bounds(self.np_random, (options or {}).get("start"))

    def _reset_account(self, start: int, end: int) -> None:
        self._t = start
        self._end = end
        self._units = 0.0
        self._cash = self._initial
        self._equity = self._initial
        self._peak = self._initial
        self._target = 0.0
        self._entry_equity = self._initial
        self._bars_in_position = 0
        self._unfilled = 0.0
        self._done = False
        self._hist: list[tuple] = []  # one tuple per step, in _HISTORY_KEYS order

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._done:
            raise ValueError("step() called after the episode ended; call reset() first")
        if action.__class__ is int and 0 <= action < self._n_actions and not self._continuous:
            target = self._positions[action]  # fast path for plain ints
        else:
            target = self._action_to_target(action)
        t = self._t + 1
        equity_prev, peak_prev = self._equity, self._peak
        if self._plain:  # v0's ledger: the hot path
            units, cash, notional, fees, slip = rebalance(
                target, self._target, self._units, self._cash, self._open[t], self._slip[t - 1],
                self._commission, self._fixed_fee,
            )  # fmt: skip
            financing, liquidated, extra = 0.0, False, None
        else:
            units, cash, notional, fees, slip, financing, liquidated, target, extra = (
                self._execute_with_options(target, t, equity_prev)
            )
        cash, equity, borrow = mark(units, cash, self._close[t], self._borrow)
        if notional != 0.0:
            self._entry_equity = equity_prev
            self._bars_in_position = 1
        else:
            self._bars_in_position += 1
        terminated = equity <= 0.0
        if liquidated and not self._flat_on_liquidation:
            terminated = True
        if equity <= 0.0:  # bankrupt: nothing left to trade with
            equity = cash = units = 0.0
        peak = equity if equity > peak_prev else peak_prev
        self._t, self._units, self._cash, self._equity, self._peak = t, units, cash, equity, peak
        self._target = target
        if self._log_reward:  # LogReturn without building a RewardContext (hot path)
            reward = math.log(
                (equity if equity > self._equity_floor else self._equity_floor) / equity_prev
            )
        else:
            reward = float(
                self._reward_fn(
                    step_context(
                        equity_prev,
                        equity,
                        peak_prev,
                        peak,
                        target,
                        notional,
                        fees,
                        slip,
                        borrow if self._plain else borrow + financing,
                        self._initial,
                    )
                )
            )
        truncated = t >= self._end and not terminated
        self._done = terminated or truncated
        trade = notional / equity_prev
        self._hist.append((t, target, trade, fees, slip, borrow, financing, equity, reward))
        info = {
            "equity": equity,
            "position": target,
            "trade": trade,
            "fees": fees,
            "slippage_cost": slip,
            "borrow_cost": borrow,
            "bar": t,
            "timestamp": self._timestamp_list[t],
        }
        if extra is not None:
            info.update(extra)
        if self._regime is not None:
            info["regime"] = self._regime[t]
        lo = t * self.n_market_features + self._obs_offset
        obs = self._features_flat[lo : lo + self._obs_dim].copy()
        obs[self._market_dim :] = account_features(
            target, units, self._close[t], equity, self._entry_equity, peak, self._bars_in_position
        )
        return obs, reward, terminated, truncated, info

    def _execute_with_options(self, target: float, t: int, equity_prev: float) -> tuple:
        """The fill of ``step`` with impact, margin, financing or ``every_bar`` enabled.

        Returns ``(units, cash, notional, fees, slippage, financing, liquidated, target,
        extra_info)``; the target becomes 0 after a liquidation with ``on_liquidation="flat"``.
        """
        extra: dict[str, Any] = {}
        if self._impact:
            units, cash, notional, fees, slip, participation, unfilled = impact_fill(
                target, self._target, self._units, self._cash, self._open[t], self._slip[t - 1],
                self._impact_coef[t - 1], self._adv[t - 1], self._max_units[t - 1],
                self._commission, self._fixed_fee, self._every_bar or self._unfilled != 0.0,
            )  # fmt: skip
            self._unfilled = unfilled
        else:
            units, cash, notional, fees, slip = rebalance(
                target,
                math.nan if self._every_bar else self._target,  # nan: every_bar always trades
                self._units,
                self._cash,
                self._open[t],
                self._slip[t - 1],
                self._commission,
                self._fixed_fee,
            )
        liquidated = False
        if self._margin:
            slip_rate = self._slip[t - 1]
            if self._impact:
                slip_rate += self._impact_coef[t - 1] * abs(units) ** 0.5
            units_before = units
            units, cash, liquidated, liq_price, liq_fees, liq_slip = liquidate(
                units, cash, self._open[t], self._low[t], self._high[t], self._maintenance,
                self._liq_fee_rate, slip_rate, self._fixed_fee,
            )  # fmt: skip
            if liquidated:
                notional -= units_before * liq_price
                fees += liq_fees
                slip += liq_slip
                unfilled = self._unfilled = 0.0  # a liquidation cancels the working order
                if self._flat_on_liquidation:
                    target = 0.0
        financing = 0.0
        if self._financing:
            cash, financing = finance(cash, self._financing)
            extra["financing_cost"] = financing
        if self._margin:
            extra["liquidated"] = liquidated
            extra["liquidation_price"] = liq_price if liquidated else 0.0
        if self._impact:
            extra["participation"] = participation
            extra["unfilled"] = unfilled * self._open[t] / equity_prev
        return units, cash, notional, fees, slip, financing, liquidated, target, extra

    def _action_to_target(self, action: Any) -> float:
        if self._continuous:
            try:
                value = (
                    float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
                    if np.size(action) == 1
                    else None
                )
            except (TypeError, ValueError):
                value = None
            if value is None or not -1.0 <= value <= 1.0:
                raise ValueError(f"action {action!r} is outside the action space Box(-1, 1, (1,))")
            return value * self.config.max_leverage
        try:
            index = operator.index(action)
        except TypeError:
            arr = np.asarray(action)
            if arr.size != 1 or not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(
                    f"action {action!r} is outside the action space Discrete({self._n_actions})"
                ) from None
            index = int(arr.reshape(-1)[0])
        if not 0 <= index < self._n_actions:
            raise ValueError(
                f"action {action!r} is outside the action space Discrete({self._n_actions})"
            )
        return self._positions[index]

    def _observation(self) -> np.ndarray:
        # The flat feature array is padded with n_account_features zeros so this copy never
        # runs off its end; the tail is then overwritten with the account features.
        lo = self._t * self.n_market_features + self._obs_offset
        obs = self._features_flat[lo : lo + self._obs_dim].copy()
        obs[self._market_dim :] = account_features(
            self._target, self._units, self._close[self._t], self._equity,
            self._entry_equity, self._peak, self._bars_in_position,
        )  # fmt: skip
        return obs

    def _reset_info(self) -> dict:
        info = {
            "equity": self._equity,
            "position": self._target,
            "bar": self._t,
            "timestamp": self._timestamp_list[self._t],
        }
        if self._regime is not None:
            info["regime"] = self._regime[self._t]
        return info

    # -- analysis ----------------------------------------------------------------------
    def history(self) -> pd.DataFrame:
        """The episode so far, one row per step, indexed by the timestamp of the marked bar."""
        h = self._history_columns()
        bars = h["bar"]
        frame = pd.DataFrame(
            {
                "bar": bars,
                "open": self.market.open[bars],
                "close": self.market.close[bars],
                **{k: h[k] for k in _HISTORY_KEYS if k != "bar"},
            },
            index=pd.DatetimeIndex(self._timestamps[bars], name="timestamp"),
        )
        if self.market.regime is not None:
            frame["regime"] = self.market.regime[bars]
        return frame

    def metrics(self) -> dict[str, float]:
        """Performance of the episode so far (annualised with the market's bar frequency)."""
        h = self._history_columns()
        equity = np.concatenate([[self._initial], h["equity"]])
        return performance_metrics(
            equity,
            bars_per_year=self.market.bars_per_year,
            positions=h["position"],
            trade_notional=h["trade"] * equity[:-1],
            fees=h["fees"],
        )

    def _history_columns(self) -> dict[str, np.ndarray]:
        rows = np.array(self._hist, dtype=np.float64).reshape(-1, len(_HISTORY_KEYS))
        columns = {k: rows[:, j] for j, k in enumerate(_HISTORY_KEYS)}
        columns["bar"] = columns["bar"].astype(np.int64)
        return columns

    def render(self) -> Any:  # str for "ansi", (H, W, 3) uint8 for "rgb_array"
        from quantgym.envs.render import render_ansi, render_rgb_array

        if self.render_mode == "ansi":
            t = self._t
            row = {
                "timestamp": pd.Timestamp(self._timestamps[t]),
                "bar": t,
                "close": self._close[t],
                "position": self._target,
                "equity": self._equity,
                "initial_equity": self._initial,
                "trade": self._hist[-1][2] if self._hist else 0.0,
                "fees": self._hist[-1][3] if self._hist else 0.0,
                "slippage_cost": self._hist[-1][4] if self._hist else 0.0,
            }
            return render_ansi(row)
        if self.render_mode == "rgb_array":
            h = self._history_columns()
            return render_rgb_array(self.market.close[h["bar"]], h["position"], h["equity"])
        return None


_HISTORY_KEYS = (
    "bar",
    "position",
    "trade",
    "fees",
    "slippage_cost",
    "borrow_cost",
    "financing_cost",
    "equity",
    "reward",
)
