"""``cql``: conservative Q-learning on d3rlpy (``DiscreteCQL`` / ``CQL``)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before d3rlpy, which imports legacy gym and its stderr notice
import d3rlpy
import torch

from quantgym.agents.d3rlpy.value import ValueAgent

__all__ = ["CQLAgent"]


class CQLAgent(ValueAgent):
    """``cql``: conservative Q-learning (d3rlpy ``DiscreteCQL`` for discrete datasets, ``CQL``
    for continuous ones). Unlike ``bc`` it learns from the rewards, so it can do better than
    the behaviour policy (random data included); rewards are scaled to unit standard deviation
    (:mod:`quantgym.agents.d3rlpy.value`)."""

    name: ClassVar[str] = "cql"

    @dataclasses.dataclass
    class Config(ValueAgent.Config):
        """:class:`ValueAgent.Config` plus ``alpha`` (the conservative penalty weight) and
        ``tau`` (soft target updates, continuous)."""

        alpha: float = 1.0
        tau: float = 0.005

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
        return self._q_values(modules, x)
