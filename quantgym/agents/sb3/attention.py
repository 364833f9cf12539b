"""Temporal self-attention features extractor for the flat ``TradingEnv`` observation.

The observation is ``window_size x n_market_features`` market features (oldest bar first,
row-major) followed by ``n_account_features`` account features. The extractor reshapes the
window into a sequence, encodes it with a small pre-norm Transformer encoder and pools it to one
vector, then concatenates the account features (and, with ``newest_bar_skip``, the newest bar's
raw features: a skip path that gives the policy what an MLP reading the newest bar sees, so
attention only has to add what the older bars tell)::

    obs (B, W*F + A) -> window (B, W, F) -> Linear -> (B, W, d_model) + sinusoidal PE
    -> n_layers x [x + MHA(LN(x)); x + FFN(LN(x))] -> LN -> pool (B, d_model)
    -> Linear + ReLU (B, out_dim) -> concat [newest bar (B, F)], account -> (B, out_dim [+ F] + A)

Pooling (``pooling``, see :data:`POOLING_MODES`): ``"last"`` takes the newest position (whose
self-attention row is then what reads the older bars); ``"learned"`` is attention pooling with
one learned query vector ``q`` over all positions, weights ``softmax_j(LN(x)_j . q)`` (no
``1/sqrt(d_model)``: ``q`` is a free parameter, the scale would only slow its Adam steps;
initialised at ``q = 0``: the mean); ``"mean"`` averages the positions. The pooling weights
over positions are read back with :meth:`TemporalAttentionExtractor.pooling_weights`.

The encoder blocks use :class:`torch.nn.MultiheadAttention` with ``need_weights`` so the
attention of every layer can be read back with :meth:`TemporalAttentionExtractor.attention_weights`.
This module imports torch: import it only where an attention agent is built.
"""

from __future__ import annotations

import math

import torch
from gymnasium import spaces

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before SB3, which imports legacy gym and its stderr notice
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from quantgym.agents.sb3.extractors import account_columns

__all__ = [
    "POOLING_MODES",
    "check_pooling",
    "SinusoidalPositionalEncoding",
    "AttentionBlock",
    "TemporalAttentionEncoder",
    "TemporalAttentionExtractor",
]


#: How the encoder pools its ``(B, T, d_model)`` sequence: the newest position, a learned-query
#: attention pooling over all positions, or the mean of the positions.
POOLING_MODES = ("last", "learned", "mean")


def check_pooling(pooling: str) -> str:
    """``pooling`` if it is one of :data:`POOLING_MODES`, else a ``ValueError`` naming them."""
    if not isinstance(pooling, str) or pooling not in POOLING_MODES:
        raise ValueError(f"pooling must be one of {list(POOLING_MODES)}, got {pooling!r}")
    return pooling


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sine/cosine position encoding (Vaswani et al., 2017) added to ``(B, T, d_model)``."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (T, 1)
        div_term = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10_000.0) / d_model)
        )
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
        self.pe: torch.Tensor
        self.register_buffer("pe", pe, persistent=False)  # (T, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.shape[1]]


class AttentionBlock(nn.Module):
    """Pre-norm Transformer encoder block whose forward can also return attention weights."""

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, dim_feedforward),
            nn.GELU(),
            nn.Linear(dim_feedforward, d_model),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.norm1(x)  # (B, T, C)
        # average_attn_weights=False keeps one map per head: (B, heads, T, T)
        attn_out, weights = self.attn(
            h, h, h, need_weights=need_weights, average_attn_weights=False
        )
        x = x + self.dropout(attn_out)
        x = x + self.dropout(self.ffn(self.norm2(x)))
        return x, weights


