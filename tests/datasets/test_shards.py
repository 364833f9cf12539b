"""Sharded storage: manifest, verification, memory maps, resumable collection, old files."""

from __future__ import annotations

import json
import mmap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from quantgym import ENV_ID
from quantgym.datasets.cli import main
from quantgym.datasets.collect import collect
from quantgym.datasets.shards import (
    MANIFEST_NAME,
    collect_sharded,
    iter_shards,
    load_sharded,
    make_sharded_dataset,
    read_manifest,
)
from quantgym.datasets.trajectory import FORMAT_VERSION, TrajectoryDataset
from quantgym.policies import EpsilonMix, RandomAgent, SMACrossoverAgent

KWARGS = {"market_kwargs": {"n_bars": 1500}, "episode_length": 20, "window_size": 8}


def make_vec(n: int = 3) -> gym.vector.VectorEnv:
    return gym.make_vec(ENV_ID, num_envs=n, **KWARGS)


def recorded(mode: str = "auto", n_steps: int = 400) -> TrajectoryDataset:
    env = make_vec()
    return collect(
        env, RandomAgent(env=env, seed=1), n_steps=n_steps, seed=2, progress=False,
        observations=mode,
    )  # fmt: skip


def assert_same(a: TrajectoryDataset, b: TrajectoryDataset) -> None:
    assert a.observations.tobytes() == b.observations.tobytes()
    for name in ("actions", "rewards", "terminations", "truncations", "episode_lengths"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert list(a.infos) == list(b.infos)
    for key in a.infos:
        np.testing.assert_array_equal(a.infos[key], b.infos[key])


@pytest.mark.parametrize("mode", ["auto", "dense"])
@pytest.mark.parametrize("mmap", [False, True])
def test_sharded_round_trip(tmp_path: Path, mode: str, mmap: bool) -> None:
    ds = recorded(mode)
    path = ds.save(tmp_path / "ds", format="sharded", shard_steps=90)
    manifest = read_manifest(path)
    assert manifest["n_shards"] == len(manifest["shards"]) > 3 and manifest["complete"]
    assert manifest["n_steps"] == ds.n_steps and manifest["n_episodes"] == ds.n_episodes
    for shard in manifest["shards"]:
        for entry in shard["files"].values():
            assert (path / entry["file"]).stat().st_size == entry["bytes"]
            assert len(entry["sha256"]) == 64
    loaded = TrajectoryDataset.load(path, mmap=mmap)
    assert loaded.observation_storage == ds.observation_storage
    assert_same(loaded, ds)
    assert loaded.metadata == ds.metadata
    parts = list(iter_shards(path))
    assert sum(p.n_steps for p in parts) == ds.n_steps


def _is_mapped(array: np.ndarray) -> bool:
    base: object = array
    while base is not None:
        if isinstance(base, (np.memmap, mmap.mmap)):
            return True
        base = getattr(base, "base", None)
    return False


@pytest.mark.parametrize("mmap_mode", [False, True])
def test_one_shard_is_memory_mapped(tmp_path: Path, mmap_mode: bool) -> None:
    path = recorded().save(tmp_path / "ds", format="sharded")
    loaded = load_sharded(path, mmap=mmap_mode)
    assert _is_mapped(loaded.observation_references.bars) is mmap_mode
    assert _is_mapped(loaded.actions) is mmap_mode
    assert _is_mapped(loaded.observation_references.market.features) is mmap_mode


def test_split_and_export_equal_across_shard_counts(tmp_path: Path) -> None:
    ds = recorded()
    many = TrajectoryDataset.load(ds.save(tmp_path / "many", format="sharded", shard_steps=50))
    one = TrajectoryDataset.load(ds.save(tmp_path / "one", format="sharded"))
    assert len(read_manifest(tmp_path / "many")["shards"]) > 1
    cut = np.median(one.infos["timestamp"][one.episode_starts])
    for a, b in ((many, one),):
        early_a = a.filter_episodes(a.infos["timestamp"][a.episode_starts] <= cut)
        early_b = b.filter_episodes(b.infos["timestamp"][b.episode_starts] <= cut)
        assert_same(early_a, early_b)
        da, db = a.to_d3rlpy(), b.to_d3rlpy()
        assert da.transition_count == db.transition_count
        for ea, eb in zip(da.episodes, db.episodes, strict=True):
            np.testing.assert_array_equal(ea.observations, eb.observations)
            np.testing.assert_array_equal(ea.actions, eb.actions)


def _first_shard_file(path: Path, column: str = "actions") -> Path:
    return path / read_manifest(path)["shards"][0]["files"][column]["file"]


def test_corrupted_shard_names_the_file(tmp_path: Path) -> None:
    path = recorded().save(tmp_path / "ds", format="sharded", shard_steps=100)
    target = _first_shard_file(path, "rewards")
    raw = bytearray(target.read_bytes())
    raw[-3] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=f"{target}.*SHA-256"):
        TrajectoryDataset.load(path)
    target.write_bytes(bytes(raw[:-8]))
    with pytest.raises(ValueError, match=f"{target}.*truncated"):
        TrajectoryDataset.load(path, verify=False)


def test_missing_shard_names_the_file(tmp_path: Path) -> None:
    path = recorded().save(tmp_path / "ds", format="sharded", shard_steps=100)
    target = _first_shard_file(path)
    target.unlink()
    with pytest.raises(ValueError, match=f"{target} is missing"):
        TrajectoryDataset.load(path)


