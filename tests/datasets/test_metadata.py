"""Dataset metadata: JSON normalisation, merging, what a collection records."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from quantgym import ENV_ID
from quantgym.datasets.metadata import (
    DatasetMetadata,
    action_space_metadata,
    collection_metadata,
    env_metadata,
    merge_metadata,
    normalize_metadata,
)
from quantgym.policies import RandomAgent


def test_normalize_metadata_is_a_json_round_trip():
    meta = normalize_metadata({"seed": np.int64(2), "grid": (1, 2), "tags": {"b", "a"}})
    assert meta == {"seed": 2, "grid": [1, 2], "tags": ["a", "b"]}
    assert normalize_metadata(None) == {}
    assert normalize_metadata(DatasetMetadata(seed=1))["seed"] == 1
    with pytest.raises(ValueError, match="keys \\['bad'\\]"):
        normalize_metadata({"ok": 1, "bad": object()})
    with pytest.raises(ValueError, match="keys must be strings"):
        normalize_metadata({1: 2})


def test_merge_keeps_what_every_component_agrees_on():
    merged = merge_metadata(
        [{"env_id": "a", "seed": 1, "created_at": "t"}, {"env_id": "a", "seed": 2}]
    )
    assert merged["env_id"] == "a" and "seed" not in merged and "created_at" not in merged
    assert [c["seed"] for c in merged["components"]] == [1, 2]


def test_action_space_metadata():
    assert action_space_metadata(gym.spaces.Discrete(3)) == {"type": "discrete", "n": 3}
    box = action_space_metadata(gym.spaces.Box(-2.0, 1.0, (1,)))
    assert box == {"type": "continuous", "shape": [1], "low": -2.0, "high": 1.0}
    with pytest.raises(ValueError, match="Discrete and Box"):
        action_space_metadata(gym.spaces.MultiBinary(2))


def test_env_and_collection_metadata():
    vec = gym.make_vec(ENV_ID, num_envs=2, market_kwargs={"n_bars": 1500}, episode_length=9)
    meta = env_metadata(vec)
    assert meta["env_id"] == ENV_ID and meta["env_kwargs"]["episode_length"] == 9
    assert meta["data_fingerprint"] == vec.unwrapped.market.fingerprint
    assert env_metadata(gym.make("CartPole-v1"))["env_id"] == "CartPole-v1"
    stamps = np.array([5, 2, 9], dtype=np.int64)
    recorded = collection_metadata(
        vec, RandomAgent(env=vec), 4, {"timestamp": stamps}, {"n_envs": 2}
    )
    assert recorded["date_range"] == [str(np.datetime64(2, "ns")), str(np.datetime64(9, "ns"))]
    assert recorded["behavior_policy"] == "random" and recorded["seed"] == 4
    assert recorded["n_envs"] == 2 and recorded["uses_future"] is False
