"""Sharded datasets: collect shard by shard (bounded memory, resumable) and read them back.

:func:`collect_shards` records a list of tasks (steps, seed, policy) one shard each with
:func:`~quantgym.datasets.rollout.rollout` and appends every shard to the directory as soon
as it is recorded (:mod:`quantgym.datasets.shard_format`): memory holds one shard, a crash
leaves the finished shards listed and verified, and a rerun with the same plan collects only
the missing ones. :func:`collect_sharded` is that for one policy; the presets use it through
``make_dataset(out=...)``. :func:`load_sharded` and :func:`iter_shards` read the result.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quantgym.checks import check_positive_int
from quantgym.datasets import shard_format
from quantgym.datasets.rollout import rollout
from quantgym.datasets.trajectory import TrajectoryDataset

__all__ = ["split_steps", "collect_shards", "collect_sharded", "load_sharded", "iter_shards"]


def split_steps(n_steps: int, shard_steps: int) -> list[int]:
    """``n_steps`` as shards of ``shard_steps`` (the last one shorter)."""
    return [min(shard_steps, n_steps - lo) for lo in range(0, n_steps, shard_steps)]


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


def _resumable_manifest(root: Path, plan: Mapping[str, Any], resume: bool) -> dict[str, Any] | None:
    """The manifest of the shards already verified in ``root`` (``None``: start afresh)."""
    if not shard_format.is_sharded(root):
        return None
    existing = shard_format.read_manifest(root)
    if not resume:
        shutil.rmtree(root)
        root.mkdir(parents=True)
        return None
    if existing.get("collect_plan") != plan:
        raise ValueError(
            f"{root / shard_format.MANIFEST_NAME} was collected with "
            f"{existing.get('collect_plan')}, not {plan}; use another directory or resume=False"
        )
    shard_format.verify_shards(root, existing)
    return existing


def collect_shards(
    env: Any,
    out: str | os.PathLike,
    tasks: Sequence[Mapping[str, Any]],
    plan: Mapping[str, Any],
    make_policy: Callable[[Mapping[str, Any]], Any],
    *,
    progress: bool = True,
    deterministic: bool = True,
    observations: str = "auto",
    resume: bool = True,
    dataset_metadata: Mapping[str, Any] | None = None,
    mmap: bool = True,
) -> TrajectoryDataset:
    """Record each task ``{"n_steps", "seed", "metadata", ...}`` as one shard of ``out``.

    Shard ``j`` is ``rollout(env, make_policy(tasks[j]), n_steps=..., seed=...)`` with the
    task's metadata. ``plan`` (JSON) identifies the collection: with ``resume=True`` the
    shards already verified in ``out`` are kept when its manifest has the same plan (another
    plan is a ``ValueError``), and only the missing tasks run. The dataset's metadata is the
    first shard's, updated with ``dataset_metadata``, its date range covering every shard.
    Returns the dataset read back from ``out`` (``mmap``).
    """
    root = shard_format.prepare_directory(out)
    manifest = _resumable_manifest(root, plan, resume)
    done = 0 if manifest is None else len(manifest["shards"])
    total = sum(int(t["n_steps"]) for t in tasks)
    initial = sum(int(t["n_steps"]) for t in tasks[:done])
    from tqdm.auto import tqdm

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
            part = rollout(
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
                metadata = dict(part.metadata) | dict(dataset_metadata or {})
                manifest = shard_format.new_manifest(metadata, part.storage_description())
                manifest["collect_plan"] = dict(plan)
            _widen_date_range(manifest["metadata"], part.metadata.get("date_range"))
            extra = {
                "seed": int(task["seed"]),
                "behavior_policy": part.metadata.get("behavior_policy"),
                "seconds": round(time.perf_counter() - started, 3),
            }
            shard_format.append_shard(
                root,
                manifest,
                part.columns(),
                part.shared_columns(),
                part.storage_description(),
                extra,
            )
            del part
            bar.update(int(task["n_steps"]))
    assert manifest is not None
    manifest["complete"] = True
    shard_format.write_manifest(root, manifest)
    return load_sharded(root, mmap=mmap, verify=False)


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

    Shard ``j`` is an independent ``rollout(env, policy_j, n_steps=shard_steps, seed=seed +
    j * seed_stride)`` (``seed_stride`` defaults to the number of envs, so env seeds never
    repeat), written as soon as it is recorded: memory holds one shard. ``policy`` is an agent
    or a factory ``policy(env, seed) -> agent`` called per shard with the shard's seed; with
    a factory (or a policy without internal randomness) an interrupted collection resumed with
    the same arguments (``resume=True``: verified shards are kept, missing ones collected)
    equals an uninterrupted one. Returns the dataset read back from ``out`` (``mmap``).
    """
    n_steps = check_positive_int("n_steps", n_steps)
    shard_steps = check_positive_int("shard_steps", shard_steps)
    seed = check_positive_int("seed", seed, minimum=0)
    n_envs = int(getattr(env, "num_envs", 1))
    stride = check_positive_int("seed_stride", n_envs if seed_stride is None else seed_stride)
    plan = {
        "n_steps": n_steps,
        "shard_steps": shard_steps,
        "seed": seed,
        "seed_stride": stride,
        "n_envs": n_envs,
        "observations": observations,
        "deterministic": bool(deterministic),
    }
    tasks = [
        {"n_steps": steps, "seed": seed + j * stride, "metadata": metadata}
        for j, steps in enumerate(split_steps(n_steps, shard_steps))
    ]
    return collect_shards(
        env,
        out,
        tasks,
        plan,
        lambda task: _policy_for(policy, env, int(task["seed"])),
        progress=progress,
        deterministic=deterministic,
        observations=observations,
        resume=resume,
        dataset_metadata={"seed": seed, "collect": plan | {"n_shards": len(tasks)}},
        mmap=mmap,
    )


def load_sharded(
    path: str | os.PathLike, *, mmap: bool = False, verify: bool = True
) -> TrajectoryDataset:
    """The whole sharded dataset at ``path`` (``TrajectoryDataset.load`` of a directory).

    ``mmap=True`` memory-maps every file: a one-shard dataset holds nothing in RAM, and
    several shards' columns are joined shard by shard into a disk-backed map, so a dataset
    larger than RAM opens. ``verify`` checks every file's SHA-256 against the manifest first.
    Raises ``ValueError`` naming the file for a missing/corrupted shard or a truncated
    manifest, and for a collection that has not finished (resume it with
    ``collect(..., out=path)``).
    """
    stored = shard_format.read_shards(path, mmap=mmap, verify=verify)
    return TrajectoryDataset.from_stored(stored)


def iter_shards(
    path: str | os.PathLike, *, mmap: bool = True, verify: bool = True
) -> Iterator[TrajectoryDataset]:
    """Yield each shard as its own :class:`TrajectoryDataset` (one shard in memory at a time),
    also the finished shards of an interrupted collection."""
    for stored in shard_format.iter_shard_columns(path, mmap=mmap, verify=verify):
        yield TrajectoryDataset.from_stored(stored)
