"""Episode: one episode's arrays and what they say about its end."""

from __future__ import annotations

import numpy as np

from quantgym.datasets.episode import Episode


def test_episode_end_and_return():
    episode = Episode(
        observations=np.zeros((4, 2), np.float32),
        actions=np.array([0, 1, 2]),
        rewards=np.array([0.5, -0.25, 1.0]),
        terminations=np.array([False, False, True]),
        truncations=np.zeros(3, bool),
    )
    assert len(episode) == 3 and episode.terminated and not episode.truncated
    assert episode.episode_return == 1.25 and episode.infos == {}
    empty = Episode(
        np.zeros((1, 2)), np.zeros(0), np.zeros(0), np.zeros(0, bool), np.zeros(0, bool)
    )
    assert len(empty) == 0 and not empty.terminated and not empty.truncated
