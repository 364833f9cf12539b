"""Sharded collection: one shard equals in-memory collection, metadata, resume, reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantgym.datasets import TrajectoryDataset, collect, collect_sharded, iter_shards
from quantgym.datasets.cli import main
from quantgym.datasets.shard_format import read_manifest
from quantgym.datasets.shards import collect_shards, split_steps
from quantgym.policies import EpsilonMix, RandomAgent, SMACrossoverAgent
from tests.datasets.factory import assert_same_data as assert_same
from tests.datasets.factory import make_env as make_vec
from tests.datasets.factory import recorded


def test_one_shard_equals_in_memory_collect(tmp_path: Path) -> None:
    env = make_vec()
    sharded = collect(
        env, RandomAgent(env=env, seed=1), n_steps=400, seed=2, progress=False,
        out=tmp_path / "s", shard_steps=1000,
    )  # fmt: skip
    assert_same(sharded, recorded())


def test_sharded_metadata_covers_every_shard(tmp_path: Path) -> None:
    env = make_vec()
    ds = collect_sharded(
        env, RandomAgent(env=env, seed=0), tmp_path / "d", n_steps=600, shard_steps=150,
        progress=False,
    )  # fmt: skip
    stamps = ds.infos["timestamp"]
    first, last = (np.datetime64(t, "ns") for t in ds.metadata["date_range"])
    assert first == np.datetime64(int(stamps.min()), "ns")
    assert last == np.datetime64(int(stamps.max()), "ns")
    assert ds.metadata["collect"]["n_shards"] == 4 and ds.metadata["seed"] == 0


class Interrupt(Exception):
    pass


def test_interrupted_collection_resumes_to_the_same_dataset(tmp_path: Path) -> None:
    env = make_vec()
    calls: list[int] = []

    def policy(env, seed: int) -> EpsilonMix:  # stochastic: needs its seed per shard
        calls.append(seed)
        return EpsilonMix(SMACrossoverAgent(env=env), 0.3, seed=seed, env=env)

    def failing(env, seed: int) -> EpsilonMix:
        if len(calls) == 2:
            raise Interrupt
        return policy(env, seed)

    kwargs = {"n_steps": 500, "shard_steps": 120, "seed": 5, "progress": False}
    full = collect_sharded(env, policy, tmp_path / "full", **kwargs)
    calls.clear()
    with pytest.raises(Interrupt):
        collect_sharded(env, failing, tmp_path / "cut", **kwargs)
    kept = read_manifest(tmp_path / "cut")
    assert len(kept["shards"]) == 2 and not kept["complete"]
    with pytest.raises(ValueError, match="incomplete"):
        TrajectoryDataset.load(tmp_path / "cut")
    assert [p.n_steps for p in iter_shards(tmp_path / "cut")] == [120, 120]
    assert main(["dataset", "info", str(tmp_path / "cut")]) == 2
    first = (
        tmp_path / "cut" / read_manifest(tmp_path / "cut")["shards"][0]["files"]["actions"]["file"]
    )
    stamp = first.stat().st_mtime_ns
    calls.clear()
    resumed = collect_sharded(env, policy, tmp_path / "cut", **kwargs)
    assert calls == [5 + 3 * 2, 5 + 3 * 3, 5 + 3 * 4]  # only the missing shards
    assert first.stat().st_mtime_ns == stamp
    assert resumed.n_steps == full.n_steps == 500
    assert_same(resumed, full)
    with pytest.raises(ValueError, match="was collected with"):
        collect_sharded(env, policy, tmp_path / "cut", **{**kwargs, "seed": 6})


def test_split_steps() -> None:
    assert split_steps(10, 4) == [4, 4, 2]
    assert split_steps(8, 4) == [4, 4]
    assert split_steps(3, 100) == [3]


def test_collect_shards_runs_each_task_once(tmp_path: Path) -> None:
    env = make_vec(2)
    made: list[int] = []

    def make_policy(task):
        made.append(task["seed"])
        return RandomAgent(env=env, seed=task["seed"])

    tasks = [{"n_steps": 50, "seed": 3}, {"n_steps": 30, "seed": 9, "metadata": {"note": "b"}}]
    plan = {"name": "two tasks"}
    ds = collect_shards(env, tmp_path / "t", tasks, plan, make_policy, progress=False)
    assert made == [3, 9] and ds.n_steps == 80
    parts = list(iter_shards(tmp_path / "t"))
    assert [p.metadata.get("note") for p in parts] == [None, None]  # the dataset's metadata
    assert [s["seed"] for s in read_manifest(tmp_path / "t")["shards"]] == [3, 9]
    alone = collect(env, RandomAgent(env=env, seed=9), n_steps=30, seed=9, progress=False)
    assert_same(parts[1], alone)
    collect_shards(env, tmp_path / "t", tasks, plan, make_policy, progress=False)
    assert made == [3, 9]  # complete: nothing collected again
    with pytest.raises(ValueError, match="was collected with"):
        collect_shards(env, tmp_path / "t", tasks, {"name": "other"}, make_policy, progress=False)


def test_collect_sharded_bad_arguments(tmp_path: Path) -> None:
    env = make_vec(2)
    with pytest.raises(ValueError, match="shard_steps"):
        collect_sharded(env, RandomAgent(env=env), tmp_path / "x", n_steps=10, shard_steps=0)
    with pytest.raises(ValueError, match="factory"):
        collect_sharded(env, "agent", tmp_path / "y", n_steps=10, progress=False)
