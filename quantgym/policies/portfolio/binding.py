"""Binding a portfolio baseline to its ``PortfolioEnv``: the panel, the current bar(s), each
env's episode origin, and the mapping of weights to the env's action.

Timing. At decision bar ``t`` (bar t closed) an agent reads prices up to ``t`` only and returns
target weights; the env fills them at the open of ``t + 1`` and marks them at the close of
``t + 1``. The OLPS papers hold ``b_t`` over the close-to-close relative ``x_t``; here the
decision at bar ``t`` is the algorithm's ``b_(k+1)``, decided after the relatives up to bar
``t`` and held over ``close_(t+1) / close_t``. On close-only data the open of ``t + 1`` is the
close of ``t``, so with zero costs the env's wealth is the algorithm's (universal-portfolios')
wealth on the same prices.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from quantgym.checks import check_choice
from quantgym.envs.unwrap import iter_env_layers
from quantgym.policies.base import BaseAgent

__all__ = ["ORIGINS", "find_portfolio_env", "PortfolioBinding", "PortfolioAgent", "masked_weights"]

#: Where an agent's weight path starts: each episode's first bar, or the panel's first bar.
ORIGINS = ("episode", "panel")


def find_portfolio_env(env: Any) -> Any:
    """The ``PortfolioEnv`` / ``PortfolioVectorEnv`` behind any wrappers, or a ``ValueError``."""
    for obj in iter_env_layers(env):
        if (
            hasattr(obj, "panel")
            and hasattr(obj, "layout")
            and (hasattr(obj, "bars") or hasattr(obj, "bar"))
        ):
            return obj
    raise ValueError(
        "env must be a PortfolioEnv (gym.make('PortfolioEnv-v0')), a PortfolioVectorEnv or its "
        f"SB3 adapter; got {type(env).__name__}"
    )


def masked_weights(weights: np.ndarray, tradable: np.ndarray) -> np.ndarray:
    """``weights`` ``(B, N)`` with the untradable assets at 0 and their weight shared among the
    tradable ones in proportion (the invested fraction is kept); all cash if none is tradable
    or the tradable ones have no weight."""
    w = np.where(tradable, weights, 0.0)
    kept = w.sum(axis=1, keepdims=True)
    wanted = weights.sum(axis=1, keepdims=True)
    scale = np.divide(wanted, kept, out=np.zeros_like(kept), where=kept > 0.0)
    return w * scale


class PortfolioBinding:
    """What a portfolio baseline reads from its env (single, vector, wrapped or SB3-adapted)."""

    def __init__(self, env: Any) -> None:
        core = find_portfolio_env(env)
        self.env, self.core = env, core
        self.is_vector = hasattr(core, "bars") and hasattr(core, "num_envs")
        self.num_envs = int(core.num_envs) if self.is_vector else 1
        self.panel = core.panel
        self.layout = core.layout
        self.n_assets = int(self.panel.n_assets)
        config = self.layout.config
        if getattr(config, "action_transform", None) is not None:
            raise ValueError(
                f"portfolio baselines return target weights; the env's action_transform="
                f"{config.action_transform!r} expects logits: make the env with action_transform=None"
            )
        self.dict_observations = getattr(config, "observation_mode", "flat") == "dict"
        self.obs_dim = int(self.layout.obs_dim)

    def bars(self, batch_size: int) -> np.ndarray:
        """Current decision bar of each env, int64 ``(batch_size,)``; the batch must match."""
        if self.is_vector:
            bars = np.asarray(self.core.bars, dtype=np.int64)
            if batch_size != bars.shape[0]:
                raise ValueError(
                    f"observation batch has {batch_size} rows but the bound vector env has "
                    f"{bars.shape[0]} envs"
                )
            return bars.copy()
        if batch_size != 1:
            raise ValueError(
                f"observation batch has {batch_size} rows but the agent is bound to a single env; "
                "bind it to the vector env to act on a batch"
            )
        return np.array([self.core.bar], dtype=np.int64)

    def episode_ends(self, batch_size: int) -> np.ndarray:
        """Bar at which each env's current episode is truncated, int64 ``(batch_size,)``."""
        ends = self.core.episode_ends if self.is_vector else [self.core.episode_end]
        return np.asarray(ends, dtype=np.int64).reshape(batch_size)

    def current_weights(self) -> np.ndarray:
        """The accounts' asset weights at the close of the current bar, ``(B, N)``."""
        return np.asarray(self.core.weights, dtype=np.float64).reshape(-1, self.n_assets)

    def check_observation(self, observation: Any) -> tuple[int, bool]:
        """``(batch size, batched)``; ``ValueError`` for a wrong shape or an observation that
        is not the env's current one (its tradable mask or weights differ from the env's)."""
        if self.dict_observations:
            if not isinstance(observation, dict) or "mask" not in observation:
                raise ValueError("the env gives dict observations: pass the dict it returned")
            mask = np.asarray(observation["mask"])
            weights = np.asarray(observation["weights"])
        else:
            obs = np.asarray(observation)
            if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
                raise ValueError(
                    f"observation must have shape ({self.obs_dim},) or (n_envs, {self.obs_dim}), "
                    f"got {obs.shape}"
                )
            parts = self.layout.split(obs)
            mask, weights = parts["mask"], parts["weights"]
        batched = mask.ndim == 2
        mask = mask.reshape(-1, self.n_assets)
        weights = weights.reshape(mask.shape[0], -1)[:, : self.n_assets]
        bars = self.bars(mask.shape[0])
        expected = self.panel.tradable[bars]
        held = self.current_weights().astype(np.float32)
        bad = np.flatnonzero(((mask > 0.5) != expected).any(axis=1) | (weights != held).any(axis=1))
        if bad.size:
            raise ValueError(
                f"observation row {int(bad[0])} is not the bound env's current observation (its "
                f"mask or weights differ from the env's at bar {int(bars[bad[0]])}): a portfolio "
                "baseline acts on its env's current bar, so pass the observation the env just "
                "returned"
            )
        return mask.shape[0], batched

    def to_actions(self, weights: np.ndarray, bars: np.ndarray) -> np.ndarray:
        """Target weights ``(B, N)`` -> float32 actions, untradable assets at 0."""
        w = masked_weights(np.asarray(weights, dtype=np.float64), self.panel.tradable[bars])
        return np.clip(w, 0.0, 1.0).astype(np.float32)


