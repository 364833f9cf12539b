"""Returns-to-go relabelled with a learned critic: the training targets of ``qdt``, the
Q-learning Decision Transformer (Yamagata et al., ICML 2023, "Q-learning Decision
Transformer: Leveraging Dynamic Programming for Conditional Sequence Modelling in Offline RL").

A Decision Transformer conditions each action on the return that followed it in the logs.
When the logged policy acted badly after ``t`` (random logs: every later action is a coin
flip that pays costs), that return says nothing about how good the action at ``t`` was, and
the DT cannot stitch a good start to a better continuation seen elsewhere. QDT replaces the
return-to-go, backwards through each episode, by the better of what was realised and what a
critic learned by dynamic programming says the next state is worth:

    R_t = r_t + gamma * max(R_{t+1}, V(s_{t+1})),    R_{T-1} = r_{T-1},

so that ``R_t`` is at least the one-step reward plus the critic's value of the state reached
(the DT convention at the episode's end: no bootstrapping past it).
"""

from __future__ import annotations

import numpy as np

__all__ = ["relabelled_returns_to_go"]


def relabelled_returns_to_go(
    rewards: np.ndarray,
    episode_lengths: np.ndarray,
    next_values: np.ndarray,
    gamma: float = 1.0,
) -> np.ndarray:
    """``(N,)`` float64 relabelled returns-to-go of ``N`` logged steps.

    Args:
        rewards: ``(N,)`` rewards, episodes back to back.
        episode_lengths: steps per episode (summing to ``N``).
        next_values: ``(N,)`` the critic's value ``V(s_{t+1})`` of the state each step leads
            to (in the rewards' units); an episode's last entry is not read.
        gamma: discount of the returns-to-go.
    """
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    next_values = np.asarray(next_values, dtype=np.float64).reshape(-1)
    lengths = np.asarray(episode_lengths, dtype=np.int64).reshape(-1)
    if next_values.shape != rewards.shape:
        raise ValueError(f"next_values has {next_values.size} entries for {rewards.size} rewards")
    if (lengths <= 0).any() or int(lengths.sum()) != rewards.size:
        raise ValueError(
            f"episode_lengths must be positive and sum to {rewards.size}, got sum {lengths.sum()}"
        )
    if not np.isfinite(next_values).all():
        raise ValueError("next_values holds NaN or infinite values")
    out = np.empty_like(rewards)
    ends = np.cumsum(lengths)
    for start, end in zip((ends - lengths).tolist(), ends.tolist(), strict=True):
        running = rewards[end - 1]
        out[end - 1] = running
        for t in range(end - 2, start - 1, -1):
            running = rewards[t] + gamma * max(running, next_values[t])
            out[t] = running
    return out
