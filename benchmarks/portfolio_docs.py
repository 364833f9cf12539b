"""The worked cost examples and the weights-over-time figure of docs/portfolio.md, computed by
the env itself (nothing here is typed in by hand).

    .venv/bin/python benchmarks/portfolio_docs.py            # prints the examples' markdown,
                                                             # writes docs/portfolio_weights.png

Examples: a 2-asset OHLC panel (closes 100 and 50 at bar 0; opens 101 and 49.5 and closes 102
and 49 at bar 1; opens 103 and 48.5 and closes 101 and 50.5 at bar 2), 10,000 of cash,
commission 10 bp and slippage 5 bp per unit traded: (1) from cash to 60% / 30%; (2) the next
bar, back to 60% / 30% after the drift; (3) the same first trade on close-only data (fills at the
previous close). Figure: ``kelly_filter_expert`` and ``olmar`` on the synthetic factor market
(seed 0) at 10 bp, their weights over 400 bars, the hidden regime on top.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd

from quantgym import PORTFOLIO_ENV_ID

__all__ = ["example_panel", "cost_examples", "examples_markdown", "plot_weights", "main"]

DOCS = Path(__file__).resolve().parents[1] / "docs"
COSTS = {"commission": 0.001, "slippage": 0.0005}


def example_panel(close_only: bool = False) -> pd.DataFrame:
    """Three bars of two assets, wide OHLCV (or close-only) with known prices."""
    index = pd.bdate_range("2024-01-01", periods=3, name="timestamp")
    close = {"A": [100.0, 102.0, 101.0], "B": [50.0, 49.0, 50.5]}
    if close_only:
        return pd.DataFrame(close, index=index)
    opens = {"A": [100.0, 101.0, 103.0], "B": [50.0, 49.5, 48.5]}  # overnight gaps at bar 1
    frames = {}
    for asset in ("A", "B"):
        o, c = np.array(opens[asset]), np.array(close[asset])
        frames[asset] = pd.DataFrame(
            {"open": o, "high": np.maximum(o, c) + 1, "low": np.minimum(o, c) - 1, "close": c,
             "volume": 1e6},
            index=index,
        )  # fmt: skip
    return pd.concat(frames, axis=1)


def cost_examples() -> list[dict]:
    """One row per example step: what the env reports."""
    rows = []
    for label, close_only, targets in (
        ("1. cash -> 60% A / 30% B (fills at the open of bar 1)", False, [[0.6, 0.3]]),
        ("2. next bar, back to 60% / 30% after the drift", False, [[0.6, 0.3], [0.6, 0.3]]),
        ("3. as 1 on close-only data (fills at the close of bar 0)", True, [[0.6, 0.3]]),
    ):
        env = gym.make(PORTFOLIO_ENV_ID, data=example_panel(close_only), features=(),
                       window_size=1, episode_length=None, **COSTS)  # fmt: skip
        env.reset(options={"start": 0})
        before = env.unwrapped.equity
        for target in targets:
            weights_before = env.unwrapped.weights.copy()
            before = env.unwrapped.equity
            _, reward, _, _, info = env.step(np.array(target, dtype=np.float32))
        traded = np.abs(info["trades"]).sum()
        rows.append(
            {
                "example": label,
                "weights before": weights_before.round(4).tolist(),
                "equity before": before,
                "traded": traded,
                "fees (10 bp)": info["fees"],
                "slippage (5 bp)": info["slippage_cost"],
                "cost / traded": (info["fees"] + info["slippage_cost"]) / traded,
                "equity at close": info["equity"],
                "weights at close": np.round(info["weights"], 4).tolist(),
                "log growth": reward,
            }
        )
    return rows


def examples_markdown(rows: Sequence[dict]) -> str:
    """The examples as a markdown table (money to the cent, rates to 1e-6)."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = []
        for key in keys:
            value = row[key]
            if key in ("cost / traded", "log growth"):
                cells.append(f"{value:.6f}")
            elif isinstance(value, float):
                cells.append(f"{value:,.2f}" if abs(value) >= 1 else f"{value:.4f}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _weights_path(agent_name: str, start: int, n_steps: int, seed: int) -> tuple:
    from quantgym.agents import make_agent

    env = gym.make(PORTFOLIO_ENV_ID, market_kwargs={"n_bars": 3000, "seed": seed},
                   episode_length=n_steps, commission=0.001, slippage=0.0)  # fmt: skip
    obs, _ = env.reset(seed=0, options={"start": start})
    agent = make_agent(agent_name, env=env)
    weights, regimes, growth = [], [], 0.0
    for _ in range(n_steps):
        obs, reward, _, _, info = env.step(agent.predict(obs)[0])
        weights.append(info["weights"])
        regimes.append(info["regime"])
        growth += reward
    panel = env.unwrapped.panel
    return np.array(weights), np.array(regimes), growth, panel


def plot_weights(path: Path, seed: int = 0, start: int = 2000, n_steps: int = 400) -> Path:
    """Stacked weights of ``kelly_filter_expert`` and ``olmar`` with the true regime on top."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.5), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True, height_ratios=[0.4, 2, 2])
    colors = [
        "#1f77b4", "#aec7e8", "#6baed6", "#c6dbef",
        "#d62728", "#ff9896", "#fd8d3c", "#fdd0a2",
    ]  # fmt: skip
    for ax, name in zip(axes[1:], ("kelly_filter_expert", "olmar"), strict=True):
        weights, regimes, growth, panel = _weights_path(name, start, n_steps, seed)
        x = np.arange(n_steps)
        ax.stackplot(x, weights.T, labels=panel.assets, colors=colors, lw=0)
        ax.set_ylim(0, 1)
        ax.set_ylabel("weight")
        ax.set_title(f"{name}: log growth {growth:+.3f} over {n_steps} bars at 10 bp "
                     "(cash = white)", loc="left", fontsize=9)  # fmt: skip
    names = panel.market_params["regime_names"]
    regime_colors = {"bull": "#2ca02c", "bear": "#d62728", "rotation_a": "#1f77b4",
                     "rotation_b": "#ff7f0e"}  # fmt: skip
    for k, regime in enumerate(names):
        mask = regimes == k
        axes[0].fill_between(x, 0, 1, where=mask, color=regime_colors.get(regime, "0.5"),
                             step="post", label=regime, lw=0)  # fmt: skip
    axes[0].set_yticks([])
    axes[0].set_title(
        f"synthetic:factor_regime seed {seed}, bars {start}..{start + n_steps}: hidden regime "
        "(sector 0 = blues, sector 1 = reds)",
        loc="left",
        fontsize=9,
    )
    axes[0].legend(fontsize=7, ncols=4, loc="upper right")
    axes[1].legend(fontsize=6, ncols=4, loc="lower left")
    axes[2].set_xlabel("step")
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", default=str(DOCS / "portfolio_weights.png"))
    args = parser.parse_args(argv)
    print(examples_markdown(cost_examples()))
    print(f"wrote {plot_weights(Path(args.out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
