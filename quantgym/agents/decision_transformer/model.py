"""The Decision Transformer network (Chen et al., 2021) in the manner of nanoGPT's ``model.py``.

Each step ``t`` of a window contributes three tokens, return-to-go, state and action::

    (R_1, s_1, a_1, R_2, s_2, a_2, ..., R_K, s_K, a_K)        3K tokens of width C

    R_t -> Linear(1, C)     s_t -> Linear(D, C)     a_t -> Embedding(A, C)
    each + Embedding(timestep_t)  (the DT paper's global timestep; no other position code)
    -> LayerNorm -> dropout -> n_layers x [x + attn(LN(x)); x + MLP(LN(x))] -> LayerNorm

Attention is causal (``F.scaled_dot_product_attention(is_causal=True)``). Windows are
*right*-padded (real steps first): a causal token never sees a later one, so padding cannot
change the output at any real position and needs no attention mask; the losses mask it.

Heads, all read at the state token ``s_t`` (it has seen ``R_1..R_t``, ``s_1..s_t`` and
``a_1..a_{t-1}``), except the value head:

- ``action_logits`` ``(B, K, A)``: the action over the position grid;
- ``size`` ``(B, K)`` in ``[0, 1]``: ``|position|`` as a fraction of the largest grid position;
- ``risk`` ``(B, K)`` >= 0: forward drawdown or volatility of the next ``k`` rewards;
- ``value`` ``(B, K)``: the (scaled) return-to-go achievable from ``s_t`` at timestep ``t``.
  It reads the state and timestep embeddings *before* attention: behind the attention it
  would see ``R_t`` (the return it is asked to estimate) and could copy it.

This module imports torch: import it only where a ``dt`` model is built.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DTOutput", "CausalSelfAttention", "MLP", "Block", "DecisionTransformer"]


class DTOutput(NamedTuple):
    """Per-step outputs of :class:`DecisionTransformer` at the state tokens."""

    action_logits: torch.Tensor  # (B, K, A)
    value: torch.Tensor  # (B, K) scaled return-to-go estimate
    size: torch.Tensor  # (B, K) in [0, 1]
    risk: torch.Tensor  # (B, K) >= 0


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused q/k/v projection."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.resid_dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)  # 3 x (B, T, C)
        shape = (b, t, self.n_heads, c // self.n_heads)
        return (  # 3 x (B, nh, T, hs)
            q.view(shape).transpose(1, 2),
            k.view(shape).transpose(1, 2),
            v.view(shape).transpose(1, 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self._heads(x)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(b, t, c)  # (B, T, C)
        return self.resid_dropout(self.proj(y))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Attention probabilities ``(B, nh, T, T)`` of ``x`` (row i: how token i attends)."""
        q, k, _ = self._heads(x)
        t = x.shape[1]
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, nh, T, T)
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        return scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)


