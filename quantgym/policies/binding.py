"""Binding a policy to its env: the action mapping, the raw market and the current bar(s),
and the base class of every env-bound policy (rules, experts, the oracle)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from quantgym.envs.unwrap import find_trading_env
from quantgym.policies.base import BaseAgent

__all__ = [
    "EnvBinding",
    "EnvBoundAgent",
    "REFERENCE_COST",
    "check_choice",
    "check_int",
    "rolling",
    "band_positions",
]

#: Per-unit trading cost (commission + slippage) the default no-trade bands were tuned for.
REFERENCE_COST = 0.0015


# --------------------------------------------------------------------------------------------
# Binding to an env
# --------------------------------------------------------------------------------------------


def _find_core(env: Any) -> Any:
    """The ``TradingEnv`` / ``TradingVectorEnv`` behind wrappers and adapters."""
    return find_trading_env(env)


class EnvBinding:
    """What an env-bound agent needs to know about its env: action mapping, market, bars.

    ``env`` may be a single ``TradingEnv`` (wrapped or not), a ``TradingVectorEnv`` or the
    SB3 adapter around one.
    """

    def __init__(self, env: Any) -> None:
        core = _find_core(env)
        self.env = env
        self.core = core
        self.is_vector = hasattr(core, "bars") and hasattr(core, "num_envs")
        self.num_envs = int(core.num_envs) if self.is_vector else 1
        self.market = core.market
        config = core.config
        self.continuous = getattr(config, "action_type", "discrete") == "continuous"
        self.positions = np.asarray(
            getattr(config, "positions", (-1.0, 0.0, 1.0)), dtype=np.float64
        )
        self.max_leverage = float(getattr(config, "max_leverage", 1.0))
        self.commission = float(getattr(config, "commission", 0.0))
        self.fixed_fee = float(getattr(config, "fixed_fee", 0.0))
        self.borrow_rate = float(getattr(config, "borrow_rate", 0.0))
        if hasattr(config, "slippage_rates"):
            self.slippage_rates = np.asarray(config.slippage_rates(self.market), dtype=np.float64)
        else:
            self.slippage_rates = np.full(len(self.market), float(getattr(config, "slippage", 0.0)))
        self.window_size = int(core.window_size)
        self.n_market_features = int(core.n_market_features)
        self.position_index = self.window_size * self.n_market_features
        self.obs_dim = self.position_index + int(core.n_account_features)
        self.n_bars = len(self.market)
        self._windows = self.market.window_view(self.window_size)

    # -- env state -----------------------------------------------------------------------
    @property
    def cost_rate(self) -> float:
        """Average proportional cost per unit of equity traded (commission + mean slippage)."""
        return self.commission + float(np.mean(self.slippage_rates))

    def bars(self, batch_size: int) -> np.ndarray:
        """Current bar of each env, int64 ``(batch_size,)``; the batch must match the env."""
        if self.is_vector:
            bars = np.asarray(self.core.bars, dtype=np.int64)
            if batch_size != bars.shape[0]:
                raise ValueError(
                    f"observation batch has {batch_size} rows but the bound vector env has "
                    f"{bars.shape[0]} envs"
                )
            return bars
        if batch_size != 1:
            raise ValueError(
                f"observation batch has {batch_size} rows but the agent is bound to a single env; "
                "bind it to the vector env to act on a batch"
            )
        return np.array([self.core.bar], dtype=np.int64)

    def _state(self, name: str, private: str, i: int) -> Any:
        value = getattr(self.core, name, None)
        if value is None:
            value = getattr(self.core, private)
        return value[i] if self.is_vector else value

    def account(self, i: int = 0) -> tuple[float, float, float, float, int]:
        """``(units, cash, target, equity, episode_end_bar)`` of env ``i`` (exact float64)."""
        units = float(self._state("units", "_units", i))
        cash = float(self._state("cash", "_cash", i))
        target = float(self._state("target", "_target", i))
        equity = float(self._state("equity", "_equity", i))
        end = int(self._state("episode_end", "_end", i))
        return units, cash, target, equity, end

    # -- actions -------------------------------------------------------------------------
    def target_values(self) -> np.ndarray:
        """Targets of the discrete actions (``positions``); for continuous envs, the targets of
        the actions ``float32(p / max_leverage)`` for ``p`` in ``positions``, computed
        exactly as the env does."""
        if not self.continuous:
            return self.positions.copy()
        actions = self.to_actions(self.positions)
        return actions.reshape(-1).astype(np.float64) * self.max_leverage

    def to_actions(self, desired: np.ndarray) -> np.ndarray:
        """Nearest env action to each desired position: int64 ``(B,)`` or float32 ``(B, 1)``."""
        desired = np.asarray(desired, dtype=np.float64).reshape(-1)
        if self.continuous:
            return np.clip(desired / self.max_leverage, -1.0, 1.0).astype(np.float32).reshape(-1, 1)
        return np.abs(self.positions[None, :] - desired[:, None]).argmin(axis=1).astype(np.int64)

    def random_actions(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """Uniformly random actions for a batch."""
        if self.continuous:
            return rng.uniform(-1.0, 1.0, size=(batch_size, 1)).astype(np.float32)
        return rng.integers(0, len(self.positions), size=batch_size, dtype=np.int64)

    def check_observation(
        self, observation: Any, *, current: bool = True
    ) -> tuple[np.ndarray, bool]:
        """``(obs as (B, D), batched)``; raises ``ValueError`` for a wrong shape and, with
        ``current`` (agents that read their env's bar), for an observation that is not the
        env's current one (:meth:`check_current`)."""
        obs = np.asarray(observation)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"observation must have shape ({self.obs_dim},) or (n_envs, {self.obs_dim}), "
                f"got {obs.shape}"
            )
        batch = obs if obs.ndim == 2 else obs[None, :]
        if current:
            self.check_current(batch)
        return (obs, True) if obs.ndim == 2 else (batch, False)

    def check_current(self, obs: np.ndarray) -> None:
        """Raise ``ValueError`` unless ``obs`` (B, D) is the bound env's current observation.

        Env-bound agents read the current bar from their env, not from the observation: a
        stale, foreign or transformed observation would make them act on the wrong bar. The
        market window and the position of each row must equal the env's (float32, exact).
        """
        bars = self.bars(obs.shape[0])
        first = bars - (self.window_size - 1)
        if (first < 0).any():
            raise ValueError(f"bound env is at bar {bars.tolist()}, before its first full window")
        expected = self._windows[first]  # (B, window_size * F)
        positions = np.asarray(self._state_array("position", "_target"), dtype=np.float32)
        market_ok = (obs[:, : self.position_index] == expected).all(axis=1)
        position_ok = obs[:, self.position_index] == positions.reshape(-1)
        bad = np.flatnonzero(~(market_ok & position_ok))
        if bad.size:
            i = int(bad[0])
            what = "market window" if not market_ok[i] else "position"
            raise ValueError(
                f"observation row {i} is not the bound env's current observation (its {what} "
                f"differs from the env's at bar {int(bars[i])}): an env-bound agent acts on its "
                "env's current bar, so pass the observation the env just returned (untransformed: "
                "an observation wrapper's output cannot be matched to a bar)"
            )

    def _state_array(self, name: str, private: str) -> Any:
        if self.is_vector:
            value = getattr(self.core, "positions", None)
            return getattr(self.core, private) if value is None else value
        value = getattr(self.core, name, None)
        return getattr(self.core, private) if value is None else value

    @staticmethod
    def unbatch(actions: np.ndarray, batched: bool) -> np.ndarray:
        return actions if batched else actions[0]


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------


