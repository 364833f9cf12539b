"""Offline agents' learning curves and data curves on ``regime``: score against gradient steps
(at each dataset size), measured on the held-out windows of ``benchmarks/offline_quality.py``.

    nice -n 10 .venv/bin/python benchmarks/offline_learning_curves.py              # the committed run
    .venv/bin/python benchmarks/offline_learning_curves.py --quick                 # a smoke run

Each (agent, dataset quality, dataset size, seed) trains once; the agents of ``INCREMENTAL``
(``cql``, ``bcq``, ``bc``, ``filtered_bc``: constant learning rates) are scored after each
checkpoint of ``--steps`` and then trained further (one run, one optimiser); the others
(``dt``, ``qdt``, ``dt_d3rlpy``, ``supervised``) train afresh per budget, as their learning-rate
schedules or early stopping span the budget. Every other setting is the agent's ``make_agent``
default, so the knee of a curve is the default to pick. Datasets are the presets (``make_dataset("regime", quality, n_steps=size,
seed=seed)``), scores are normalized (cash = 0, ``bayes_filter_expert`` = 100) over
``--windows`` windows x ``--seeds`` seeds with a paired-bootstrap 95 % CI. Results go to
``--out`` (JSON, rewritten atomically after every point, so an interrupted run keeps what it
measured) and the plot to ``--plot``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from offline_quality import held_out_windows, run_windows, score_with_ci

from quantgym.agents import make_agent
from quantgym.datasets.presets import make_dataset
from quantgym.files import atomic_write, atomic_write_json

INCREMENTAL = ("cql", "bcq", "bc", "filtered_bc")  # d3rlpy agents: fit(k) continues training


def _scores(points: dict, key: tuple, ref: np.ndarray) -> dict[str, Any]:
    g = np.stack(points[key])
    value, low, high = score_with_ci(g, ref)
    return {"score": value, "ci": [low, high], "seeds": len(points[key])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", nargs="+", default=["cql", "bc"])
    parser.add_argument("--datasets", nargs="+", default=["random", "mixed"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[50_000])
    parser.add_argument("--steps", nargs="+", type=int, default=[500, 1_000, 2_500, 5_000, 10_000])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/offline_learning_curves.json")
    parser.add_argument("--plot", default="docs/offline_learning_curves.png")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--replot", action="store_true", help="only redraw --plot from the points in --out"
    )
    parser.add_argument(
        "--by-size", action="store_true", help="with --replot: score against dataset size"
    )
    parser.add_argument(
        "--also",
        nargs="+",
        default=[],
        help="with --replot: results JSON of other runs whose points join the plot",
    )
    args = parser.parse_args(argv)
    if args.replot:
        points = json.loads(Path(args.out).read_text())
        for path in args.also:
            points["points"] = points["points"] + json.loads(Path(path).read_text())["points"]
        (_plot_sizes if args.by_size else _plot)(points, args.plot)
        print(f"wrote {args.plot}")
        return 0
    if args.quick:
        args.windows, args.sizes, args.steps, args.seeds = 4, [3_000], [20, 40], 1
    torch.set_num_threads(1)
    window_bars = 1_000 if not args.quick else 200
    held_out = held_out_windows(args.windows, window_bars)
    env_kwargs, starts = held_out.env_kwargs, held_out.starts
    reference_name, ref = held_out.reference_name, held_out.reference.log_growth

    points: dict[tuple, list[np.ndarray]] = {}
    seconds: dict[tuple, list[float]] = {}
    t_start = time.perf_counter()
    result: dict[str, Any] = {}
    steps = sorted(args.steps)
    for quality in args.datasets:
        for size in args.sizes:
            for seed in range(args.seeds):
                dataset = make_dataset("regime", quality, n_steps=size, seed=seed)
                for name in args.agents:
                    agent = make_agent(name, seed=seed)
                    done, cpu = 0, 0.0
                    for budget in steps:
                        if name not in INCREMENTAL:
                            agent, done, cpu = make_agent(name, seed=seed), 0, 0.0
                        t0 = time.process_time()
                        agent.fit(dataset, train_steps=budget - done, progress_bar=False)
                        cpu += time.process_time() - t0
                        done = budget
                        g = run_windows(lambda _e, a=agent: a, env_kwargs, starts).log_growth
                        key = (name, quality, size, budget)
                        points.setdefault(key, []).append(g)
                        seconds.setdefault(key, []).append(cpu)
                        print(
                            f"{name:>12} {quality:>7} {size:>8,} seed {seed} steps {budget:>6,}: "
                            f"{100 * g.mean() / ref.mean():7.1f}  ({cpu / 60:.1f} CPU-min, "
                            f"{time.perf_counter() - t_start:.0f} s)",
                            flush=True,
                        )
                        result = {
                            "protocol": {
                                "market": "regime",
                                "test_env_kwargs": env_kwargs,
                                "windows": args.windows,
                                "window_bars": window_bars,
                                "reference": reference_name,
                                "seeds": args.seeds,
                            },
                            "points": [
                                {
                                    "agent": k[0],
                                    "dataset": k[1],
                                    "size": k[2],
                                    "train_steps": k[3],
                                    **_scores(points, k, ref),
                                    "train_cpu_seconds": float(np.mean(seconds[k])),
                                }
                                for k in points
                            ],
                        }
                        atomic_write_json(args.out, result)
    _plot(result, args.plot)
    print(f"wrote {args.out} and {args.plot} ({(time.perf_counter() - t_start) / 60:.1f} min)")
    return 0


PANELS = {  # one row of the learning-curve plot per family, so no panel holds more than 3 curves
    "value learning": ("cql", "bcq"),
    "imitation": ("bc", "filtered_bc", "supervised"),
    "sequence models": ("dt", "qdt", "dt_d3rlpy"),
}


def _plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["points"]
    datasets = sorted(
        {r["dataset"] for r in rows}, key=["random", "medium", "expert", "mixed"].index
    )
    agents = {r["agent"] for r in rows}
    listed = {a for members in PANELS.values() for a in members}
    families = [(f, [a for a in m if a in agents]) for f, m in PANELS.items()]
    families = [(f, m) for f, m in families if m]
    if agents - listed:
        families.append(("other", sorted(agents - listed)))
    fig, axes = plt.subplots(
        len(families),
        len(datasets),
        figsize=(5 * len(datasets), 3.4 * len(families)),
        squeeze=False,
    )
    for axes_row, (family, members) in zip(axes, families, strict=True):
        for ax, quality in zip(axes_row, datasets, strict=True):
            for agent in members:
                for size in sorted({r["size"] for r in rows}):
                    pts = sorted(
                        (
                            r
                            for r in rows
                            if (r["agent"], r["dataset"], r["size"]) == (agent, quality, size)
                        ),
                        key=lambda r: r["train_steps"],
                    )
                    if not pts:
                        continue
                    x = [p["train_steps"] for p in pts]
                    y = [p["score"] for p in pts]
                    lo = [p["ci"][0] for p in pts]
                    hi = [p["ci"][1] for p in pts]
                    label = f"{agent}, {size // 1000}k transitions"
                    line = ax.plot(x, y, "o-", label=label)[0]
                    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15)
            ax.axhline(100, color="black", ls="--", lw=0.8, label="bayes_filter_expert")
            ax.axhline(0, color="grey", lw=0.6)
            ax.set_xscale("log")
            ax.set_xlabel("gradient steps")
            ax.set_ylabel("normalized score (95% CI)")
            ax.set_title(f"{family}: regime / {quality} logs")
            ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def _plot_sizes(result: dict[str, Any], path: str) -> None:
    """Score against dataset size, one line per (agent, dataset, gradient steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["points"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for key in sorted({(r["agent"], r["dataset"], r["train_steps"]) for r in rows}):
        pts = sorted((r for r in rows if (r["agent"], r["dataset"], r["train_steps"]) == key),
                     key=lambda r: r["size"])  # fmt: skip
        if len(pts) < 2:
            continue
        x = [p["size"] for p in pts]
        line = ax.plot(
            x, [p["score"] for p in pts], "o-", label=f"{key[0]} / {key[1]}, {key[2]:,} steps"
        )[0]
        ax.fill_between(x, [p["ci"][0] for p in pts], [p["ci"][1] for p in pts],
                        color=line.get_color(), alpha=0.12)  # fmt: skip
    ax.axhline(100, color="black", ls="--", lw=0.8, label="bayes_filter_expert")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("transitions in the dataset")
    ax.set_ylabel("normalized score (95% CI)")
    ax.set_title("regime: score against logged data")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
