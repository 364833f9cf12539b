"""Expose a :class:`TradingVectorEnv` or a :class:`PortfolioVectorEnv` as a Stable-Baselines3
``VecEnv``.

SB3 resets finished environments within the same step and hands back their last
observation as ``infos[i]["terminal_observation"]``; gymnasium 1.0's vector envs reset on
the next step instead. The adapter uses the vector env's ``reset_finished`` so that both
autoreset paths run on the one batched core, with no per-env Python loop except to
build SB3's list of info dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from quantgym._compat import quiet_legacy_gym

quiet_legacy_gym()
from stable_baselines3.common.vec_env import VecEnv

from quantgym.envs.portfolio.vector_env import PortfolioVectorEnv
from quantgym.envs.vector_env import TradingVectorEnv

__all__ = ["TradingSB3VecEnv", "to_sb3"]


_NATIVE_VECTOR_ENVS = (TradingVectorEnv, PortfolioVectorEnv)


class TradingSB3VecEnv(VecEnv):
    """SB3 ``VecEnv`` view of a :class:`TradingVectorEnv` or :class:`PortfolioVectorEnv`
    (same-step autoreset; a ``Dict`` observation space passes through as a dict of arrays).

    ``infos[i]`` is empty except for accounts that just finished: they carry
    ``terminal_observation``, ``TimeLimit.truncated`` and their final ``equity``.
    """

    def __init__(self, vec_env: TradingVectorEnv | PortfolioVectorEnv) -> None:
        if not isinstance(getattr(vec_env, "unwrapped", vec_env), _NATIVE_VECTOR_ENVS):
            raise ValueError(
                "to_sb3 expects a TradingVectorEnv or PortfolioVectorEnv (gym.make_vec('TradingEnv-v0') "
                f"or gym.make_vec('PortfolioEnv-v0')), got {type(vec_env).__name__}"
            )
        self.venv = vec_env
        self._actions: np.ndarray | None = None
        super().__init__(
            vec_env.num_envs, vec_env.single_observation_space, vec_env.single_action_space
        )

    def reset(self) -> np.ndarray:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        starts = [opt.get("start") for opt in self._options]
        options = {"start": starts} if any(s is not None for s in starts) else None
        obs, infos = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        if self._actions is None:
            raise ValueError("step_wait() called before step_async()")
        actions = np.asarray(self._actions)
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.reshape(self.num_envs).astype(np.int64, copy=False)
        obs, rewards, terminated, truncated, infos = self.venv.step(actions)
        self._actions = None
        dones = terminated | truncated
        sb3_infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            equity = np.array(infos["equity"])  # before reset_finished() resets the accounts
            obs_after_reset, idx = self.venv.reset_finished()
            for i in idx:
                sb3_infos[i] = {
                    "terminal_observation": (
                        {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]
                    ),
                    "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                    "equity": float(equity[i]),
                }
            obs = obs_after_reset
        return obs, rewards.astype(np.float32), dones, sb3_infos

    def close(self) -> None:
        self.venv.close()

    # -- attribute access: one shared core, so per-env views of (N,) arrays ---------------
    def _indices(self, indices: None | int | Iterable[int]) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, (int, np.integer)):
            return [int(indices)]
        return list(indices)

    def _per_env(self, value: Any, indices: Sequence[int]) -> list[Any]:
        if isinstance(value, np.ndarray) and value.shape[:1] == (self.num_envs,):
            return [value[i] for i in indices]
        return [value for _ in indices]

    def get_attr(self, attr_name: str, indices: None | int | Iterable[int] = None) -> list[Any]:
        return self._per_env(getattr(self.venv, attr_name), self._indices(indices))

    def set_attr(
        self, attr_name: str, value: Any, indices: None | int | Iterable[int] = None
    ) -> None:
        if indices is not None and list(self._indices(indices)) != list(range(self.num_envs)):
            raise ValueError(
                "set_attr on a subset of accounts is not supported: they share one batched core"
            )
        setattr(self.venv, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: None | int | Iterable[int] = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return self._per_env(result, self._indices(indices))

    def env_is_wrapped(
        self, wrapper_class: type, indices: None | int | Iterable[int] = None
    ) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]


def to_sb3(vec_env: TradingVectorEnv | PortfolioVectorEnv) -> TradingSB3VecEnv:
    """Wrap ``gym.make_vec("TradingEnv-v0", num_envs=N)`` or ``gym.make_vec("PortfolioEnv-v0",
    num_envs=N)`` for Stable-Baselines3 algorithms."""
    return TradingSB3VecEnv(getattr(vec_env, "unwrapped", vec_env))
