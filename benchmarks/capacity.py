"""Capacity: a strategy's score against account size under square-root market impact.

Slippage is ``slippage="sqrt_impact"`` (half-spread + impact * sigma * sqrt(order / average
volume)), so an order's cost grows with the account: the size at which a strategy's edge is
eaten by its own impact is its capacity. Each agent trades the same disjoint windows of
``sample:googl`` at every account size (paired); per window the log growth is recorded and the
table gives its mean with a 95% bootstrap CI, annualised.

```
python benchmarks/capacity.py                          # SMA crossover + buy-and-hold, ~1 min
python benchmarks/capacity.py --ppo-steps 20000        # + ppo_lstm trained on the bars before
```
Writes ``docs/capacity.png`` and ``benchmarks/results/capacity.json``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
from scipy import stats
from tqdm import tqdm

from quantgym.envs import TradingEnv
from quantgym.evaluation import evaluate
from quantgym.files import atomic_write, atomic_write_json
from quantgym.policies.rules import BuyAndHoldAgent, SMACrossoverAgent

SIZES = (1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10)
ENV_KWARGS = dict(data="sample:googl", window_size=32, commission=0.0005,
                  slippage={"model": "sqrt_impact", "half_spread": 0.0002, "impact": 1.0})  # fmt: skip


def window_starts(env: TradingEnv, length: int, first: int) -> list[int]:
    """Disjoint windows of ``length`` bars from bar ``first`` to the end of the data."""
    last = env.market.last_bar
    return list(range(first, last - length + 1, length))


def mean_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap CI."""
    if len(values) < 2:
        return float(values.mean()), float("nan"), float("nan")
    res = stats.bootstrap((values,), np.mean, n_resamples=5000, method="percentile",
                          random_state=np.random.default_rng(seed))  # fmt: skip
    return (
        float(values.mean()),
        float(res.confidence_interval.low),
        float(res.confidence_interval.high),
    )


def log_growths(agent_factory, size: float, starts: list[int], length: int) -> np.ndarray:
    env = TradingEnv(**ENV_KWARGS, initial_equity=size, episode_length=length)
    result = evaluate(agent_factory(env), env, starts=starts)
    return np.array([math.log1p(ep["total_return"]) for ep in result.episodes])


def train_ppo(steps: int, end_bar_ts, seed: int):  # noqa: ANN001, ANN201 - torch imported lazily
    import torch

    from quantgym.agents import make_agent

    torch.set_num_threads(1)
    agent = make_agent("ppo_lstm", n_envs=4, seed=seed)
    agent.fit({**ENV_KWARGS, "end": end_bar_ts, "episode_length": 250}, train_steps=steps,
              progress_bar=True)  # fmt: skip
    return agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--window", type=int, default=100, help="bars per evaluation window")
    parser.add_argument("--test-from", type=float, default=0.5,
                        help="fraction of the tradable bars used before the first window (ppo training)")  # fmt: skip
    parser.add_argument(
        "--ppo-steps", type=int, default=0, help="train ppo_lstm this many steps (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default="docs/capacity.png")
    parser.add_argument("--json", default="benchmarks/results/capacity.json")
    args = parser.parse_args()

    probe = TradingEnv(**ENV_KWARGS)
    first = probe.first_bar + int(args.test_from * (probe.market.last_bar - probe.first_bar))
    starts = window_starts(probe, args.window, first)
    years = args.window / probe.market.bars_per_year
    agents = {"sma_crossover": lambda env: SMACrossoverAgent(env=env),
              "buy_and_hold": lambda env: BuyAndHoldAgent(env=env)}  # fmt: skip
    if args.ppo_steps:
        t0 = time.perf_counter()
        end_ts = probe.market.timestamps[first - 1]
        ppo = train_ppo(args.ppo_steps, str(end_ts), args.seed)
        print(f"ppo_lstm trained {args.ppo_steps} steps on bars up to {end_ts} in "
              f"{time.perf_counter() - t0:.0f}s")  # fmt: skip
        agents["ppo_lstm"] = lambda env: ppo

    rows = []
    print(f"{len(starts)} windows of {args.window} bars from {probe.market.timestamps[first]}; "
          "annualised mean log growth [95% CI], and its paired change from the smallest account")  # fmt: skip
    progress = tqdm(total=len(agents) * len(SIZES), desc="capacity", unit="size")
    for name, factory in agents.items():
        smallest = None
        for size in SIZES:
            progress.update()
            g = log_growths(factory, size, starts, args.window) / years
            smallest = g if smallest is None else smallest
            mean, lo, hi = mean_ci(g, args.seed)
            drop, drop_lo, drop_hi = mean_ci(g - smallest, args.seed)  # paired: same windows
            rows.append({"agent": name, "initial_equity": size, "mean": mean, "ci_low": lo,
                         "ci_high": hi, "drop_vs_smallest": drop, "drop_ci_low": drop_lo,
                         "drop_ci_high": drop_hi, "per_window": g.tolist()})  # fmt: skip
            tqdm.write(f"{name:14s} {size:10.0e}  {mean:+.3f} [{lo:+.3f}, {hi:+.3f}]   "
                  f"vs {SIZES[0]:.0e}: {drop:+.3f} [{drop_lo:+.3f}, {drop_hi:+.3f}]")  # fmt: skip

    progress.close()
    atomic_write_json(args.json, {"env_kwargs": {**ENV_KWARGS}, "window": args.window,
                                  "starts": starts, "ppo_steps": args.ppo_steps, "rows": rows})  # fmt: skip
    plot(rows, args.png, len(starts), args.window, args.ppo_steps)
    print(f"wrote {args.json} and {args.png}")


def plot(rows: list[dict], path: str, n_windows: int, window: int, ppo_steps: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name in dict.fromkeys(r["agent"] for r in rows):
        sub = [r for r in rows if r["agent"] == name]
        x = [r["initial_equity"] for r in sub]
        ax.plot(x, [r["mean"] for r in sub], marker="o", label=name)
        ax.fill_between(x, [r["ci_low"] for r in sub], [r["ci_high"] for r in sub], alpha=0.2)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("initial equity ($)")
    ax.set_ylabel("annualised log growth")
    ax.set_title(
        f"Capacity on sample:googl, sqrt-law impact ({n_windows} windows x {window} bars, 95% CI)"
        + (f"\nppo_lstm trained {ppo_steps:,} steps on the bars before" if ppo_steps else "")
    )
    ax.title.set_fontsize(9)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


if __name__ == "__main__":
    main()
