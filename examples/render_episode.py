"""Render one episode of the Bayes-filter expert to a PNG (``render_mode="rgb_array"``).

    python examples/render_episode.py --out docs/episode.png

No matplotlib needed for the frame itself (the env draws it in numpy); saving the PNG uses
matplotlib if installed, else Pillow.
"""

from __future__ import annotations

import argparse

import gymnasium as gym

from quantgym import ENV_ID
from quantgym.agents import BayesFilterExpert


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="episode.png")
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    env = gym.make(ENV_ID, episode_length=args.steps, render_mode="rgb_array")
    agent = BayesFilterExpert(env=env)
    obs, _ = env.reset(seed=3)
    done = False
    while not done:
        action, _ = agent.predict(obs)
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    frame = env.render()
    try:
        import matplotlib.pyplot as plt

        plt.imsave(args.out, frame)
    except ImportError:
        from PIL import Image

        Image.fromarray(frame).save(args.out)
    m = env.unwrapped.metrics()
    print(
        f"saved {args.out} {frame.shape}: total return {m['total_return']:+.1%}, Sharpe {m['sharpe']:.2f}, {m['n_trades']} trades"
    )


if __name__ == "__main__":
    main()
