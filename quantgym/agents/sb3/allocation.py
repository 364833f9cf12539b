"""Permutation-equivariant allocation policies for ``PortfolioEnv`` (``ppo_eiie``,
``ppo_cross_attention``).

One encoder, shared by every asset, turns each asset's slice of the flat observation (its
window of W bars, its cross-sectional features, its current weight and its tradable flag) into
a token. As in EIIE (Jiang et al. 2017), the window goes through a temporal convolution shared
by every asset (``window_channels`` channels: a width-3 convolution, then one as wide as the
rest of the window, which collapses time), and the result, the newest ``recent_bars`` raw rows,
the cross-section, the weight and the flag go through a shared MLP; ``window_channels=0`` reads
the newest rows only; ``ppo_cross_attention`` then lets the tokens attend to each other
(self-attention across assets, no positional encoding, untradable assets masked as keys).
A shared score head gives each asset a score, a head on the mean-pooled tokens (plus the cash
weight) gives the cash score, and the weights are the softmax of the scores over the tradable
assets and cash::

    obs (B, D) -> per-asset windows (B*N, F, W) -> temporal conv (B, N, ch)
      -> per-asset inputs (B, N, ch + I) -> tokens (B, N, d) [-> attention across assets]
      -> scores (B, N), cash score (B, 1) -> softmax over tradable assets + cash -> mean weights (B, N)
      -> pooled tokens -> value

How the Gaussian maps to weights. PPO's action distribution is a diagonal Gaussian whose mean
*is* these weights (the action net is the identity) and the env's default action is the raw
target weights (``Box(0, 1, (N,))``: clipped to the box, scaled to sum 1 only when the sum
exceeds 1, cash the remainder), so the deterministic action is exactly the softmax allocation.
The scores are unbounded, so the allocation can be as concentrated as the scores say (one
asset, all cash, or anything between), unlike a softmax of bounded Gaussian actions in
``[-1, 1]`` (weights within a factor ``e**2`` of each other, peers' "collapse to 1/N"). At
initialisation the scores are near 0 and the allocation is the uniform portfolio of N assets
and cash. Exploration noise (``log_std_init``) adds turnover, so it starts small.

Equivariance: every per-asset computation is shared, attention has no positions and pooling is
a mean, so permuting the assets of an observation permutes the action the same way (tested).
This module imports torch and Stable-Baselines3.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before SB3, which imports legacy gym and its stderr notice
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

__all__ = [
    "AssetTokenExtractor",
    "AllocationHeads",
    "AllocationPolicy",
    "AllocationPPO",
    "ALLOCATION_POLICY",
    "WindowConv",
    "split_assets",
]

ALLOCATION_POLICY = "AllocationPolicy"
_MASKED = -1e9  # the score of an untradable asset: exp underflows to exactly 0


def split_assets(
    obs: torch.Tensor, n_assets: int, window_size: int, n_features: int, n_cross_section: int,
    recent_bars: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(per-asset inputs (B, N, recent_bars*F + C + 2), mask (B, N) bool, cash weight (B, 1))``
    from flat observations ``(B, D)`` laid out as ``PortfolioLayout`` (windows, cross-section,
    weights with cash last, mask)."""
    n, w, f, c = n_assets, window_size, n_features, n_cross_section
    b = obs.shape[0]
    end_windows = n * w * f
    end_cross = end_windows + n * c
    windows = obs[:, :end_windows].reshape(b, n, w, f)[:, :, w - recent_bars :, :]  # (B, N, R, F)
    cross = obs[:, end_windows:end_cross].reshape(b, n, c)  # (B, N, C)
    weights = obs[:, end_cross : end_cross + n + 1]  # (B, N + 1)
    mask = obs[:, end_cross + n + 1 : end_cross + 2 * n + 1]  # (B, N)
    inputs = torch.cat(
        [windows.reshape(b, n, -1), cross, weights[:, :n, None], mask[:, :, None]], dim=-1
    )
    return inputs, mask > 0.5, weights[:, n:]


class _CrossAssetBlock(nn.Module):
    """Pre-norm self-attention across assets plus a feed-forward layer (no positions)."""

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, dim_feedforward), nn.GELU(), nn.Linear(dim_feedforward, d_model)
        )

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.norm1(x)  # (B, N, d)
        a, weights = self.attn(
            h, h, h, key_padding_mask=~mask, need_weights=need_weights,
            average_attn_weights=False,
        )  # fmt: skip
        x = x + a
        return x + self.ff(self.norm2(x)), weights


class WindowConv(nn.Module):
    """EIIE's per-asset temporal convolution: ``(B, N, W, F)`` windows -> ``(B, N, channels)``.

    A width-``min(3, W)`` convolution then one spanning the rest of the window (so the output
    has one time step), GELU after each; the same weights for every asset.
    """

    def __init__(self, window_size: int, n_features: int, channels: int) -> None:
        super().__init__()
        width = min(3, window_size)
        self.net = nn.Sequential(
            nn.Conv1d(n_features, channels, width),
            nn.GELU(),
            nn.Conv1d(channels, channels, window_size - width + 1),
            nn.GELU(),
        )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        b, n, w, f = windows.shape
        x = windows.reshape(b * n, w, f).transpose(1, 2)  # (B*N, F, W)
        return self.net(x).reshape(b, n, -1)  # (B, N, channels)


