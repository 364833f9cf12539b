"""Pick ``filtered_bc``'s ``top_fraction`` on validation data, never on the test windows.

    nice -n 10 .venv/bin/python benchmarks/filtered_bc_validation.py

For each fraction of the best episodes kept (``--fractions``), ``filtered_bc`` (its other
fields at their defaults) trains on the preset ``--quality`` dataset of each seed and trades
``--windows`` disjoint 1,000-bar windows of a *validation* regime series: seed
``VALIDATION_SEED``, not ``offline_quality.py``'s test series (seed 10,007). Score: cash = 0,
``bayes_filter_expert`` = 100, 95 % paired-bootstrap CI over (seed, window). The best fraction
is ``FilteredBCAgent.Config.top_fraction``'s default. Results: ``--out`` (JSON).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from offline_quality import HeldOut, held_out_windows, run_windows, score_with_ci

from quantgym.agents import make_agent
from quantgym.datasets.presets import make_dataset
from quantgym.files import atomic_write_json

VALIDATION_SEED = 20_011


def validation_windows(n_windows: int) -> HeldOut:
    """``n_windows`` disjoint 1,000-bar windows of the validation series (``VALIDATION_SEED``)
    with the reference's growth on them: where the offline benchmarks pick settings, never the
    test windows of ``offline_quality.py``."""
    return held_out_windows(n_windows, 1_000, seed=VALIDATION_SEED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.1, 0.3, 0.5, 1.0])
    parser.add_argument("--quality", default="mixed")
    parser.add_argument("--dataset-steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/filtered_bc_validation.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    held_out = validation_windows(args.windows)
    env_kwargs, starts, ref = held_out.env_kwargs, held_out.starts, held_out.reference
    growth: dict[float, list[np.ndarray]] = {}
    for seed in range(args.seeds):
        dataset = make_dataset("regime", args.quality, n_steps=args.dataset_steps, seed=seed)
        for fraction in args.fractions:
            agent = make_agent("filtered_bc", seed=seed, top_fraction=fraction)
            agent.fit(dataset, progress_bar=False)
            g = run_windows(lambda _e, a=agent: a, env_kwargs, starts).log_growth
            growth.setdefault(fraction, []).append(g)
            print(
                f"seed {seed} top_fraction {fraction}: {100 * g.mean() / ref.log_growth.mean():.1f}"
            )
    table = {}
    for fraction, runs in growth.items():
        value, low, high = score_with_ci(np.stack(runs), ref.log_growth)
        table[str(fraction)] = {"score": value, "ci": [low, high]}
        print(f"top_fraction {fraction:4}: {value:6.1f} [{low:6.1f}, {high:6.1f}]")
    best = max(table, key=lambda k: table[k]["score"])
    print(f"best on validation: top_fraction = {best}")
    atomic_write_json(
        args.out,
        {
            "protocol": {
                "quality": args.quality,
                "dataset_steps": args.dataset_steps,
                "seeds": args.seeds,
                "windows": args.windows,
                "validation_seed": VALIDATION_SEED,
            },  # fmt: skip
            "table": table,
            "best": float(best),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
