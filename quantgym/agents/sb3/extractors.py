"""Features extractors that select part of the flat ``TradingEnv`` observation.

:class:`RecentBarsExtractor` feeds the policy the newest rows of the market window plus the
account features (``ppo_mlp``, ``ppo_lstm``); the attention encoder of ``ppo_transformer`` is
in :mod:`quantgym.agents.sb3.attention`. This module imports torch.
"""

from __future__ import annotations

import torch
from gymnasium import spaces

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before SB3, which imports legacy gym and its stderr notice
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

__all__ = ["RecentBarsExtractor"]


class RecentBarsExtractor(BaseFeaturesExtractor):
    """The newest ``n_bars`` rows of the market window plus the account features.

    The flat observation ends with the newest bar's market features followed by the account
    features, so this is the tail slice of length ``n_bars * n_market_features +
    n_account_features`` (a recurrent policy needs no window: its state holds the past).
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        n_bars: int,
        n_market_features: int,
        n_account_features: int,
    ) -> None:
        size = n_bars * n_market_features + n_account_features
        if observation_space.shape is None or size > observation_space.shape[0]:
            raise ValueError(
                f"n_bars={n_bars} asks for {size} dims of a {observation_space.shape} observation"
            )
        super().__init__(observation_space, features_dim=size)
        self.size = size

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return observations[:, -self.size :]
