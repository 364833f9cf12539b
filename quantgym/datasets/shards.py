"""Sharded on-disk datasets: a directory of shards plus a JSON manifest.

Layout of ``path/``::

    manifest.json              format, format_version, metadata, storage, every file's size
                               and SHA-256, shard list (episodes, steps, seed), complete flag
    market/features.npy        by-reference datasets: the market stored once (+ timestamps,
                               regime)
    shard-00000/actions.npy    one ``.npy`` per column of a group of whole episodes
    shard-00000/...

Every shard directory is written under a temporary name and renamed into place (atomic), and
the manifest is rewritten atomically after each shard, so a crash leaves the shards finished
so far, listed and verifiable. :func:`load_sharded` checks sizes (and SHA-256 with
``verify=True``) and names the file at fault; ``mmap=True`` memory-maps the ``.npy`` files.
:func:`collect_sharded` records shard by shard with bounded memory and resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from quantgym import ENV_ID
from quantgym._io import atomic_write, read_json
from quantgym.datasets.storage import MarketReference
from quantgym.datasets.trajectory import TrajectoryDataset

__all__ = [
    "MANIFEST_NAME",
    "SHARD_FORMAT",
    "SHARD_FORMAT_VERSION",
    "collect_sharded",
    "is_sharded",
    "iter_shards",
    "load_sharded",
    "make_sharded_dataset",
    "read_manifest",
    "save_sharded",
]

MANIFEST_NAME = "manifest.json"
SHARD_FORMAT = "quantgym-trajectory-shards"
SHARD_FORMAT_VERSION = 1
_MARKET_DIR = "market"
_HASH_BLOCK = 8 * 2**20
_OBS = ("observations", "ref.bars", "ref.account")  # columns with one row per observation


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _file_entry(root: Path, file: Path) -> dict[str, Any]:
    return {
        "file": file.relative_to(root).as_posix(),
        "bytes": file.stat().st_size,
        "sha256": _sha256(file),
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
    if verify and _sha256(path) != entry.get("sha256"):
        raise ValueError(f"{path} is corrupted: its SHA-256 does not match the manifest")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path} is corrupted: {exc}") from None


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


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
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


def _new_manifest(dataset: TrajectoryDataset) -> dict[str, Any]:
    return {
        "format": SHARD_FORMAT,
        "format_version": SHARD_FORMAT_VERSION,
        "metadata": dataset.metadata,
        "storage": dataset.storage_description(),
        "shared": {},
        "shards": [],
        "complete": False,
    }


def _prepare_root(path: str | os.PathLike) -> Path:
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()) and not is_sharded(root):
        raise ValueError(f"{root} is a non-empty directory that is not a sharded quantgym dataset")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _shard_name(i: int) -> str:
    return f"shard-{i:05d}"


def _append_shard(
    root: Path, manifest: dict[str, Any], part: TrajectoryDataset, extra: dict[str, Any]
) -> None:
    """Write ``part`` as the next shard (and the shared market once), then the manifest."""
    storage = part.storage_description()
    if storage != manifest["storage"]:
        raise ValueError(
            f"shard {len(manifest['shards'])} has observation storage {storage}, the dataset "
            f"{manifest['storage']}"
        )
    if not manifest["shared"] and part.shared_columns():
        manifest["shared"] = _write_group(
            root, _MARKET_DIR, {k.split(".", 1)[1]: v for k, v in part.shared_columns().items()}
        )
    name = _shard_name(len(manifest["shards"]))
    files = _write_group(root, name, part.columns())
    manifest["shards"].append(
        {"name": name, "n_episodes": part.n_episodes, "n_steps": part.n_steps, "files": files}
        | extra
    )
    _write_manifest(root, manifest)


def save_sharded(
    dataset: TrajectoryDataset, path: str | os.PathLike, *, shard_steps: int = 1_000_000
) -> Path:
    """Write ``dataset`` as shards of whole episodes (about ``shard_steps`` transitions each).

    Shards are views of the dataset's columns (no copy); each is renamed into place when
    complete and the manifest is written last. Returns ``path``.
    """
    if isinstance(shard_steps, bool) or not isinstance(shard_steps, (int, np.integer)):
        raise ValueError(f"shard_steps must be a positive integer, got {shard_steps!r}")
    if shard_steps < 1:
        raise ValueError(f"shard_steps must be a positive integer, got {shard_steps!r}")
    root = _prepare_root(path)
    old = {p.name for p in root.glob("shard-*") if p.is_dir()}
    manifest = _new_manifest(dataset)
    ends = np.cumsum(dataset.episode_lengths)
    # Episode e closes a shard when the shard's steps reach shard_steps.
    first = 0
    columns = dataset.columns()
    while first < dataset.n_episodes:
        start_step = int(ends[first - 1]) if first else 0
        last = int(np.searchsorted(ends, start_step + shard_steps, side="left"))
        last = min(max(last, first), dataset.n_episodes - 1)
        stop_step = int(ends[last])
        steps = slice(start_step, stop_step)
        obs = slice(start_step + first, stop_step + last + 1)
        part = {
            k: (
                v[first : last + 1] if k == "episode_lengths" else v[obs] if k in _OBS else v[steps]
            )
            for k, v in columns.items()
        }
        if not manifest["shared"] and dataset.shared_columns():
            manifest["shared"] = _write_group(
                root,
                _MARKET_DIR,
                {k.split(".", 1)[1]: v for k, v in dataset.shared_columns().items()},
            )
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
    _write_manifest(root, manifest)
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


def _build(
    root: Path,
    where: str,
    columns: dict[str, np.ndarray],
    manifest: dict[str, Any],
    market: MarketReference | None,
) -> TrajectoryDataset:
    try:
        return TrajectoryDataset.from_columns(
            columns, manifest["metadata"], manifest["storage"], market=market
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{where} is corrupted: {exc}") from None


def iter_shards(
    path: str | os.PathLike, *, mmap: bool = True, verify: bool = True
) -> Iterator[TrajectoryDataset]:
    """Yield each shard as its own :class:`TrajectoryDataset` (one shard in memory at a time)."""
    root = Path(path)
    manifest = read_manifest(root)
    market = _shared_market(root, manifest, mmap, verify)
    for shard in manifest["shards"]:
        name, columns = _shard_columns(root, shard, mmap, verify)
        yield _build(root, str(root / name), columns, manifest, market)


def load_sharded(
    path: str | os.PathLike, *, mmap: bool = False, verify: bool = True
) -> TrajectoryDataset:
    """The whole sharded dataset at ``path``.

    ``mmap=True`` memory-maps every file: a one-shard dataset holds nothing in RAM, and
    several shards' columns are joined shard by shard into a disk-backed map (an unlinked
    temporary file in ``path``), so a dataset larger than RAM opens. ``verify`` checks every
    file's SHA-256 against the manifest first. Raises
    ``ValueError`` naming the file for a missing/corrupted shard or a truncated manifest, and
    for a collection that has not finished (resume it with ``collect(..., out=path)``).
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
        return _build(root, str(root), first, manifest, market)
    # One shard at a time into the joined columns (a disk-backed map with mmap=True), so at
    # most one shard's pages are held besides the result.
    totals = {
        key: sum(
            int(s.get("n_steps", 0)) + (int(s.get("n_episodes", 0)) if key in _OBS else 0)
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
    return _build(root, str(root), merged, manifest, market)


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


# --------------------------------------------------------------------------------------------
# Collection
# --------------------------------------------------------------------------------------------


def _policy_for(policy: Any, env: Any, seed: int) -> Any:
    if hasattr(policy, "predict"):
        return policy
    if callable(policy):
        made = policy(env, seed)
        if not hasattr(made, "predict"):
            raise ValueError(f"policy factory returned {type(made).__name__}, which has no predict")
        return made
    raise ValueError(
        "policy must have predict(obs, state, episode_start, deterministic) or be a factory "
        f"policy(env, seed); got {type(policy).__name__}"
    )


def _collect_tasks(
    env: Any,
    root: Path,
    tasks: list[dict[str, Any]],
    plan: dict[str, Any],
    make_policy: Any,
    *,
    progress: bool,
    deterministic: bool,
    observations: str,
    resume: bool,
    dataset_metadata: dict[str, Any],
) -> dict[str, Any]:
    """Run each task ``{"n_steps", "seed", "metadata", ...}`` as one shard (skipping the shards
    already verified in ``root`` when resuming) and return the final manifest."""
    from tqdm.auto import tqdm

    from quantgym.datasets.collect import collect

    manifest: dict[str, Any] | None = None
    if is_sharded(root):
        existing = read_manifest(root)
        if not resume:
            shutil.rmtree(root)
            root.mkdir(parents=True)
        elif existing.get("collect_plan") != plan:
            raise ValueError(
                f"{root / MANIFEST_NAME} was collected with {existing.get('collect_plan')}, "
                f"not {plan}; use another directory or resume=False"
            )
        else:
            _shared_market(root, existing, mmap=True, verify=True)
            for shard in existing["shards"]:
                _shard_columns(root, shard, mmap=True, verify=True)  # verified or ValueError
            manifest = existing
    done = 0 if manifest is None else len(manifest["shards"])
    total = sum(int(t["n_steps"]) for t in tasks)
    initial = sum(int(t["n_steps"]) for t in tasks[:done])
    with tqdm(
        total=total,
        initial=initial,
        unit="step",
        desc="collect (shards)",
        disable=not progress,
        mininterval=0.5,
    ) as bar:
        for task in tasks[done:]:
            started = time.perf_counter()
            part = collect(
                env,
                make_policy(task),
                n_steps=int(task["n_steps"]),
                seed=int(task["seed"]),
                progress=False,
                deterministic=deterministic,
                metadata=task.get("metadata"),
                observations=observations,
            )
            if manifest is None:
                manifest = _new_manifest(part)
                manifest["metadata"] = dict(part.metadata) | dataset_metadata
                manifest["collect_plan"] = plan
            _widen_date_range(manifest["metadata"], part.metadata.get("date_range"))
            _append_shard(
                root,
                manifest,
                part,
                {
                    "seed": int(task["seed"]),
                    "behavior_policy": part.metadata.get("behavior_policy"),
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )
            del part
            bar.update(int(task["n_steps"]))
    assert manifest is not None
    manifest["complete"] = True
    _write_manifest(root, manifest)
    return manifest


def _widen_date_range(metadata: dict[str, Any], shard_range: Any) -> None:
    """``metadata['date_range']`` becomes the union of the shards' ranges."""
    if not (isinstance(shard_range, list) and len(shard_range) == 2):
        return
    current = metadata.get("date_range")
    if not (isinstance(current, list) and len(current) == 2):
        metadata["date_range"] = list(shard_range)
        return
    lo = min(np.datetime64(current[0], "ns"), np.datetime64(shard_range[0], "ns"))
    hi = max(np.datetime64(current[1], "ns"), np.datetime64(shard_range[1], "ns"))
    metadata["date_range"] = [str(lo), str(hi)]


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _split_steps(n_steps: int, shard_steps: int) -> list[int]:
    return [min(shard_steps, n_steps - lo) for lo in range(0, n_steps, shard_steps)]


def collect_sharded(
    env: Any,
    policy: Any,
    out: str | os.PathLike,
    *,
    n_steps: int,
    shard_steps: int = 1_000_000,
    seed: int = 0,
    seed_stride: int | None = None,
    progress: bool = True,
    deterministic: bool = True,
    metadata: dict[str, Any] | None = None,
    observations: str = "auto",
    resume: bool = True,
    mmap: bool = True,
) -> TrajectoryDataset:
    """Collect ``n_steps`` transitions into the sharded dataset ``out``, shard by shard.

    Shard ``j`` is an independent ``collect(env, policy_j, n_steps=shard_steps, seed=seed +
    j * seed_stride)`` (``seed_stride`` defaults to the number of envs, so env seeds never
    repeat), written as soon as it is recorded: memory holds one shard. ``policy`` is an agent
    or a factory ``policy(env, seed) -> agent`` called per shard with the shard's seed; with
    a factory (or a policy without internal randomness) an interrupted collection resumed with
    the same arguments (``resume=True``: verified shards are kept, missing ones collected)
    equals an uninterrupted one. Returns the dataset read back from ``out`` (``mmap``).
    """
    n_steps = _check_positive("n_steps", n_steps)
    shard_steps = _check_positive("shard_steps", shard_steps)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    n_envs = int(getattr(env, "num_envs", 1))
    stride = _check_positive("seed_stride", n_envs if seed_stride is None else seed_stride)
    plan = {
        "n_steps": n_steps,
        "shard_steps": shard_steps,
        "seed": int(seed),
        "seed_stride": stride,
        "n_envs": n_envs,
        "observations": observations,
        "deterministic": bool(deterministic),
    }
    tasks = [
        {"n_steps": steps, "seed": int(seed) + j * stride, "metadata": metadata}
        for j, steps in enumerate(_split_steps(n_steps, shard_steps))
    ]
    root = _prepare_root(out)
    _collect_tasks(
        env,
        root,
        tasks,
        plan,
        lambda task: _policy_for(policy, env, int(task["seed"])),
        progress=progress,
        deterministic=deterministic,
        observations=observations,
        resume=resume,
        dataset_metadata={"seed": int(seed), "collect": plan | {"n_shards": len(tasks)}},
    )
    return load_sharded(root, mmap=mmap, verify=False)


def make_sharded_dataset(
    out: str | os.PathLike,
    market: str = "regime",
    quality: str = "expert",
    n_steps: int = 100_000,
    seed: int = 0,
    split: str = "train",
    num_envs: int = 16,
    shard_steps: int = 1_000_000,
    env_kwargs: dict | None = None,
    progress: bool = False,
    resume: bool = True,
    mmap: bool = True,
) -> TrajectoryDataset:
    """:func:`quantgym.datasets.presets.make_dataset`, written shard by shard to ``out``.

    The same policies and env seeds as ``make_dataset`` for the first shard of each quality
    (``"mixed"``: random, medium, expert thirds, seeds offset by ``num_envs`` per quality);
    shard ``j`` of a quality adds ``j * 3 * num_envs`` to its seed, so no env seed repeats.
    Memory holds one shard; an interrupted run resumes (``resume=True``) to the same dataset.
    """
    import gymnasium as gym

    from quantgym.datasets import presets
    from quantgym.datasets.collect import env_metadata

    if quality not in presets.QUALITIES:
        raise ValueError(f"quality must be one of {presets.QUALITIES}, got {quality!r}")
    n_steps = _check_positive("n_steps", n_steps)
    num_envs = _check_positive("num_envs", num_envs)
    shard_steps = _check_positive("shard_steps", shard_steps)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    kwargs = presets.preset_env_kwargs(market, split, env_kwargs)
    preset = {
        "market": market,
        "split": split,
        "split_range": [str(kwargs.get("start")), str(kwargs.get("end"))]
        if split != "all"
        else None,
        "expert_epsilon": presets.EXPERT_EPSILON,
        "medium_epsilon": presets.MEDIUM_EPSILON,
    }
    if quality == "mixed":
        if n_steps < 3:
            raise ValueError(f"n_steps must be >= 3 for quality='mixed', got {n_steps}")
        thirds = [n_steps // 3] * 3
        thirds[2] += n_steps - sum(thirds)
        parts = list(zip(("random", "medium", "expert"), thirds, strict=True))
    else:
        parts = [(quality, n_steps)]
    env = gym.make_vec(ENV_ID, num_envs=num_envs, **kwargs)
    try:
        env_meta = env_metadata(env)["env_kwargs"]
        env_meta.update(presets._market_source(market))  # the source, not "<MarketData>"
        tasks = []
        for k, (q, steps) in enumerate(parts):
            meta = {"preset": {**preset, "quality": q}, "env_kwargs": env_meta}
            for j, shard in enumerate(_split_steps(steps, shard_steps)):
                shard_seed = int(seed) + (k + len(parts) * j) * num_envs
                tasks.append({"n_steps": shard, "seed": shard_seed, "quality": q, "metadata": meta})
        plan = {
            "market": market,
            "quality": quality,
            "n_steps": n_steps,
            "seed": int(seed),
            "split": split,
            "num_envs": num_envs,
            "shard_steps": shard_steps,
            "env_kwargs": presets._market_source(market) | dict(env_kwargs or {}),
        }
        dataset_meta: dict[str, Any] = {
            "seed": int(seed),
            "preset": {**preset, "quality": quality},
            "collect": plan | {"n_shards": len(tasks)},
        }
        if quality == "mixed":
            dataset_meta["behavior_policy"] = "mixed"
            dataset_meta["policy_params"] = {"qualities": ["random", "medium", "expert"]}
        root = _prepare_root(out)
        _collect_tasks(
            env,
            root,
            tasks,
            plan,
            lambda task: presets.make_behavior_policy(task["quality"], env, int(task["seed"])),
            progress=progress,
            deterministic=True,
            observations="auto",
            resume=resume,
            dataset_metadata=dataset_meta,
        )
    finally:
        env.close()
    return load_sharded(root, mmap=mmap, verify=False)
