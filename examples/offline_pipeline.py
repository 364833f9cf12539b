"""Offline RL end to end: dataset -> ``cql``, ``bc``, ``dt`` -> an evaluation table.

    python examples/offline_pipeline.py                          # about 3 minutes on a laptop CPU
    python examples/offline_pipeline.py --dataset data/mixed.npz # a saved TrajectoryDataset
    python examples/offline_pipeline.py --agents bc cql dt dt_d3rlpy supervised --steps 2000

Without ``--dataset`` a ``mixed`` dataset (random + medium + expert, one third each) is
collected on the train range of the default ``regime`` market. A saved dataset (a ``.npz``
file or a sharded dataset directory) is read with ``TrajectoryDataset.load``; its recorded env
kwargs rebuild its market. The agents train on it and are evaluated with
``quantgym.evaluation.evaluate`` on the bars after the dataset's last date (held out), next to
cash (``flat``) and the reference policy, with the normalised score (cash = 0, reference = 100).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import gymnasium as gym
import pandas as pd
import torch

from quantgym import ENV_ID
from quantgym.agents import make_agent
from quantgym.agents.cli import format_table
from quantgym.datasets.presets import make_dataset
from quantgym.datasets.trajectory import TrajectoryDataset
from quantgym.evaluation import evaluate, normalized_score, reference_agent_name

DEFAULT_AGENTS = ("cql", "bc", "dt")
# Budgets that keep the whole script under 5 CPU-minutes (one torch thread).
BUDGETS: dict[str, dict[str, Any]] = {
    "bc": {"train_steps": 1_500, "batch_size": 128, "hidden_units": [128, 128]},
    "cql": {"train_steps": 2_000, "batch_size": 128, "hidden_units": [128, 128]},
    "dt": {"train_steps": 600, "context_length": 10, "n_layers": 2, "d_model": 64},
    "dt_d3rlpy": {"train_steps": 300, "context_length": 10, "n_layers": 2, "d_model": 64},
    "supervised": {"train_steps": 1_500},
}
COLUMNS = ("total_return", "sharpe", "max_drawdown", "turnover", "n_trades")


def held_out_env(dataset: TrajectoryDataset, episode_length: int) -> gym.Env:
    """The dataset's market from its recorded env kwargs, starting after its last date (for a
    preset dataset, after its split's range)."""
    kwargs = dict(dataset.metadata.get("env_kwargs") or {})
    if isinstance(kwargs.get("data"), str) and kwargs["data"].startswith("<"):
        raise SystemExit("this dataset's market was an in-memory DataFrame: evaluate it yourself")
    meta = dataset.metadata
    split = (meta.get("preset") or {}).get("split_range") or [None, None]
    # a preset's whole split range (not only the bars its episodes reached) counts as seen
    last = split[1] or (meta.get("date_range") or [None, None])[1]
    if last is None:
        raise SystemExit("the dataset records no date_range: cannot find its held-out bars")
    kwargs.pop("end", None)
    kwargs["start"] = str(pd.Timestamp(last) + pd.Timedelta(days=1))
    kwargs["episode_length"] = episode_length
    return gym.make(ENV_ID, **kwargs)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="a saved TrajectoryDataset (default: collect one)")
    parser.add_argument("--dataset-steps", type=int, default=60_000)
    parser.add_argument("--agents", nargs="+", default=list(DEFAULT_AGENTS))
    parser.add_argument("--steps", type=int, default=None, help="gradient steps for every agent")
    parser.add_argument("--episodes", type=int, default=8, help="held-out evaluation episodes")
    parser.add_argument("--episode-length", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()

    if args.dataset:
        dataset = TrajectoryDataset.load(args.dataset)
    else:
        dataset = make_dataset("regime", "mixed", n_steps=args.dataset_steps, seed=args.seed)
    print(f"dataset: {dataset}")
    env = held_out_env(dataset, args.episode_length)

    rows: dict[str, dict[str, float]] = {}
    first = None
    for name in args.agents:
        config = {**BUDGETS.get(name, {}), "seed": args.seed}
        if args.steps is not None:
            config["train_steps"] = args.steps
        if name == "supervised":
            config["verbose"] = False
        t = time.perf_counter()
        agent = make_agent(name, **config)
        agent.fit(dataset, progress_bar=False)
        result = evaluate(agent, env, n_episodes=args.episodes, seed=args.seed)
        first = first or result
        rows[name] = {**result.mean, "train_s": time.perf_counter() - t}
        print(f"  {name}: trained and evaluated in {rows[name]['train_s']:.0f} s")

    reference = reference_agent_name(env.unwrapped.market)
    assert first is not None
    for name in ("flat", reference):
        other = evaluate(make_agent(name, env=env), env, starts=first.starts, seed=args.seed)
        rows[name] = other.mean
    ref_return = rows[reference]["total_return"]
    for metrics in rows.values():
        try:
            metrics["score"] = normalized_score(metrics["total_return"], ref_return, 0.0)
        except ValueError:
            metrics["score"] = float("nan")
    print(
        f"\nheld out: {args.episodes} episodes x {args.episode_length} bars from "
        f"{env.unwrapped.market.timestamps[env.unwrapped.first_bar]} (score: cash = 0, "
        f"{reference} = 100)"
    )
    print(format_table(rows, ("score", *COLUMNS)))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return rows


if __name__ == "__main__":
    main()
