"""How ``dt_d3rlpy`` should act once trained: its inference settings, scored on validation data.

    nice -n 10 .venv/bin/python benchmarks/dt_d3rlpy_inference.py

``dt_d3rlpy`` (d3rlpy's ``DiscreteDecisionTransformer`` at its defaults; ``--train-steps``
changes its budget) trains once on the preset dataset of each ``--datasets`` quality and seed
(``offline_quality.py``'s datasets), then trades ``--windows`` disjoint 1,000-bar windows of the
*validation* regime series (``filtered_bc_validation.VALIDATION_SEED``, never the test windows)
under each inference setting: ``action_sampler`` (d3rlpy's softmax sampling, or the argmax),
``action_smoothing`` (:mod:`quantgym.agents.smoothing`) and the conditioning target (the
``--quantiles`` of the dataset's episode returns; 0.95 is the default). Only inference changes,
so every setting reads the same trained model. Score: cash = 0, ``bayes_filter_expert`` = 100, 95 % paired-bootstrap
CI over (seed, window). Results: ``--out`` (JSON, rewritten after every dataset and seed).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools

import numpy as np
import torch
from filtered_bc_validation import VALIDATION_SEED, validation_windows
from offline_quality import MARKET, run_windows, score_with_ci

from quantgym.agents import make_agent
from quantgym.datasets.presets import make_dataset
from quantgym.files import atomic_write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["random", "mixed", "expert"])
    parser.add_argument("--samplers", nargs="+", default=["softmax", "greedy"])
    parser.add_argument("--weights", nargs="+", type=float, default=[1.0, 0.05])
    parser.add_argument("--quantiles", nargs="+", type=float, default=[0.95, 1.0])
    parser.add_argument("--dataset-steps", type=int, default=50_000)
    parser.add_argument(
        "--train-steps", type=int, default=None, help="gradient steps (default: the agent's)"
    )
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/dt_d3rlpy_inference.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    held_out = validation_windows(args.windows)
    env_kwargs, starts, ref = held_out.env_kwargs, held_out.starts, held_out.reference
    settings = list(itertools.product(args.samplers, args.weights, args.quantiles))
    growth: dict[tuple[str, str, float, float], list[np.ndarray]] = {}
    for quality in args.datasets:
        for seed in range(args.seeds):
            dataset = make_dataset(
                MARKET, quality, n_steps=args.dataset_steps, seed=seed, split="train"
            )
            episode_returns = np.asarray(dataset.episode_returns(), dtype=np.float64)
            trained = make_agent("dt_d3rlpy", seed=seed)
            trained.fit(dataset, train_steps=args.train_steps, progress_bar=False)
            for sampler, weight, quantile in settings:
                # a fresh copy per setting: each samples from its own seeded generator
                agent = copy.deepcopy(trained)
                agent.config = dataclasses.replace(
                    trained.config,
                    action_sampler=sampler,
                    action_smoothing=weight,
                    target_return=float(np.quantile(episode_returns, quantile)),
                )
                g = run_windows(lambda _e, a=agent: a, env_kwargs, starts).log_growth
                growth.setdefault((quality, sampler, weight, quantile), []).append(g)
                score = 100 * g.mean() / ref.log_growth.mean()
                print(
                    f"{quality} seed {seed} {sampler} action_smoothing {weight} "
                    f"target q{quantile}: {score:.1f}",
                    flush=True,
                )
            rows = []
            for (q, sampler, weight, quantile), runs in growth.items():
                value, low, high = score_with_ci(np.stack(runs), ref.log_growth)
                rows.append(
                    {
                        "dataset": q,
                        "action_sampler": sampler,
                        "action_smoothing": weight,
                        "target_quantile": quantile,
                        "score": value,
                        "ci": [low, high],
                        "seeds": len(runs),
                    }
                )
            atomic_write_json(
                args.out,
                {
                    "protocol": {
                        "datasets": args.datasets,
                        "dataset_steps": args.dataset_steps,
                        "train_steps": args.train_steps or trained.config.train_steps,
                        "seeds": args.seeds,
                        "windows": args.windows,
                        "validation_seed": VALIDATION_SEED,
                    },
                    "rows": rows,
                },
            )
    print(f"\n{'dataset':<8} {'sampler':<8} {'smoothing':>9} {'target':>7}  score [95% CI]")
    for row in rows:
        print(
            f"{row['dataset']:<8} {row['action_sampler']:<8} {row['action_smoothing']:>9} "
            f"{'q' + str(row['target_quantile']):>7}  {row['score']:7.1f} "
            f"[{row['ci'][0]:.1f}, {row['ci'][1]:.1f}]"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
