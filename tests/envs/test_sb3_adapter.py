"""The SB3 VecEnv adapter: same-step autoreset and training with PPO / RecurrentPPO."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from quantgym import ENV_ID
from quantgym.envs import TradingVectorEnv, to_sb3


def make(num_envs=8, **kwargs):
    kwargs.setdefault("window_size", 8)
    kwargs.setdefault("episode_length", 40)
    return to_sb3(gym.make_vec(ENV_ID, num_envs=num_envs, **kwargs))


def test_same_step_autoreset_with_terminal_observation():
    venv = make(num_envs=2, episode_length=3)
    assert isinstance(venv, VecEnv)
    venv.seed(5)
    obs = venv.reset()
    reference = TradingVectorEnv(2, window_size=8, episode_length=3)
    ref_obs, _ = reference.reset(seed=5)
    np.testing.assert_array_equal(obs, ref_obs)
    for _ in range(3):
        obs, rewards, dones, infos = venv.step(np.array([2, 0]))
        ref_obs, ref_rewards, *_ = reference.step(np.array([2, 0]))
        np.testing.assert_allclose(rewards, ref_rewards.astype(np.float32))
    assert dones.all()
    for i in range(2):
        np.testing.assert_array_equal(infos[i]["terminal_observation"], ref_obs[i])
        assert infos[i]["TimeLimit.truncated"] is True
        assert (
            infos[i]["equity"] == reference.equity[i] != 10_000.0
        )  # the final, not the reset, equity
    ref_obs, ref_rewards, *_ = reference.step(np.array([1, 1]))  # NEXT_STEP reset in the native env
    np.testing.assert_array_equal(obs, ref_obs)  # already reset in the adapter, same starts
    np.testing.assert_array_equal(obs[:, -5:], 0.0)


def test_attribute_access():
    venv = make(num_envs=3)
    venv.reset()
    assert venv.get_attr("window_size") == [8, 8, 8]
    assert len(venv.get_attr("bars", indices=[0, 2])) == 2
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 3
    with pytest.raises(ValueError, match="TradingVectorEnv"):
        to_sb3(object())


@pytest.mark.parametrize("algo", ["ppo", "recurrent_ppo"])
def test_sb3_algorithms_learn_through_adapter_with_vecnormalize(algo):
    venv = VecNormalize(VecMonitor(make(num_envs=8)))
    cls, policy = (PPO, "MlpPolicy") if algo == "ppo" else (RecurrentPPO, "MlpLstmPolicy")
    kwargs = (
        {"policy_kwargs": {"lstm_hidden_size": 16, "net_arch": [16]}}
        if algo == "recurrent_ppo"
        else {}
    )
    model = cls(policy, venv, n_steps=32, batch_size=128, n_epochs=1, seed=0, verbose=0, **kwargs)
    model.learn(total_timesteps=512)
    assert model.num_timesteps >= 512
    assert venv.obs_rms.count > 256  # statistics were updated from our observations
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (8,)


@pytest.mark.parametrize("mode, policy", [("flat", "MlpPolicy"), ("dict", "MultiInputPolicy")])
def test_portfolio_vector_env_trains_through_the_adapter(mode, policy):
    from quantgym import PORTFOLIO_ENV_ID

    kwargs = {"market_kwargs": {"n_bars": 600, "n_assets": 4}, "normalize_window": 40,
              "window_size": 4, "episode_length": 10, "observation_mode": mode}  # fmt: skip
    venv = to_sb3(gym.make_vec(PORTFOLIO_ENV_ID, num_envs=4, **kwargs))
    obs = venv.reset()
    model = PPO(policy, venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, verbose=0)
    model.learn(total_timesteps=128)
    assert model.num_timesteps >= 128
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (4, 4)
    _, _, dones, infos = venv.step(np.full((4, 4), 0.25, dtype=np.float32))
    for _ in range(12):
        _, _, dones, infos = venv.step(np.full((4, 4), 0.25, dtype=np.float32))
        if dones.any():
            break
    finished = int(np.flatnonzero(dones)[0])
    terminal = infos[finished]["terminal_observation"]
    assert (
        (set(terminal) == {"windows", "cross_section", "weights", "mask"})
        if mode == "dict"
        else terminal.ndim == 1
    )