@pytest.mark.parametrize("keep", [0, 10, -2])
def test_truncated_manifest_names_the_file(tmp_path: Path, keep: int) -> None:
    path = recorded().save(tmp_path / "ds", format="sharded", shard_steps=100)
    manifest = path / MANIFEST_NAME
    manifest.write_text(manifest.read_text()[:keep])
    with pytest.raises(ValueError, match=str(manifest)):
        TrajectoryDataset.load(path)


def test_foreign_and_wrong_version_manifests(tmp_path: Path) -> None:
    path = recorded().save(tmp_path / "ds", format="sharded")
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    (path / MANIFEST_NAME).write_text(json.dumps(manifest | {"format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99"):
        TrajectoryDataset.load(path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="not a sharded quantgym dataset"):
        recorded().save(tmp_path / "other", format="sharded")
    with pytest.raises(ValueError, match="format must be"):
        recorded().save(tmp_path / "z", format="zip")


def test_old_single_file_npz_still_loads(tmp_path: Path) -> None:
    """A file in the layout written before sharding existed (np.savez, no storage entry)."""
    ds = recorded("dense", n_steps=60)
    metadata = json.dumps(ds.metadata).encode()
    path = tmp_path / "old.npz"
    np.savez(
        path,
        format_version=np.array(FORMAT_VERSION),
        metadata=np.frombuffer(metadata, dtype=np.uint8),
        observations=ds.observations,
        actions=ds.actions,
        rewards=ds.rewards,
        terminations=ds.terminations,
        truncations=ds.truncations,
        episode_lengths=ds.episode_lengths,
        **{f"info.{k}": v for k, v in ds.infos.items()},
    )
    loaded = TrajectoryDataset.load(path)
    assert loaded.observation_storage == "dense"
    assert_same(loaded, ds)


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
    first = _first_shard_file(tmp_path / "cut")
    stamp = first.stat().st_mtime_ns
    calls.clear()
    resumed = collect_sharded(env, policy, tmp_path / "cut", **kwargs)
    assert calls == [5 + 3 * 2, 5 + 3 * 3, 5 + 3 * 4]  # only the missing shards
    assert first.stat().st_mtime_ns == stamp
    assert resumed.n_steps == full.n_steps == 500
    assert_same(resumed, full)
    with pytest.raises(ValueError, match="was collected with"):
        collect_sharded(env, policy, tmp_path / "cut", **{**kwargs, "seed": 6})


def test_one_shard_equals_in_memory_collect(tmp_path: Path) -> None:
    env = make_vec()
    sharded = collect(
        env, RandomAgent(env=env, seed=1), n_steps=400, seed=2, progress=False,
        out=tmp_path / "s", shard_steps=1000,
    )  # fmt: skip
    assert_same(sharded, recorded())


def test_make_sharded_dataset_matches_presets(tmp_path: Path) -> None:
    from quantgym.datasets.presets import make_dataset

    kwargs = {"market": "regime", "quality": "mixed", "n_steps": 300, "seed": 1, "num_envs": 4}
    env_kwargs = {"market_kwargs": {"n_bars": 3000}, "episode_length": 30}
    sharded = make_sharded_dataset(tmp_path / "m", **kwargs, env_kwargs=env_kwargs)
    assert_same(sharded, make_dataset(**kwargs, env_kwargs=env_kwargs))
    assert sharded.metadata["behavior_policy"] == "mixed"


def test_cli_make_sharded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["dataset", "make", "--quality", "random", "--steps", "300", "--shard-steps", "100"]
    assert main([*args, "--num-envs", "4", "--out", str(out)]) == 0
    assert "saved" in capsys.readouterr().out
    assert len(read_manifest(out)["shards"]) == 3
    assert main(["dataset", "info", str(out)]) == 0
    assert "300" in capsys.readouterr().out
    stamp = _first_shard_file(out).stat().st_mtime_ns
    assert main([*args, "--num-envs", "4", "--out", str(out)]) == 0  # complete: nothing redone
    assert _first_shard_file(out).stat().st_mtime_ns == stamp
    assert main([*args, "--num-envs", "4", "--out", str(out), "--no-resume"]) == 0
    assert _first_shard_file(out).stat().st_mtime_ns != stamp
    assert main([*args, "--num-envs", "2", "--out", str(out)]) == 2  # another plan: refused
    assert "was collected with" in capsys.readouterr().err


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


def test_many_shards_memory_mapped_leave_no_file(tmp_path: Path) -> None:
    ds = recorded()
    path = ds.save(tmp_path / "ds", format="sharded", shard_steps=60)
    before = sorted(p.name for p in path.iterdir())
    loaded = load_sharded(path, mmap=True)
    assert _is_mapped(loaded.observation_references.bars) and _is_mapped(loaded.rewards)
    assert sorted(p.name for p in path.iterdir()) == before
    assert_same(loaded, ds)


def test_saving_over_a_sharded_dataset_replaces_it(tmp_path: Path) -> None:
    path = recorded().save(tmp_path / "ds", format="sharded", shard_steps=50)
    dense = recorded("dense", n_steps=100)
    dense.save(path, format="sharded")
    assert sorted(p.name for p in path.iterdir()) == [MANIFEST_NAME, "shard-00000"]
    assert_same(TrajectoryDataset.load(path), dense)


@pytest.mark.parametrize("mmap_mode", [False, True])
def test_manifest_sizes_must_match_the_shards(tmp_path: Path, mmap_mode: bool) -> None:
    path = recorded().save(tmp_path / "ds", format="sharded", shard_steps=100)
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    manifest["shards"][1]["n_steps"] -= 1
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="corrupted"):
        TrajectoryDataset.load(path, mmap=mmap_mode)
