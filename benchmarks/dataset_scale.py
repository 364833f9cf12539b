"""Datasets at scale: by-reference sharded datasets side by side with today's dense format.

    python benchmarks/dataset_scale.py                         # 10M regime/mixed transitions
    python benchmarks/dataset_scale.py --steps 1000000 --dense-steps 200000 --out /tmp/ds

Each phase runs in its own Python process so its peak resident memory is its own:

* ``collect``: ``make_dataset("regime", "mixed", steps, out=...)`` (window 32, N envs, shards
  of ``--shard-steps``) -> seconds, peak RSS, bytes per transition on disk and in memory.
* ``dense``: the same preset recorded with ``observations="dense"`` (today's format) for
  ``--dense-steps`` steps, saved as a compressed ``.npz`` -> the same figures.
* ``sample``: ``SequenceDataset(context_length=20)`` over the sharded dataset (memory-mapped)
  -> Decision Transformer batches (64 x 20) per second, median of ``--repeats`` timed blocks,
  and the same on the dense dataset.
* ``exact``: materialised observations of by-reference vs dense recordings of the same
  rollout compared bit for bit.

Prints one JSON object; ``--json PATH`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from quantgym import ENV_ID

__all__ = ["main"]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _threads() -> None:
    import torch

    torch.set_num_threads(1)


def phase_collect(args: argparse.Namespace) -> dict[str, Any]:
    from quantgym.datasets import TrajectoryDataset, make_dataset

    out = Path(args.out) / "sharded"
    if out.exists() and not args.resume:
        shutil.rmtree(out)
    start = time.perf_counter()
    ds = make_dataset(
        out=out,
        market="regime",
        quality="mixed",
        n_steps=args.steps,
        seed=args.seed,
        num_envs=args.num_envs,
        shard_steps=args.shard_steps,
        progress=False,
    )
    seconds = time.perf_counter() - start
    rss_collect = _peak_rss_mb()
    n = ds.n_steps
    del ds
    loaded = TrajectoryDataset.load(out)  # into memory (not mapped), to count its bytes
    return {
        "steps": n,
        "seconds": round(seconds, 2),
        "steps_per_s": round(n / seconds),
        "peak_rss_mb_collect": round(rss_collect),
        "peak_rss_mb_after_load": round(_peak_rss_mb()),
        "bytes_per_transition_memory": round(loaded.nbytes / n, 2),
        "bytes_per_transition_disk": round(_disk_bytes(out) / n, 2),
        "storage": loaded.observation_storage,
        "derived_infos": list(loaded.derived_infos),
        "n_shards": len([p for p in out.glob("shard-*")]),
    }


def phase_dense(args: argparse.Namespace) -> dict[str, Any]:
    import functools

    from quantgym.datasets import presets
    from quantgym.datasets.rollout import rollout

    # Today's format: the preset recorded densely (rollout(..., observations="dense")).
    presets.rollout = functools.partial(rollout, observations="dense")  # type: ignore[attr-defined]
    start = time.perf_counter()
    ds = presets.make_dataset(
        market="regime",
        quality="mixed",
        n_steps=args.dense_steps,
        seed=args.seed,
        num_envs=args.num_envs,
    )
    seconds = time.perf_counter() - start
    rss = _peak_rss_mb()
    path = ds.save(Path(args.out) / "dense.npz")
    n = ds.n_steps
    return {
        "steps": n,
        "seconds": round(seconds, 2),
        "steps_per_s": round(n / seconds),
        "peak_rss_mb_collect": round(rss),
        "bytes_per_transition_memory": round(ds.nbytes / n, 2),
        "bytes_per_transition_disk": round(_disk_bytes(path) / n, 2),
        "storage": ds.observation_storage,
    }


def _sample_rate(dataset: Any, batches: int, repeats: int, seed: int) -> dict[str, Any]:
    import numpy as np

    from quantgym.datasets.sequence import SequenceDataset

    start = time.perf_counter()
    seq = SequenceDataset(dataset, context_length=20)
    build = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    seq.sample_batch(64, rng)  # warm up page cache and allocator
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(batches):
            seq.sample_batch(64, rng)
        rates.append(batches / (time.perf_counter() - t0))
    rates.sort()
    return {
        "build_seconds": round(build, 2),
        "batches_per_s_median": round(rates[len(rates) // 2], 1),
        "batches_per_s_min": round(rates[0], 1),
        "batches_per_s_max": round(rates[-1], 1),
        "repeats": repeats,
        "batches_per_repeat": batches,
    }


def phase_sample(args: argparse.Namespace) -> dict[str, Any]:
    from quantgym.datasets import TrajectoryDataset

    _threads()
    out: dict[str, Any] = {}
    sharded = TrajectoryDataset.load(Path(args.out) / "sharded", mmap=True, verify=False)
    out["reference"] = _sample_rate(sharded, args.batches, args.repeats, args.seed)
    out["reference"]["steps"] = sharded.n_steps
    out["reference"]["peak_rss_mb"] = round(_peak_rss_mb())
    out["reference"]["dt_steps_per_s"] = args.dt_steps_per_s
    out["reference"]["ratio_to_dt"] = round(
        out["reference"]["batches_per_s_median"] / args.dt_steps_per_s, 1
    )
    del sharded
    dense_path = Path(args.out) / "dense.npz"
    if dense_path.exists():
        dense = TrajectoryDataset.load(dense_path)
        out["dense"] = _sample_rate(dense, args.batches, args.repeats, args.seed)
        out["dense"]["steps"] = dense.n_steps
    return out


def phase_exact(args: argparse.Namespace) -> dict[str, Any]:
    import gymnasium as gym
    import numpy as np

    import quantgym  # noqa: F401 - registers the env
    from quantgym.datasets import collect
    from quantgym.datasets.presets import make_behavior_policy, preset_env_kwargs

    kwargs = preset_env_kwargs("regime", "train")
    recorded = {}
    for mode in ("auto", "dense"):
        env = gym.make_vec(ENV_ID, num_envs=args.num_envs, **kwargs)
        policy = make_behavior_policy("medium", env, args.seed)
        recorded[mode] = collect(
            env, policy, n_steps=args.exact_steps, seed=args.seed, progress=False, observations=mode
        )
        env.close()
    a, b = recorded["auto"], recorded["dense"]
    same = (
        a.observations.tobytes() == b.observations.tobytes()
        and np.array_equal(a.actions, b.actions)
        and all(np.array_equal(a.infos[k], b.infos[k]) for k in b.infos)
    )
    return {"steps": a.n_steps, "storage": a.observation_storage, "bit_identical": bool(same)}


PHASES = {
    "collect": phase_collect,
    "dense": phase_dense,
    "sample": phase_sample,
    "exact": phase_exact,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000_000)
    parser.add_argument("--dense-steps", type=int, default=1_000_000)
    parser.add_argument("--exact-steps", type=int, default=20_000)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--shard-steps", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--dt-steps-per-s",
        type=float,
        default=8.5,
        help="the Decision Transformer's training steps/s on this CPU (its session measures it)",
    )
    parser.add_argument("--out", default=None, help="working directory (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the datasets written")
    parser.add_argument("--resume", action="store_true", help="resume the sharded collection")
    parser.add_argument("--phases", default="exact,collect,dense,sample")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--json", default=None, help="also write the result here")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    if args.phase is not None:
        result = PHASES[args.phase](args)
        print(json.dumps(result))
        return result
    own_dir = args.out is None
    work = Path(tempfile.mkdtemp(prefix="dataset_scale_")) if own_dir else Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    results: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "steps": args.steps,
        "dense_steps": args.dense_steps,
        "num_envs": args.num_envs,
        "shard_steps": args.shard_steps,
    }
    try:
        for phase in args.phases.split(","):
            command = [sys.executable, __file__, *argv, "--out", str(work), "--phase", phase]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"phase {phase} failed:\n{done.stderr}")
            results[phase] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{phase}: {results[phase]}", file=sys.stderr)
    finally:
        if own_dir and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
