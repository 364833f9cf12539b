"""Actions of ``PortfolioEnv``: raw actions to target weights (fractions of the post-trade value).

==================================  ====================  ============================================
``weights`` / ``action_transform``  space                 target weights
==================================  ====================  ============================================
"long_only" (default)               ``Box(0, 1, (N,))``   the action itself; scaled to sum 1 when its
                                                          sum exceeds 1; cash is the remainder
"long_only", "softmax"              ``Box(-1, 1, (N+1,))`` ``softmax(action / temperature)`` over the
                                                          tradable assets and cash (the last entry)
"long_short"                        ``Box(-1, 1, (N,))``  the action, scaled down proportionally so
                                                          that gross <= ``max_gross`` and
                                                          ``|net| <= max_net``
==================================  ====================  ============================================

An asset that is not tradable at the decision bar gets weight 0 whatever the action says (before
the scaling). Why raw weights and not a softmax by default: a policy network starts with outputs
near 0, and a softmax of near-zero logits is the uniform portfolio, so a learner starts at, and
is pulled back to, 1/N (peers' "collapse to 1/N"); a softmax can neither put exactly 0 on an asset
nor hold cash unless cash is one more logit. Raw weights can express 0, cash and concentration
directly; ``action_transform="softmax"`` (with cash as the last logit) is there for those who want
it. An action outside its space (wrong length, NaN, a negative weight in long-only mode) raises
``ValueError``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

__all__ = [
    "WEIGHT_MODES",
    "ACTION_TRANSFORMS",
    "make_action_space",
    "check_actions",
    "long_only_weights",
    "softmax_weights",
    "long_short_weights",
]

WEIGHT_MODES = ("long_only", "long_short")
ACTION_TRANSFORMS = (None, "softmax")


def make_action_space(n_assets: int, weights: str, transform: str | None) -> spaces.Box:
    """The single-env action space (module docstring)."""
    if transform == "softmax":
        return spaces.Box(-1.0, 1.0, shape=(n_assets + 1,), dtype=np.float32)
    low = 0.0 if weights == "long_only" else -1.0
    return spaces.Box(low, 1.0, shape=(n_assets,), dtype=np.float32)


def check_actions(actions: object, space: spaces.Box, batch: int | None = None) -> np.ndarray:
    """``actions`` as float64 of shape ``space.shape`` (``(batch, *space.shape)`` for a vector
    env), or ``ValueError`` naming what is wrong: the length, a NaN, a value outside the bounds."""
    try:
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"action {actions!r:.80} is not an array of numbers") from None
    want = space.shape if batch is None else (batch, *space.shape)
    if a.shape != want:
        if batch is not None and a.shape == (batch * space.shape[0],):
            a = a.reshape(want)
        else:
            what = "actions" if batch is not None else "action"
            raise ValueError(f"{what} must have shape {want} for {space}, got shape {a.shape}")
    if np.isnan(a).any():
        where = np.argwhere(np.isnan(a))[0].tolist()
        raise ValueError(f"action has NaN at index {where}")
    low, high = float(space.low.flat[0]), float(space.high.flat[0])
    bad = (a < low) | (a > high)
    if bad.any():
        where = np.argwhere(bad)[0]
        value = float(a[tuple(where)])
        kind = (
            "a negative weight in long-only mode"
            if low == 0.0 and value < 0
            else "outside the space"
        )
        raise ValueError(
            f"action {value} at index {where.tolist()} is {kind}: the space is Box({low:g}, {high:g})"
        )
    return a


def long_only_weights(action: np.ndarray, tradable: np.ndarray) -> np.ndarray:
    """Zero the untradable assets, then scale to sum 1 where the sum exceeds 1 (``(..., N)``)."""
    w = action * tradable
    return w / np.maximum(w.sum(axis=-1, keepdims=True), 1.0)  # / 1 (exact) unless the sum > 1


def softmax_weights(logits: np.ndarray, tradable: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` over the tradable assets and cash (the last logit);
    returns the ``(..., N)`` asset weights (cash is the rest)."""
    z = logits / temperature
    z = np.concatenate([np.where(tradable, z[..., :-1], -np.inf), z[..., -1:]], axis=-1)
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return (e / np.sum(e, axis=-1, keepdims=True))[..., :-1]


def long_short_weights(
    action: np.ndarray, tradable: np.ndarray, max_gross: float, max_net: float
) -> np.ndarray:
    """Zero the untradable assets, then scale down proportionally so that ``sum |w| <= max_gross``
    and ``|sum w| <= max_net``."""
    w = action * tradable
    gross = np.abs(w).sum(axis=-1, keepdims=True)
    net = np.abs(w.sum(axis=-1, keepdims=True))
    # max_x / max(x, max_x) is exactly 1 within the limit
    return w * np.minimum(
        max_gross / np.maximum(gross, max_gross), max_net / np.maximum(net, max_net)
    )
