"""``cql``: conservative Q-learning on d3rlpy (``DiscreteCQL`` / ``CQL``)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before d3rlpy, which imports legacy gym and its stderr notice
import d3rlpy
import torch

from quantgym.agents.d3rlpy.base import D3rlpyAgent
from quantgym.checks import check_positive, check_positive_int

__all__ = ["CQLAgent"]


class CQLAgent(D3rlpyAgent):
    """``cql``: conservative Q-learning (d3rlpy ``DiscreteCQL`` for discrete datasets, ``CQL``
    for continuous ones). Unlike ``bc`` it learns from the rewards, so it can do better than
    the behaviour policy (random data included).

    Rewards are scaled to unit standard deviation before training (``reward_scale=None``).
    A trading reward is a log return of about 1e-3 per bar, so the Q-value gaps between actions
    are of that size too: smaller than the jitter each Adam step puts on the network's outputs.
    Scaling a reward by a positive constant scales every Q-value by it and leaves the greedy
    policy unchanged. The evidence (a known-answer market, the ablation on ``regime``):
    docs/offline.md; the test: ``tests/agents/test_offline_known_answer.py``.
    """

    name: ClassVar[str] = "cql"

    @dataclasses.dataclass
    class Config(D3rlpyAgent.Config):
        """:class:`D3rlpyAgent.Config` plus the Q-learning fields.

        ``hidden_units=[32]``: a [256, 256] network fits the noise of the bars it has seen;
        ``account_features=["position"]``: the value of a trade depends on the position it
        starts from (costs), not on the rest of the account (measured: docs/offline.md).
        ``gamma=0.9`` (short effect horizon of a trading decision), ``alpha`` the
        conservative penalty weight, ``n_critics``, ``target_update_interval=500`` gradient
        steps (discrete), ``tau`` soft target updates (continuous). ``reward_scale``
        multiplies the rewards before training; ``None`` (default) uses ``1 / std`` of the
        dataset's rewards, recorded in ``fitted_reward_scale`` at each fit.
        """

        learning_rate: float = 3e-4
        hidden_units: list[int] = dataclasses.field(default_factory=lambda: [32])
        account_features: bool | list[str] = dataclasses.field(default_factory=lambda: ["position"])
        gamma: float = 0.9
        alpha: float = 1.0
        n_critics: int = 2
        target_update_interval: int = 500
        tau: float = 0.005
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

    def _d3rlpy_config(self, discrete: bool) -> Any:
        c = self.config
        if discrete:
            return d3rlpy.algos.DiscreteCQLConfig(
                batch_size=c.batch_size,
                learning_rate=c.learning_rate,
                encoder_factory=self._encoder(),
                gamma=c.gamma,
                alpha=c.alpha,
                n_critics=c.n_critics,
                target_update_interval=c.target_update_interval,
            )
        return d3rlpy.algos.CQLConfig(
            batch_size=c.batch_size,
            actor_learning_rate=c.learning_rate,
            critic_learning_rate=c.learning_rate,
            actor_encoder_factory=self._encoder(),
            critic_encoder_factory=self._encoder(),
            gamma=c.gamma,
            conservative_weight=c.alpha,
            n_critics=c.n_critics,
            tau=c.tau,
        )

    def _scores_kind(self, discrete: bool) -> str | None:
        return "q_values" if discrete else "mean"

    def _network_scores(
        self, modules: Any, x: torch.Tensor, state: Any, episode_start: Any, raw: torch.Tensor
    ) -> torch.Tensor:
        if not self.config.discrete:
            return modules.policy(x).squashed_mu
        # d3rlpy's greedy action: the argmax of the critics' mean Q-values
        return torch.stack([q(x).q_value for q in modules.q_funcs]).mean(dim=0)

    def state_values(self, observations: np.ndarray) -> np.ndarray:
        """``V(s) = max_a Q(s, a)`` of ``(N, D)`` observations in the dataset's reward units
        (the critics' mean, divided by the reward scale they trained with); discrete only."""
        self._require_algo()
        if not self.config.discrete:
            raise ValueError("state_values needs a cql trained on a discrete dataset")
        obs, _ = self._check_observation(observations)
        with torch.no_grad():
            q = self.action_scores(torch.from_numpy(obs)).double().numpy()
        return q.max(axis=1) / float(self.config.fitted_reward_scale or 1.0)
