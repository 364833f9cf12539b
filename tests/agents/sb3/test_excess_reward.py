"""``ExcessLogReturnVecEnv``: the training reward of the allocating agents is the env's log
growth minus the uniform portfolio's log growth over the same bar."""

import gymnasium as gym
import numpy as np
import pytest

from quantgym import PORTFOLIO_ENV_ID
from quantgym.agents.sb3.excess_reward import ExcessLogReturnVecEnv, uniform_log_growth
from quantgym.envs import to_sb3

ENV_KWARGS = {"market_kwargs": {"n_bars": 600}, "window_size": 4, "episode_length": 5}
REWARD_ATOL = 1e-6  # the SB3 adapter's rewards are float32


def test_uniform_log_growth_by_hand():
    close = np.array([[100.0, 50.0], [110.0, 50.0], [110.0, 55.0], [121.0, 0.0]])
    tradable = np.array([[True, True], [True, True], [True, False], [True, False]])
    expected = [np.log((1.1 + 1.0) / 2), np.log((1.0 + 1.1) / 2), np.log(1.1), 0.0]
    np.testing.assert_allclose(uniform_log_growth(close, tradable), expected, rtol=0, atol=1e-15)


def test_no_tradable_asset_gives_zero():
    close = np.array([[100.0], [0.0]])
    np.testing.assert_array_equal(uniform_log_growth(close, np.array([[False], [False]])), [0, 0])


@pytest.mark.parametrize("vector", [True, False])
def test_reward_is_the_env_reward_minus_the_uniform_growth_of_the_bar(vector):
    if vector:

        def make():  # noqa: E306
            return to_sb3(gym.make_vec(PORTFOLIO_ENV_ID, num_envs=2, **ENV_KWARGS))
    else:
        from stable_baselines3.common.vec_env import DummyVecEnv

        def make():
            return DummyVecEnv([lambda: gym.make(PORTFOLIO_ENV_ID, **ENV_KWARGS)] * 2)

    plain, excess = make(), ExcessLogReturnVecEnv(make())
    for venv in (plain, excess):
        venv.seed(3)
        venv.reset()
    panel = gym.make(PORTFOLIO_ENV_ID, **ENV_KWARGS).unwrapped.panel  # the same seeded market
    bench = uniform_log_growth(panel.mark_close, panel.tradable)
    rng = np.random.default_rng(0)
    for _ in range(12):  # crosses an episode end (autoreset)
        bars = excess._decision_bars()
        actions = rng.dirichlet(np.ones(panel.n_assets + 1), size=2)[:, :-1].astype(np.float32)
        plain.step_async(actions)
        excess.step_async(actions)
        _, r_plain, d_plain, _ = plain.step_wait()
        _, r_excess, d_excess, _ = excess.step_wait()
        np.testing.assert_array_equal(d_plain, d_excess)
        np.testing.assert_allclose(r_excess, r_plain - bench[bars], rtol=0, atol=REWARD_ATOL)
        assert np.all(np.abs(bench[bars]) > 0)  # the test would see a missing subtraction


def test_step_wait_before_step_async_raises():
    venv = ExcessLogReturnVecEnv(to_sb3(gym.make_vec(PORTFOLIO_ENV_ID, num_envs=1, **ENV_KWARGS)))
    venv.reset()
    with pytest.raises(ValueError, match="step_async"):
        venv.step_wait()


@pytest.mark.parametrize("excess_reward", [True, False])
def test_agent_trains_on_the_excess_reward_unless_told_not_to(excess_reward):
    from quantgym.agents import make_agent

    agent = make_agent(
        "ppo_eiie", excess_reward=excess_reward, n_envs=2, n_steps=16, batch_size=16, n_epochs=1
    )
    agent.fit(dict(ENV_KWARGS), train_steps=32, progress_bar=False)
    layers, venv = [], agent.model.get_env()
    while venv is not None:
        layers.append(type(venv))
        venv = getattr(venv, "venv", None)
    assert (ExcessLogReturnVecEnv in layers) is excess_reward