class AssetTokenExtractor(BaseFeaturesExtractor):
    """Flat ``PortfolioEnv`` observation -> ``[tokens (N*d), mask (N), weights (N), cash weight (1)]``.

    The per-asset encoder is a :class:`WindowConv` over the asset's window (``window_channels >
    0``) and an MLP (``hidden`` units, ``d_model`` outputs), both shared by every asset;
    ``n_attention_layers > 0`` adds cross-asset self-attention blocks.
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        n_assets: int,
        window_size: int,
        n_features: int,
        n_cross_section: int,
        recent_bars: int = 1,
        d_model: int = 32,
        hidden: int = 64,
        n_attention_layers: int = 0,
        n_heads: int = 2,
        dim_feedforward: int = 64,
        window_channels: int = 0,
    ) -> None:
        dim = n_assets * (window_size * n_features + n_cross_section + 2) + 1
        if observation_space.shape != (dim,):
            raise ValueError(
                f"the layout (n_assets={n_assets}, window_size={window_size}, n_features="
                f"{n_features}, n_cross_section={n_cross_section}) needs a ({dim},) observation, "
                f"got {observation_space.shape}"
            )
        if not 1 <= recent_bars <= window_size:
            raise ValueError(
                f"recent_bars must be in [1, window_size={window_size}], got {recent_bars}"
            )
        super().__init__(observation_space, features_dim=n_assets * (d_model + 2) + 1)
        self.layout = (n_assets, window_size, n_features, n_cross_section, recent_bars)
        self.n_assets, self.d_model = n_assets, d_model
        if window_channels < 0:
            raise ValueError(f"window_channels must be >= 0, got {window_channels}")
        self.window_conv = (
            WindowConv(window_size, n_features, window_channels) if window_channels else None
        )
        n_inputs = window_channels + recent_bars * n_features + n_cross_section + 2
        self.encoder = nn.Sequential(
            nn.Linear(n_inputs, hidden), nn.GELU(), nn.Linear(hidden, d_model)
        )
        self.blocks = nn.ModuleList(
            _CrossAssetBlock(d_model, n_heads, dim_feedforward) for _ in range(n_attention_layers)
        )
        self.norm = nn.LayerNorm(d_model) if n_attention_layers else nn.Identity()

    def tokens(
        self, observations: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(tokens (B, N, d), mask (B, N), cash weight (B, 1), attention maps)``."""
        inputs, mask, cash = split_assets(observations, *self.layout)
        if self.window_conv is not None:
            n, w, f = self.layout[:3]
            windows = observations[:, : n * w * f].reshape(-1, n, w, f)  # (B, N, W, F)
            inputs = torch.cat([self.window_conv(windows), inputs], dim=-1)
        x = self.encoder(inputs)  # (B, N, d)
        # an observation with no tradable asset (all weights forced to 0) attends to every asset
        keys = mask | ~mask.any(dim=1, keepdim=True)
        maps = []
        for block in self.blocks:
            x, weights = block(x, keys, need_weights)
            if weights is not None:
                maps.append(weights)  # (B, heads, N, N)
        return self.norm(x), mask, cash, maps

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x, mask, cash, _ = self.tokens(observations)
        n, w, f, c, _ = self.layout
        start = n * (w * f + c)
        weights = observations[:, start : start + n]  # (B, N) current asset weights
        return torch.cat([x.flatten(1), mask.to(x.dtype), weights, cash], dim=1)


