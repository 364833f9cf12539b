"""Sharded storage: manifest, verification, memory maps, column-level reading and writing."""

from __future__ import annotations

import json
import mmap
from pathlib import Path

import numpy as np
import pytest

from quantgym.datasets import TrajectoryDataset, iter_shards, load_sharded, to_d3rlpy
from quantgym.datasets.shard_format import (
    MANIFEST_NAME,
    append_shard,
    iter_shard_columns,
    new_manifest,
    prepare_directory,
    read_manifest,
    read_shards,
    verify_shards,
    write_manifest,
    write_shards,
)
from tests.datasets.factory import assert_same_data as assert_same
from tests.datasets.factory import recorded


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
        da, db = to_d3rlpy(a), to_d3rlpy(b)
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


def test_columns_written_and_read_without_a_dataset(tmp_path: Path) -> None:
    ds = recorded()
    root = write_shards(
        tmp_path / "c", ds.columns(), ds.shared_columns(), ds.metadata,
        ds.storage_description(), shard_steps=150,
    )  # fmt: skip
    stored = read_shards(root, mmap=False)
    assert stored.source == root and stored.metadata == ds.metadata
    assert stored.market is not None and stored.market.same_as(ds.observation_references.market)
    for key, values in ds.columns().items():
        assert stored.columns[key].tobytes() == np.ascontiguousarray(values).tobytes(), key
    parts = list(iter_shard_columns(root))
    assert [p.source.name for p in parts] == [s["name"] for s in read_manifest(root)["shards"]]
    assert sum(int(p.columns["episode_lengths"].sum()) for p in parts) == ds.n_steps


def test_appended_shards_are_listed_and_verified(tmp_path: Path) -> None:
    first, second = recorded(n_steps=60), recorded(n_steps=90)
    root = prepare_directory(tmp_path / "a")
    manifest = new_manifest(first.metadata, first.storage_description())
    for i, part in enumerate((first, second)):
        args = (part.columns(), part.shared_columns(), part.storage_description())
        append_shard(root, manifest, *args, {"seed": i})
    listed = read_manifest(root)
    assert [s["seed"] for s in listed["shards"]] == [0, 1]
    assert listed["n_steps"] == 150 and not listed["complete"]
    verify_shards(root, listed)
    with pytest.raises(ValueError, match="incomplete"):
        read_shards(root)
    manifest["complete"] = True
    write_manifest(root, manifest)
    assert read_shards(root).columns["episode_lengths"].sum() == 150
    dense = recorded("dense", n_steps=30)
    with pytest.raises(ValueError, match="observation storage"):
        append_shard(root, manifest, dense.columns(), {}, dense.storage_description(), {})
    target = _first_shard_file(root, "rewards")
    target.write_bytes(target.read_bytes()[:-1] + b"x")
    with pytest.raises(ValueError, match=f"{target}.*SHA-256"):
        verify_shards(root, read_manifest(root))


def test_prepare_directory_refuses_foreign_paths(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        prepare_directory(tmp_path / "file")
    assert prepare_directory(tmp_path / "new" / "dir").is_dir()
