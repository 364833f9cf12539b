"""Epsilon mixtures of any policy with random actions, and ``describe_policy`` for dataset metadata."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from quantgym.policies.base import BaseAgent, read_agent_meta
from quantgym.policies.binding import EnvBinding

__all__ = ["EpsilonMix", "describe_policy"]

# --------------------------------------------------------------------------------------------
# Epsilon mixture
# --------------------------------------------------------------------------------------------


def _action_sampler(policy: Any, env: Any) -> Any:
    """A ``(rng, batch_size) -> actions`` sampler for the policy's action space."""
    binding = None
    if env is not None:
        binding = EnvBinding(env)
    elif isinstance(getattr(policy, "binding", None), EnvBinding):
        binding = policy.binding
    if binding is not None:
        return binding.random_actions
    space = getattr(policy, "action_space", None)
    if space is None:
        raise ValueError("EpsilonMix needs env= when the policy has no env binding or action_space")
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return lambda rng, n: (space.start + rng.integers(0, space.n, size=n)).astype(np.int64)
    if isinstance(space, spaces.Box):
        return lambda rng, n: rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(
            space.dtype
        )
    raise ValueError(f"EpsilonMix supports Discrete and Box action spaces, got {space}")


class EpsilonMix(BaseAgent):
    """``policy`` with probability ``1 - epsilon``, a uniformly random action with probability
    ``epsilon`` (per env, per step, from ``default_rng(seed)``).

    The mixture is the behaviour policy even with ``deterministic=True`` (which is passed to
    ``policy``). The inner policy sees every step, so recurrent state and plans stay in sync.
    ``save`` stores the inner policy (a ``BaseAgent``) in ``path/policy``; ``load(path, env=env)``.
    """

    name: ClassVar[str] = "epsilon_mix"

    @dataclasses.dataclass
    class Config:
        epsilon: float = 0.1
        seed: int = 0

    def __init__(
        self,
        policy: Any = None,
        epsilon: float | None = None,
        *,
        env: Any = None,
        config: Any = None,
        **kwargs: Any,
    ) -> None:
        if epsilon is not None:
            kwargs["epsilon"] = epsilon
        super().__init__(config, **kwargs)
        if policy is None or not hasattr(policy, "predict"):
            raise ValueError(f"policy must have a predict(...) method, got {policy!r}")
        eps = self.config.epsilon
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= eps <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {eps!r}")
        self.policy = policy
        self.uses_future = bool(getattr(policy, "uses_future", False))
        self._sample = _action_sampler(policy, env)
        self._rng = np.random.default_rng(self.config.seed)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        action, state = self.policy.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )
        action = np.asarray(action)
        batched = np.ndim(observation) == 2
        n = np.shape(observation)[0] if batched else 1
        explore = self._rng.random(n) < self.config.epsilon
        random_actions = self._sample(self._rng, n)
        if not explore.any():
            return action, state
        out = action.reshape(random_actions.shape).astype(random_actions.dtype, copy=True)
        out[explore] = random_actions[explore]
        return (out if batched else out.reshape(action.shape)), state

    def describe(self) -> dict[str, Any]:
        inner = describe_policy(self.policy)
        return {
            "name": self.name,
            "params": {
                **dataclasses.asdict(self.config),
                "policy": inner["name"],
                "policy_params": inner["params"],
            },
        }

    def _save_state(self, path: Path) -> None:
        if not isinstance(self.policy, BaseAgent):
            raise ValueError(
                f"cannot save the inner policy {type(self.policy).__name__}: not a BaseAgent"
            )
        self.policy.save(path / "policy")

    @classmethod
    def load(cls, path: str | os.PathLike, *, trusted: bool = False, **kwargs: Any) -> EpsilonMix:
        """Load with the inner policy; ``kwargs`` (e.g. ``env=``) go to the inner policy too."""
        path = Path(path)
        meta = read_agent_meta(path, trusted=trusted)  # verifies the inner policy's files too
        policy = BaseAgent.load(path / "policy", trusted=trusted, **kwargs)
        config = {k: v for k, v in meta.get("config", {}).items() if k not in kwargs}
        return cls(policy, env=kwargs.get("env"), **config)


def describe_policy(policy: Any) -> dict[str, Any]:
    """``{"name": str, "params": dict}`` of any policy (for dataset metadata)."""
    if hasattr(policy, "describe") and callable(policy.describe):
        try:
            out = policy.describe()
            if isinstance(out, dict) and "name" in out:
                return {"name": str(out["name"]), "params": dict(out.get("params", {}))}
        except Exception:  # noqa: BLE001 - fall back to the generic description
            pass
    name = getattr(policy, "name", None)
    if not isinstance(name, str):
        name = type(policy).__name__
    config = getattr(policy, "config", None)
    params = (
        dataclasses.asdict(config)
        if dataclasses.is_dataclass(config) and not isinstance(config, type)
        else {}
    )
    return {"name": name, "params": params}
