"""``ppo_cross_attention``: PPO whose asset tokens attend to each other before scoring."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch

from quantgym.agents.sb3.portfolio import PortfolioPPOAgent

__all__ = ["PPOCrossAttentionAgent"]


class PPOCrossAttentionAgent(PortfolioPPOAgent):
    """``ppo_cross_attention``: the ``ppo_eiie`` per-asset encoder followed by
    ``n_attention_layers`` pre-norm self-attention blocks across the assets (no positional
    encoding, untradable assets masked as keys), so each asset's score can depend on the
    others (which sector leads, how broad a move is). Equivariant to the order of the assets.
    :meth:`attention_weights` returns the maps."""

    name: ClassVar[str] = "ppo_cross_attention"

    @dataclasses.dataclass
    class Config(PortfolioPPOAgent.Config):
        """:class:`~quantgym.agents.sb3.portfolio.PortfolioPPOAgent.Config` with one
        cross-asset block of ``n_heads=2`` heads (``d_model=32``, ``dim_feedforward=64``)."""

        n_attention_layers: int = 1

    def attention_weights(self, observation: np.ndarray) -> np.ndarray:
        """Cross-asset attention maps of the actor for raw observations ``(D,)`` or ``(B, D)``:
        ``(B, n_layers, n_heads, N, N)``; row i is how asset i attends to every asset."""
        obs, _ = self._check_observation(observation)
        extractor: Any = self._require_model().policy.pi_features_extractor
        with torch.inference_mode():
            _, _, _, maps = extractor.tokens(
                torch.from_numpy(np.atleast_2d(obs)), need_weights=True
            )
        return torch.stack(maps, dim=1).numpy()