class TemporalAttentionEncoder(nn.Module):
    """Self-attention over a ``(B, T, F)`` window, pooled (``pooling``, :data:`POOLING_MODES`;
    default the newest position) -> ``(B, out_dim)``."""

    def __init__(
        self,
        n_features: int,
        window_size: int,
        *,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.0,
        out_dim: int = 32,
        pooling: str = "last",
    ) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.pooling = check_pooling(pooling)
        self.input_proj = nn.Linear(n_features, d_model)
        self.pos_encoding = SinusoidalPositionalEncoding(d_model, window_size)
        self.blocks = nn.ModuleList(
            AttentionBlock(d_model, n_heads, dim_feedforward, dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Sequential(nn.Linear(d_model, out_dim), nn.ReLU())
        # created last, and only for "learned", so "last" draws the same initial weights as
        # before the option existed; q = 0 starts as the mean over positions
        self.pool_query: nn.Parameter | None = None
        if self.pooling == "learned":
            self.pool_query = nn.Parameter(torch.zeros(d_model))

    def encode(
        self, window: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The sequence ``(B, T, d_model)`` after the blocks (before the final LayerNorm), and
        each block's attention maps ``(B, heads, T, T)`` when ``need_weights``."""
        x = self.pos_encoding(self.input_proj(window))  # (B, T, d_model)
        weights = []
        for block in self.blocks:
            x, w = block(x, need_weights=need_weights)
            if w is not None:
                weights.append(w)  # (B, heads, T, T)
        return x, weights

    def pool_weights(self, h: torch.Tensor) -> torch.Tensor:
        """Pooling weights ``(B, T)`` over the positions of ``h = norm(encode(window))``
        (``(B, T, C)``); each row sums to 1 (one-hot on the newest position for ``"last"``)."""
        batch, length, _ = h.shape
        if self.pooling == "learned":
            assert self.pool_query is not None
            return torch.softmax(h @ self.pool_query, dim=-1)  # (B, T)
        if self.pooling == "mean":
            return h.new_full((batch, length), 1.0 / length)
        out = h.new_zeros((batch, length))
        out[:, -1] = 1.0
        return out

    def forward(
        self, window: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, weights = self.encode(window, need_weights=need_weights)  # (B, T, d_model)
        if self.pooling == "last":
            pooled = self.norm(x[:, -1])  # newest bar: (B, d_model)
        else:
            h = self.norm(x)  # (B, T, d_model)
            pooled = (self.pool_weights(h).unsqueeze(-1) * h).sum(dim=1)  # (B, d_model)
        return self.head(pooled), weights


class TemporalAttentionExtractor(BaseFeaturesExtractor):
    """SB3 features extractor: temporal self-attention over the market window + account features.

    :param observation_space: flat ``Box`` of size ``window_size * n_market_features + n_account_features``.
    :param window_size: bars in the observation window (``env.unwrapped.window_size``).
    :param n_market_features: market features per bar (``env.unwrapped.n_market_features``).
    :param n_account_features: trailing account features (``env.unwrapped.n_account_features``).
    :param d_model: attention width; ``n_heads`` heads, ``n_layers`` encoder blocks.
    :param out_dim: size of the pooled market embedding; ``features_dim = out_dim + n_account_features``.
    :param n_bars: attend over the newest ``n_bars`` rows of the window only (``None``: all
        ``window_size``); the sequence length ``T`` of the encoder.
    :param newest_bar_skip: also concatenate the newest bar's raw features (``F`` more dims).
    :param pooling: how the encoded sequence becomes one vector (:data:`POOLING_MODES`):
        ``"last"`` (the newest position, the default), ``"learned"`` (softmax attention of a
        learned query over all positions) or ``"mean"``; a ``ValueError`` otherwise.
    :param account_offsets: the account features passed on (positions among them, 0 = the
        first; :func:`~quantgym.agents.observations.account_feature_offsets`); ``None``: all.
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        window_size: int,
        n_market_features: int,
        n_account_features: int,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.0,
        out_dim: int = 32,
        n_bars: int | None = None,
        newest_bar_skip: bool = False,
        pooling: str = "last",
        account_offsets: list[int] | None = None,
    ) -> None:
        check_pooling(pooling)
        offsets = account_columns(account_offsets, n_account_features)
        if n_bars is None:
            n_bars = window_size
        if not 1 <= n_bars <= window_size:
            raise ValueError(f"n_bars must be in [1, window_size={window_size}], got {n_bars}")
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"observation_space must be a flat Box, got {observation_space}")
        expected = window_size * n_market_features + n_account_features
        if observation_space.shape[0] != expected:
            raise ValueError(
                f"observation_space has {observation_space.shape[0]} dims but window_size="
                f"{window_size} x n_market_features={n_market_features} + n_account_features="
                f"{n_account_features} = {expected}"
            )
        skip_dim = n_market_features if newest_bar_skip else 0
        super().__init__(observation_space, features_dim=out_dim + skip_dim + len(offsets))
        self.account_columns: torch.Tensor | None
        self.register_buffer(
            "account_columns",
            None if len(offsets) == n_account_features else torch.tensor(offsets),
            persistent=False,
        )
        self.newest_bar_skip = bool(newest_bar_skip)
        self.window_size = window_size
        self.n_market_features = n_market_features
        self.n_account_features = n_account_features
        self.n_bars = n_bars
        self.encoder = TemporalAttentionEncoder(
            n_market_features,
            n_bars,
            d_model=d_model,
            n_heads=n_heads,
            n_layers=n_layers,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            out_dim=out_dim,
            pooling=pooling,
        )

    def split(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat ``(B, D)`` obs -> the newest ``n_bars`` rows of the market window ``(B, T, F)``
        (oldest first) and the account features it passes on ``(B, A)``."""
        n_market = self.window_size * self.n_market_features
        window = observations[:, :n_market].reshape(-1, self.window_size, self.n_market_features)
        account = observations[:, n_market:]
        if self.account_columns is not None:
            account = account[:, self.account_columns]
        return window[:, self.window_size - self.n_bars :], account

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        window, account = self.split(observations)
        embedding, _ = self.encoder(window)  # (B, out_dim)
        if self.newest_bar_skip:
            return torch.cat([embedding, window[:, -1], account], dim=1)  # (B, out_dim + F + A)
        return torch.cat([embedding, account], dim=1)  # (B, out_dim + A)

    def attention_weights(self, observations: torch.Tensor) -> torch.Tensor:
        """Attention maps ``(B, n_layers, n_heads, T, T)`` (``T = n_bars``); row i = how bar i
        attends to each bar j."""
        window, _ = self.split(observations)
        _, weights = self.encoder.encode(window, need_weights=True)
        return torch.stack(weights, dim=1)

    def pooling_weights(self, observations: torch.Tensor) -> torch.Tensor:
        """Pooling weights ``(B, T)`` over the ``T = n_bars`` positions (oldest first), each
        row summing to 1: the learned query's softmax for ``pooling="learned"``, one-hot on the
        newest bar for ``"last"``, uniform for ``"mean"``."""
        window, _ = self.split(observations)
        x, _ = self.encoder.encode(window)
        return self.encoder.pool_weights(self.encoder.norm(x))
