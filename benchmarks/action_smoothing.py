"""Pick the imitation agents' ``action_smoothing`` on validation data, never on the test windows.

    nice -n 10 .venv/bin/python benchmarks/action_smoothing.py

``bc``, ``filtered_bc`` and ``dt`` (their other fields at their defaults) train once on the
preset dataset of each ``--datasets`` quality and seed (``offline_quality.py``'s datasets),
then trade ``--windows`` disjoint 1,000-bar windows of the *validation* regime series
(``filtered_bc_validation.VALIDATION_SEED``) at each smoothing weight of ``--weights``
(:mod:`quantgym.agents.smoothing`; 1 = the per-bar argmax). Score: cash = 0,
``bayes_filter_expert`` = 100, 95 % paired-bootstrap CI over (seed, window). The weight that
scores best over the rows is the agents' default. Results: ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from filtered_bc_validation import VALIDATION_SEED, validation_windows
from offline_quality import MARKET, run_windows, score_with_ci

from quantgym.agents import make_agent
from quantgym.datasets.presets import make_dataset
from quantgym.files import atomic_write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", nargs="+", default=["bc", "filtered_bc", "dt"])
    parser.add_argument("--datasets", nargs="+", default=["mixed", "expert"])
    parser.add_argument("--weights", nargs="+", type=float, default=[1.0, 0.3, 0.2, 0.1, 0.05])
    parser.add_argument("--dataset-steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/action_smoothing.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    held_out = validation_windows(args.windows)
    env_kwargs, starts, ref = held_out.env_kwargs, held_out.starts, held_out.reference
    growth: dict[tuple[str, str, float], list[np.ndarray]] = {}
    for quality in args.datasets:
        for seed in range(args.seeds):
            dataset = make_dataset(
                MARKET, quality, n_steps=args.dataset_steps, seed=seed, split="train"
            )
            for name in args.agents:
                agent = make_agent(name, seed=seed)
                agent.fit(dataset, progress_bar=False)
                for weight in args.weights:
                    agent.config = dataclasses.replace(agent.config, action_smoothing=weight)
                    g = run_windows(lambda _e, a=agent: a, env_kwargs, starts).log_growth
                    growth.setdefault((name, quality, weight), []).append(g)
                    score = 100 * g.mean() / ref.log_growth.mean()
                    print(f"{quality} seed {seed} {name} action_smoothing {weight}: {score:.1f}")
    table: dict[str, dict[str, dict[str, object]]] = {}
    for (name, quality, weight), runs in growth.items():
        value, low, high = score_with_ci(np.stack(runs), ref.log_growth)
        table.setdefault(f"{name} on {quality}", {})[str(weight)] = {
            "score": value,
            "ci": [low, high],
        }
    header = f"{'':<22}" + "".join(f"{w:>22}" for w in args.weights)
    print("\n" + header)
    for row, cells in table.items():
        print(
            f"{row:<22}"
            + "".join(
                f"{c['score']:6.1f} [{c['ci'][0]:6.1f},{c['ci'][1]:6.1f}]".rjust(22)
                for c in cells.values()
            )
        )
    mean_by_weight = {
        str(w): float(np.mean([cells[str(w)]["score"] for cells in table.values()]))
        for w in args.weights
    }
    best = max(mean_by_weight, key=mean_by_weight.__getitem__)
    print(f"mean over rows: {mean_by_weight}; best on validation: action_smoothing = {best}")
    atomic_write_json(
        args.out,
        {
            "protocol": {
                "agents": args.agents,
                "datasets": args.datasets,
                "dataset_steps": args.dataset_steps,
                "seeds": args.seeds,
                "windows": args.windows,
                "validation_seed": VALIDATION_SEED,
            },
            "table": table,
            "mean_by_weight": mean_by_weight,
            "best": float(best),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
