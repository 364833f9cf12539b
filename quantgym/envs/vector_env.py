"""``TradingVectorEnv``: N independent accounts stepped together in numpy.

Same market, same ledger (:mod:`quantgym.envs.accounting`) and rewards as ``TradingEnv``;
every account has its own episode start and random generator, seeded exactly as N single
envs would be (``seed + i``), so its trajectories equal N single envs' (tested).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector.utils import batch_space

from quantgym.envs.accounting import account_features, mark, rebalance
from quantgym.envs.config import ACCOUNT_FEATURES, EnvConfig
from quantgym.envs.rewards import step_context
from quantgym.envs.trading_env import resolve_start
from quantgym.envs.validation import check_positive_int

__all__ = ["TradingVectorEnv"]

_MAX_PRECOMPUTED_BYTES = 512 * 2**20

_STATE_ARRAYS = (
    "_t", "_end", "_units", "_cash", "_equity", "_peak", "_target", "_entry_equity", "_bars_in_position",
)  # fmt: skip


class TradingVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` trading accounts over one market, batched in numpy.

    Accepts the same keyword arguments as :class:`~quantgym.envs.trading_env.TradingEnv`.
    Autoreset follows gymnasium 1.0.0's NEXT_STEP mode: the step after an account reports
    ``terminated`` or ``truncated`` resets it, ignores its action and returns its first
    observation with reward 0. ``infos`` is a dict of arrays with ``_key`` masks.

    Attributes ``bars``, ``positions`` and ``equity`` are ``(num_envs,)`` arrays.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": "NextStep"}

    def __init__(
        self,
        num_envs: int = 1,
        data: Any = None,
        max_episode_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        check_positive_int("num_envs", num_envs)
        if max_episode_steps is not None:
            kwargs["episode_length"] = max_episode_steps
        try:
            config = EnvConfig(data=data, **kwargs)
        except TypeError as exc:
            raise ValueError(f"TradingVectorEnv: {exc}") from None
        config.validate()
        if config.render_mode == "rgb_array":
            raise ValueError(
                "TradingVectorEnv renders 'ansi' only (it keeps no per-step history); "
                "use a single TradingEnv with render_mode='rgb_array' to draw an episode"
            )
        if hasattr(gym.vector, "AutoresetMode"):  # gymnasium >= 1.1
            self.metadata = {**self.metadata, "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}
        self.config = config
        self.num_envs = num_envs
        self.render_mode = config.render_mode
        self.market = market = config.build_market()
        self._first_bar = config.first_bar(market)
        self._reward_fn = config.make_reward()

        self.window_size = config.window_size
        self.feature_names = market.feature_names
        self.account_feature_names = ACCOUNT_FEATURES
        self.n_market_features = market.n_features
        self.n_account_features = len(ACCOUNT_FEATURES)
        self._market_dim = self.window_size * self.n_market_features
        self._obs_dim = self._market_dim + self.n_account_features
        self._windows = market.window_view(self.window_size)
        # Observation rows precomputed contiguously (account columns zero, filled per step) so
        # a step gathers straight into its output with one np.take and no temporary: 2-6x
        # faster than gathering the strided view and stable across allocator states (profiled).
        # Beyond _MAX_PRECOMPUTED_BYTES the strided view is gathered instead.
        n_rows = self._windows.shape[0]
        self._obs_rows: np.ndarray | None = None
        if n_rows * self._obs_dim * 4 <= _MAX_PRECOMPUTED_BYTES:
            self._obs_rows = np.zeros((n_rows, self._obs_dim), dtype=np.float32)
            self._obs_rows[:, : self._market_dim] = self._windows

        self._continuous = config.action_type == "continuous"
        self._position_table = np.asarray(config.positions, dtype=np.float64)
        if self._continuous:
            self.single_action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        else:
            self.single_action_space = spaces.Discrete(len(config.positions))
        self.single_observation_space = spaces.Box(
            -np.inf, np.inf, shape=(self._obs_dim,), dtype=np.float32
        )
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)

        self._open, self._close = market.open, market.close
        self._slip = config.slippage_rates(market)
        self._timestamps = market.timestamps
        self._regime = market.regime
        self._initial = float(config.initial_equity)
        self._commission = float(config.commission)
        self._fixed_fee = float(config.fixed_fee)
        self._borrow = float(config.borrow_rate)
        self._all_true = np.ones(num_envs, dtype=bool)
        self._all_true.flags.writeable = False
        self._all_false = np.zeros(num_envs, dtype=bool)
        self._all_false.flags.writeable = False
        self._rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
        n = num_envs
        self._t = np.full(n, self._first_bar, dtype=np.int64)
        self._end = np.full(n, market.last_bar, dtype=np.int64)
        self._units = np.zeros(n)
        self._cash = np.full(n, self._initial)
        self._equity = np.full(n, self._initial)
        self._peak = np.full(n, self._initial)
        self._target = np.zeros(n)
        self._entry_equity = np.full(n, self._initial)
        self._bars_in_position = np.zeros(n)
        self._autoreset = np.zeros(n, dtype=bool)
        self._last_fees = np.zeros(n)  # for render()
        self._reward_fn.reset(n)

    # -- public state ------------------------------------------------------------------
    @property
    def bars(self) -> np.ndarray:
        """Index of the last closed bar each account has seen."""
        return self._t

    @property
    def positions(self) -> np.ndarray:
        """Current target position of each account."""
        return self._target

    @property
    def equity(self) -> np.ndarray:
        """Equity of each account, marked at the close of its current bar."""
        return self._equity

    @property
    def units(self) -> np.ndarray:
        """Units held by each account (negative when short)."""
        return self._units

    @property
    def cash(self) -> np.ndarray:
        return self._cash

    @property
    def episode_ends(self) -> np.ndarray:
        """Bar at which each account's current episode is truncated."""
        return self._end

    @property
    def first_bar(self) -> int:
        return self._first_bar

    # -- gymnasium API -----------------------------------------------------------------
    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        n = self.num_envs
        if seed is not None:
            seeds = (
                [seed + i for i in range(n)] if isinstance(seed, (int, np.integer)) else list(seed)
            )
            if len(seeds) != n:
                raise ValueError(f"reset(seed=...) needs {n} seeds, got {len(seeds)}")
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        starts = None
        if options and options.get("start") is not None:
            raw = options["start"]
            starts = list(raw) if isinstance(raw, (list, tuple, np.ndarray)) else [raw] * n
            if len(starts) != n:
                raise ValueError(
                    f"options['start'] needs one start or {n} starts, got {len(starts)}"
                )
        # Fresh arrays: infos returned earlier may alias the old state arrays.
        for name in _STATE_ARRAYS:
            setattr(self, name, getattr(self, name).copy())
        self._reset_accounts(np.arange(n), starts)
        self._reward_fn.reset(n)
        self._autoreset = np.zeros(n, dtype=bool)
        return self._observations(), self._reset_infos()

    def _draw_start(self, i: int, start: Any) -> tuple[int, int]:
        """Episode bounds of account ``i``, drawn from its own generator like ``TradingEnv``."""
        last = self.market.last_bar
        length = self.config.episode_length
        if start is not None:
            s = resolve_start(self.market, start)
            if not self._first_bar <= s < last:
                raise ValueError(
                    f"options['start']={start!r} is bar {s}, outside the tradable bars "
                    f"[{self._first_bar}, {last - 1}]"
                )
        elif length is None or last - self._first_bar <= length:
            s = self._first_bar
        else:
            s = int(self._rngs[i].integers(self._first_bar, last - length + 1))
        return s, (last if length is None else min(s + length, last))

    def _reset_accounts(self, idx: np.ndarray, starts: list | None = None) -> None:
        # A Python loop over the accounts being reset only (each draws from its own RNG).
        for k, i in enumerate(idx):
            self._t[i], self._end[i] = self._draw_start(
                int(i), None if starts is None else starts[k]
            )
        self._units[idx] = 0.0
        self._cash[idx] = self._initial
        self._equity[idx] = self._initial
        self._peak[idx] = self._initial
        self._target[idx] = 0.0
        self._entry_equity[idx] = self._initial
        self._bars_in_position[idx] = 0.0

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        target = self._actions_to_targets(actions)
        resetting = self._autoreset
        any_reset = bool(resetting.any())
        t = self._t + 1
        if any_reset:  # keep indices valid for accounts whose step is discarded below
            t = np.minimum(t, self.market.last_bar)
            errstate = np.errstate(divide="ignore", invalid="ignore")
            errstate.__enter__()
        equity_prev, peak_prev = self._equity, self._peak
        units, cash, notional, fees, slip = rebalance(
            target, self._target, self._units, self._cash, self._open[t], self._slip[t - 1],
            self._commission, self._fixed_fee,
        )  # fmt: skip
        cash, equity, borrow = mark(units, cash, self._close[t], self._borrow)
        traded = notional != 0.0
        self._entry_equity = np.where(traded, equity_prev, self._entry_equity)
        self._bars_in_position = np.where(traded, 0.0, self._bars_in_position) + 1.0
        terminated = equity <= 0.0
        if terminated.any():  # liquidated: nothing left to trade with
            equity = np.where(terminated, 0.0, equity)
            cash = np.where(terminated, 0.0, cash)
            units = np.where(terminated, 0.0, units)
        peak = np.maximum(peak_prev, equity)
        rewards = self._reward_fn(
            step_context(
                equity_prev,
                equity,
                peak_prev,
                peak,
                target,
                notional,
                fees,
                slip,
                borrow,
                self._initial,
            )
        )
        rewards = np.asarray(rewards, dtype=np.float64)
        if rewards.shape != (self.num_envs,):
            rewards = np.broadcast_to(rewards, (self.num_envs,)).copy()
        truncated = (t >= self._end) & ~terminated
        trade = notional / equity_prev
        self._t, self._units, self._cash, self._equity, self._peak = t, units, cash, equity, peak
        self._target = target
        mask = self._all_true
        if any_reset:
            idx = np.flatnonzero(resetting)
            self._reset_accounts(idx)
            self._reward_fn.reset_where(resetting)
            rewards[idx] = 0.0
            terminated[idx] = False
            truncated[idx] = False
            for arr in (trade, fees, slip, borrow):
                arr[idx] = 0.0
            mask = ~resetting
            errstate.__exit__(None, None, None)
        self._autoreset = terminated | truncated
        self._last_fees = fees
        t = self._t
        infos = {
            "equity": self._equity,
            "_equity": self._all_true,
            "position": self._target,
            "_position": self._all_true,
            "trade": trade,
            "_trade": mask,
            "fees": fees,
            "_fees": mask,
            "slippage_cost": slip,
            "_slippage_cost": mask,
            "borrow_cost": borrow,
            "_borrow_cost": mask,
            "bar": t,
            "_bar": self._all_true,
            "timestamp": self._timestamps[t],
            "_timestamp": self._all_true,
        }
        if self._regime is not None:
            infos["regime"] = self._regime[t]
            infos["_regime"] = self._all_true
        return self._observations(), rewards, terminated, truncated, infos

    def reset_finished(self) -> tuple[np.ndarray, np.ndarray]:
        """Reset now the accounts whose episode ended on the last step (same-step autoreset,
        as Stable-Baselines3 expects) instead of on the next step.

        Returns ``(observations, reset_indices)``: the batch observation with the finished
        accounts already restarted, and which accounts were reset.
        """
        idx = np.flatnonzero(self._autoreset)
        if idx.size:
            self._reset_accounts(idx)
            self._reward_fn.reset_where(self._autoreset)
            self._autoreset = np.zeros(self.num_envs, dtype=bool)
        return self._observations(), idx

    def _actions_to_targets(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions)
        n = self.num_envs
        if self._continuous:
            if a.shape not in ((n,), (n, 1)) or not np.issubdtype(a.dtype, np.number):
                raise ValueError(
                    f"actions must have shape ({n}, 1) for Box(-1, 1, (1,)), got shape {a.shape}"
                )
            a = a.reshape(n).astype(np.float64)
            if not ((a >= -1.0) & (a <= 1.0)).all():  # also rejects NaN
                bad = np.flatnonzero(~((a >= -1.0) & (a <= 1.0)))
                raise ValueError(
                    f"actions outside Box(-1, 1) for envs {bad[:5].tolist()}: {a[bad[:5]].tolist()}"
                )
            return a * self.config.max_leverage
        if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(
                f"actions must be {n} integers for Discrete({len(self._position_table)}), got {a!r}"
            )
        if a.min() < 0 or a.max() >= len(self._position_table):
            bad = np.flatnonzero((a < 0) | (a >= len(self._position_table)))
            raise ValueError(
                f"actions {a[bad[:5]].tolist()} (envs {bad[:5].tolist()}) are outside Discrete({len(self._position_table)})"
            )
        return self._position_table[a]

    def _observations(self) -> np.ndarray:
        obs = np.empty((self.num_envs, self._obs_dim), dtype=np.float32)
        m = self._market_dim
        rows = self._t - (self.window_size - 1)
        if self._obs_rows is not None:
            np.take(self._obs_rows, rows, axis=0, out=obs, mode="clip")
        else:  # fancy indexing: np.take would first copy the whole non-contiguous view
            obs[:, :m] = self._windows[rows]
        t = self._t
        feats = account_features(
            self._target, self._units, self._close[t], self._equity,
            self._entry_equity, self._peak, self._bars_in_position,
        )  # fmt: skip
        for k, values in enumerate(feats):
            obs[:, m + k] = values
        return obs

    def _reset_infos(self) -> dict:
        t = self._t
        infos = {
            "equity": self._equity.copy(),
            "_equity": self._all_true,
            "position": self._target.copy(),
            "_position": self._all_true,
            "bar": t.copy(),
            "_bar": self._all_true,
            "timestamp": self._timestamps[t],
            "_timestamp": self._all_true,
        }
        if self._regime is not None:
            infos["regime"] = self._regime[t]
            infos["_regime"] = self._all_true
        return infos

    def render(self) -> tuple | None:
        """Render the first account's latest state as an ``ansi`` line (a 1-tuple)."""
        if self.render_mode == "ansi":
            import pandas as pd

            from quantgym.envs.render import render_ansi

            t = int(self._t[0])
            return (
                render_ansi(
                    {
                        "timestamp": pd.Timestamp(self._timestamps[t]),
                        "bar": t,
                        "close": float(self._close[t]),
                        "position": float(self._target[0]),
                        "equity": float(self._equity[0]),
                        "initial_equity": self._initial,
                        "fees": float(self._last_fees[0]),
                    }
                ),
            )
        return None
