"""``import quantgym`` registers the env under its public id and the ``quantgym/`` namespace."""

from __future__ import annotations

import gymnasium as gym

import quantgym
from quantgym.envs import TradingEnv, TradingVectorEnv


def test_the_public_ids_make_the_trading_env():
    assert quantgym.ENV_ID == "TradingEnv-v0"  # what the README promises users
    for env_id in (quantgym.ENV_ID, "quantgym/TradingEnv-v0"):
        env = gym.make(env_id, episode_length=5)
        assert isinstance(env.unwrapped, TradingEnv)
        venv = gym.make_vec(env_id, num_envs=2, episode_length=5)
        assert isinstance(venv, TradingVectorEnv)
