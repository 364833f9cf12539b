"""Env-bound policies act on their env's current bar and refuse any other observation."""

from __future__ import annotations

import pytest

from quantgym.envs import TradingEnv, TradingVectorEnv
from quantgym.policies.experts import RegimeExpert
from quantgym.policies.rules import (
    BuyAndHoldAgent,
    MeanReversionAgent,
    RandomAgent,
    SMACrossoverAgent,
)


@pytest.mark.parametrize("agent_cls", [SMACrossoverAgent, MeanReversionAgent, RegimeExpert])
def test_single_env_bound_agent_accepts_the_current_and_refuses_a_stale_observation(agent_cls):
    env = TradingEnv(episode_length=50)
    obs, _ = env.reset(seed=0)
    agent = agent_cls(env=env)
    action, _ = agent.predict(obs)
    stale = obs
    obs, *_ = env.step(int(action))
    agent.predict(obs)  # the current one is fine
    with pytest.raises(ValueError, match="not the bound env's current observation"):
        agent.predict(stale)


def test_foreign_env_and_edited_position_are_refused():
    env, other = TradingEnv(episode_length=50), TradingEnv(episode_length=50)
    obs, _ = env.reset(seed=0)
    foreign, _ = other.reset(seed=1)
    agent = SMACrossoverAgent(env=env)
    with pytest.raises(ValueError, match="market window"):
        agent.predict(foreign)
    edited = obs.copy()
    edited[agent.binding.position_index] = 1.0
    with pytest.raises(ValueError, match="position"):
        agent.predict(edited)


def test_vector_env_bound_agent_checks_every_row():
    venv = TradingVectorEnv(3, episode_length=20)
    obs, _ = venv.reset(seed=0)
    agent = SMACrossoverAgent(env=venv)
    actions, _ = agent.predict(obs)
    assert actions.shape == (3,)
    shuffled = obs[[0, 2, 1]]
    with pytest.raises(ValueError, match="row 1"):
        agent.predict(shuffled)


@pytest.mark.parametrize("agent_cls", [RandomAgent, BuyAndHoldAgent])
def test_agents_that_read_no_bar_accept_any_observation_of_the_right_shape(agent_cls):
    env, other = TradingEnv(episode_length=50), TradingEnv(episode_length=50)
    env.reset(seed=0)
    foreign, _ = other.reset(seed=1)
    action, _ = agent_cls(env=env).predict(foreign)
    assert env.action_space.contains(int(action))