class AllocationHeads(nn.Module):
    """SB3's ``mlp_extractor`` of :class:`AllocationPolicy`: features -> mean weights (actor,
    ``latent_dim_pi = N``) and a pooled value latent (critic, ``latent_dim_vf = hidden``).

    The mean weights move from the current weights a fraction ``rate`` of the way to the
    softmax target, ``(1 - rate) * w + rate * softmax(scores)``: a target that wobbles with
    per-bar feature noise would otherwise pay its turnover every bar (EIIE feeds the previous
    weights to the network for the same reason). ``rate = sigmoid(rate_logit)`` is learned,
    starting at ``rebalance_rate``; ``rebalance_rate=1`` (fixed) trades straight to the target.

    ``catch_up_distance = c > 0`` also closes, in one step, the part of a large gap beyond
    ``c``: with ``d = |target - w|_1`` over the assets and cash, the fraction traded is
    ``rate + (1 - rate) * max(0, 1 - c / d)``, so the step ends within about ``c`` of the
    target. A slow rate alone would take ``~1 / rate`` bars to invest from all cash; this is the
    shape of the optimal rule under proportional costs (stay while close, move to the edge of
    the no-trade region when far), with ``c`` its width.
    """

    def __init__(
        self, n_assets: int, d_model: int, hidden: int = 64, rebalance_rate: float = 1.0,
        catch_up_distance: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        if not 0.0 < rebalance_rate <= 1.0:
            raise ValueError(f"rebalance_rate must be in (0, 1], got {rebalance_rate}")
        if not (np.isfinite(catch_up_distance) and catch_up_distance >= 0.0):
            raise ValueError(f"catch_up_distance must be >= 0, got {catch_up_distance}")
        self.catch_up_distance = float(catch_up_distance)
        self.full_rebalance = rebalance_rate == 1.0
        rate = min(rebalance_rate, 1 - 1e-6)
        self.rate_logit = nn.Parameter(torch.tensor(float(np.log(rate / (1 - rate)))))
        self.n_assets, self.d_model = n_assets, d_model
        self.latent_dim_pi, self.latent_dim_vf = n_assets, hidden
        self.score = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.cash_score = nn.Sequential(
            nn.Linear(d_model + 1, hidden), nn.GELU(), nn.Linear(hidden, 1)
        )
        self.value = nn.Sequential(nn.Linear(d_model + 1, hidden), nn.GELU())

    def _unpack(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, d = self.n_assets, self.d_model
        tokens = features[:, : n * d].reshape(-1, n, d)  # (B, N, d)
        mask = features[:, n * d : n * d + n] > 0.5  # (B, N)
        return tokens, mask, features[:, -1:]

    @property
    def rate(self) -> torch.Tensor:
        """The fraction of the way to the target traded each bar."""
        return torch.sigmoid(self.rate_logit)

    @staticmethod
    def _pool(tokens: torch.Tensor, mask: torch.Tensor, cash: torch.Tensor) -> torch.Tensor:
        m = mask.to(tokens.dtype)[..., None]  # (B, N, 1)
        pooled = (tokens * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, d), mean of tradable
        return torch.cat([pooled, cash], dim=1)

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, N + 1)`` scores, cash last; untradable assets at -1e9."""
        tokens, mask, cash = self._unpack(features)
        s = self.score(tokens).squeeze(-1).masked_fill(~mask, _MASKED)  # (B, N)
        return torch.cat([s, self.cash_score(self._pool(tokens, mask, cash))], dim=1)

    def target(self, features: torch.Tensor) -> torch.Tensor:
        """The softmax allocation of the scores ``(B, N)`` (cash is the rest)."""
        return torch.softmax(self.scores(features), dim=1)[:, : self.n_assets]

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        target = self.target(features)
        if self.full_rebalance:
            return target
        n, d = self.n_assets, self.d_model
        mask = features[:, n * d : n * d + n] > 0.5
        current = features[:, n * d + n : n * d + 2 * n] * mask  # untradable: target 0 anyway
        rate = self.rate
        if self.catch_up_distance > 0.0:
            cash_gap = (1.0 - target.sum(1, keepdim=True)) - features[:, -1:]  # (B, 1)
            gap = (target - current).abs().sum(1, keepdim=True) + cash_gap.abs()  # (B, 1)
            beyond = torch.relu(1.0 - self.catch_up_distance / gap.clamp_min(1e-8))
            rate = rate + (1.0 - rate) * beyond
        return current + rate * (target - current)  # (B, N), stays in the simplex

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.value(self._pool(*self._unpack(features)))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)


class AllocationPolicy(ActorCriticPolicy):
    """Actor-critic whose Gaussian mean is the softmax allocation of :class:`AllocationHeads`
    (module docstring); pass :class:`AssetTokenExtractor` as ``features_extractor_class``."""

    def __init__(
        self, *args: Any, head_hidden: int = 64, rebalance_rate: float = 1.0,
        catch_up_distance: float = 0.0, **kwargs: Any,
    ) -> None:  # fmt: skip
        self.head_hidden = head_hidden
        self.rebalance_rate = rebalance_rate
        self.catch_up_distance = catch_up_distance
        kwargs.setdefault("ortho_init", False)
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        extractor: Any = self.features_extractor
        self.mlp_extractor = AllocationHeads(
            extractor.n_assets, extractor.d_model, self.head_hidden, self.rebalance_rate,
            self.catch_up_distance,
        )  # fmt: skip

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # the mean is the allocation itself
        self.optimizer = self.optimizer_class(  # again: the replaced Linear's weights are gone
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["head_hidden"] = self.head_hidden
        data["rebalance_rate"] = self.rebalance_rate
        data["catch_up_distance"] = self.catch_up_distance
        return data


class AllocationPPO(PPO):
    """SB3 PPO that knows :class:`AllocationPolicy` by the name ``"AllocationPolicy"``."""

    policy_aliases = {**PPO.policy_aliases, ALLOCATION_POLICY: AllocationPolicy}  # type: ignore[dict-item]
