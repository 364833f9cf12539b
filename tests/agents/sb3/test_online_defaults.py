"""``recent_bars`` of ppo_mlp / ppo_transformer (the policy reads only the newest bars of the
window) and the evidence-based defaults of the online agents."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import quantgym
from quantgym.agents.base import BaseAgent
from quantgym.agents.sb3 import (
    PPOMlpAgent,
    PPOTransformerAgent,
    RecentBarsExtractor,
)

WINDOW = 8
TINY = {"n_envs": 2, "n_steps": 32, "batch_size": 64, "n_epochs": 1}
WINDOWED = [PPOMlpAgent, PPOTransformerAgent]


def make_env() -> gym.Env:
    return gym.make(
        quantgym.ENV_ID, market_kwargs={"n_bars": 700}, window_size=WINDOW, episode_length=64
    )


def logits(agent, obs: np.ndarray) -> torch.Tensor:
    policy = agent.model.policy
    with torch.no_grad():
        dist = policy.get_distribution(torch.as_tensor(agent.normalize_observation(obs)))
    return dist.distribution.logits


@pytest.mark.parametrize("cls", WINDOWED)
def test_recent_bars_policy_reads_only_the_newest_bars(cls):
    env = make_env()
    agent = cls(**TINY, recent_bars=2).fit(env, train_steps=64, progress_bar=False)
    n_features = env.unwrapped.n_market_features
    obs, _ = env.reset(seed=1)
    obs = np.stack([obs, obs])
    older = obs.copy()
    older[:, : (WINDOW - 2) * n_features] += 3.0  # bars older than the newest two
    newest = obs.copy()
    newest[:, (WINDOW - 1) * n_features : WINDOW * n_features] += 3.0  # the newest bar
    torch.testing.assert_close(logits(agent, older), logits(agent, obs))
    assert not torch.allclose(logits(agent, newest), logits(agent, obs))


def test_mlp_without_recent_bars_reads_the_whole_window():
    """``ppo_mlp`` with ``recent_bars=None`` (online_quality's ``mlp_window``): the policy's
    input is every window row plus the position (the default ``account_features``), and the
    oldest bar alone moves its logits; with ``account_features=True`` it is the whole flat
    observation (SB3's flatten extractor)."""
    env = make_env()
    base = env.unwrapped
    agent = PPOMlpAgent(**TINY, recent_bars=None).fit(env, train_steps=64, progress_bar=False)
    assert agent.model.policy.features_extractor.features_dim == WINDOW * base.n_market_features + 1
    n_features = base.n_market_features
    obs, _ = env.reset(seed=1)
    obs = np.stack([obs, obs])
    oldest = obs.copy()
    oldest[:, :n_features] += 3.0
    assert not torch.allclose(logits(agent, oldest), logits(agent, obs))
    whole = PPOMlpAgent(**TINY, recent_bars=None, account_features=True).build(env)
    extractor = whole.model.policy.features_extractor
    assert not isinstance(extractor, RecentBarsExtractor)
    assert extractor.features_dim == env.observation_space.shape[0]


def test_mlp_recent_bars_uses_the_recent_bars_extractor():
    env = make_env()
    agent = PPOMlpAgent(**TINY, recent_bars=3).build(env)
    extractor = agent.model.policy.features_extractor
    base = env.unwrapped
    assert isinstance(extractor, RecentBarsExtractor)
    assert extractor.features_dim == 3 * base.n_market_features + 1  # + the position
    every = PPOMlpAgent(**TINY, recent_bars=3, account_features=True).build(env)
    assert every.model.policy.features_extractor.features_dim == (
        3 * base.n_market_features + base.n_account_features
    )


def test_transformer_recent_bars_sets_the_sequence_length_of_the_attention_maps(tmp_path):
    env = make_env()
    agent = PPOTransformerAgent(**TINY, recent_bars=4, n_layers=1, n_heads=2, d_model=16)
    agent.fit(env, train_steps=64, progress_bar=False)
    obs, _ = env.reset(seed=0)
    maps = agent.attention_weights(obs)
    assert maps.shape == (1, 1, 2, 4, 4)
    np.testing.assert_allclose(maps.sum(-1), 1.0, rtol=1e-5)
    agent.save(tmp_path / "agent")
    loaded = BaseAgent.load(tmp_path / "agent")
    assert loaded.config.recent_bars == 4
    np.testing.assert_array_equal(loaded.attention_weights(obs), maps)


@pytest.mark.parametrize("cls", WINDOWED)
def test_recent_bars_round_trips_through_save_and_load(cls, tmp_path):
    env = make_env()
    agent = cls(**TINY, recent_bars=2).fit(env, train_steps=64, progress_bar=False)
    agent.save(tmp_path / "agent")
    loaded = BaseAgent.load(tmp_path / "agent")
    obs = np.stack([env.reset(seed=s)[0] for s in range(3)])
    assert loaded.config.recent_bars == 2
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
    torch.testing.assert_close(logits(loaded, obs), logits(agent, obs))


@pytest.mark.parametrize("cls", WINDOWED)
@pytest.mark.parametrize("bars", [0, -1, 1.5, "2"])
def test_bad_recent_bars_raise_value_error(cls, bars):
    with pytest.raises(ValueError, match="recent_bars"):
        cls(recent_bars=bars)


@pytest.mark.parametrize("cls", WINDOWED)
def test_recent_bars_longer_than_the_window_raise_value_error(cls):
    with pytest.raises(ValueError, match="recent_bars|n_bars"):
        cls(**TINY, recent_bars=WINDOW + 1).build(make_env())


@pytest.mark.parametrize("cls", WINDOWED)
def test_every_changed_default_is_explained_in_the_config_docstring(cls):
    """A default that differs from the shared PPO defaults must be named in the agent's Config
    docstring (with its reason; the measurements are in docs/results.md)."""
    base = {f.name: f for f in dataclasses.fields(PPOMlpAgent.__mro__[1].Config)}
    doc = cls.Config.__doc__ or ""
    for field in dataclasses.fields(cls.Config):
        default = (
            field.default_factory()  # type: ignore[misc]
            if field.default_factory is not dataclasses.MISSING
            else field.default
        )
        if field.name in base:
            shared = base[field.name]
            shared_default = (
                shared.default_factory()  # type: ignore[misc]
                if shared.default_factory is not dataclasses.MISSING
                else shared.default
            )
            if default == shared_default:
                continue
        if default is None:
            continue
        assert field.name in doc, f"{cls.__name__}.Config does not justify {field.name}"
