"""How an SB3 agent turns a user's env into a Stable-Baselines3 ``VecEnv``.

``make_sb3_vec_env`` accepts a dict of ``TradingEnv-v0`` kwargs, a single env, a
:class:`~quantgym.envs.TradingVectorEnv` or an SB3 ``VecEnv`` and returns the ``VecEnv`` to
train on plus the env kwargs it was made with (saved in ``env.json`` when they survive JSON);
``env_attr`` reads an attribute such as ``window_size`` through any stack of wrappers;
``trading_vector_env`` finds the :class:`~quantgym.envs.TradingVectorEnv` under an SB3 stack
(whose ``get_state``/``set_state`` exact resume uses); :class:`SpacesOnlyEnv` stands in for
the training env where only its spaces are needed. This module imports SB3 (and so torch):
it is only imported when an SB3 agent is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before SB3, which imports legacy gym and its stderr notice
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from quantgym import ENV_ID
from quantgym.envs.unwrap import iter_env_layers
from quantgym.envs.vector_env import TradingVectorEnv

__all__ = ["env_attr", "make_sb3_vec_env", "trading_vector_env", "SpacesOnlyEnv"]


_VECTOR_ONLY_KWARGS = ("num_envs", "vectorization_mode", "vector_kwargs", "wrappers")


def _spec_kwargs(env: Any) -> dict[str, Any] | None:
    """The env kwargs a registered env (single or vector, possibly wrapped) was made with."""
    for candidate in (env, getattr(env, "unwrapped", None)):
        spec = getattr(candidate, "spec", None)
        if spec is not None and getattr(spec, "kwargs", None) is not None:
            return {k: v for k, v in spec.kwargs.items() if k not in _VECTOR_ONLY_KWARGS}
    for inner in ("venv", "vec_env", "env"):
        child = getattr(env, inner, None)
        if child is not None and child is not env:
            found = _spec_kwargs(child)
            if found is not None:
                return found
    return None


def env_attr(env: Any, name: str) -> Any:
    """Read an attribute such as ``window_size`` from a single env, a gymnasium vector env, an
    SB3 VecEnv or a wrapper of any of them (breadth-first); ``None`` when no layer has it."""
    for current in iter_env_layers(env):
        value = getattr(current, name, None)
        if value is not None:
            return value
        if isinstance(current, VecEnv):
            try:
                value = current.get_attr(name, indices=[0])[0]
            except (AttributeError, IndexError, NotImplementedError, TypeError):
                value = None
            if value is not None:
                return value
    return None


def make_sb3_vec_env(
    env: Any, n_envs: int, env_id: str = ENV_ID
) -> tuple[VecEnv, dict[str, Any] | None]:
    """Turn ``env`` into an SB3 ``VecEnv`` for training; returns it and the env kwargs (if known).

    - a mapping of env kwargs -> ``to_sb3(gym.make_vec(env_id, num_envs=n_envs, **kwargs))``
      (``env_id`` is ``"TradingEnv-v0"`` unless the agent trains on another registered env);
    - an SB3 ``VecEnv`` (e.g. the ``to_sb3`` adapter) -> used as is;
    - a gymnasium ``VectorEnv`` (``TradingVectorEnv``) -> ``to_sb3(env)``;
    - a single env made by ``gym.make`` of an id with a vector entry point (``TradingEnv-v0``)
      -> ``n_envs`` copies from its spec via ``gym.make_vec`` (PPO wants many envs);
    - any other single gymnasium env -> ``DummyVecEnv([lambda: env])``.
    """
    if isinstance(env, Mapping):
        from quantgym.envs import to_sb3

        kwargs = dict(env)
        vector = gym.make_vec(env_id, num_envs=n_envs, **kwargs)
        return to_sb3(vector), kwargs
    if isinstance(env, VecEnv):
        return env, _spec_kwargs(env)
    if isinstance(env, gym.vector.VectorEnv):
        from quantgym.envs import to_sb3

        return to_sb3(env), _spec_kwargs(env)
    if isinstance(env, gym.Env):
        spec = env.spec
        if spec is not None and getattr(spec, "vector_entry_point", None) is not None:
            from quantgym.envs import to_sb3

            kwargs = {k: v for k, v in spec.kwargs.items() if k not in _VECTOR_ONLY_KWARGS}
            vector = gym.make_vec(
                spec.id, num_envs=n_envs, vectorization_mode="vector_entry_point", **kwargs
            )
            return to_sb3(vector), kwargs
        return DummyVecEnv([lambda: env]), _spec_kwargs(env)
    raise ValueError(
        "env must be a gymnasium Env, a TradingVectorEnv, an SB3 VecEnv or a dict of "
        f"TradingEnv kwargs, got {type(env).__name__}"
    )


def trading_vector_env(venv: Any) -> TradingVectorEnv | None:
    """The :class:`~quantgym.envs.TradingVectorEnv` inside ``venv`` (through the SB3 adapter
    and any wrappers), or ``None`` when it holds none."""
    for layer in iter_env_layers(venv):
        if isinstance(layer, TradingVectorEnv):
            return layer
    return None


class SpacesOnlyEnv(gym.Env):
    """Placeholder env carrying only spaces: lets ``VecNormalize`` restore statistics for
    inference without the training env."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        space: Any = self.observation_space
        return np.zeros(space.shape, dtype=space.dtype), {}

    def step(self, action):
        raise RuntimeError("SpacesOnlyEnv only carries spaces for VecNormalize")
