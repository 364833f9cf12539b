"""Build D4RL-style offline datasets on the default synthetic market and export them.

    python examples/offline_dataset.py                 # ~20k steps per quality, well under 2 min
    python examples/offline_dataset.py --steps 100000 --out /tmp/quantgym_datasets

Makes random / medium / expert / mixed datasets (see ``quantgym.datasets.presets``), prints
their episode-return statistics (expert > medium > random), saves them, and exports the expert
one to d3rlpy (``to_d3rlpy(ds)``) and Minari (``to_minari(ds, ...)``, skipped when minari is
not installed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from quantgym.datasets import QUALITIES, make_dataset, to_d3rlpy, to_minari


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--market", default="regime")
    parser.add_argument("--steps", type=int, default=20_000, help="transitions per dataset")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episode-length", type=int, default=250)
    parser.add_argument(
        "--out", default=None, help="directory for the .npz files (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="quantgym_datasets_"))

    means: dict[str, float] = {}
    datasets = {}
    print(
        f"{'quality':<8} {'episodes':>8} {'steps':>7} {'mean return':>12} {'std':>8} {'min':>8} {'max':>8}  seconds"
    )
    for quality in QUALITIES:
        start = time.perf_counter()
        ds = make_dataset(
            args.market, quality, n_steps=args.steps, seed=args.seed, num_envs=args.num_envs,
            env_kwargs={"episode_length": args.episode_length},
        )  # fmt: skip
        returns = ds.episode_returns()
        means[quality] = float(returns.mean())
        datasets[quality] = ds
        path = ds.save(out / f"{args.market}-{quality}")
        print(
            f"{quality:<8} {ds.n_episodes:>8} {ds.n_steps:>7} {returns.mean():>12.4f} {returns.std():>8.4f} "
            f"{returns.min():>8.4f} {returns.max():>8.4f}  {time.perf_counter() - start:6.1f}  -> {path.name}"
        )
    order = (
        "expert > medium > random"
        if means["expert"] > means["medium"] > means["random"]
        else "NOT ordered"
    )
    print(f"mean episode log return: {order}")

    expert = datasets["expert"]
    mdp = to_d3rlpy(expert)
    print(
        f"d3rlpy: {type(mdp).__name__} with {mdp.size()} episodes, {mdp.transition_count} transitions"
    )
    # Keep the example's Minari datasets next to the .npz files, not in ~/.minari.
    os.environ.setdefault("MINARI_DATASETS_PATH", str(out / "minari"))
    try:
        import minari
    except ImportError:
        print("minari is not installed: skipping the Minari export (pip install quantgym[minari])")
    else:
        dataset_id = f"quantgym/{args.market}-expert-v0"
        if dataset_id in minari.list_local_datasets():
            minari.delete_dataset(dataset_id)
        minari_ds = to_minari(expert, dataset_id)
        print(
            f"minari: {dataset_id} with {minari_ds.total_episodes} episodes, {minari_ds.total_steps} steps"
        )
    print(f"datasets saved in {out}")
    return means


if __name__ == "__main__":
    main()
