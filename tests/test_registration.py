"""``import quantgym`` registers the env under its public id and the ``quantgym/`` namespace."""

from __future__ import annotations

import gymnasium as gym

import quantgym
from quantgym.envs import PortfolioEnv, PortfolioVectorEnv, TradingEnv, TradingVectorEnv


def test_the_public_ids_make_the_trading_env():
    assert quantgym.ENV_ID == "TradingEnv-v0"  # what the README promises users
    for env_id in (quantgym.ENV_ID, "quantgym/TradingEnv-v0"):
        env = gym.make(env_id, episode_length=5)
        assert isinstance(env.unwrapped, TradingEnv)
        venv = gym.make_vec(env_id, num_envs=2, episode_length=5)
        assert isinstance(venv, TradingVectorEnv)


def test_the_portfolio_env_ids_make_the_portfolio_env():
    assert quantgym.PORTFOLIO_ENV_ID == "PortfolioEnv-v0"
    kwargs = {"market_kwargs": {"n_bars": 600}, "normalize_window": 40, "episode_length": 5}
    for env_id in (quantgym.PORTFOLIO_ENV_ID, "quantgym/PortfolioEnv-v0"):
        assert isinstance(gym.make(env_id, **kwargs).unwrapped, PortfolioEnv)
        assert isinstance(gym.make_vec(env_id, num_envs=2, **kwargs), PortfolioVectorEnv)
