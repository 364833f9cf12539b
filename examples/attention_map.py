"""Where does the attention encoder look? Heat-map of ``ppo_transformer``'s attention for one decision.

    .venv/bin/python examples/attention_map.py                      # trains briefly (~1-2 min), then plots
    .venv/bin/python examples/attention_map.py --load runs/my_transformer --out attention.png

Needs matplotlib (``pip install 'quantgym[plot]'``). The figure has one panel per layer and
head: row i, column j is how much bar i of the observation window attends to bar j (oldest
bar on the left/top, the decision bar last). The bottom row of each panel is the newest bar,
the position the encoder pools for the decision; it is also drawn as a bar chart together
with the close prices of the window.
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym
import numpy as np

from quantgym import ENV_ID
from quantgym.agents.registry import load_agent, make_agent


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("examples/attention_map.py needs matplotlib: pip install 'quantgym[plot]'")
    return plt


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--load", default=None, help="a saved ppo_transformer directory (skips training)"
    )
    parser.add_argument("--steps", type=int, default=20_000, help="training steps when not loading")
    parser.add_argument("--window-size", type=int, default=32)
    parser.add_argument(
        "--bar", type=int, default=None, help="decision bar (default: 200 bars into the episode)"
    )
    parser.add_argument("--out", default="attention_map.png")
    args = parser.parse_args()
    plt = _pyplot()

    import torch

    torch.set_num_threads(1)
    if args.load:
        agent = load_agent(args.load)
        window_size = agent.config.window_size
    else:
        window_size = args.window_size
        agent = make_agent("ppo_transformer", seed=0)
        print(f"training ppo_transformer for {args.steps} steps ...")
        agent.fit(
            {"market": "regime", "window_size": window_size},
            train_steps=args.steps,
            progress_bar=True,
        )

    env = gym.make(ENV_ID, market="regime", window_size=window_size, episode_length=None)
    base = env.unwrapped
    decision_bar = args.bar if args.bar is not None else base.first_bar + 200
    obs, _ = env.reset(options={"start": base.first_bar})
    state, start = None, np.ones(1, bool)
    while (
        base.bar < decision_bar
    ):  # walk the policy up to the decision so the account features are real
        action, state = agent.predict(obs, state=state, episode_start=start)
        obs, *_ = env.step(action)
        start = np.zeros(1, bool)
    action, _ = agent.predict(obs, state=state, episode_start=start)
    weights = agent.attention_weights(obs)[0]  # (layers, heads, T, T), T = recent_bars
    n_layers, n_heads, n_bars = weights.shape[:3]
    positions = base.config.positions
    print(
        f"decision at bar {decision_bar} ({np.datetime_as_string(base.market.timestamps[decision_bar], 'D')}): "
        f"target position {positions[int(action)] if np.ndim(action) == 0 else float(action[0])}"
    )

    fig = plt.figure(figsize=(3.0 * n_heads, 3.0 * n_layers + 3.2), constrained_layout=True)
    grid = fig.add_gridspec(n_layers + 1, n_heads, height_ratios=[3] * n_layers + [3.2])
    lags = np.arange(-n_bars + 1, 1)
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = fig.add_subplot(grid[layer, head])
            image = ax.imshow(weights[layer, head], cmap="viridis", vmin=0.0, aspect="auto")
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=9)
            ticks = np.linspace(0, n_bars - 1, 5).astype(int)
            ax.set_xticks(ticks, lags[ticks], fontsize=7)
            ax.set_yticks(ticks, lags[ticks], fontsize=7)
            if head == 0:
                ax.set_ylabel("query bar (lag)", fontsize=8)
            if layer == n_layers - 1:
                ax.set_xlabel("key bar (lag)", fontsize=8)
            fig.colorbar(image, ax=ax, shrink=0.8)
    ax = fig.add_subplot(grid[n_layers, :])
    pooled = weights[:, :, -1, :].mean(
        axis=(0, 1)
    )  # how the decision bar attends, mean over layers/heads
    ax.bar(
        lags,
        pooled,
        color="tab:blue",
        alpha=0.7,
        label="attention of the decision bar (mean of heads)",
    )
    ax.set_xlabel("bar relative to the decision (0 = decision bar)")
    ax.set_ylabel("attention weight")
    closes = base.market.close[decision_bar - n_bars + 1 : decision_bar + 1]
    twin = ax.twinx()
    twin.plot(lags, closes, color="black", lw=1.5, label="close")
    twin.set_ylabel("close")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)
    fig.suptitle(f"ppo_transformer attention, one decision at bar {decision_bar}")
    fig.savefig(args.out, dpi=110)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
