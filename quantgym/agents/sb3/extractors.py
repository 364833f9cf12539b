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

__all__ = ["RecentBarsExtractor", "account_columns"]


def account_columns(account_offsets: list[int] | None, n_account_features: int) -> list[int]:
    """The account features an extractor passes on: ``account_offsets`` (positions among the
    ``n_account_features``, 0 = the first), or all of them for ``None``; a ``ValueError`` names
    an offset outside them."""
    if account_offsets is None:
        return list(range(n_account_features))
    if any(not 0 <= k < n_account_features for k in account_offsets):
        raise ValueError(
            f"account_offsets {account_offsets} outside the {n_account_features} account features"
        )
    return list(account_offsets)


class RecentBarsExtractor(BaseFeaturesExtractor):
    """The newest ``n_bars`` rows of the market window plus the account features.

    The flat observation ends with the newest bar's market features followed by the account
    features, so with every account feature (``account_offsets=None``) this is the tail slice
    of length ``n_bars * n_market_features + n_account_features`` (a recurrent policy needs no
    window: its state holds the past). ``account_offsets`` (positions among the account
    features, 0 = the first, e.g. ``[0]`` for the position alone;
    :func:`~quantgym.agents.observations.account_feature_offsets`) keeps only those.
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        n_bars: int,
        n_market_features: int,
        n_account_features: int,
        account_offsets: list[int] | None = None,
    ) -> None:
        offsets = account_columns(account_offsets, n_account_features)
        tail = n_bars * n_market_features + n_account_features
        if observation_space.shape is None or tail > observation_space.shape[0]:
            raise ValueError(
                f"n_bars={n_bars} asks for {tail} dims of a {observation_space.shape} observation"
            )
        size = n_bars * n_market_features + len(offsets)
        super().__init__(observation_space, features_dim=size)
        self.tail = tail
        # tail-relative columns: the market rows, then the chosen account features
        keep = list(range(n_bars * n_market_features))
        keep += [n_bars * n_market_features + k for k in offsets]
        self.columns: torch.Tensor | None
        self.register_buffer(
            "columns",
            None if len(offsets) == n_account_features else torch.tensor(keep, dtype=torch.long),
            persistent=False,
        )

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        tail = observations[:, -self.tail :]
        return tail if self.columns is None else tail[:, self.columns]
