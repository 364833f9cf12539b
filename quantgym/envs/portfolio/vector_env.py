"""``PortfolioVectorEnv``: many portfolio accounts over one panel, stepped together in numpy.

Same panel, layout, transition (:func:`~quantgym.envs.portfolio.transition.portfolio_step`) and
rewards as ``PortfolioEnv``; every account has its own episode start and random generator,
seeded as N single envs would be (``seed + i``), so its trajectories equal N single envs' (tested
within 1e-12).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector.utils import batch_space

from quantgym.checks import check_positive_int
from quantgym.envs.accounting import portfolio_weights
from quantgym.envs.portfolio.config import PortfolioConfig
from quantgym.envs.portfolio.layout import PortfolioLayout
from quantgym.envs.portfolio.transition import portfolio_step
from quantgym.envs.rewards import step_context

__all__ = ["PortfolioVectorEnv"]

_STATE = ("_t", "_end", "_units", "_cash", "_equity", "_peak", "_weights", "_cash_weight")
_PER_STEP = ("trades", "fees", "slippage_cost", "borrow_cost", "financing_cost", "turnover")


class PortfolioVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` portfolio accounts over one panel, batched in numpy.

    Accepts the keyword arguments of :class:`~quantgym.envs.portfolio.env.PortfolioEnv`.
    Autoreset follows gymnasium 1.0.0's NEXT_STEP mode: the step after an account reports
    ``terminated`` or ``truncated`` resets it, ignores its action and returns its first
    observation with reward 0. ``infos`` is a dict of arrays with ``_key`` masks; ``weights`` and
    ``trades`` are ``(num_envs, N)``.

    Attributes ``bars`` and ``equity`` are ``(num_envs,)`` arrays, ``weights`` ``(num_envs, N)``.
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
            config = PortfolioConfig(data=data, **kwargs)
        except TypeError as exc:
            raise ValueError(f"PortfolioVectorEnv: {exc}") from None
        if config.render_mode == "rgb_array":
            raise ValueError(
                "PortfolioVectorEnv renders 'ansi' only (it keeps no per-step history); "
                "use a single PortfolioEnv with render_mode='rgb_array' to draw an episode"
            )
        if hasattr(gym.vector, "AutoresetMode"):  # gymnasium >= 1.1
            self.metadata = {**self.metadata, "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}
        self.config = config
        self.layout = layout = PortfolioLayout.build(config)
        self.panel = panel = layout.panel
        self.num_envs = n = num_envs
        self.render_mode = config.render_mode
        self.assets = panel.assets
        self.n_assets = panel.n_assets
        self.window_size = layout.window_size
        self.feature_names = panel.feature_names
        self.single_action_space = layout.action_space
        self.single_observation_space = layout.observation_space
        self.action_space = batch_space(self.single_action_space, n)
        self.observation_space = batch_space(self.single_observation_space, n)
        self._windows = panel.window_view(layout.window_size)
        # Observation rows of every bar precomputed (weights zero, filled per step): one gather
        # per step instead of the strided window view's two copies (profiled).
        self._table = layout.observation_table()
        self._reward_fn = config.make_reward()
        self._initial = float(config.initial_equity)
        self._all_true = np.ones(n, dtype=bool)
        self._all_true.flags.writeable = False
        self._rngs = [seeding.np_random(None)[0] for _ in range(n)]
        self._t = np.full(n, layout.first_bar, dtype=np.int64)
        self._end = np.full(n, panel.last_bar, dtype=np.int64)
        self._units = np.zeros((n, panel.n_assets))
        self._cash = np.full(n, self._initial)
        self._equity = np.full(n, self._initial)
        self._peak = np.full(n, self._initial)
        self._weights = np.zeros((n, panel.n_assets))
        self._cash_weight = np.ones(n)
        self._autoreset = np.zeros(n, dtype=bool)
        self._last_costs = np.zeros(n)
        self._reward_fn.reset(n)

    # -- public state ------------------------------------------------------------------
    @property
    def bars(self) -> np.ndarray:
        """Index of the last closed bar each account has seen."""
        return self._t

    @property
    def equity(self) -> np.ndarray:
        return self._equity

    @property
    def weights(self) -> np.ndarray:
        """Asset weights of each account at the close of its current bar, ``(num_envs, N)``."""
        return self._weights

    @property
    def units(self) -> np.ndarray:
        return self._units

    @property
    def cash(self) -> np.ndarray:
        return self._cash

    @property
    def first_bar(self) -> int:
        return self.layout.first_bar

    @property
    def episode_ends(self) -> np.ndarray:
        return self._end

    # -- gymnasium API -----------------------------------------------------------------
    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict | None = None
    ) -> tuple[Any, dict]:
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
        for name in _STATE:  # fresh arrays: infos returned earlier may alias the old ones
            setattr(self, name, getattr(self, name).copy())
        self._reset_accounts(np.arange(n), starts)
        self._reward_fn.reset(n)
        self._autoreset = np.zeros(n, dtype=bool)
        return self._observations(), self._reset_infos()

    def _reset_accounts(self, idx: np.ndarray, starts: list | None = None) -> None:
        for k, i in enumerate(idx):  # each account draws from its own generator
            self._t[i], self._end[i] = self.layout.episode_bounds(
                self._rngs[i], None if starts is None else starts[k]
            )
        self._units[idx] = 0.0
        self._weights[idx] = 0.0
        self._cash_weight[idx] = 1.0
        for arr in (self._cash, self._equity, self._peak):
            arr[idx] = self._initial

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        n, layout = self.num_envs, self.layout
        resetting = self._autoreset
        any_reset = bool(resetting.any())
        t = self._t
        if any_reset:  # keep indices valid for accounts whose step is discarded below
            t = np.minimum(t, self.panel.last_bar - 1)
        targets = layout.targets(actions, t, batch=n)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = portfolio_step(layout, t, self._units, self._cash, targets)
        units, cash, equity = out.units, out.cash, out.equity
        equity_prev, peak_prev = self._equity, self._peak
        terminated = equity <= 0.0
        if terminated.any():  # bankrupt: nothing left to trade with
            units = np.where(terminated[:, None], 0.0, units)
            cash = np.where(terminated, 0.0, cash)
            equity = np.where(terminated, 0.0, equity)
        t = t + 1
        peak = np.maximum(peak_prev, equity)
        traded = out.traded_value
        ctx = step_context(equity_prev, equity, peak_prev, peak, np.sum(np.abs(targets), axis=1),
                           traded, out.fees, out.slippage_cost,
                           out.borrow_cost + out.financing_cost, self._initial)  # fmt: skip
        rewards = np.asarray(self._reward_fn(ctx), dtype=np.float64)
        if rewards.shape != (n,):
            rewards = np.broadcast_to(rewards, (n,)).copy()
        weights, cash_weight = portfolio_weights(units, cash, self.panel.mark_close[t], equity)
        truncated = (t >= self._end) & ~terminated
        per_step = {
            "trades": out.trades,
            "fees": out.fees,
            "slippage_cost": out.slippage_cost,
            "borrow_cost": out.borrow_cost,
            "financing_cost": np.broadcast_to(out.financing_cost, (n,)).copy(),
            "turnover": traded / equity_prev,
        }
        self._t, self._units, self._cash, self._equity, self._peak = t, units, cash, equity, peak
        self._weights, self._cash_weight = weights, cash_weight
        mask = self._all_true
        if any_reset:
            idx = np.flatnonzero(resetting)
            self._reset_accounts(idx)
            self._reward_fn.reset_where(resetting)
            rewards[idx] = terminated[idx] = truncated[idx] = 0
            for arr in per_step.values():
                arr[idx] = 0
            mask = ~resetting
        self._autoreset = terminated | truncated
        self._last_costs = per_step["fees"] + per_step["slippage_cost"]
        infos = self._state_infos()
        for key in _PER_STEP:
            infos[key], infos[f"_{key}"] = per_step[key], mask
        return self._observations(), rewards, terminated, truncated, infos

    def reset_finished(self) -> tuple[Any, np.ndarray]:
        """Reset now the accounts whose episode ended on the last step (same-step autoreset,
        as Stable-Baselines3 expects). Returns ``(observations, reset_indices)``."""
        idx = np.flatnonzero(self._autoreset)
        if idx.size:
            for name in _STATE:  # the infos just returned alias the state arrays
                setattr(self, name, getattr(self, name).copy())
            self._reset_accounts(idx)
            self._reward_fn.reset_where(self._autoreset)
            self._autoreset = np.zeros(self.num_envs, dtype=bool)
        return self._observations(), idx

    def _observations(self) -> Any:
        obs = self.layout.observe(
            self._t, self._weights, self._cash_weight, self._windows, self._table
        )
        return self.layout.format_observation(obs)

    def _state_infos(self) -> dict:
        t = self._t
        infos = {
            "equity": self._equity,
            "weights": self._weights,
            "cash_weight": self._cash_weight,
            "bar": t,
            "timestamp": self.panel.timestamps[t],
        }
        if self.panel.regime is not None:
            infos["regime"] = self.panel.regime[t]
        for key in list(infos):
            infos[f"_{key}"] = self._all_true
        return infos

    def _reset_infos(self) -> dict:
        return {
            k: (v.copy() if isinstance(v, np.ndarray) else v)
            for k, v in self._state_infos().items()
        }

    def render(self) -> tuple | None:
        """Render the first account's latest state as an ``ansi`` line (a 1-tuple)."""
        if self.render_mode != "ansi":
            return None
        import pandas as pd

        from quantgym.envs.portfolio.render import render_portfolio_ansi

        t = int(self._t[0])
        return (
            render_portfolio_ansi(
                pd.Timestamp(self.panel.timestamps[t]), t, float(self._equity[0]), self._initial,
                self.assets, self._weights[0], float(self._cash_weight[0]), float(self._last_costs[0]),
            ),
        )  # fmt: skip