class PortfolioAgent(BaseAgent):
    """Base of the env-bound portfolio baselines: ``Agent(env=env, **config)``.

    Subclasses implement :meth:`target_weights` for a batch of bars (and their episode
    origins). ``predict`` checks the observation, tracks each env's episode origin (a new
    episode where ``episode_start`` says so, or where the bar does not follow the last one) and
    returns float32 target weights ``(N,)`` or ``(B, N)``. ``save``/``load`` store the config
    only; pass ``env=`` to ``load``.
    """

    uses_future: ClassVar[bool] = False

    def __init__(self, config: Any = None, *, env: Any = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        if env is None:
            raise ValueError(
                f"{type(self).__name__} is env-bound: pass env=gym.make('PortfolioEnv-v0', ...)"
            )
        self.binding = PortfolioBinding(env)
        self._origins = np.zeros(0, dtype=np.int64)
        self._last_bars = np.zeros(0, dtype=np.int64)
        self._validate()

    def _validate(self) -> None:
        """Check the config, raising ``ValueError`` naming the field."""
        check_choice("origin", getattr(self.config, "origin", "episode"), ORIGINS)

    def origins(self, bars: np.ndarray, episode_start: Any) -> np.ndarray:
        """Each env's episode origin (first bar), updated with this call's ``bars``."""
        if getattr(self.config, "origin", "episode") == "panel":
            return np.zeros_like(bars)
        if self._origins.shape != bars.shape:
            self._origins = bars.copy()
            self._last_bars = bars.copy()
            return self._origins.copy()
        new = (bars < self._last_bars) | (bars > self._last_bars + 1)
        if episode_start is not None:
            new |= np.asarray(episode_start, dtype=bool).reshape(-1)[: bars.size]
        self._origins = np.where(new, bars, self._origins)
        self._last_bars = bars.copy()
        return self._origins.copy()

    def target_weights(self, bars: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """Target weights ``(B, N)`` decided at ``bars`` (reading bars ``<=`` each) for envs
        whose episodes began at ``origins``."""
        raise NotImplementedError

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Target weights for the env's current bar(s): ``(N,)`` or ``(B, N)`` float32."""
        batch, batched = self.binding.check_observation(observation)
        bars = self.binding.bars(batch)
        origins = self.origins(bars, episode_start)
        actions = self.binding.to_actions(self.target_weights(bars, origins), bars)
        return (actions if batched else actions[0]), state

    def describe(self) -> dict[str, Any]:
        """``{"name": ..., "params": config}`` (dataset metadata)."""
        return {"name": self.name, "params": dataclasses.asdict(self.config)}
