"""Trader twin: learn a trader's habits from an executed-trade log, then trade like them.

    python examples/trader_twin.py                 # about 1-2 minutes on a laptop CPU
    python examples/trader_twin.py --bc-steps 3000 --dt-steps 1000

1. A simple, noisy rule trader trades GOOGL (the bundled ``sample:googl`` data): each day
   after the close it sizes a position on a 5-level grid (-1, -0.5, 0, 0.5, 1) from the
   20-day momentum divided by its volatility, and one day in ten it is one level off. Its
   trade log (timestamp, target) is all the twin gets.
2. ``quantgym.datasets.trades.from_trades`` replays the train-range log through
   ``TradingEnv`` into a one-episode dataset (observations, actions, rewards, costs).
3. ``bc`` and ``dt`` are trained on it.
4. On the held-out range the twins predict the trader's actions along the trader's own path
   (exact and within-one-level accuracy), then trade on their own; their return is printed
   next to the trader's over the same bars.
"""

from __future__ import annotations

import argparse
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from quantgym import ENV_ID
from quantgym.agents import make_agent
from quantgym.datasets.trades import from_trades
from quantgym.evaluation import evaluate

GRID = (-1.0, -0.5, 0.0, 0.5, 1.0)
DATA = "sample:googl"
ENV_KWARGS: dict[str, Any] = {"window_size": 16}
DT_SHAPE: dict[str, Any] = {"context_length": 10, "n_layers": 2, "d_model": 64}  # fast on a CPU


def trader_targets(close: np.ndarray, seed: int, noise: float = 0.1) -> np.ndarray:
    """The rule trader's target after the close of each bar (NaN before it has 40 bars)."""
    rng = np.random.default_rng(seed)
    log_close = np.log(close)
    momentum = log_close - pd.Series(log_close).shift(20).to_numpy()
    vol = pd.Series(np.diff(log_close, prepend=np.nan)).rolling(40).std().to_numpy() * np.sqrt(20)
    level = np.clip(np.round(momentum / vol), -2, 2)  # -2 .. 2 grid levels
    slip = rng.random(len(close)) < noise
    level = np.where(slip, np.clip(level + rng.choice([-1, 1], len(close)), -2, 2), level)
    return level / 2.0


def trade_log(stamps: pd.DatetimeIndex, targets: np.ndarray, first: int, last: int) -> pd.DataFrame:
    """Trades of bars ``first .. last - 1``: decided at bar t's close, stamped at bar t + 1
    (``from_trades`` fills a trade at the open of the bar containing its timestamp)."""
    rows, held = [], None
    for t in range(first, last):
        if np.isfinite(targets[t]) and targets[t] != held:
            rows.append({"timestamp": stamps[t + 1], "target": float(targets[t])})
            held = targets[t]
    return pd.DataFrame(rows)


def predicted_actions(agent: Any, observations: np.ndarray) -> np.ndarray:
    """The agent's actions along a recorded path (stateful agents get the whole episode)."""
    state, actions = None, []
    for t, obs in enumerate(observations):
        action, state = agent.predict(obs[None], state, episode_start=np.array([t == 0]))
        actions.append(int(np.asarray(action).reshape(-1)[0]))
    return np.array(actions)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bc-steps", type=int, default=2_000)
    parser.add_argument("--dt-steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-fraction", type=float, default=0.7)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    probe = gym.make(ENV_ID, data=DATA, episode_length=None, **ENV_KWARGS)
    market, first_bar = probe.unwrapped.market, int(probe.unwrapped.first_bar)
    stamps = pd.DatetimeIndex(market.timestamps)
    targets = trader_targets(np.asarray(market.close), args.seed)
    split = first_bar + int((len(stamps) - first_bar) * args.train_fraction)
    last = len(stamps) - 1

    train = from_trades(
        trade_log(stamps, targets, first_bar + 1, split), DATA, positions=GRID,
        until=stamps[split], end=stamps[split], **ENV_KWARGS,
    )  # fmt: skip
    test = from_trades(
        trade_log(stamps, targets, split + 1, last), DATA, positions=GRID,
        until=stamps[last], **ENV_KWARGS,
    )  # fmt: skip
    print(
        f"trader: {train.n_steps} train days ({stamps[first_bar].date()} .. {stamps[split].date()}), "
        f"{test.n_steps} held-out days (.. {stamps[last].date()})"
    )

    twins: dict[str, Any] = {
        "bc": make_agent("bc", train_steps=args.bc_steps, seed=args.seed),
        "dt": make_agent("dt", **DT_SHAPE, train_steps=args.dt_steps, seed=args.seed),
    }

    observations = test.step_observations()
    truth = np.asarray(test.actions)
    first_test_bar = int(test.infos["bar"][0]) - 1  # the bar of the first decision
    env = gym.make(ENV_ID, data=DATA, episode_length=None, **ENV_KWARGS, positions=GRID)
    results: dict[str, dict[str, float]] = {}
    trader_return = float(np.expm1(np.sum(test.rewards)))
    for name, twin in twins.items():
        twin.fit(train, progress_bar=False)
        guess = predicted_actions(twin, observations)
        run = evaluate(twin, env, starts=[first_test_bar])
        results[name] = {
            "exact": float(np.mean(guess == truth)),
            "within_one": float(np.mean(np.abs(guess - truth) <= 1)),
            "twin_return": run.total_return,
        }
    print(f"\n{'twin':<10} {'exact':>7} {'within 1':>9} {'twin return':>12} {'trader return':>14}")
    for name, r in results.items():
        print(
            f"{name:<10} {r['exact']:7.1%} {r['within_one']:9.1%} {r['twin_return']:12.1%} "
            f"{trader_return:14.1%}"
        )
    chance = np.bincount(truth, minlength=len(GRID)).max() / len(truth)
    print(f"(always the trader's most common level: {chance:.1%} exact)")
    return results


if __name__ == "__main__":
    main()
