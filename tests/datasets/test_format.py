"""The on-disk format: columns <-> a dataset's parts, JSON entries, the single .npz file."""

from __future__ import annotations

import functools
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from quantgym.datasets import TrajectoryDataset
from quantgym.datasets.format import (
    FORMAT_VERSION,
    decode_columns,
    encode_columns,
    json_bytes,
    read_json_entry,
    read_npz,
    shared_columns,
    storage_description,
    write_npz,
)
from tests.datasets import factory
from tests.datasets.factory import assert_same_data
from tests.datasets.factory import hand_made_dataset as make_dataset

assert_same = functools.partial(assert_same_data, metadata=True)


def recorded(mode: str, n_steps: int = 90) -> TrajectoryDataset:
    return factory.recorded(mode, n_steps, n_envs=2)


# ---- columns -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "dense"])
def test_columns_round_trip(mode: str) -> None:
    ds = recorded(mode)
    observations = ds.observation_references or ds.observations
    steps = {k: getattr(ds, k) for k in ("actions", "rewards", "terminations", "truncations")}
    steps["episode_lengths"] = ds.episode_lengths
    stored = {k: v for k, v in ds.infos.items() if k not in ds.derived_infos}
    columns = encode_columns(observations, steps, stored)
    assert columns.keys() == ds.columns().keys()
    by_reference = mode == "auto"
    assert ("ref.bars" in columns) is by_reference and (
        "observations" in columns
    ) is not by_reference
    assert all(k.startswith("info.") for k in list(columns)[-len(stored) :])
    shared = shared_columns(observations)
    assert sorted(shared) == (
        ["market.features", "market.regime", "market.timestamps"] if by_reference else []
    )
    storage = storage_description(observations, ds.derived_infos)
    assert storage["observations"] == ("reference" if by_reference else "dense")
    parts = decode_columns({**columns, **shared}, storage)
    assert parts["derived_infos"] == ds.derived_infos and list(parts["infos"]) == list(stored)
    assert_same_data(TrajectoryDataset(**parts, metadata=ds.metadata), ds, metadata=True)


def test_decode_columns_rejects_unknown_storage() -> None:
    with pytest.raises(ValueError, match="unknown observation storage 'zip'"):
        decode_columns({}, {"observations": "zip"})
    with pytest.raises(ValueError, match="market.features"):
        decode_columns({}, {"observations": "reference"})


def test_json_entries(tmp_path: Path) -> None:
    raw = json_bytes({"a": [1, 2]})
    assert raw.dtype == np.uint8 and read_json_entry(raw, "x", tmp_path) == {"a": [1, 2]}
    with pytest.raises(ValueError, match="x is not a JSON object"):
        read_json_entry(json_bytes([1]), "x", tmp_path)
    with pytest.raises(ValueError, match="x is not valid JSON"):
        read_json_entry(np.frombuffer(b"{", dtype=np.uint8), "x", tmp_path)
    with pytest.raises(ValueError, match="not a uint8 byte string"):
        read_json_entry(np.zeros(3, np.int64), "x", tmp_path)


def test_write_and_read_npz_columns(tmp_path: Path) -> None:
    ds = make_dataset()
    path = write_npz(tmp_path / "c", ds.columns(), ds.metadata, ds.storage_description())
    stored = read_npz(tmp_path / "c")
    assert path == tmp_path / "c.npz" == stored.source
    assert list(stored.columns) == list(ds.columns()) and stored.market is None
    assert stored.metadata == ds.metadata and stored.storage == {"observations": "dense"}
    for key, values in ds.columns().items():
        assert stored.columns[key].tobytes() == values.tobytes(), key


# ---- the .npz file ------------------------------------------------------------------------


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("compress", [True, False])
def test_save_load_round_trip_is_bitwise(tmp_path: Path, discrete: bool, compress: bool) -> None:
    ds = make_dataset(discrete=discrete)
    path = ds.save(tmp_path / "data" / "ds", compress=compress)
    assert path == tmp_path / "data" / "ds.npz" and path.is_file()
    assert_same(ds, TrajectoryDataset.load(tmp_path / "data" / "ds"))
    assert_same(ds, TrajectoryDataset.load(path))


