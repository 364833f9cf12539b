"""TrainableAgent: one budget keyword (``train_steps``) for every learner, and agent folders
saved before the rename (``total_timesteps`` / ``n_steps`` in agent.json, classes under their
old module paths) still load."""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from quantgym import ENV_ID
from quantgym.agents import TrainableAgent, agent_class, load_agent, make_agent
from quantgym.agents.base import rename_config_keys

pytest.importorskip("d3rlpy")

ENV_KWARGS = {"market_kwargs": {"n_bars": 400}, "window_size": 4, "episode_length": 40}
DATA_ENV = {"episode_length": 60, "window_size": 4}
LEARNERS = [
    "ppo_mlp",
    "ppo_lstm",
    "ppo_transformer",
    "bc",
    "cql",
    "bcq",
    "dt_d3rlpy",
    "dt",
    "qdt",
    "supervised",
]
# agent -> (tiny config, budget key before the rename, class path before the move or None)
OLD_FORMAT = {
    "ppo_mlp": (
        {"n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1},
        "total_timesteps",
        "quantgym.agents.sb3_agents:PPOMlpAgent",
    ),
    "bc": (
        {"hidden_units": [8], "batch_size": 16},
        "n_steps",
        "quantgym.agents.d3rlpy_agents:BCAgent",
    ),
    "dt": ({"context_length": 4, "n_layers": 1, "d_model": 8, "batch_size": 8}, "n_steps", None),
    "supervised": (
        {"hidden_units": [8], "eval_every": 2, "batch_size": 16, "verbose": False},
        "n_steps",
        None,
    ),
}


def test_rename_config_keys_maps_old_keys_and_keeps_new_ones() -> None:
    renamed = {"n_steps": "train_steps"}
    assert rename_config_keys({"n_steps": 5, "seed": 1}, renamed) == {"train_steps": 5, "seed": 1}
    assert rename_config_keys({"n_steps": 5, "train_steps": 7}, renamed) == {"train_steps": 7}
    assert rename_config_keys({"seed": 1}, renamed) == {"seed": 1}


@pytest.mark.parametrize("name", LEARNERS)
def test_every_learner_takes_its_budget_as_train_steps(name: str) -> None:
    cls = agent_class(name)
    assert issubclass(cls, TrainableAgent)
    assert "train_steps" in inspect.signature(cls.fit).parameters
    fields = {f.name: f.default for f in dataclasses.fields(cls.Config)}
    assert isinstance(fields["train_steps"], int) and fields["train_steps"] > 0
    assert "total_timesteps" not in fields


@pytest.mark.parametrize("name", sorted(OLD_FORMAT))
def test_the_old_budget_keyword_is_refused_naming_the_new_one(name: str) -> None:
    old_key = OLD_FORMAT[name][1]
    with pytest.raises(ValueError, match=f"'{old_key}' is now called 'train_steps'"):
        make_agent(name, **{old_key: 10})


@pytest.fixture(scope="module")
def saved_folders(tmp_path_factory) -> dict[str, Path]:
    from quantgym.datasets.presets import make_dataset

    dataset = make_dataset("regime", "mixed", n_steps=300, seed=0, num_envs=3, env_kwargs=DATA_ENV)
    root = tmp_path_factory.mktemp("saved")
    for name, (config, _, _) in OLD_FORMAT.items():
        agent = make_agent(name, **config)
        if name == "ppo_mlp":
            agent.fit(gym.make(ENV_ID, **ENV_KWARGS), train_steps=32, progress_bar=False)
        else:
            agent.fit(dataset, train_steps=2, progress_bar=False)
        agent.save(root / name)
    return {name: root / name for name in OLD_FORMAT}


@pytest.mark.parametrize("name", sorted(OLD_FORMAT))
def test_agent_saved_before_the_rename_loads(name: str, saved_folders, tmp_path) -> None:
    _, old_key, old_class = OLD_FORMAT[name]
    folder = shutil.copytree(saved_folders[name], tmp_path / "old")
    meta = json.loads((folder / "agent.json").read_text())
    meta["config"][old_key] = 4321  # as an older quantgym wrote it
    del meta["config"]["train_steps"]
    if old_class is not None:
        meta["class"] = old_class
    (folder / "agent.json").write_text(json.dumps(meta))  # agent.json is not in its manifest
    loaded = load_agent(folder)
    reference = load_agent(saved_folders[name])
    assert type(loaded) is type(reference)
    assert loaded.config.train_steps == 4321
    assert not hasattr(loaded.config, old_key)
    dim = getattr(reference.config, "observation_dim", None)
    if dim is None:  # SB3 agents: the model's observation space
        dim = reference.model.observation_space.shape[0]
    obs = np.random.default_rng(0).normal(size=(4, dim)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], reference.predict(obs)[0])
