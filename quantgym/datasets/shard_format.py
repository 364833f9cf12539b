"""On-disk format of a sharded dataset: a directory of shards plus a JSON manifest.

Layout of ``path/``::

    manifest.json              format, format_version, metadata, storage, every file's size
                               and SHA-256, shard list (episodes, steps, seed), complete flag
    market/features.npy        by-reference datasets: the market stored once (+ timestamps,
                               regime)
    shard-00000/actions.npy    one ``.npy`` per column of a group of whole episodes
    shard-00000/...

Every shard directory is written under a temporary name and renamed into place (atomic), and
the manifest is rewritten atomically after each shard, so a crash leaves the shards finished
so far, listed and verifiable. :func:`read_shards` checks sizes (and SHA-256 with
``verify=True``) and names the file at fault; ``mmap=True`` memory-maps the ``.npy`` files.
Everything here works on columns (:mod:`quantgym.datasets.format`); datasets are built from
them by ``TrajectoryDataset.load`` and :mod:`quantgym.datasets.shards`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from quantgym.checks import check_positive_int
from quantgym.datasets.format import OBSERVATION_ROW_COLUMNS, StoredColumns
from quantgym.datasets.storage import MarketReference
from quantgym.files import atomic_write, file_sha256, read_json

__all__ = [
    "MANIFEST_NAME",
    "SHARD_FORMAT",
    "SHARD_FORMAT_VERSION",
    "is_sharded",
    "read_manifest",
    "write_manifest",
    "new_manifest",
    "prepare_directory",
    "append_shard",
    "write_shards",
    "verify_shards",
    "iter_shard_columns",
    "read_shards",
]

MANIFEST_NAME = "manifest.json"
SHARD_FORMAT = "quantgym-trajectory-shards"
SHARD_FORMAT_VERSION = 1
_MARKET_DIR = "market"


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _file_entry(root: Path, file: Path) -> dict[str, Any]:
    return {
        "file": file.relative_to(root).as_posix(),
        "bytes": file.stat().st_size,
        "sha256": file_sha256(file),
    }


def _write_group(root: Path, name: str, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Write ``arrays`` as ``root/name/<key>.npy`` atomically (temp dir, then rename)."""
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".tmp"))
    try:
        for key, values in arrays.items():
            with open(tmp / f"{key}.npy", "wb") as f:
                np.save(f, np.ascontiguousarray(values), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {key: _file_entry(root, final / f"{key}.npy") for key in arrays}


def _read_file(root: Path, entry: Any, what: str, mmap: bool, verify: bool) -> np.ndarray:
    """One listed ``.npy`` file, checked against its manifest entry; ``ValueError`` names it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise ValueError(f"{root / MANIFEST_NAME} is corrupted: bad file entry for {what}")
    path = root / entry["file"]
    if not path.is_file():
        raise ValueError(f"{path} is missing ({what} of the sharded dataset {root})")
    size = path.stat().st_size
    if size != entry.get("bytes"):
        raise ValueError(
            f"{path} is corrupted or truncated: {size} bytes, the manifest says {entry.get('bytes')}"
        )
    if verify and file_sha256(path) != entry.get("sha256"):
        raise ValueError(f"{path} is corrupted: its SHA-256 does not match the manifest")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path} is corrupted: {exc}") from None


def _write_shared(root: Path, manifest: dict[str, Any], shared: Mapping[str, np.ndarray]) -> None:
    """Write the shared ``market.*`` columns once (the first shard that has them)."""
    if not manifest["shared"] and shared:
        manifest["shared"] = _write_group(
            root, _MARKET_DIR, {k.split(".", 1)[1]: v for k, v in shared.items()}
        )


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def is_sharded(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory holding a manifest."""
    return (Path(path) / MANIFEST_NAME).is_file()


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of the sharded dataset at ``path`` (``ValueError`` naming the file)."""
    root = Path(path)
    manifest_path = root / MANIFEST_NAME
    if not root.is_dir():
        raise ValueError(f"{root} is not a sharded quantgym dataset: no such directory")
    if not manifest_path.is_file():
        raise ValueError(f"{manifest_path} is missing: {root} is not a sharded quantgym dataset")
    manifest = read_json(manifest_path)  # ValueError naming the file on truncated JSON
    if not isinstance(manifest, dict) or manifest.get("format") != SHARD_FORMAT:
        raise ValueError(f"{manifest_path} is not a quantgym shard manifest")
    if manifest.get("format_version") != SHARD_FORMAT_VERSION:
        raise ValueError(
            f"{manifest_path} has shard format_version {manifest.get('format_version')!r}; this "
            f"quantgym reads {SHARD_FORMAT_VERSION}"
        )
    for key in ("metadata", "storage", "shards", "shared"):
        if key not in manifest:
            raise ValueError(f"{manifest_path} is corrupted: no {key!r} entry")
    if not isinstance(manifest["shards"], list):
        raise ValueError(f"{manifest_path} is corrupted: 'shards' is not a list")
    return manifest


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` (with its shard, step and episode totals) atomically into ``root``."""
    manifest = dict(manifest)
    shards = manifest["shards"]
    manifest["n_shards"] = len(shards)
    manifest["n_steps"] = sum(int(s["n_steps"]) for s in shards)
    manifest["n_episodes"] = sum(int(s["n_episodes"]) for s in shards)
    text = json.dumps(manifest, indent=2) + "\n"  # insertion order kept: column order matters

    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(root / MANIFEST_NAME, _write)


def new_manifest(metadata: Mapping[str, Any], storage: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest of a sharded dataset with no shard yet."""
    return {
        "format": SHARD_FORMAT,
        "format_version": SHARD_FORMAT_VERSION,
        "metadata": metadata,
        "storage": storage,
        "shared": {},
        "shards": [],
        "complete": False,
    }


def prepare_directory(path: str | os.PathLike) -> Path:
    """``path`` as a directory to write shards into: new, empty or already sharded."""
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()) and not is_sharded(root):
        raise ValueError(f"{root} is a non-empty directory that is not a sharded quantgym dataset")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _shard_name(i: int) -> str:
    return f"shard-{i:05d}"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def append_shard(
    root: Path,
    manifest: dict[str, Any],
    columns: Mapping[str, np.ndarray],
    shared: Mapping[str, np.ndarray],
    storage: Mapping[str, Any],
    extra: Mapping[str, Any],
) -> None:
    """Write ``columns`` (whole episodes) as the next shard (and ``shared`` once), then the
    manifest; ``extra`` is added to the shard's manifest entry."""
    if storage != manifest["storage"]:
        raise ValueError(
            f"shard {len(manifest['shards'])} has observation storage {storage}, the dataset "
            f"{manifest['storage']}"
        )
    _write_shared(root, manifest, shared)
    name = _shard_name(len(manifest["shards"]))
    files = _write_group(root, name, columns)
    lengths = columns["episode_lengths"]
    manifest["shards"].append(
        {
            "name": name,
            "n_episodes": int(lengths.shape[0]),
            "n_steps": int(lengths.sum()),
            "files": files,
        }
        | dict(extra)
    )
    write_manifest(root, manifest)


def write_shards(
    path: str | os.PathLike,
    columns: Mapping[str, np.ndarray],
    shared: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any],
    storage: Mapping[str, Any],
    *,
    shard_steps: int = 1_000_000,
) -> Path:
    """Write a dataset's columns as shards of whole episodes (about ``shard_steps``
    transitions each) into the directory ``path``; returns it.

    Shards are views of the columns (no copy); each is renamed into place when complete and
    the manifest is written last. Shards of an older dataset at ``path`` are removed.
    """
    shard_steps = check_positive_int("shard_steps", shard_steps)
    root = prepare_directory(path)
    old = {p.name for p in root.glob("shard-*") if p.is_dir()}
    manifest = new_manifest(metadata, storage)
    lengths = columns["episode_lengths"]
    n_episodes = int(lengths.shape[0])
    ends = np.cumsum(lengths)
    # Episode e closes a shard when the shard's steps reach shard_steps.
    first = 0
    while first < n_episodes:
        start_step = int(ends[first - 1]) if first else 0
        last = int(np.searchsorted(ends, start_step + shard_steps, side="left"))
        last = min(max(last, first), n_episodes - 1)
        stop_step = int(ends[last])
        steps = slice(start_step, stop_step)
        obs = slice(start_step + first, stop_step + last + 1)
        part = {
            k: (
                v[first : last + 1]
                if k == "episode_lengths"
                else v[obs]
                if k in OBSERVATION_ROW_COLUMNS
                else v[steps]
            )
            for k, v in columns.items()
        }
        _write_shared(root, manifest, shared)
        name = _shard_name(len(manifest["shards"]))
        manifest["shards"].append(
            {
                "name": name,
                "n_episodes": last + 1 - first,
                "n_steps": stop_step - start_step,
                "files": _write_group(root, name, part),
            }
        )
        first = last + 1
    manifest["complete"] = True
    write_manifest(root, manifest)
    for stale in old - {s["name"] for s in manifest["shards"]}:
        shutil.rmtree(root / stale, ignore_errors=True)
    if not manifest["shared"]:
        shutil.rmtree(root / _MARKET_DIR, ignore_errors=True)  # a by-reference dataset's
    return root


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _shared_market(
    root: Path, manifest: dict[str, Any], mmap: bool, verify: bool
) -> MarketReference | None:
    storage = manifest["storage"]
    if not isinstance(storage, dict) or storage.get("observations") != "reference":
        return None
    shared = manifest["shared"]
    if not isinstance(shared, dict) or "features" not in shared:
        raise ValueError(f"{root / MANIFEST_NAME} is corrupted: no market features listed")
    arrays = {k: _read_file(root, v, f"market {k}", mmap, verify) for k, v in shared.items()}
    try:
        return MarketReference.from_arrays(dict(storage.get("market") or {}), arrays)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{root / _MARKET_DIR} is corrupted: {exc}") from None


def _shard_columns(
    root: Path, shard: Any, mmap: bool, verify: bool
) -> tuple[str, dict[str, np.ndarray]]:
    if not isinstance(shard, dict) or not isinstance(shard.get("files"), dict):
        raise ValueError(f"{root / MANIFEST_NAME} is corrupted: bad shard entry {shard!r}")
    name = str(shard.get("name"))
    columns = {
        key: _read_file(root, entry, f"column {key} of {name}", mmap, verify)
        for key, entry in shard["files"].items()
    }
    return name, columns


def verify_shards(root: Path, manifest: dict[str, Any]) -> None:
    """Check every file the manifest lists (size and SHA-256); ``ValueError`` names the first
    bad one."""
    _shared_market(root, manifest, mmap=True, verify=True)
    for shard in manifest["shards"]:
        _shard_columns(root, shard, mmap=True, verify=True)


def iter_shard_columns(
    path: str | os.PathLike, *, mmap: bool = True, verify: bool = True
) -> Iterator[StoredColumns]:
    """Each listed shard's columns (one shard in memory at a time), finished or not."""
    root = Path(path)
    manifest = read_manifest(root)
    market = _shared_market(root, manifest, mmap, verify)
    for shard in manifest["shards"]:
        name, columns = _shard_columns(root, shard, mmap, verify)
        yield StoredColumns(root / name, columns, manifest["metadata"], manifest["storage"], market)


def read_shards(
    path: str | os.PathLike, *, mmap: bool = False, verify: bool = True
) -> StoredColumns:
    """The columns of the whole sharded dataset at ``path``.

    ``mmap=True`` memory-maps every file: one shard's columns are the maps themselves, and
    several shards' columns are joined shard by shard into a disk-backed map (an unlinked
    temporary file in ``path``), so a dataset larger than RAM opens. ``verify`` checks every
    file's SHA-256 against the manifest first. Raises ``ValueError`` naming the file for a
    missing/corrupted shard or a truncated manifest, and for a collection that has not
    finished.
    """
    root = Path(path)
    manifest = read_manifest(root)
    if not manifest.get("complete", False):
        raise ValueError(
            f"{root / MANIFEST_NAME}: the collection is incomplete ({len(manifest['shards'])} "
            "shards written); resume it with collect(..., out=path) or read the finished "
            "shards with iter_shards(path)"
        )
    if not manifest["shards"]:
        raise ValueError(f"{root / MANIFEST_NAME} lists no shard")
    market = _shared_market(root, manifest, mmap, verify)
    shards = manifest["shards"]
    first_name, first = _shard_columns(root, shards[0], mmap, verify)
    if len(shards) == 1:
        return StoredColumns(root, first, manifest["metadata"], manifest["storage"], market)
    # One shard at a time into the joined columns (a disk-backed map with mmap=True), so at
    # most one shard's pages are held besides the result.
    totals = {
        key: sum(
            int(s.get("n_steps", 0))
            + (int(s.get("n_episodes", 0)) if key in OBSERVATION_ROW_COLUMNS else 0)
            if key != "episode_lengths"
            else int(s.get("n_episodes", 0))
            for s in shards
        )
        for key in first
    }
    merged = {
        key: _joined(root, (totals[key], *a.shape[1:]), a.dtype, mmap) for key, a in first.items()
    }
    keys = list(first)
    offsets = dict.fromkeys(keys, 0)
    for i, shard in enumerate(shards):
        name, columns = (first_name, first) if i == 0 else _shard_columns(root, shard, mmap, verify)
        if list(columns) != keys:
            raise ValueError(f"{root / name} has columns {list(columns)}, expected {keys}")
        for key, values in columns.items():
            lo, hi = offsets[key], offsets[key] + values.shape[0]
            if hi > totals[key] or values.shape[1:] != merged[key].shape[1:]:
                raise ValueError(
                    f"{root / name} is corrupted: column {key} has shape {values.shape}, which "
                    "does not fit the manifest's n_steps/n_episodes"
                )
            merged[key][lo:hi] = values
            offsets[key] = hi
        del columns
        first = {}  # drop shard 0's maps once copied
    if offsets != totals:
        raise ValueError(f"{root / MANIFEST_NAME} is corrupted: shard sizes do not add up")
    return StoredColumns(root, merged, manifest["metadata"], manifest["storage"], market)


def _joined(root: Path, shape: tuple[int, ...], dtype: np.dtype, mmap: bool) -> np.ndarray:
    """An empty array for joined shard columns: in memory, or with ``mmap`` a disk-backed map
    in an unlinked temporary file in the dataset directory (freed with the array; a read-only
    directory falls back to memory)."""
    if not mmap:
        return np.empty(shape, dtype=dtype)
    try:
        fd, name = tempfile.mkstemp(dir=root, prefix=".concat.", suffix=".npy")
    except OSError:
        return np.empty(shape, dtype=dtype)
    os.close(fd)
    try:
        return np.lib.format.open_memmap(name, mode="w+", dtype=dtype, shape=shape)
    finally:
        os.unlink(name)  # the mapping stays valid; nothing is left behind
