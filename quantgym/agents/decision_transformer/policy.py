"""Stateful inference of the ``dt`` agent: each env's context window and its return-to-go.

The Agent API (``predict(obs, state, episode_start)``) hands the policy no reward. The
realised reward of the last step is recovered from the two consecutive observations with
:func:`quantgym.agents.observations.realised_log_return`: the env's default
``"log_return"`` reward (log equity growth), exact in every case but one (a close that sets
a new equity peak: a lower bound). With another env reward function the policy decrements
by the log growth, not by that reward.

Per step, for every env ``i`` (all envs at once, numpy):

1. ``episode_start[i]`` (or no state yet) empties the context and restarts the timestep at 0;
2. the conditioning return for the new state:

   - ``"target"`` (the DT paper): ``rest_i = target_return`` at the episode start, then
     ``rest_i -= realised reward`` at every step; ``R_t = rest_i``;
   - ``"critic"``: ``R_t = V(s_t, t)``, the value head's estimate for the new state. The
     value head is trained by expectile regression (``expectile`` ~0.8) on the realised
     returns-to-go of the dataset, so it estimates an upper part of what the behaviour
     policies achieved *from this state at this time*, not what a lucky path once got. It
     is recomputed at every step (not decremented), so a bad stretch does not push the
     target up to chase losses, the failure ESPER describes. This is in the spirit of
     critic-guided DT (CGDT, AAAI 2024); unlike CGDT the critic does not shape the actor's
     training loss, it only picks the return to condition on;
3. the step ``(R_t, s_t, t)`` is appended (the oldest one drops out once ``K`` steps are
   held); the action read at ``s_t`` fills the step's action token;
4. the action probabilities at ``s_t`` join their moving average over the episode
   (``smoothed``, restarted at an episode's first step; :mod:`quantgym.agents.smoothing`),
   from which the action is read.

Windows are right-padded, so an env with ``n < K`` steps holds them in slots ``0..n-1`` and
its action is read at slot ``n - 1``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from quantgym.agents.observations import realised_log_return

__all__ = [
    "DTState",
    "initial_state",
    "reset_envs",
    "append_step",
    "first_steps",
    "realised_rewards",
]


class DTState(NamedTuple):
    """Per-env context of ``N`` envs (``K`` steps, ``D`` state columns)."""

    states: np.ndarray  # (N, K, D) float32
    actions: np.ndarray  # (N, K) int64
    returns_to_go: np.ndarray  # (N, K) float32, scaled (network input)
    timesteps: np.ndarray  # (N, K) int64
    length: np.ndarray  # (N,) int64 steps held (<= K)
    return_rest: np.ndarray  # (N,) float64 target minus the realised log growth so far
    timestep: np.ndarray  # (N,) int64 timestep of the next observation
    last_observation: np.ndarray  # (N, obs_dim) float32 raw, to recover the reward
    smoothed: np.ndarray  # (N, A) float64 moving average of the action probabilities


def initial_state(
    n_envs: int,
    context_length: int,
    state_dim: int,
    observation_dim: int,
    target: float,
    n_actions: int,
) -> DTState:
    """Empty contexts for ``n_envs`` envs conditioned on ``target``."""
    n, k = int(n_envs), int(context_length)
    return DTState(
        states=np.zeros((n, k, state_dim), np.float32),
        actions=np.zeros((n, k), np.int64),
        returns_to_go=np.zeros((n, k), np.float32),
        timesteps=np.zeros((n, k), np.int64),
        length=np.zeros(n, np.int64),
        return_rest=np.full(n, float(target)),
        timestep=np.zeros(n, np.int64),
        last_observation=np.zeros((n, int(observation_dim)), np.float32),
        smoothed=np.zeros((n, int(n_actions)), np.float64),
    )


def realised_rewards(
    state: DTState, observation: np.ndarray, episode_start: np.ndarray
) -> np.ndarray:
    """``(N,)`` log growth of each env's last step (0 at an episode start or empty context)."""
    reward = realised_log_return(state.last_observation, observation)
    return np.where(episode_start | (state.length == 0), 0.0, reward)


def reset_envs(state: DTState, episode_start: np.ndarray, target: float) -> DTState:
    """A copy of ``state`` with the envs flagged in ``episode_start`` emptied."""
    keep = ~episode_start
    return DTState(
        states=np.where(keep[:, None, None], state.states, 0.0).astype(np.float32),
        actions=np.where(keep[:, None], state.actions, 0),
        returns_to_go=np.where(keep[:, None], state.returns_to_go, 0.0).astype(np.float32),
        timesteps=np.where(keep[:, None], state.timesteps, 0),
        length=np.where(keep, state.length, 0),
        return_rest=np.where(keep, state.return_rest, float(target)),
        timestep=np.where(keep, state.timestep, 0),
        last_observation=state.last_observation.copy(),
        smoothed=state.smoothed.copy(),
    )


def first_steps(state: DTState) -> np.ndarray:
    """``(N,)`` whether each env's newest step (after :func:`append_step`) is its episode's
    first."""
    return state.timestep == 1


def append_step(
    state: DTState,
    states: np.ndarray,
    returns_to_go: np.ndarray,
    max_timestep: int,
    observation: np.ndarray,
) -> DTState:
    """Append one step per env (in place on ``state``, which must be a fresh copy): the new
    state ``(N, D)``, its scaled conditioning return ``(N,)`` and the current timestep; the
    action slot is set to 0 until the action is chosen."""
    n, k = state.actions.shape
    full = state.length >= k
    if full.any():  # drop the oldest step
        for arr in (state.states, state.actions, state.returns_to_go, state.timesteps):
            arr[full, :-1] = arr[full, 1:]
    slot = np.minimum(state.length, k - 1)
    rows = np.arange(n)
    state.states[rows, slot] = states
    state.actions[rows, slot] = 0
    state.returns_to_go[rows, slot] = returns_to_go
    state.timesteps[rows, slot] = np.minimum(state.timestep, max_timestep)
    return state._replace(
        length=np.minimum(state.length + 1, k),
        timestep=state.timestep + 1,
        last_observation=np.asarray(observation, dtype=np.float32).copy(),
    )
