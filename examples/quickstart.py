"""Quickstart: random vs buy-and-hold on the default synthetic market and on bundled GOOGL.

    python examples/quickstart.py

Runs in a few seconds. Shows the gymnasium loop by hand, then the same comparison with
``quantgym.evaluation.evaluate`` over fixed, seeded episode starts.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from quantgym import ENV_ID
from quantgym.agents import BuyAndHoldAgent, RandomAgent
from quantgym.evaluation import evaluate

METRICS = ("total_return", "annualized_return", "sharpe", "max_drawdown", "n_trades", "fees_paid")


def hand_written_loop() -> None:
    """The plain gymnasium API: reset, step until the episode ends, read metrics."""
    env = gym.make(ENV_ID)  # seeded synthetic regime market, 15 bp per unit traded
    obs, info = env.reset(seed=42)
    print(f"observation {obs.shape}, actions {env.action_space} -> positions (-1, 0, 1)")
    print(f"start: bar {info['bar']} at {info['timestamp']}, equity {info['equity']:,.0f}")
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        done = terminated or truncated
    print(
        f"random trader after {len(env.unwrapped.history())} bars: equity {info['equity']:,.0f}\n"
    )


def compare(data: str | None) -> None:
    env = gym.make(ENV_ID, data=data, episode_length=250)
    label = data or "synthetic:regime (default)"
    print(f"== {label}: 5 episodes of 250 bars at the same seeded starts ==")
    print(f"{'agent':>14s} " + " ".join(f"{m:>18s}" for m in METRICS))
    for agent in (RandomAgent(env=env, seed=0), BuyAndHoldAgent(env=env)):
        result = evaluate(agent, env, n_episodes=5, seed=0)
        mean = result.mean
        print(f"{agent.name:>14s} " + " ".join(f"{mean[m]:18.4f}" for m in METRICS))
    print()


def main() -> None:
    np.set_printoptions(precision=4, suppress=True)
    hand_written_loop()
    compare(None)
    compare("sample:googl")


if __name__ == "__main__":
    main()
