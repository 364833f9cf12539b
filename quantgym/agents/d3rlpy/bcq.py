"""``bcq``: batch-constrained Q-learning on d3rlpy (``DiscreteBCQ``; Fujimoto et al., 2019)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before d3rlpy, which imports legacy gym and its stderr notice
import d3rlpy
import torch

from quantgym.agents.d3rlpy.value import ValueAgent

__all__ = ["BCQAgent"]

NOT_DISCRETE = "bcq needs a discrete dataset (DiscreteBCQ)"


class BCQAgent(ValueAgent):
    """``bcq``: discrete batch-constrained Q-learning (d3rlpy ``DiscreteBCQ``; discrete
    datasets only).

    A behaviour-cloning head ``G(a | s)`` is trained beside the Q-function, and both the
    greedy policy and the Q-learning target only consider the actions the logs make likely:
    ``a`` with ``G(a | s) / max_b G(b | s) > action_flexibility``. Where every action was
    tried (random logs) it is double DQN; where the logs follow one policy (expert logs) it
    does not trust the values of actions the logs never show, the failure of ``cql`` there.
    Rewards are scaled to unit standard deviation (:mod:`quantgym.agents.d3rlpy.value`).
    """

    name: ClassVar[str] = "bcq"

    @dataclasses.dataclass
    class Config(ValueAgent.Config):
        """:class:`ValueAgent.Config` plus ``action_flexibility`` (``tau``: the share of the
        likeliest action's probability an action needs to be considered; d3rlpy's 0.3) and
        ``beta`` (the imitation head's logit penalty)."""

        action_flexibility: float = 0.3
        beta: float = 0.5

    def _validate_config(self) -> None:
        super()._validate_config()
        tau = self.config.action_flexibility
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0.0 < tau < 1.0:
            raise ValueError(f"action_flexibility must be in (0, 1), got {tau!r}")
        if self.config.discrete is False:
            raise ValueError(NOT_DISCRETE)

    def _prepare(self, dataset: Any) -> None:
        if not dataset.is_discrete:  # before the networks are built from its shapes
            raise ValueError(NOT_DISCRETE)
        super()._prepare(dataset)

    def _d3rlpy_config(self, discrete: bool) -> Any:
        # only reached with discrete=True: _validate_config and _prepare refuse the rest
        c = self.config
        return d3rlpy.algos.DiscreteBCQConfig(
            batch_size=c.batch_size,
            learning_rate=c.learning_rate,
            encoder_factory=self._encoder(),
            gamma=c.gamma,
            n_critics=c.n_critics,
            action_flexibility=c.action_flexibility,
            beta=c.beta,
            target_update_interval=c.target_update_interval,
        )

    def _scores_kind(self, discrete: bool) -> str | None:
        return "q_values"

    def _network_scores(
        self, modules: Any, x: torch.Tensor, state: Any, episode_start: Any, raw: torch.Tensor
    ) -> torch.Tensor:
        # d3rlpy's greedy action: the argmax of the mean Q-values over the actions the
        # imitation head allows; the others are set below the lowest allowed value
        q = self._q_values(modules, x)
        log_probs = torch.log_softmax(modules.imitator(x).logits, dim=1)
        allowed = log_probs - log_probs.max(dim=1, keepdim=True).values > math.log(
            self.config.action_flexibility
        )
        floor = q.min(dim=1, keepdim=True).values - 1.0
        return torch.where(allowed, q, floor)
