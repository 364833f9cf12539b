"""Observation helpers for offline agents: the newest bars of the market window, and the
last step's log-return reward recovered from two consecutive observations.

``recent_bar_columns``: the columns an agent reads. Two choices matter on ``regime``:

- the account features (current position ...) let behaviour cloning copy the expert's
  previous action instead of reading the market (the copycat problem of imitation learning):
  with them, BC on expert data never leaves its starting flat position (score 0); without
  them it scores ~68 (bayes_filter_expert = 100) on held-out windows (pilot: 1 seed, 32 windows);
- the newest bar's features (momentum, MACD, RSI ... already summarise the history) do as
  well as the whole window at a fraction of the input width.

``realised_log_return``:

Stateful return-conditioned policies (Decision Transformers) decrement their return-to-go by
the realised reward, but the Agent API (SB3's ``predict(obs, state, episode_start,
deterministic)``) hands them no reward. The default ``TradingEnv`` reward is the log growth
``log(equity_t+1 / equity_t)`` and the observation's account features (the last five columns,
``quantgym.envs.config.ACCOUNT_FEATURES``) determine it:

======================================  =================================================
case (step t -> t+1)                     log growth
======================================  =================================================
target unchanged, position held          ``log((1 + upnl_t+1) / (1 + upnl_t))`` (exact)
target changed to a non-zero position    ``log(1 + upnl_t+1)``: the entry equity is the
                                         equity at t (exact)
target unchanged and flat                0 (cash earns nothing; exact)
target changed to flat                   ``log((1 + dd_t+1) / (1 + dd_t))`` (exact unless
                                         the close set a new equity peak: then a lower bound)
======================================  =================================================

``upnl`` is ``unrealized_pnl`` and ``dd`` is ``drawdown``. With another reward function
(``"differential_sharpe"`` ...) this is the log growth, not the env's reward.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "episode_start_mask",
    "N_ACCOUNT_FEATURES",
    "POSITION",
    "UNREALIZED_PNL",
    "DRAWDOWN",
    "recent_bar_columns",
    "realised_log_return",
]

N_ACCOUNT_FEATURES = 5  # quantgym.envs.config.ACCOUNT_FEATURES, the observation's last columns

# Offsets from the end of the observation (ACCOUNT_FEATURES order, see TradingEnv's docstring).
POSITION = -5
UNREALIZED_PNL = -3
DRAWDOWN = -2


def recent_bar_columns(
    observation_dim: int, window_size: int, recent_bars: int | None, account: bool = True
) -> np.ndarray:
    """Column indices of the newest ``recent_bars`` rows of the market window (oldest first),
    followed by the account features when ``account``; ``recent_bars=None`` keeps the whole
    window."""
    market_dim = observation_dim - N_ACCOUNT_FEATURES
    if window_size < 1 or market_dim < window_size or market_dim % window_size:
        raise ValueError(
            f"observation_dim={observation_dim} does not hold a window of window_size="
            f"{window_size} rows plus {N_ACCOUNT_FEATURES} account features"
        )
    n_features = market_dim // window_size
    bars = window_size if recent_bars is None else int(recent_bars)
    if not 1 <= bars <= window_size:
        raise ValueError(f"recent_bars must be in [1, window_size={window_size}], got {bars}")
    columns = np.arange(market_dim - bars * n_features, market_dim)
    if account:
        columns = np.concatenate([columns, np.arange(market_dim, observation_dim)])
    return columns


def realised_log_return(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Log growth of the step from observations ``previous`` to ``current``.

    Args:
        previous: ``(N, obs_dim)`` observations at t (or ``(obs_dim,)``).
        current: observations at t+1, same shape.

    Returns:
        ``(N,)`` float64 log growth (a 0-d array for 1-D inputs).
    """
    prev = np.asarray(previous, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if prev.shape != cur.shape or prev.ndim not in (1, 2) or prev.shape[-1] < 5:
        raise ValueError(
            f"previous and current must both be (obs_dim,) or (N, obs_dim) with obs_dim >= 5, "
            f"got {prev.shape} and {cur.shape}"
        )
    traded = prev[..., POSITION] != cur[..., POSITION]
    holding = cur[..., POSITION] != 0.0
    upnl_prev, upnl = prev[..., UNREALIZED_PNL], cur[..., UNREALIZED_PNL]
    dd_prev, dd = prev[..., DRAWDOWN], cur[..., DRAWDOWN]
    floor = 1e-12  # a liquidated account (ratio 0) gives a large negative, not -inf
    held = np.log(np.maximum(1.0 + upnl, floor) / np.maximum(1.0 + upnl_prev, floor))
    entered = np.log(np.maximum(1.0 + upnl, floor))
    closed = np.log(np.maximum(1.0 + dd, floor) / np.maximum(1.0 + dd_prev, floor))
    return np.where(holding, np.where(traded, entered, held), np.where(traded, closed, 0.0))


def episode_start_mask(episode_start: np.ndarray | None, n: int) -> np.ndarray:
    """``predict``'s ``episode_start`` for ``n`` envs as a boolean array (all False when
    ``None``); a ``ValueError`` when it has another length."""
    starts = (
        np.zeros(n, np.bool_)
        if episode_start is None
        else np.asarray(episode_start, dtype=np.bool_).reshape(-1)
    )
    if starts.shape[0] != n:
        raise ValueError(f"episode_start has {starts.shape[0]} entries for {n} envs")
    return starts
