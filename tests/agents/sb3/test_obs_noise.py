"""``obs_noise``: training-time Gaussian noise on the market columns of ``TradingEnv``
observations (:class:`~quantgym.agents.sb3.obs_noise.MarketNoiseVecEnv`)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import is_vecenv_wrapped

import quantgym  # noqa: F401  (registers the envs)
from quantgym import ENV_ID
from quantgym.agents import make_agent
from quantgym.agents.sb3.obs_noise import MarketNoiseVecEnv
from quantgym.envs import to_sb3

ENV_KWARGS = {"market_kwargs": {"n_bars": 600}, "window_size": 8, "episode_length": 50}
MARKET = gym.make(ENV_ID, **ENV_KWARGS).unwrapped.layout.market_dim  # the window's columns


def vec_env():
    return to_sb3(gym.make_vec(ENV_ID, num_envs=3, **ENV_KWARGS))


def noisy_and_clean(sigma: float, seed: int, step: int = 0, n_steps: int = 60):
    """Observations of the same actions through the wrapper and without it."""
    clean_env, noisy_env = vec_env(), MarketNoiseVecEnv(vec_env(), sigma, MARKET, seed, step)
    clean_env.seed(1), noisy_env.seed(1)
    clean, noisy = [clean_env.reset()], [noisy_env.reset()]
    for i in range(n_steps):
        actions = np.full(3, i % 3)
        clean.append(clean_env.step(actions)[0])
        noisy.append(noisy_env.step(actions)[0])
    return np.stack(clean), np.stack(noisy)


def test_noise_is_on_the_market_columns_only_with_the_stated_spread():
    clean, noisy = noisy_and_clean(0.5, seed=7)
    assert clean.shape[-1] > MARKET  # the account features follow the window
    np.testing.assert_array_equal(noisy[..., MARKET:], clean[..., MARKET:])
    noise = (noisy[..., :MARKET] - clean[..., :MARKET]).ravel()
    assert abs(noise.mean()) < 0.02 and abs(noise.std() - 0.5) < 0.02  # ~17,000 draws


def test_the_noise_stream_is_set_by_seed_and_step():
    a, b = noisy_and_clean(0.5, seed=7)[1], noisy_and_clean(0.5, seed=7)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, noisy_and_clean(0.5, seed=8)[1])
    # a stream started at step 10 draws, at its first step, what step 11 of a fresh one drew
    clean, late = noisy_and_clean(0.5, seed=7, step=10, n_steps=1)
    _, fresh = noisy_and_clean(0.5, seed=7, n_steps=11)
    np.testing.assert_allclose(late[1] - clean[1], fresh[11] - noisy_and_clean(0.5, 7)[0][11],
                               rtol=0, atol=1e-5)  # fmt: skip
    expected = np.random.default_rng([7, 11]).standard_normal((3, MARKET)) * 0.5
    np.testing.assert_allclose(late[1, :, :MARKET] - clean[1, :, :MARKET], expected, atol=1e-5)


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="obs_noise must be a number >= 0"):
        make_agent("ppo_mlp", obs_noise=-0.1)
    with pytest.raises(ValueError, match="obs_noise must be a number > 0"):
        MarketNoiseVecEnv(vec_env(), 0.0, 10, 0)
    with pytest.raises(ValueError, match="n_columns"):
        MarketNoiseVecEnv(vec_env(), 0.5, 10_000, 0)
    with pytest.raises(ValueError, match="obs_noise needs TradingEnv-v0"):
        make_agent("ppo_eiie", obs_noise=0.3, n_envs=2).fit({}, train_steps=64, progress_bar=False)


def test_agent_trains_behind_the_noise_and_predicts_without_it():
    agent = make_agent("ppo_mlp", obs_noise=0.5, n_envs=2, n_steps=16, batch_size=32)
    agent.fit(ENV_KWARGS, train_steps=32, progress_bar=False)
    assert is_vecenv_wrapped(agent.model.get_env(), MarketNoiseVecEnv)
    env = gym.make(ENV_ID, **ENV_KWARGS)
    obs, _ = env.reset(seed=0)
    first = agent.predict(obs, deterministic=True)[0]
    assert all(agent.predict(obs, deterministic=True)[0] == first for _ in range(5))
    plain = make_agent("ppo_mlp", n_envs=2, n_steps=16, batch_size=32)
    plain.fit(ENV_KWARGS, train_steps=32, progress_bar=False)
    assert not is_vecenv_wrapped(plain.model.get_env(), MarketNoiseVecEnv)