class EnvBoundAgent(BaseAgent):
    """Base of the env-bound agents: ``Agent(env=env, **config)``.

    Subclasses implement :meth:`desired_positions` (vectorised over the batch) and may
    precompute per-bar tables in :meth:`_precompute`. ``save``/``load`` store only the config;
    pass ``env=`` to ``load``.
    """

    uses_future: ClassVar[bool] = False

    def __init__(self, config: Any = None, *, env: Any = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        if env is None:
            raise ValueError(
                f"{type(self).__name__} is env-bound: pass env=gym.make('TradingEnv-v0', ...)"
            )
        self.binding = EnvBinding(env)
        self._validate()
        self._precompute()

    def _validate(self) -> None:
        """Check the config, raising ``ValueError`` naming the field."""

    def _precompute(self) -> None:
        """Compute per-bar signal tables once (vectorised, causal)."""

    def desired_positions(self, bars: np.ndarray, current_positions: np.ndarray) -> np.ndarray:
        """Desired position (fraction of equity) for each env at ``bars`` holding ``current_positions``."""
        raise NotImplementedError

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """One action per observation (``(D,)`` -> one action, ``(N, D)`` -> ``N`` actions)."""
        obs, batched = self.binding.check_observation(observation)
        bars = self.binding.bars(obs.shape[0])
        current = obs[:, self.binding.position_index].astype(np.float64)
        actions = self.binding.to_actions(self.desired_positions(bars, current))
        return self.binding.unbatch(actions, batched), state

    def describe(self) -> dict[str, Any]:
        """``{"name": ..., "params": config}`` (dataset metadata)."""
        return {"name": self.name, "params": dataclasses.asdict(self.config)}


def check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def rolling(values: np.ndarray, window: int, fn: str) -> np.ndarray:
    """Trailing rolling mean/std over ``values[t - window + 1 .. t]``; NaN before ``window``."""
    out = np.full(values.shape, np.nan)
    if values.size >= window:
        view = np.lib.stride_tricks.sliding_window_view(values, window)
        out[window - 1 :] = view.mean(axis=1) if fn == "mean" else view.std(axis=1)
    return out


def band_positions(
    expected: np.ndarray, band: float, current: np.ndarray, allow_short: bool
) -> np.ndarray:
    """+1 above ``band``, -1 (0 without shorts) below ``-band``, otherwise hold ``current``."""
    short = -1.0 if allow_short else 0.0
    return np.where(expected > band, 1.0, np.where(expected < -band, short, current))