def test_save_keeps_npz_suffix(tmp_path: Path) -> None:
    assert make_dataset().save(tmp_path / "x.npz").name == "x.npz"
    assert make_dataset().save(tmp_path / "x.v1").name == "x.v1.npz"


def test_file_stores_no_pickles(tmp_path: Path) -> None:
    path = make_dataset().save(tmp_path / "ds", compress=False)
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
        assert int(npz["format_version"]) == FORMAT_VERSION


def _flip_bytes(path: Path, fraction: float) -> None:
    raw = bytearray(path.read_bytes())
    i = int(len(raw) * fraction)
    raw[i : i + 16] = bytes(b ^ 0xFF for b in raw[i : i + 16])
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("compress", [True, False])
def test_corrupted_file_raises_value_error(tmp_path: Path, compress: bool) -> None:
    path = make_dataset().save(tmp_path / "ds", compress=compress)
    _flip_bytes(path, 0.3)
    with pytest.raises(ValueError, match="not a quantgym dataset|corrupted"):
        TrajectoryDataset.load(path)


def test_truncated_file_raises_value_error(tmp_path: Path) -> None:
    path = make_dataset().save(tmp_path / "ds")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="corrupted/truncated"):
        TrajectoryDataset.load(path)


def test_wrong_format_version_raises_value_error(tmp_path: Path) -> None:
    path = make_dataset().save(tmp_path / "ds", compress=False)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["format_version"] = np.array(FORMAT_VERSION + 1, dtype=np.int64)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=f"format_version {FORMAT_VERSION + 1}"):
        TrajectoryDataset.load(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"definitely not a zip archive\n" * 10, "not a quantgym dataset"),
        (b"", "not a quantgym dataset"),
    ],
)
def test_foreign_files_raise_value_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "foreign.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        TrajectoryDataset.load(path)


def test_other_npz_and_npy_files_raise_value_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(ValueError, match="not a quantgym dataset"):
        TrajectoryDataset.load(tmp_path / "other.npz")
    np.save(tmp_path / "array.npy", np.arange(3))
    with pytest.raises(ValueError, match="not an .npz archive"):
        TrajectoryDataset.load(tmp_path / "array.npy")
    with pytest.raises(ValueError, match="no such file"):
        TrajectoryDataset.load(tmp_path / "missing")


def test_missing_entry_raises_value_error(tmp_path: Path) -> None:
    path = make_dataset().save(tmp_path / "ds", compress=False)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "rewards"}
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="missing \\['rewards'\\]"):
        TrajectoryDataset.load(path)


def test_failed_save_leaves_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = make_dataset()
    path = ds.save(tmp_path / "ds", compress=False)
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    monkeypatch.setattr(np, "savez_compressed", boom)
    for compress in (False, True):
        with pytest.raises(OSError, match="disk full"):
            make_dataset(seed=3).save(path, compress=compress)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.npz"]  # no temp files left
    assert_same(ds, TrajectoryDataset.load(path))


def test_npz_is_a_zip_of_npy_members(tmp_path: Path) -> None:
    path = make_dataset().save(tmp_path / "ds")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    assert {"observations.npy", "metadata.npy", "info.timestamp.npy"} <= names


def test_old_single_file_npz_still_loads(tmp_path: Path) -> None:
    """A file in the layout written before sharding existed (np.savez, no storage entry)."""
    ds = recorded("dense", n_steps=60)
    metadata = json.dumps(ds.metadata).encode()
    path = tmp_path / "old.npz"
    header = {"format_version": np.array(FORMAT_VERSION)}
    header["metadata"] = np.frombuffer(metadata, dtype=np.uint8)
    np.savez(path, **header, **ds.columns())  # dense columns: observations, actions, ...
    loaded = TrajectoryDataset.load(path)
    assert loaded.observation_storage == "dense"
    assert_same_data(loaded, ds)
