"""``collect``: record any policy into a :class:`TrajectoryDataset`, in memory or, with
``out``, shard by shard into a resumable directory.

In memory it is :func:`~quantgym.datasets.rollout.rollout` (one loop for single and vector
envs); with ``out`` it is :func:`~quantgym.datasets.shards.collect_sharded`.
"""

from __future__ import annotations

import os
from typing import Any

from quantgym.checks import check_choice
from quantgym.datasets.recorder import OBSERVATION_MODES
from quantgym.datasets.rollout import ROLLOUT_OPTIONS, rollout
from quantgym.datasets.shards import collect_sharded
from quantgym.datasets.trajectory import TrajectoryDataset

__all__ = ["collect"]


def collect(
    env: Any,
    policy: Any,
    n_steps: int | None = None,
    n_episodes: int | None = None,
    seed: int = 0,
    progress: bool = True,
    *,
    out: str | os.PathLike | None = None,
    shard_steps: int = 1_000_000,
    resume: bool = True,
    **options: Any,
) -> TrajectoryDataset:
    """Run ``policy`` on ``env`` and return the recorded :class:`TrajectoryDataset`.

    Without ``out`` this is :func:`~quantgym.datasets.rollout.rollout`: the env (single or
    vector), the policy (SB3's ``predict``), ``n_steps`` or ``n_episodes``, the seed, a
    progress bar, and ``options``: ``deterministic`` (passed to ``predict``), ``metadata``
    (extra keys) and ``observations`` (``"auto"``: by reference when bit-exact, ``"dense"``,
    ``"reference"``); the dataset is held in memory.

    Args:
        out: a directory: collect ``n_steps`` in independent shards of ``shard_steps``
            transitions (shard ``j`` resets the env with seed ``seed + j * num_envs``), write
            each as it completes (bounded memory) and return the dataset loaded from disk;
            see :func:`quantgym.datasets.shards.collect_sharded`. ``policy`` may then also be
            a factory ``policy(env, seed) -> policy`` called once per shard (what makes a
            resumed collection equal an uninterrupted one for a stochastic policy).
        shard_steps: transitions per shard with ``out``.
        resume: with ``out``, keep the verified shards already there and collect only the
            missing ones.
    """
    unknown = sorted(set(options) - set(ROLLOUT_OPTIONS))
    if unknown:
        raise TypeError(f"collect() got unexpected keyword arguments {unknown}")
    check_choice("observations", options.get("observations", "auto"), OBSERVATION_MODES)
    if out is None:
        budget = {"n_steps": n_steps, "n_episodes": n_episodes}
        return rollout(env, policy, seed=seed, progress=progress, **budget, **options)
    if n_steps is None or n_episodes is not None:
        raise ValueError("collect(out=...) needs n_steps (and no n_episodes)")
    sharding = {"shard_steps": shard_steps, "resume": resume}
    return collect_sharded(
        env, policy, out, n_steps=n_steps, seed=seed, progress=progress, **sharding, **options
    )
