"""Training: one budget keyword for every kind of learner, train data from the train range only,
steps reported, seeding."""

from __future__ import annotations

import dataclasses
import random

import gymnasium as gym
import numpy as np
import pytest

import quantgym
from quantgym.agents import agent_class
from quantgym.benchmark.listing import cells_for
from quantgym.benchmark.protocol import build_market, plan_for
from quantgym.benchmark.training import (
    fit_agent,
    offline_dataset,
    seed_everything,
    train_agent,
    trained_steps,
)
from tests.benchmark.conftest import tiny_suite


class OnlineRecorder:
    """An online learner (it has ``fit``) that records what ``fit`` got."""

    def __init__(self, **kwargs) -> None:
        self.calls: list[dict] = []

    def fit(self, env, train_steps=None, progress_bar=True):
        self.calls.append(
            {
                "train_steps": train_steps,
                "progress_bar": progress_bar,
                "last_bar": int(env.unwrapped.market.last_bar),
            }
        )
        return self


class OfflineRecorder(OnlineRecorder):
    """An offline learner (``offline = True``) that records what ``fit`` got."""

    offline = True

    def fit(self, dataset, train_steps=None, progress_bar=True):
        bars = np.asarray(dataset.infos["bar"])
        self.calls.append(
            {
                "train_steps": train_steps,
                "progress_bar": progress_bar,
                "last_bar": int(bars.max()),
                "first_bar": int(bars.min()),
                "n_bars": int(bars.size),
                "env_kwargs": dict(dataset.metadata["env_kwargs"]),
            }
        )
        return self


def _cell_and_train(agent: str = "bc", **changes):
    cell = cells_for(tiny_suite(agents=[agent], dataset_steps=300))[0][0]
    cell = dataclasses.replace(cell, **changes)
    market, first_bar = build_market(cell)
    return cell, market, plan_for(cell, market, first_bar).trains[0]


@pytest.mark.parametrize("cls", [OnlineRecorder, OfflineRecorder])
def test_every_learner_gets_its_budget_as_train_steps_and_only_the_train_range(cls) -> None:
    cell, market, train = _cell_and_train(train_steps=64)
    agent, steps = train_agent(cls, cell, market, train)
    assert len(agent.calls) == 1
    call = agent.calls[0]
    assert (call["train_steps"], call["progress_bar"]) == (64, False)
    assert call["last_bar"] <= train.end
    assert steps == 64


def test_no_budget_leaves_the_agent_default() -> None:
    cell, market, train = _cell_and_train(train_steps=None)
    agent, steps = train_agent(OnlineRecorder, cell, market, train)
    assert agent.calls[0]["train_steps"] is None and steps is None


def test_fit_agent_passes_train_steps_and_the_other_keywords() -> None:
    agent = OnlineRecorder()
    env = gym.make(quantgym.ENV_ID)
    assert fit_agent(agent, env, train_steps=32, progress_bar=True) is agent
    assert agent.calls[0]["train_steps"] == 32 and agent.calls[0]["progress_bar"] is True
    fit_agent(agent, env)
    assert agent.calls[1]["train_steps"] is None


def test_offline_training_data_comes_only_from_the_train_range() -> None:
    """The dataset a learner is fitted on holds only bars of its train range."""
    cell, market, train = _cell_and_train()
    agent, _ = train_agent(OfflineRecorder, cell, market, train)
    seen = agent.calls[0]
    assert seen["n_bars"] >= 300
    assert seen["first_bar"] >= train.start and seen["last_bar"] <= train.end
    # its metadata rebuilds the cell's own series (the supervised agent relabels from it)
    kwargs = {k: v for k, v in seen["env_kwargs"].items() if k not in ("start", "end")}
    rebuilt = gym.make(quantgym.ENV_ID, **kwargs).unwrapped.market
    np.testing.assert_array_equal(rebuilt.close, market.close)
    assert agent_class("bc").offline


def test_offline_dataset_cache_returns_an_equal_dataset(tmp_path) -> None:
    cell, market, train = _cell_and_train()
    fresh = offline_dataset(cell, market, train, tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    cached = offline_dataset(cell, market, train, tmp_path)
    np.testing.assert_array_equal(cached.actions, fresh.actions)
    np.testing.assert_allclose(cached.rewards, fresh.rewards, rtol=0, atol=0)


def test_an_agent_that_does_not_learn_is_not_trained() -> None:
    cell, market, train = _cell_and_train("flat")
    with pytest.raises(ValueError, match="nothing to train"):
        train_agent(agent_class("flat"), cell, market, train)


def test_trained_steps_reads_the_agent_or_its_model_else_the_budget() -> None:
    class Counted:
        num_timesteps = 2048

    class Wrapped:
        model = Counted()

    assert trained_steps(Counted(), 64) == 2048
    assert trained_steps(Wrapped(), 64) == 2048
    assert trained_steps(object(), 64) == 64
    assert trained_steps(object(), None) is None


def test_seed_everything_repeats_the_global_generators() -> None:
    seed_everything(5, torch_needed=False)
    first = (random.random(), np.random.random())  # noqa: NPY002 - the legacy global RNG
    seed_everything(5, torch_needed=False)
    assert (random.random(), np.random.random()) == first  # noqa: NPY002
