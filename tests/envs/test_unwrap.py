"""Finding the trading env behind wrappers."""

from __future__ import annotations

import gymnasium as gym
import pytest
from stable_baselines3.common.vec_env import VecNormalize

from quantgym import ENV_ID
from quantgym.envs import TradingEnv, TradingVectorEnv, to_sb3
from quantgym.envs.unwrap import find_trading_env, iter_env_layers


def test_finds_single_env_behind_gymnasium_wrappers():
    env = gym.wrappers.RecordEpisodeStatistics(gym.make(ENV_ID, episode_length=10))
    assert isinstance(find_trading_env(env), TradingEnv)


def test_finds_vector_env_behind_sb3_adapter_and_vecnormalize():
    vec = gym.make_vec(ENV_ID, num_envs=2, episode_length=10)
    wrapped = VecNormalize(to_sb3(vec))
    assert find_trading_env(wrapped) is vec
    layers = list(iter_env_layers(wrapped))
    assert layers[0] is wrapped and vec in layers and len(layers) == len({id(x) for x in layers})


def test_rejects_other_objects():
    with pytest.raises(ValueError, match="TradingVectorEnv"):
        find_trading_env(object())
    assert isinstance(find_trading_env(TradingVectorEnv(1, episode_length=5)), TradingVectorEnv)
