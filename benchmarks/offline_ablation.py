"""What made ``cql`` learn from random logs on ``regime``: each fix of issue 20 removed in turn.

    nice -n 10 .venv/bin/python benchmarks/offline_ablation.py            # the committed table
    .venv/bin/python benchmarks/offline_ablation.py --quick               # a smoke run

Rows (every other field at ``cql``'s ``make_agent`` defaults):

- ``defaults``: the defaults (rewards scaled to unit std, ``hidden_units=[32]``, the position
  as the only account input), preset dataset on the 100,000-bar series;
- ``raw rewards``: ``reward_scale=1.0``;
- ``[256, 256]``: the former network;
- ``no position``: ``account_features=False``;
- ``all account``: ``account_features=True``;
- ``short series``: the dataset collected on the default 10,000-bar series (6,467 train bars);
- ``former defaults``: all of the above undone at once (what ``cql`` was before the fix).

Each row trains on the same ``--quality`` preset dataset of ``--dataset-steps`` transitions
(seed s) and trades the held-out windows of ``benchmarks/offline_quality.py`` (regime seed
10007); score: cash = 0, ``bayes_filter_expert`` = 100, 95 % paired-bootstrap CI over
(seed, window). Results: ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from offline_quality import held_out_windows, run_windows, score_with_ci

from quantgym.agents import make_agent
from quantgym.datasets.presets import make_dataset
from quantgym.files import atomic_write_json

FORMER = {"reward_scale": 1.0, "hidden_units": [256, 256], "account_features": False}
ROWS: dict[str, tuple[dict[str, Any], bool]] = {  # name: (cql fields, short series)
    "defaults": ({}, False),
    "raw rewards": ({"reward_scale": 1.0}, False),
    "[256, 256]": ({"hidden_units": [256, 256]}, False),
    "no position": ({"account_features": False}, False),
    "all account": ({"account_features": True}, False),
    "short series": ({}, True),
    "former defaults": (FORMER, True),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", default="random")
    parser.add_argument("--dataset-steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--rows", nargs="+", default=list(ROWS))
    parser.add_argument("--out", default="benchmarks/results/offline_ablation.json")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    extra: dict[str, Any] = {}
    if args.quick:
        args.windows, args.dataset_steps, args.seeds = 4, 3_000, 1
        extra = {"train_steps": 20}
    torch.set_num_threads(1)
    window_bars = 200 if args.quick else 1_000
    held_out = held_out_windows(args.windows, window_bars)
    env_kwargs, starts = held_out.env_kwargs, held_out.starts
    reference_name, ref = held_out.reference_name, held_out.reference.log_growth

    growth: dict[str, list[np.ndarray]] = {}
    t_start = time.perf_counter()
    for seed in range(args.seeds):
        datasets = {}
        for row in args.rows:
            fields, short = ROWS[row]
            if short not in datasets:
                market = {"market_kwargs": {}} if short else None  # {}: the 10,000-bar default
                datasets[short] = make_dataset(
                    "regime", args.quality, n_steps=args.dataset_steps, seed=seed, env_kwargs=market
                )
            agent = make_agent("cql", seed=seed, **fields, **extra)
            agent.fit(datasets[short], progress_bar=False)
            g = run_windows(lambda _e, a=agent: a, env_kwargs, starts).log_growth
            growth.setdefault(row, []).append(g)
            print(
                f"seed {seed} {row:>16}: {100 * g.mean() / ref.mean():7.1f} "
                f"({time.perf_counter() - t_start:.0f} s)",
                flush=True,
            )
    table = {}
    print(
        f"\ncql on regime/{args.quality} ({args.dataset_steps:,} transitions), "
        f"{args.seeds} seeds x {args.windows} windows, cash = 0, {reference_name} = 100"
    )
    for row, runs in growth.items():
        value, low, high = score_with_ci(np.stack(runs), ref)
        table[row] = {"score": value, "ci": [low, high], "fields": ROWS[row][0],
                      "short_series": ROWS[row][1]}  # fmt: skip
        print(f"{row:>16}: {value:7.1f} [{low:7.1f}, {high:7.1f}]")
    atomic_write_json(
        args.out,
        {
            "protocol": {
                "quality": args.quality,
                "dataset_steps": args.dataset_steps,
                "seeds": args.seeds,
                "windows": args.windows,
                "window_bars": window_bars,
                "reference": reference_name,
            },  # fmt: skip
            "table": table,
            "elapsed_seconds": time.perf_counter() - t_start,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
