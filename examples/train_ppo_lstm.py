"""Train PPO-LSTM on the synthetic regime market and compare it with the baselines on held-out bars.

    .venv/bin/python examples/train_ppo_lstm.py                 # ~1-2 min on a laptop CPU
    .venv/bin/python examples/train_ppo_lstm.py --steps 1500000  # the agent's full default budget (~4 min)

The market's last 20% of bars are held out: training never loads them (``end=``), the test
env starts after them (``start=``, earlier bars only feed the causal features). The agent is
saved to ``--out`` (agent.json + model.zip + vecnormalize.npz) and reloaded for the test, as
in ``quantgym evaluate``. The score is ``normalized_score``: cash = 0, BayesFilterExpert = 100.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import pandas as pd

from quantgym import ENV_ID
from quantgym.agents.registry import load_agent, make_agent
from quantgym.evaluation import evaluate, normalized_score


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300_000, help="training env steps")
    parser.add_argument("--out", default="runs/example_ppo_lstm", help="where the agent is saved")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # tiny networks: one thread is fastest

    # Split the tradable bars of the default regime market 80/20 by date.
    full = gym.make(ENV_ID, episode_length=None).unwrapped
    cut = full.first_bar + int(0.8 * (full.market.last_bar - full.first_bar))
    train_end = str(pd.Timestamp(full.market.timestamps[cut]).date())
    test_start = str(pd.Timestamp(full.market.timestamps[cut + 1]).date())
    train_kwargs = {"market": "regime", "end": train_end}
    test_env = gym.make(ENV_ID, market="regime", start=test_start, episode_length=None)

    agent = make_agent("ppo_lstm", seed=args.seed)
    print(f"training ppo_lstm for {args.steps} steps on bars up to {train_end} ...")
    agent.fit(train_kwargs, train_steps=args.steps, progress_bar=True)
    agent.save(args.out)
    agent = load_agent(args.out)

    results = {"ppo_lstm": evaluate(agent, test_env)}
    for name in ("buy_and_hold", "sma_crossover", "bayes_filter_expert"):
        results[name] = evaluate(make_agent(name, env=test_env), test_env)
    reference = results["bayes_filter_expert"].total_return
    print(f"\ntest range from {test_start} (one deterministic pass, 15 bp costs)")
    print(f"{'agent':<22}{'return':>10}{'sharpe':>9}{'trades':>8}{'score':>8}")
    for name, res in results.items():
        m = res.episodes[0]
        score = normalized_score(res.total_return, reference)
        print(
            f"{name:<22}{m['total_return']:10.3f}{m['sharpe']:9.2f}{m['n_trades']:8.0f}{score:8.1f}"
        )
    print(
        f"\nsaved to {args.out}; try: quantgym evaluate {args.out} --data synthetic:regime --start {test_start}"
    )


if __name__ == "__main__":
    main()
