"""collect(): in memory it is the rollout loop; with out= a sharded, resumable directory."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest

from quantgym import ENV_ID
from quantgym.datasets import collect, load_sharded
from quantgym.datasets.rollout import rollout
from quantgym.policies import RandomAgent
from tests.datasets.factory import assert_same_data

KWARGS = {"market_kwargs": {"n_bars": 1500}, "episode_length": 20}


def make_vec(n: int = 3):
    return gym.make_vec(ENV_ID, num_envs=n, **KWARGS)


@pytest.mark.parametrize("budget", [{"n_steps": 70}, {"n_episodes": 4}])
def test_in_memory_collect_is_the_rollout(budget):
    vec = make_vec()
    a = collect(vec, RandomAgent(env=vec, seed=3), seed=5, progress=False, **budget)
    b = rollout(vec, RandomAgent(env=vec, seed=3), seed=5, progress=False, **budget)
    assert_same_data(a, b)
    assert a.metadata["collect"] == b.metadata["collect"]


def test_out_collects_shards_that_equal_memory(tmp_path: Path):
    vec = make_vec()
    sharded = collect(
        vec, RandomAgent(env=vec, seed=3), n_steps=70, seed=5, progress=False,
        out=tmp_path / "d", shard_steps=1000,
    )  # fmt: skip
    assert_same_data(
        sharded, collect(vec, RandomAgent(env=vec, seed=3), n_steps=70, seed=5, progress=False)
    )
    assert_same_data(load_sharded(tmp_path / "d"), sharded)


def test_bad_arguments(tmp_path: Path):
    vec = make_vec()
    agent = RandomAgent(env=vec)
    with pytest.raises(ValueError, match="observations must be one of"):
        collect(vec, agent, n_steps=5, progress=False, observations="lazy", out=tmp_path / "x")
    with pytest.raises(ValueError, match="needs n_steps"):
        collect(vec, agent, n_episodes=2, progress=False, out=tmp_path / "y")
    with pytest.raises(ValueError, match="exactly one"):
        collect(vec, agent, progress=False)
