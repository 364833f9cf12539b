"""Dataset presets: quality ordering, mixed composition, chronological splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantgym import ENV_ID
from quantgym.datasets.presets import (
    EXPERT_EPSILON,
    MEDIUM_EPSILON,
    make_behavior_policy,
    make_dataset,
    preset_env_kwargs,
)
from quantgym.datasets.shard_format import read_manifest
from tests.datasets.factory import assert_same_data

SMALL = {"market_kwargs": {"n_bars": 3000}, "episode_length": 200}


@pytest.fixture(scope="module")
def regime_datasets():
    return {
        q: make_dataset("regime", q, n_steps=4000, seed=0, num_envs=4, env_kwargs=SMALL)
        for q in ("random", "medium", "expert", "mixed")
    }


def test_quality_ordering_on_the_regime_market(regime_datasets):
    mean = {q: ds.episode_returns().mean() for q, ds in regime_datasets.items()}
    assert mean["expert"] > mean["medium"] > mean["random"]


def test_preset_sizes_and_definitions(regime_datasets):
    for quality, ds in regime_datasets.items():
        assert ds.n_steps == 4000
        assert ds.metadata["preset"]["quality"] == quality
        assert ds.metadata["preset"]["market"] == "regime"
    assert regime_datasets["random"].metadata["behavior_policy"] == "random"
    expert = regime_datasets["expert"].metadata
    assert expert["behavior_policy"] == "epsilon_mix"
    assert expert["policy_params"]["policy"] == "regime_expert"
    assert expert["policy_params"]["epsilon"] == EXPERT_EPSILON
    assert regime_datasets["medium"].metadata["policy_params"]["epsilon"] == MEDIUM_EPSILON
    assert expert["env_kwargs"]["market"] == "regime" and expert["env_kwargs"]["data"] is None


def test_mixed_is_the_union_of_thirds(regime_datasets):
    mixed = regime_datasets["mixed"]
    meta = mixed.metadata
    assert meta["behavior_policy"] == "mixed"
    assert [c["preset"]["quality"] for c in meta["components"]] == ["random", "medium", "expert"]
    assert [c["collect"]["n_steps"] for c in meta["components"]] == [1333, 1333, 1334]
    assert sum(meta["component_episodes"]) == mixed.n_episodes
    # The parts use disjoint env seeds.
    assert len({c["seed"] for c in meta["components"]}) == 3


def test_splits_are_chronological_and_disjoint():
    ranges = {}
    for split in ("train", "val", "test"):
        ds = make_dataset(
            "regime", "random", n_steps=300, seed=1, split=split, num_envs=2, env_kwargs=SMALL
        )
        stamps = pd.to_datetime(ds.infos["timestamp"])
        lo, hi = (pd.Timestamp(x) for x in ds.metadata["preset"]["split_range"])
        assert stamps.min() > lo and stamps.max() <= hi  # marked bars lie inside the split
        ranges[split] = (lo, hi)
    assert ranges["train"][1] < ranges["val"][0] <= ranges["val"][1] < ranges["test"][0]


def test_real_data_expert_is_the_hindsight_oracle():
    kwargs = {"episode_length": 100}
    expert = make_dataset(
        "sample:googl", "expert", n_steps=400, seed=0, num_envs=2, env_kwargs=kwargs
    )
    random = make_dataset(
        "sample:googl", "random", n_steps=400, seed=0, num_envs=2, env_kwargs=kwargs
    )
    assert expert.metadata["policy_params"]["policy"] == "hindsight_oracle"
    assert expert.metadata["policy_params"]["policy_params"]["on_deviation"] == "follow"
    assert expert.metadata["uses_future"] is True
    assert expert.episode_returns().mean() > random.episode_returns().mean()
    assert expert.metadata["env_kwargs"]["data"] == "sample:googl"


def test_behavior_policies_and_env_kwargs():
    kwargs = preset_env_kwargs("mean_reversion", "all", {"market_kwargs": {"n_bars": 1500}})
    assert kwargs["market"] == "mean_reversion" and "start" not in kwargs
    import gymnasium as gym

    env = gym.make(ENV_ID, **kwargs)
    assert make_behavior_policy("expert", env).policy.name == "bayes_filter_expert"
    gbm = gym.make(ENV_ID, market="gbm", market_kwargs={"n_bars": 1500})
    assert make_behavior_policy("medium", gbm).policy.name == "hindsight_oracle"
    # The lagged and crash markets have exact causal experts: their logs come from them.
    for kind, expert in (("lagged", "lag_expert"), ("crash", "crash_expert")):
        env = gym.make(ENV_ID, market=kind, market_kwargs={"n_bars": 1500})
        assert make_behavior_policy("expert", env).policy.name == expert
    crash = make_dataset("crash", "expert", n_steps=300, seed=0, num_envs=1)
    assert crash.metadata["policy_params"]["policy"] == "crash_expert"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quality": "great"}, "quality"),
        ({"market": "moon"}, "unknown market"),
        ({"split": "holdout"}, "split"),
        ({"n_steps": 0}, "n_steps"),
        ({"num_envs": 0}, "num_envs"),
        ({"quality": "mixed", "n_steps": 2}, "mixed"),
        ({"env_kwargs": {"start": "2000-01-01"}}, "conflicts"),
    ],
)
def test_bad_arguments_raise_value_errors(kwargs, match):
    args = {
        "market": "regime",
        "quality": "random",
        "n_steps": 10,
        "num_envs": 1,
        "env_kwargs": SMALL,
    }
    args.update(kwargs)
    if "env_kwargs" in kwargs:
        args["env_kwargs"] = {**SMALL, **kwargs["env_kwargs"]}
    with pytest.raises(ValueError, match=match):
        make_dataset(**args)


def test_same_seed_same_dataset():
    a = make_dataset("regime", "medium", n_steps=300, seed=4, num_envs=2, env_kwargs=SMALL)
    b = make_dataset("regime", "medium", n_steps=300, seed=4, num_envs=2, env_kwargs=SMALL)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.observations, b.observations)


def test_make_dataset_out_equals_the_in_memory_dataset(tmp_path: Path) -> None:
    kwargs = {"market": "regime", "quality": "mixed", "n_steps": 300, "seed": 1, "num_envs": 4}
    env_kwargs = {"market_kwargs": {"n_bars": 3000}, "episode_length": 30}
    sharded = make_dataset(**kwargs, env_kwargs=env_kwargs, out=tmp_path / "m")
    assert_same_data(sharded, make_dataset(**kwargs, env_kwargs=env_kwargs))
    assert sharded.metadata["behavior_policy"] == "mixed"
    assert sharded.metadata["preset"]["quality"] == "mixed"
    assert len(read_manifest(tmp_path / "m")["shards"]) == 3  # one per third


def test_make_dataset_shards_take_the_next_env_seeds(tmp_path: Path) -> None:
    """Shard j of a single-quality preset is the in-memory preset seeded seed + j * num_envs."""
    kwargs = {"market": "regime", "quality": "medium", "num_envs": 2, "env_kwargs": SMALL}
    sharded = make_dataset(**kwargs, n_steps=150, seed=3, out=tmp_path / "s", shard_steps=50)
    shards = read_manifest(tmp_path / "s")["shards"]
    assert [s["seed"] for s in shards] == [3, 5, 7]
    assert sharded.n_steps == 150 and sharded.metadata["collect"]["n_shards"] == 3
    first_rows = sharded.filter_episodes(np.arange(shards[0]["n_episodes"]))
    alone = make_dataset(**kwargs, n_steps=50, seed=3)
    np.testing.assert_array_equal(first_rows.actions, alone.actions)
    np.testing.assert_array_equal(first_rows.observations, alone.observations)
    np.testing.assert_array_equal(first_rows.rewards, alone.rewards)