class MLP(nn.Module):
    """Position-wise ``C -> 4C -> C`` with GELU."""

    def __init__(self, d_model: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.proj = nn.Linear(4 * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, dropout)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        return x + self.mlp(self.ln_2(x))


class DecisionTransformer(nn.Module):
    """Interleaved ``(R, s, a)`` causal transformer with action, value, size and risk heads.

    Args:
        state_dim: width ``D`` of a state.
        n_actions: size ``A`` of the discrete action grid.
        max_timestep: largest timestep index (the embedding has ``max_timestep + 1`` rows).
        d_model, n_layers, n_heads, dropout: the transformer's shape.
        action_input: feed the actions (``False``: action tokens carry the timestep only).
    """

    def __init__(
        self,
        state_dim: int,
        n_actions: int,
        max_timestep: int,
        d_model: int = 128,
        n_layers: int = 3,
        n_heads: int = 1,
        dropout: float = 0.1,
        action_input: bool = True,
    ) -> None:
        super().__init__()
        self.action_input = action_input
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.state_dim, self.n_actions, self.max_timestep = state_dim, n_actions, max_timestep
        self.embed_state = nn.Linear(state_dim, d_model)
        self.embed_action = nn.Embedding(n_actions, d_model)
        self.embed_return = nn.Linear(1, d_model)
        self.embed_timestep = nn.Embedding(max_timestep + 1, d_model)
        self.embed_ln = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.action_head = nn.Linear(d_model, n_actions)
        self.size_head = nn.Linear(d_model, 1)
        self.risk_head = nn.Linear(d_model, 1)
        self.value_head = nn.Sequential(
            nn.LayerNorm(d_model), nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, 1)
        )
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    # -- pieces ----------------------------------------------------------------------------
    def _block_list(self) -> list[Block]:
        return [b for b in self.blocks if isinstance(b, Block)]

    def backbone_modules(self) -> list[nn.Module]:
        """The embeddings and blocks (everything but the heads), input to output."""
        return [
            self.embed_state,
            self.embed_action,
            self.embed_return,
            self.embed_timestep,
            self.embed_ln,
            *self.blocks,
            self.ln_f,
        ]

    def _tokens(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        returns_to_go: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, k, _ = states.shape
        time = self.embed_timestep(timesteps)  # (B, K, C)
        s = self.embed_state(states) + time  # (B, K, C)
        r = self.embed_return(returns_to_go) + time  # (B, K, C)
        a = self.embed_action(actions) + time if self.action_input else time  # (B, K, C)
        x = torch.stack((r, s, a), dim=2).reshape(b, 3 * k, -1)  # (B, 3K, C): R1 s1 a1 R2 ...
        return self.drop(self.embed_ln(x)), s

    def value(self, states: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Value head alone: ``(..., D)`` states and ``(...)`` timesteps -> ``(...)``."""
        s = self.embed_state(states) + self.embed_timestep(timesteps)
        return self.value_head(s).squeeze(-1)

    def _last_block(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """The last block evaluated at the tokens ``query`` ``(B, Q)`` only: keys and values
        come from every token of ``x`` ``(B, T, C)``, queries, projection and MLP from the
        ``Q`` tokens whose outputs a head reads. Returns ``(B, Q, C)``, equal to the full
        block's output at those tokens."""
        last = self._block_list()[-1]
        attn = last.attn
        b, t, c = x.shape
        rows = torch.arange(b, device=x.device)[:, None]  # (B, 1)
        h = last.ln_1(x)  # (B, T, C)
        weight, bias = attn.qkv.weight, attn.qkv.bias  # q rows first, then k, then v
        k, v = F.linear(h, weight[c:], bias[c:]).split(c, dim=2)  # 2 x (B, T, C)
        q = F.linear(h[rows, query], weight[:c], bias[:c])  # (B, Q, C)
        nh = attn.n_heads
        q = q.view(b, -1, nh, c // nh).transpose(1, 2)  # (B, nh, Q, hs)
        k = k.reshape(b, t, nh, c // nh).transpose(1, 2)  # (B, nh, T, hs)
        v = v.reshape(b, t, nh, c // nh).transpose(1, 2)
        visible = torch.arange(t, device=x.device) <= query[..., None]  # (B, Q, T) causal
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=visible.unsqueeze(1),
            dropout_p=attn.dropout if self.training else 0.0,
        )  # (B, nh, Q, hs)
        y = y.transpose(1, 2).reshape(b, -1, c)  # (B, Q, C)
        z = x[rows, query] + attn.resid_dropout(attn.proj(y))  # (B, Q, C)
        return z + last.mlp(last.ln_2(z))

    def forward(
        self,
        states: torch.Tensor,  # (B, K, D) float
        actions: torch.Tensor,  # (B, K) int64
        returns_to_go: torch.Tensor,  # (B, K, 1) float, scaled
        timesteps: torch.Tensor,  # (B, K) int64 in [0, max_timestep]
    ) -> DTOutput:
        """Outputs at every state token. Work no head reads is skipped (exactly): the last
        action token ``a_K`` feeds nothing under causal attention and is dropped, and the
        last block runs its queries and MLP for the ``K`` state tokens only."""
        b, k, _ = states.shape
        x, s = self._tokens(states, actions, returns_to_go, timesteps)
        x = x[:, : 3 * k - 1]  # (B, 3K-1, C): a_K is never attended to
        for block in self._block_list()[:-1]:
            x = block(x)
        query = (3 * torch.arange(k, device=x.device) + 1).expand(b, k)  # state tokens
        h = self.ln_f(self._last_block(x, query))  # (B, K, C)
        return DTOutput(
            action_logits=self.action_head(h),  # (B, K, A)
            value=self.value_head(s).squeeze(-1),  # (B, K)
            size=torch.sigmoid(self.size_head(h)).squeeze(-1),  # (B, K)
            risk=F.softplus(self.risk_head(h)).squeeze(-1),  # (B, K)
        )

    def forward_full(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        returns_to_go: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> torch.Tensor:
        """Action logits ``(B, K, A)`` from every block run on all ``3K`` tokens (the naive
        computation :meth:`forward` must equal; the speed benchmark's compute bound)."""
        b, k, _ = states.shape
        x, _ = self._tokens(states, actions, returns_to_go, timesteps)
        for block in self._block_list():
            x = block(x)
        h = self.ln_f(x).reshape(b, k, 3, -1)[:, :, 1]  # state tokens: (B, K, C)
        return self.action_head(h)

    def action_logits_at(
        self,
        states: torch.Tensor,  # (N, K, D)
        actions: torch.Tensor,  # (N, K)
        returns_to_go: torch.Tensor,  # (N, K, 1)
        timesteps: torch.Tensor,  # (N, K)
        lengths: torch.Tensor,  # (N,) int64 real steps per row, >= 1
    ) -> torch.Tensor:
        """Action logits ``(N, A)`` at each row's newest state token (slot ``length - 1``),
        equal to ``forward(...).action_logits[arange(N), lengths - 1]`` at a fraction of
        the cost (inference): tokens after the newest state are never computed, and the last
        block runs its query, MLP and head for that one token only."""
        x, _ = self._tokens(states, actions, returns_to_go, timesteps)  # (N, 3K, C)
        query = 3 * (lengths - 1) + 1  # (N,) index of the newest state token
        x = x[:, : int(query.max()) + 1]  # (N, T, C): nothing a causal query never sees
        for block in self._block_list()[:-1]:
            x = block(x)
        z = self._last_block(x, query[:, None])  # (N, 1, C)
        return self.action_head(self.ln_f(z[:, 0]))  # (N, A)

    @torch.no_grad()
    def attention_weights(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        returns_to_go: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> torch.Tensor:
        """Attention maps ``(B, n_layers, n_heads, 3K, 3K)`` over the ``(R, s, a)`` tokens."""
        x, _ = self._tokens(states, actions, returns_to_go, timesteps)
        maps = []
        for block in self._block_list():
            maps.append(block.attn.weights(block.ln_1(x)))
            x = block(x)
        return torch.stack(maps, dim=1)

    # -- fine-tuning -----------------------------------------------------------------------
    def freeze_backbone(self) -> None:
        """Stop gradients into the embeddings and blocks; the heads stay trainable."""
        for module in self.backbone_modules():
            module.requires_grad_(False)

    def unfreeze_last(self, n: int) -> None:
        """Make the last ``n`` blocks (and the final LayerNorm) trainable again."""
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(self.blocks):
            raise ValueError(f"n must be an int in [0, {len(self.blocks)}], got {n!r}")
        if n:
            self.ln_f.requires_grad_(True)
        for block in list(self.blocks)[len(self.blocks) - n :]:
            block.requires_grad_(True)
