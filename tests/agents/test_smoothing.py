"""Action smoothing (quantgym.agents.smoothing) and the imitation agents that decide from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quantgym.agents.smoothing import check_action_smoothing, smooth, smoothed_actions


def test_smooth_is_the_moving_average_restarted_at_episode_starts() -> None:
    p1 = np.array([[0.2, 0.8], [0.6, 0.4]])
    p2 = np.array([[0.9, 0.1], [0.0, 1.0]])
    first = smooth(p1, None, np.zeros(2, bool), 0.25)
    np.testing.assert_array_equal(first, p1)  # no state yet: every env starts
    second = smooth(p2, first, np.array([False, True]), 0.25)
    np.testing.assert_allclose(second[0], 0.75 * p1[0] + 0.25 * p2[0], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(second[1], p2[1])  # restarted
    np.testing.assert_array_equal(smooth(p2, first, np.zeros(2, bool), 1.0), p2)


def test_smoothing_stops_the_flips_of_probabilities_near_the_boundary() -> None:
    """Per-bar probabilities that wobble around 0.5 with a slight lean to action 1: the per-bar
    argmax flips about every other bar, the average holds action 1."""
    rng = np.random.default_rng(0)
    up = 0.58 + 0.1 * rng.standard_normal(200)
    logits = torch.from_numpy(np.log(np.stack([1 - up, up], axis=1)))
    raw, smoothed, state = [], [], None
    for t in range(200):
        row = logits[t : t + 1]
        raw.append(int(row.argmax()))
        action, state = smoothed_actions(row, state, np.array([t == 0]), 0.1, True)
        smoothed.append(int(action[0]))
    flips = lambda a: int(np.count_nonzero(np.diff(a)))  # noqa: E731
    assert flips(raw) > 50
    assert flips(smoothed[20:]) == 0 and smoothed[-1] == 1


@pytest.mark.parametrize("value", [0, -0.1, 1.5, float("nan"), True, "0.1", None])
def test_bad_smoothing_weights_are_refused(value) -> None:
    with pytest.raises(ValueError, match="action_smoothing"):
        check_action_smoothing(value)


def test_a_state_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="state must be the smoothed outputs"):
        smooth(np.ones((2, 3)), np.ones((3, 3)), np.zeros(2, bool), 0.5)
    with pytest.raises(ValueError, match="state must be the smoothed outputs.*got tuple"):
        smooth(np.ones((2, 3)), ("not", "an", "array"), np.zeros(2, bool), 0.5)
