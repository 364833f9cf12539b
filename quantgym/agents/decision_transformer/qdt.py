"""``qdt``: the Q-learning Decision Transformer, our ``dt`` trained on returns-to-go
relabelled with a ``cql`` critic (:mod:`quantgym.agents.decision_transformer.relabel`).

``fit`` trains the critic (``make_agent("cql", seed=seed, **critic)``) on the same dataset,
reads its state values ``V(s) = max_a Q(s, a)`` and trains the transformer on the relabelled
returns-to-go; the critic is then dropped (inference is ``dt``'s, so a saved ``qdt`` holds no
critic). With ``return_conditioning="critic"`` (the default) the value head learns the upper
expectile of the relabelled returns, so the policy is conditioned on what the critic says
the best continuation is worth, not on what a logged continuation happened to earn.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from quantgym.agents.decision_transformer.agent import DecisionTransformerAgent
from quantgym.agents.decision_transformer.config import DecisionTransformerConfig
from quantgym.agents.decision_transformer.relabel import relabelled_returns_to_go

__all__ = ["QDTAgent", "QDTConfig"]


@dataclasses.dataclass
class QDTConfig(DecisionTransformerConfig):
    """:class:`DecisionTransformerConfig` plus ``critic``: config fields of the ``cql``
    critic that relabels the returns (``{}``: its ``make_agent`` defaults; the seed is the
    agent's)."""

    critic: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.critic, dict) or not all(isinstance(k, str) for k in self.critic):
            raise ValueError(f"critic must be a dict of cql config fields, got {self.critic!r}")


class QDTAgent(DecisionTransformerAgent):
    """``qdt``: :class:`DecisionTransformerAgent` trained on critic-relabelled returns-to-go."""

    name: ClassVar[str] = "qdt"
    Config = QDTConfig  # type: ignore[assignment]

    def _returns_to_go(self, dataset: Any) -> np.ndarray:
        from quantgym.agents.d3rlpy.cql import CQLAgent

        critic = CQLAgent(**{"seed": int(self.config.seed), **self.config.critic})
        critic.fit(dataset, progress_bar=False)
        values = critic.state_values(dataset.step_observations())
        # V(s_{t+1}) of each step; an episode's last entry (the next episode's first state)
        # is not read
        next_values = np.append(values[1:], 0.0)
        return relabelled_returns_to_go(
            dataset.rewards, dataset.episode_lengths, next_values, self.config.gamma
        )
