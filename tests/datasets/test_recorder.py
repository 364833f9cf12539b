"""Recording buffers and the cut of NEXT_STEP autoreset streams into episodes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from quantgym.datasets.recorder import RolloutBuffers, cut_episodes


def flags(n: int, k: int, done: list[tuple[int, int]]) -> np.ndarray:
    out = np.zeros((n, k), bool)
    for env, step in done:
        out[env, step] = True
    return out


def test_cut_drops_autoreset_steps_and_keeps_final_observations():
    # env 0: episode 0..1 (terminated), autoreset 2, episode 3..5 (cut); env 1: one cut episode
    terminated = flags(2, 6, [(0, 1)])
    cut = cut_episodes(terminated, np.zeros((2, 6), bool))
    assert cut.steps.tolist() == [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert cut.episode_lengths.tolist() == [2, 3, 6]
    assert cut.n_observations.tolist() == [7, 7]  # rows 0..6 of each stream
    assert cut.terminations.tolist() == [False, True] + [False] * 9
    assert np.flatnonzero(cut.truncations).tolist() == [4, 10]  # the two cut episodes


def test_cut_by_steps_and_by_episodes():
    truncated = flags(3, 5, [(0, 1), (1, 1), (2, 3)])
    by_steps = cut_episodes(np.zeros((3, 5), bool), truncated, n_steps=10)
    # 12 transitions (step 2 of envs 0 and 1, step 4 of env 2 are autoreset steps); the 2 in
    # excess are dropped from the final step of the last envs that took one.
    assert by_steps.steps.tolist() == [0, 1, 3, 5, 6, 8, 10, 11, 12, 13]
    assert by_steps.episode_lengths.tolist() == [2, 1, 2, 1, 4]
    assert by_steps.n_observations.tolist() == [5, 5, 5]
    by_episodes = cut_episodes(np.zeros((3, 5), bool), truncated, n_episodes=2)
    assert by_episodes.episode_lengths.tolist() == [2, 2]  # the first two to finish
    assert by_episodes.n_observations.tolist() == [3, 3, 0]
    with pytest.raises(ValueError, match="no transition"):
        cut_episodes(np.zeros((1, 2), bool), np.zeros((1, 2), bool), n_episodes=1)


def test_buffers_grow_and_give_the_episodes():
    space = gym.spaces.Box(-1, 1, (2,), np.float32)
    buf = RolloutBuffers(2, 1, space, continuous=False, act_shape=())
    for k in range(5):
        buf.ensure(k)
        buf.record_observations(k, np.full((2, 2), k, np.float32), {})
        buf.actions[:, k] = k
        buf.rewards[:, k] = 0.5
        buf.terminated[:, k] = False
        buf.truncated[:, k] = k == 2
        buf.record_infos(k, {"equity": np.array([1.0, 2.0])})
    buf.record_observations(5, np.full((2, 2), 5, np.float32), {})
    assert buf.capacity >= 5
    arrays = buf.episodes(5, n_steps=8, n_episodes=None)
    assert arrays["episode_lengths"].tolist() == [3, 1, 3, 1]
    assert arrays["actions"].tolist() == [0, 1, 2, 4, 0, 1, 2, 4]  # step 3 is an autoreset
    assert arrays["observations"][:, 0].tolist() == [0, 1, 2, 3, 4, 5] * 2
    assert arrays["infos"]["equity"].tolist() == [1.0] * 4 + [2.0] * 4
