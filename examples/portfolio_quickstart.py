"""PortfolioEnv-v0 quickstart (< 1 min on a laptop CPU).

1. The default market (8 synthetic assets, hidden regimes): the uniform portfolio (1/N, rebalanced
   every bar), the same with a 5 % no-trade band, and buy-and-hold, over the same episode
   (``reset(seed=0)``).
2. A bundled real data set (DJIA, close-only, the OLPS form): 1/N with and without costs.
3. The worked cost examples of the README, computed by the env.
4. The vector env and its SB3 adapter.

Run: ``PYTHONPATH=$PWD python examples/portfolio_quickstart.py [--plot weights.png]``.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import pandas as pd

import quantgym
from quantgym.envs import PortfolioEnv, to_sb3


def run(env: gym.Env, policy, seed: int = 0, start=None) -> dict:
    """One episode; ``policy(env) -> weights``."""
    env.reset(seed=seed, options={"start": start} if start is not None else None)
    done = False
    while not done:
        *_, terminated, truncated, _ = env.step(policy(env.unwrapped))
        done = terminated or truncated
    return env.unwrapped.metrics()


def uniform(env) -> np.ndarray:
    return np.full(env.n_assets, 1.0 / env.n_assets)


def hold(env) -> np.ndarray:
    """Buy 1/N once, then target the weights held (they drift with prices: the 1 % band stops
    the micro-trades that chasing the drift between a close and the next open would cost)."""
    return uniform(env) if env.weights.sum() == 0 else env.weights.clip(0, 1)


def show(name: str, m: dict) -> None:
    print(f"  {name:28s} total return {m['total_return']:+8.2%}  sharpe {m['sharpe']:5.2f}  "
          f"max drawdown {m['max_drawdown']:7.2%}  turnover {m['turnover']:7.2f}  fees {m['fees_paid']:8.2f}")  # fmt: skip


def cost_examples() -> None:
    """The README's worked examples: two assets, round prices (tests/envs/portfolio_frames.py)."""
    index = pd.bdate_range("2020-01-06", periods=4, name="timestamp")
    prices = {
        "A": ([100, 100, 105, 104], [100, 110, 104, 100]),
        "B": ([50, 50, 48, 50], [50, 45, 50, 40]),
    }
    frame = pd.DataFrame({
        (a, f): np.asarray(v, float) + d
        for a, (o, c) in prices.items()
        for f, v, d in (("open", o, 0), ("high", np.maximum(o, c), 1), ("low", np.minimum(o, c), -1),
                        ("close", c, 0), ("volume", [1e6] * 4, 0))
    }, index=index)  # fmt: skip
    env = PortfolioEnv(
        frame, features=(), window_size=1, episode_length=None, commission=0.001, slippage=0.0005
    )
    env.reset(options={"start": 0})
    for label, target in (("cash -> A 60% / B 20%", [0.6, 0.2]), ("-> A 30% / B 30%", [0.3, 0.3])):
        *_, info = env.step(np.array(target))
        print(f"  {label:24s} trades A {info['trades'][0]:+10,.2f} B {info['trades'][1]:+10,.2f}  "
              f"fees {info['fees']:6.2f}  slippage {info['slippage_cost']:5.2f}  equity {info['equity']:10,.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plot", help="save the banded 1/N episode as a PNG (weights and equity)")
    args = parser.parse_args()

    env = gym.make(quantgym.PORTFOLIO_ENV_ID)  # no arguments: the seeded synthetic market
    u = env.unwrapped
    print(f"{quantgym.PORTFOLIO_ENV_ID}: {u.n_assets} assets, obs {env.observation_space.shape} "
          f"= {u.layout.shapes}, action {env.action_space}")  # fmt: skip
    print(
        "1. synthetic factor/regime market, one 1,000-bar episode, 10 bp commission + 5 bp slippage:"
    )
    show("1/N every bar", run(env, uniform))
    banded = gym.make(quantgym.PORTFOLIO_ENV_ID, rebalance_band=0.05, render_mode="rgb_array")
    show("1/N, 5% no-trade band", run(banded, uniform))
    show(
        "buy and hold (1% band)",
        run(gym.make(quantgym.PORTFOLIO_ENV_ID, rebalance_band=0.01), hold),
    )

    print("2. DJIA (OLPS set, close-only: fills at the previous close), the whole set:")
    for commission in (0.0, 0.001):
        djia = PortfolioEnv("sample:djia", features=(), window_size=1, episode_length=None,
                            commission=commission, slippage=0.0)  # fmt: skip
        show(f"1/N, commission {commission:.1%}", run(djia, uniform))

    print("3. worked cost examples (commission 0.1 %, slippage 0.05 %, 10,000 to start):")
    cost_examples()

    print("4. vector env + SB3 adapter:")
    venv = gym.make_vec(quantgym.PORTFOLIO_ENV_ID, num_envs=4)
    sb3 = to_sb3(venv)
    obs = sb3.reset()
    obs, rewards, dones, _ = sb3.step(np.full((4, u.n_assets), 0.1, dtype=np.float32))
    print(
        f"  {type(venv).__name__} x4 -> SB3 VecEnv: obs {obs.shape}, rewards {np.round(rewards, 5)}"
    )

    if args.plot:
        import matplotlib.pyplot as plt

        plt.imsave(args.plot, banded.render())
        print(f"saved {args.plot}")


if __name__ == "__main__":
    main()
