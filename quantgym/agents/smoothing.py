"""Action smoothing: the decision read from an exponential moving average of a policy's output
over the episode, not from the newest bar's output alone.

Why. An imitation policy that reads the newest bar learns ``p(a | x_t)``, a noisy per-bar
estimate of what the behaviour policy would do. The policies that wrote the logs
(``bayes_filter_expert``, the ``medium`` PPO) decide from a belief that accumulates evidence
over many bars, so they switch rarely. The per-bar argmax flips whenever the newest bar lands
near the decision boundary, and every flip pays costs: on the standard suite ``bc`` traded 169
times per 1,000-bar window against the expert's 23. Averaging the probabilities with weight
``w`` on the newest gives the decision a memory of about ``1 / w`` bars, the same recursion
as the filter's (a leaky sum of evidence); measured: docs/offline.md.

``action_smoothing = w`` in ``(0, 1]``: ``m_t = (1 - w) * m_{t-1} + w * p_t`` per env, restarted
at ``p_t`` on an episode start; ``w = 1`` is no smoothing. Discrete policies average their
action probabilities (the action is the argmax, or a sample, of ``m_t``); continuous ones
average their action.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["check_action_smoothing", "smooth", "smoothed_actions"]


def check_action_smoothing(value: Any) -> float:
    """``value`` as a float in ``(0, 1]``, else a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"action_smoothing must be a number in (0, 1], got {value!r}")
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(
            f"action_smoothing must be in (0, 1] (1: no smoothing), got {float(value)!r}"
        )
    return float(value)


def smooth(
    output: np.ndarray, previous: Any, episode_start: np.ndarray, weight: float
) -> np.ndarray:
    """The moving average ``(N, A)`` after the policy's newest ``output`` ``(N, A)``.

    ``previous`` is the average :func:`smooth` returned at the last step (``None``: every env
    starts); ``episode_start`` ``(N,)`` restarts the flagged envs at ``output``."""
    output = np.asarray(output, dtype=np.float64)
    if previous is None:
        return output.copy()
    if not isinstance(previous, np.ndarray) or previous.shape != output.shape:
        got = previous.shape if isinstance(previous, np.ndarray) else type(previous).__name__
        raise ValueError(
            f"state must be the smoothed outputs of shape {output.shape} that the last predict "
            f"returned (or None), got {got}"
        )
    restart = np.asarray(episode_start, dtype=np.bool_).reshape(-1, 1)
    return np.where(restart, output, (1.0 - weight) * previous + weight * output)


def smoothed_actions(
    logits: torch.Tensor,
    previous: Any,
    episode_start: np.ndarray,
    weight: float,
    deterministic: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """``(actions (N,), average (N, A))`` of a discrete policy with action ``logits`` ``(N, A)``:
    the argmax (or, with ``deterministic=False``, a sample) of the averaged probabilities."""
    probabilities = torch.softmax(logits.detach().double(), dim=-1).cpu().numpy()
    average = smooth(probabilities, previous, episode_start, weight)
    if deterministic:
        actions = average.argmax(axis=1)
    else:
        actions = torch.distributions.Categorical(probs=torch.from_numpy(average)).sample().numpy()
    return actions.astype(np.int64), average
