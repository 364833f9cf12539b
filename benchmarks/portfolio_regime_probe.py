"""What an allocating agent holds in each hidden regime of the synthetic factor market.

    nice -n 10 .venv/bin/python benchmarks/portfolio_regime_probe.py ppo_eiie --budget 100000 --seed 0
    .venv/bin/python benchmarks/portfolio_regime_probe.py kelly_filter_expert

Trains the agent (``--set key=value`` overrides its config) on the bars before
``--train-bars`` of the market ``benchmarks/portfolio_learning.py`` uses, then trades one
``--episode``-bar held-out episode from all cash, starting at bar ``--start``, deterministically.
Prints the log growth of the episode, the mean turnover per bar and, per true regime (bull,
bear, rotation_a, rotation_b), the mean invested fraction and the weight in each sector. A
bound agent (``kelly_filter_expert``, ``regime_seer``) is not trained.
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium as gym
import numpy as np

import quantgym
from quantgym.agents import make_agent
from quantgym.agents.cli import parse_assignments

ENV_ID = quantgym.PORTFOLIO_ENV_ID
BOUND = ("kelly_filter_expert", "regime_seer")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("agent")
    p.add_argument("--budget", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-bars", type=int, default=40_000)
    p.add_argument("--market-seed", type=int, default=0)
    p.add_argument("--train-bars", type=int, default=10_000)
    p.add_argument("--start", type=int, default=10_250)
    p.add_argument("--episode", type=int, default=4_000)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="agent config override")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    market = {"market_kwargs": {"n_bars": args.n_bars, "seed": args.market_seed}}
    panel = gym.make(ENV_ID, **market).unwrapped.panel
    env = gym.make(ENV_ID, data=panel, episode_length=args.episode)
    if args.agent in BOUND:
        agent = make_agent(args.agent, env=env)
    else:
        agent = make_agent(args.agent, seed=args.seed, **parse_assignments(args.set))
        t0 = time.perf_counter()
        end = str(panel.timestamps[args.train_bars - 1])
        agent.fit({**market, "end": end}, train_steps=args.budget, progress_bar=False)
        print(f"trained {args.budget} steps in {time.perf_counter() - t0:.0f} s")
    sector = np.asarray(panel.market_params["sectors"])
    obs, _ = env.reset(seed=0, options={"start": args.start})
    rows, done = [], False
    while not done:
        obs, _, terminated, truncated, info = env.step(agent.predict(obs)[0])
        done = terminated or truncated
        w = info["weights"]
        rows.append([info["regime"], w.sum(), info["turnover"]]
                    + [w[sector == s].sum() for s in np.unique(sector)])  # fmt: skip
    table = np.asarray(rows)
    growth = np.log(info["equity"] / env.unwrapped.config.initial_equity)
    print(f"{args.agent}: log growth {growth:.3f} over {len(table)} bars, "
          f"turnover {table[:, 2].mean():.4f}/bar")  # fmt: skip
    for k, name in enumerate(panel.market_params["regime_names"]):
        sel = table[:, 0] == k
        if sel.any():
            sectors = " ".join(f"sector{s} {v:.2f}" for s, v in enumerate(table[sel, 3:].mean(0)))
            print(
                f"  {name:11s} {sel.sum():5d} bars: invested {table[sel, 1].mean():.2f}  {sectors}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
