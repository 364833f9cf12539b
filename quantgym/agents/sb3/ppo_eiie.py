"""``ppo_eiie``: PPO with an EIIE-style policy (Jiang et al. 2017, "ensemble of identical
independent evaluators"): one encoder shared by every asset scores it, and the softmax of the
scores over the tradable assets and cash is the allocation."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from quantgym.agents.sb3.portfolio import PortfolioPPOAgent

__all__ = ["PPOEIIEAgent"]


class PPOEIIEAgent(PortfolioPPOAgent):
    """``ppo_eiie``: each asset's whole window goes through one shared temporal convolution
    (EIIE's), and with its newest row, cross-sectional features, current weight and tradable
    flag through one shared MLP to a score; a head on the mean of the asset
    tokens (and the cash weight) scores cash; the weights are the softmax of the scores
    (:mod:`quantgym.agents.sb3.allocation`). Equivariant to the order of the assets."""

    name: ClassVar[str] = "ppo_eiie"

    @dataclasses.dataclass
    class Config(PortfolioPPOAgent.Config):
        """:class:`~quantgym.agents.sb3.portfolio.PortfolioPPOAgent.Config` with no attention
        (``n_attention_layers=0``)."""

        n_attention_layers: int = 0
