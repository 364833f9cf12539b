"""What the value-based offline agents on d3rlpy share (:class:`ValueAgent`): ``cql``
(:mod:`~quantgym.agents.d3rlpy.cql`) and ``bcq`` (:mod:`~quantgym.agents.d3rlpy.bcq`).

Both learn Q-values from the logged rewards, so both can do better than the policy that wrote
the logs. Rewards are scaled to unit standard deviation before training (``reward_scale=None``):
a trading reward is a log return of about 1e-3 per bar, so the Q-value gaps between actions
are of that size too, smaller than the jitter each Adam step puts on the network's outputs.
Scaling a reward by a positive constant scales every Q-value by it and leaves the greedy
policy unchanged. The evidence (a known-answer market, the ablation on ``regime``):
docs/offline.md; the test: ``tests/agents/test_offline_known_answer.py``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from quantgym.agents.d3rlpy.base import D3rlpyAgent
from quantgym.checks import check_positive, check_positive_int

__all__ = ["ValueAgent"]


class ValueAgent(D3rlpyAgent):
    """A :class:`D3rlpyAgent` that learns Q-values from scaled rewards (module docstring)."""

    @dataclasses.dataclass
    class Config(D3rlpyAgent.Config):
        """:class:`D3rlpyAgent.Config` plus the Q-learning fields.

        ``hidden_units=[32]``: a [256, 256] network fits the noise of the bars it has seen;
        ``account_features=["position"]``: the value of a trade depends on the position it
        starts from (costs), not on the rest of the account (measured: docs/offline.md).
        ``gamma=0.9`` (short effect horizon of a trading decision), ``n_critics``,
        ``target_update_interval=500`` gradient steps (discrete). ``reward_scale`` multiplies
        the rewards before training; ``None`` (default) uses ``1 / std`` of the dataset's
        rewards, recorded in ``fitted_reward_scale`` at each fit.
        """

        learning_rate: float = 3e-4
        hidden_units: list[int] = dataclasses.field(default_factory=lambda: [32])
        account_features: bool | list[str] = dataclasses.field(default_factory=lambda: ["position"])
        gamma: float = 0.9
        n_critics: int = 2
        target_update_interval: int = 500
        reward_scale: float | None = None
        fitted_reward_scale: float | None = None

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        if not 0.0 <= c.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {c.gamma!r}")
        check_positive_int("n_critics", c.n_critics)
        check_positive_int("target_update_interval", c.target_update_interval)
        for name in ("reward_scale", "fitted_reward_scale"):
            if getattr(c, name) is not None:
                check_positive(name, getattr(c, name))

    def _prepare(self, dataset: Any) -> None:
        super()._prepare(dataset)
        scale = self.config.reward_scale
        if scale is None:
            std = float(np.std(np.asarray(dataset.rewards, dtype=np.float64)))
            scale = 1.0 / std if math.isfinite(std) and std > 0 else 1.0
        self.config = dataclasses.replace(self.config, fitted_reward_scale=float(scale))

    def _training_rewards(self, dataset: Any) -> Any:
        scale = self.config.fitted_reward_scale
        rewards = np.asarray(dataset.rewards)
        return rewards if scale in (None, 1.0) else (rewards * scale).astype(rewards.dtype)

    def _q_values(self, modules: Any, x: torch.Tensor) -> torch.Tensor:
        """The critics' mean Q-values ``(N, A)`` of the selected (and scaled) columns."""
        return torch.stack([q(x).q_value for q in modules.q_funcs]).mean(dim=0)

    def state_values(self, observations: np.ndarray) -> np.ndarray:
        """``V(s) = max_a Q(s, a)`` over the actions the greedy policy may take, of ``(N, D)``
        observations, in the dataset's reward units (the critics' mean divided by the reward
        scale they trained with); discrete only."""
        self._require_algo()
        if not self.config.discrete:
            raise ValueError(f"state_values needs a {self.name} trained on a discrete dataset")
        obs, _ = self._check_observation(observations)
        with torch.no_grad():
            q = self.action_scores(torch.from_numpy(obs)).double().numpy()
        return q.max(axis=1) / float(self.config.fitted_reward_scale or 1.0)
