"""Binding portfolio baselines to the env: masks, episode origins, finding the env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from quantgym import PORTFOLIO_ENV_ID
from quantgym.envs import to_sb3
from quantgym.policies.portfolio import UCRPAgent
from quantgym.policies.portfolio.binding import PortfolioBinding, find_portfolio_env, masked_weights
from tests.policies.portfolio.portfolio_env_frames import ZERO_COSTS, close_panel, make_env


def test_masked_weights_by_hand():
    weights = np.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.0], [0.2, 0.0, 0.0]])
    tradable = np.array([[True, False, True], [False, False, True], [True, True, True]])
    out = masked_weights(weights, tradable)
    np.testing.assert_allclose(out[0], [0.5 / 0.7, 0.0, 0.2 / 0.7])  # S1's 0.3 shared out
    np.testing.assert_allclose(out[1], [0.0, 0.0, 0.0])  # only untradable weight: cash
    np.testing.assert_allclose(out[2], [0.2, 0.0, 0.0])  # cash share kept


def test_origins_follow_episode_starts_and_jumps():
    agent = UCRPAgent(env=make_env(close_panel(60)))
    np.testing.assert_array_equal(agent.origins(np.array([5]), None), [5])
    np.testing.assert_array_equal(agent.origins(np.array([6]), None), [5])  # next bar
    np.testing.assert_array_equal(agent.origins(np.array([6]), None), [5])  # same bar again
    np.testing.assert_array_equal(agent.origins(np.array([20]), None), [20])  # a jump: new episode
    np.testing.assert_array_equal(agent.origins(np.array([21]), np.array([True])), [21])
    assert (
        UCRPAgent(env=make_env(close_panel(60)), origin="panel").origins(np.array([9]), None) == 0
    )


def test_the_env_is_found_behind_wrappers_and_the_sb3_adapter():
    frame = close_panel(60)
    vec = gym.make_vec(PORTFOLIO_ENV_ID, num_envs=2, data=frame, features=(), window_size=1,
                       **ZERO_COSTS)  # fmt: skip
    assert find_portfolio_env(to_sb3(vec)) is vec
    binding = PortfolioBinding(to_sb3(vec))
    assert binding.is_vector and binding.num_envs == 2 and binding.n_assets == 4
    with pytest.raises(ValueError, match="vector env has 2"):
        binding.bars(3)
    with pytest.raises(ValueError, match="PortfolioEnv"):
        find_portfolio_env(object())
