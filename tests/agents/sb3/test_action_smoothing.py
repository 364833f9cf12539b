"""``action_smoothing`` for the online agents: the decision is read from a moving average of the
policy's action probabilities (training unchanged)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import quantgym  # noqa: F401  (registers the envs)
from quantgym import ENV_ID
from quantgym.agents import load_agent, make_agent

ENV_KWARGS = {"market_kwargs": {"n_bars": 600}, "window_size": 8, "episode_length": 40}
SMALL = {"n_envs": 2, "n_steps": 16, "batch_size": 32}


def trained(name: str, **kwargs):
    agent = make_agent(name, **SMALL, **kwargs)
    agent.fit(ENV_KWARGS, train_steps=64, progress_bar=False)
    return agent


def observations(n_envs: int = 3, n_steps: int = 30) -> list[np.ndarray]:
    """Observations of ``n_envs`` episodes under a fixed action pattern."""
    env = gym.make_vec(ENV_ID, num_envs=n_envs, **ENV_KWARGS)
    obs, _ = env.reset(seed=4, options={"start": [320, 400, 480][:n_envs]})
    out = [obs]
    for i in range(n_steps - 1):
        obs, *_ = env.step(np.full(n_envs, i % 3))
        out.append(obs)
    env.close()
    return out


@pytest.mark.parametrize("name", ["ppo_mlp", "ppo_lstm"])
def test_the_action_is_the_argmax_of_the_moving_average_of_the_probabilities(name):
    agent = trained(name, action_smoothing=0.3)
    plain = trained(name)  # the same seed and data: the same weights, no smoothing
    for p, q in zip(agent.model.policy.parameters(), plain.model.policy.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)  # training is unchanged
    state, plain_state, average = None, None, None
    start = np.ones(3, dtype=bool)
    for obs in observations():
        action, state = agent.predict(obs, state=state, episode_start=start)
        with torch.no_grad():
            logits = plain.action_scores(
                torch.from_numpy(obs.astype(np.float32)), plain_state, start
            )
        _, plain_state = plain.predict(obs, state=plain_state, episode_start=start)
        probs = torch.softmax(logits.double(), dim=-1).numpy()
        average = probs if average is None else 0.7 * average + 0.3 * probs
        np.testing.assert_array_equal(action, average.argmax(axis=1))
        np.testing.assert_allclose(state[1], average, rtol=1e-12, atol=1e-12)
        start = np.zeros(3, dtype=bool)


def test_episode_start_restarts_the_average_and_one_is_no_smoothing():
    agent = trained("ppo_mlp", action_smoothing=0.05)
    plain = trained("ppo_mlp")
    obs = observations()
    state = None
    for o in obs[:10]:
        _, state = agent.predict(o, state=state, episode_start=np.zeros(3, dtype=bool))
    restarted, _ = agent.predict(obs[10], state=state, episode_start=np.ones(3, dtype=bool))
    np.testing.assert_array_equal(restarted, plain.predict(obs[10])[0])
    single, single_state = agent.predict(obs[10][0])  # one observation, no state: a new episode
    assert np.ndim(single) == 0 and single == plain.predict(obs[10][0])[0]
    assert single_state[1].shape == (1, 3)
    agent.config.action_smoothing = 1.0
    for o in obs:
        np.testing.assert_array_equal(agent.predict(o)[0], plain.predict(o)[0])


def test_a_saved_agent_smooths_as_before(tmp_path):
    agent = trained("ppo_mlp", action_smoothing=0.1)
    agent.save(tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent")
    assert loaded.config.action_smoothing == 0.1
    state, loaded_state = None, None
    for obs in observations():
        action, state = agent.predict(obs, state=state)
        loaded_action, loaded_state = loaded.predict(obs, state=loaded_state)
        np.testing.assert_array_equal(action, loaded_action)
        np.testing.assert_array_equal(state[1], loaded_state[1])


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.5, True, "0.1", float("nan")])
def test_bad_values_are_named(bad):
    with pytest.raises(ValueError, match="action_smoothing"):
        make_agent("ppo_mlp", action_smoothing=bad)


def test_continuous_actions_are_the_moving_average_of_the_policy_actions():
    kwargs = {**ENV_KWARGS, "action_type": "continuous"}
    agent = make_agent("ppo_mlp", action_smoothing=0.25, **SMALL)
    agent.fit(kwargs, train_steps=64, progress_bar=False)
    env = gym.make(ENV_ID, **kwargs)
    obs, _ = env.reset(seed=2)
    state, average = None, None
    for _ in range(20):
        action, state = agent.predict(obs, state=state)
        agent.config.action_smoothing = 1.0
        raw, _ = agent.predict(obs)
        agent.config.action_smoothing = 0.25
        average = raw if average is None else 0.75 * average + 0.25 * raw
        np.testing.assert_allclose(action, average, rtol=1e-6, atol=1e-7)
        assert action.shape == raw.shape and action.dtype == raw.dtype
        obs, *_ = env.step(action)
