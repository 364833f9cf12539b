"""Portfolio logs: ``collect`` records ``PortfolioEnv-v0`` (single and vector, Box weight
actions) into a dataset an offline agent (``bc``) trains on and then trades the env with."""

import gymnasium as gym
import numpy as np
import pytest

from quantgym import PORTFOLIO_ENV_ID
from quantgym.agents import make_agent
from quantgym.datasets import TrajectoryDataset, collect

ENV_KWARGS = {"market_kwargs": {"n_bars": 600}, "window_size": 4, "episode_length": 40}


@pytest.fixture(scope="module")
def vector_log():
    env = gym.make_vec(PORTFOLIO_ENV_ID, num_envs=3, **ENV_KWARGS)
    return collect(env, make_agent("olmar", env=env), n_steps=240, seed=0, progress=False)


def test_vector_log_records_weight_actions(vector_log):
    assert vector_log.n_steps == 240
    assert vector_log.metadata["env_id"] == PORTFOLIO_ENV_ID
    assert vector_log.metadata["action_space"] == {
        "type": "continuous", "shape": [8], "low": 0.0, "high": 1.0,
    }  # fmt: skip
    actions = np.asarray(vector_log.actions)
    assert actions.shape == (240, 8)
    assert actions.min() >= 0.0 and actions.sum(1).max() <= 1 + 1e-6
    assert np.ptp(actions, axis=0).max() > 0.05  # OLMAR moves its weights
    equity = np.asarray(vector_log.infos["equity"])
    assert np.all(equity > 0)


def test_single_env_log_saves_losslessly_and_sums_to_the_log_growth(tmp_path):
    env = gym.make(PORTFOLIO_ENV_ID, **ENV_KWARGS)
    log = collect(env, make_agent("ucrp", env=env), n_steps=60, seed=3, progress=False)
    log.save(tmp_path / "log")
    loaded = TrajectoryDataset.load(tmp_path / "log")
    np.testing.assert_array_equal(loaded.actions, log.actions)
    np.testing.assert_allclose(np.asarray(log.actions)[0], np.full(8, 1 / 8), rtol=0, atol=1e-7)
    # log growth: rewards are log(V_t+1 / V_t)
    first = log.episode_lengths[0]
    growth = np.log(np.asarray(log.infos["equity"])[first - 1] / 10_000.0)  # initial equity
    np.testing.assert_allclose(np.sum(log.rewards[:first]), growth, rtol=0, atol=1e-9)


def test_bc_learns_from_a_portfolio_log_and_trades_the_env(vector_log):
    bc = make_agent("bc", recent_bars=None, account_features=True, hidden_units=[32])
    bc.fit(vector_log, train_steps=20, progress_bar=False)
    assert (bc.config.action_low, bc.config.action_high) == (0.0, 1.0)
    env = gym.make(PORTFOLIO_ENV_ID, **ENV_KWARGS)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        action, _ = bc.predict(obs)
        assert action.shape == (8,) and action.min() >= 0.0
        obs, reward, *_ = env.step(action)  # the env accepts it
        assert np.isfinite(reward)


def test_bc_refuses_a_trading_env_column_layout_on_a_portfolio_log(vector_log):
    with pytest.raises(ValueError, match="recent_bars=None and account_features=True"):
        make_agent("bc").fit(vector_log, train_steps=2, progress_bar=False)
