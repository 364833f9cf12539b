"""Learning curves of the allocating agents (``ppo_eiie``, ``ppo_cross_attention``) on the
synthetic factor/regime market of ``PortfolioEnv-v0``: held-out score against the training
budget, with paired-bootstrap 95% CIs.

    nice -n 10 .venv/bin/python benchmarks/portfolio_learning.py --agents ppo_eiie \
        --budgets 25000 50000 100000 200000 --seeds 0 1 2 --out benchmarks/results/portfolio_learning
    .venv/bin/python benchmarks/portfolio_learning.py --plot-only --out benchmarks/results/portfolio_learning

Protocol. One seeded market of ``--n-bars`` bars (``market_kwargs={"n_bars": ..., "seed":
--market-seed}``; the env's default costs: 10 bp commission + 5 bp slippage). Every learner
trains from scratch with its default hyperparameters (``--set key=value`` overrides;
``--env-set key=value`` sets an env kwarg, e.g. ``window_size``, for training and test envs
alike) on the bars up to ``--train-bars`` (``end=``), once per budget and seed (a separate run: the linear
learning-rate schedule anneals over that budget, as a user's ``fit(env, budget)`` would). After
an embargo of ``--embargo`` bars, the rest is cut into disjoint ``--window``-bar windows that
every agent trades deterministically from all cash (paired). Per window the log growth;
score = 100 x mean log growth / UCRP's (``ucrp``: 1/N rebalanced every bar through the same
env, costs paid) over the same windows, cash = 0. A Kelly reference (``kelly_filter_expert``)
is used as the 100 instead when it is registered (``--reference``). CIs: paired bootstrap over
windows of the seed-averaged log growth (:func:`quantgym.benchmark.statistics.bootstrap_ci`).

Each trained cell appends one JSON line to ``OUT/cells.jsonl`` (``--resume`` skips done
cells); ``OUT/summary.json`` and ``OUT/curves.png`` are rewritten from all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import quantgym
from quantgym.agents import make_agent
from quantgym.agents.cli import parse_assignments
from quantgym.agents.registry import list_agents
from quantgym.benchmark.statistics import bootstrap_ci, normalized_score
from quantgym.files import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = quantgym.PORTFOLIO_ENV_ID
#: The protocol's defaults (market, split, windows), shared with ``portfolio_ceiling.py``.
PROTOCOL = {"n_bars": 40_000, "market_seed": 0, "train_bars": 10_000, "embargo": 250, "window": 250}


def market_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"market_kwargs": {"n_bars": args.n_bars, "seed": args.market_seed}}


#: ``--env-set`` keys that shape the panel itself: the test panel is built with them.
PANEL_KEYS = ("features",)


def env_overrides(args: argparse.Namespace, panel: bool = False) -> dict[str, Any]:
    """``--env-set`` as env kwargs (the same for training and test envs); ``panel``: only the
    :data:`PANEL_KEYS`, else all but them (a test env gets them through its panel)."""
    values = parse_assignments(args.env_set)
    return {k: v for k, v in values.items() if (k in PANEL_KEYS) == panel}


_PANELS: dict[tuple, Any] = {}


def test_panel(args: argparse.Namespace) -> Any:
    """The whole market as one ``PanelData`` (built once; every test env shares it)."""
    shape = env_overrides(args, panel=True)
    key = (args.n_bars, args.market_seed, repr(sorted(shape.items())))
    if key not in _PANELS:
        _PANELS[key] = gym.make(ENV_ID, **market_kwargs(args), **shape).unwrapped.panel
    return _PANELS[key]


def split_timestamps(args: argparse.Namespace) -> tuple[Any, list[int]]:
    """``(train end timestamp, test window start bars)``."""
    panel = test_panel(args)
    stamps = panel.timestamps
    first_test = args.train_bars + args.embargo
    starts = list(range(first_test, panel.last_bar - args.window + 1, args.window))
    return str(stamps[args.train_bars - 1]), starts


def run_windows(policy: Any, args: argparse.Namespace, starts: list[int]) -> np.ndarray:
    """Log growth of ``policy`` (``predict`` on a batch, or a callable ``obs -> actions``) on
    each held-out window, all windows stepped in lockstep."""
    envs = [
        gym.make(ENV_ID, data=test_panel(args), episode_length=args.window, **env_overrides(args))
        for _ in starts
    ]
    obs = np.stack(
        [e.reset(seed=0, options={"start": s})[0] for e, s in zip(envs, starts, strict=True)]
    )
    growth = np.zeros(len(envs))
    alive = np.ones(len(envs), dtype=bool)
    while alive.any():
        actions = policy(obs) if callable(policy) else policy.predict(obs, deterministic=True)[0]
        for i, env in enumerate(envs):
            if not alive[i]:
                continue
            o, _, terminated, truncated, info = env.step(actions[i])
            obs[i] = o
            if terminated or truncated:
                alive[i] = False
                growth[i] = np.log(info["equity"] / env.unwrapped.config.initial_equity)
    return growth


def run_bound_windows(name: str, args: argparse.Namespace, starts: list[int]) -> np.ndarray:
    """Log growth of a registered agent that binds to its env (the Kelly filter reads the bar
    from it, so it acts on one env): one env, the windows one after the other."""
    env = gym.make(ENV_ID, data=test_panel(args), episode_length=args.window, **env_overrides(args))
    return trade_windows(make_agent(name, env=env), env, starts)


def trade_windows(agent: Any, env: Any, starts: list[int]) -> np.ndarray:
    """Log growth of ``agent`` (bound to ``env``) on each window starting at ``starts``, one
    after the other from all cash."""
    growth = np.zeros(len(starts))
    for i, start in enumerate(starts):
        obs, _ = env.reset(seed=0, options={"start": start})
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(agent.predict(obs)[0])
            done = terminated or truncated
        growth[i] = np.log(info["equity"] / env.unwrapped.config.initial_equity)
    return growth


def train_cell(agent_name: str, budget: int, seed: int, args: argparse.Namespace,
               train_end: str) -> tuple[Any, float]:  # fmt: skip
    overrides = parse_assignments(args.set)
    agent = make_agent(agent_name, seed=seed, **overrides)
    t0 = time.perf_counter()
    env_kwargs = {**market_kwargs(args), **parse_assignments(args.env_set), "end": train_end}
    agent.fit(env_kwargs, train_steps=budget, progress_bar=False)
    return agent, time.perf_counter() - t0


def reference_growth(args: argparse.Namespace, starts: list[int]) -> dict[str, np.ndarray]:
    n = test_panel(args).n_assets
    out = {"ucrp": run_windows(lambda obs: np.full((len(obs), n), 1.0 / n), args, starts)}
    if args.reference in list_agents():
        out[args.reference] = run_bound_windows(args.reference, args, starts)
    return out


def summarize(cells: list[dict], refs: dict[str, list[float]], reference: str) -> dict:
    """Per (agent, budget): score (100 x mean growth / reference's) with its paired bootstrap
    CI over windows of the seed-averaged growth, per-seed scores and training times."""
    ref = np.asarray(refs[reference])
    out: dict[str, Any] = {"reference": reference, "n_windows": int(ref.size), "rows": []}
    for name, growth in refs.items():
        g = np.asarray(growth)
        low, high = bootstrap_ci(normalized_score, g, ref)
        out["rows"].append({"agent": name, "budget": 0, "score": float(normalized_score(g, ref)),
                            "ci": [low, high], "mean_log_growth": float(g.mean())})  # fmt: skip
    keys = sorted({(c["agent"], c["budget"]) for c in cells})
    for agent, budget in keys:
        group = [c for c in cells if c["agent"] == agent and c["budget"] == budget]
        per_seed = np.asarray([c["growth"] for c in group])  # (seeds, windows)
        mean = per_seed.mean(0)
        low, high = bootstrap_ci(normalized_score, mean, ref)
        out["rows"].append(
            {
                "agent": agent,
                "budget": budget,
                "seeds": [c["seed"] for c in group],
                "score": float(normalized_score(mean, ref)),
                "ci": [low, high],
                "seed_scores": [float(normalized_score(g, ref)) for g in per_seed],
                "mean_log_growth": float(mean.mean()),
                "train_s": [round(c["train_s"], 1) for c in group],
                "mean_cash_weight": float(np.mean([c["mean_cash_weight"] for c in group])),
                "mean_max_weight": float(np.mean([c["mean_max_weight"] for c in group])),
            }
        )
    return out


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    rows = summary["rows"]
    for agent in sorted({r["agent"] for r in rows if r["budget"] > 0}):
        rs = sorted((r for r in rows if r["agent"] == agent), key=lambda r: r["budget"])
        x = [r["budget"] for r in rs]
        y = [r["score"] for r in rs]
        lo = [r["ci"][0] for r in rs]
        hi = [r["ci"][1] for r in rs]
        ax.plot(x, y, marker="o", label=f"{agent} ({len(rs[0]['seeds'])} seeds)")
        ax.fill_between(x, lo, hi, alpha=0.2)
    for r in rows:
        if r["budget"] == 0:
            ax.axhline(r["score"], ls="--", lw=1, color="gray" if r["agent"] == "ucrp" else "k")
            ax.text(ax.get_xlim()[0], r["score"], f" {r['agent']}", va="bottom", fontsize=8)
    ax.axhline(0.0, ls=":", lw=1, color="gray")
    ax.set_xscale("log")
    ax.set_xlabel("training budget (env steps)")
    ax.set_ylabel(f"score (100 = {summary['reference']}, 0 = cash)")
    ax.set_title(f"PortfolioEnv factor_regime: {summary['n_windows']} held-out windows, 95% CI")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--agents", nargs="+", default=["ppo_eiie", "ppo_cross_attention"])
    p.add_argument("--budgets", nargs="+", type=int, default=[25_000, 50_000, 100_000, 200_000])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--n-bars", type=int, default=PROTOCOL["n_bars"])
    p.add_argument("--train-bars", type=int, default=PROTOCOL["train_bars"])
    p.add_argument("--embargo", type=int, default=PROTOCOL["embargo"])
    p.add_argument("--window", type=int, default=PROTOCOL["window"])
    p.add_argument("--market-seed", type=int, default=PROTOCOL["market_seed"])
    p.add_argument("--reference", default="kelly_filter_expert")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="agent config override")
    p.add_argument(
        "--env-set",
        action="append",
        metavar="KEY=VALUE",
        help="env kwarg for training and test envs (e.g. window_size=32)",
    )
    p.add_argument("--tag", default="", help="suffix of the agent name in the records")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/portfolio_learning")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--plot-only", action="store_true")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    cells_file, refs_file = args.out / "cells.jsonl", args.out / "references.json"
    train_end, starts = split_timestamps(args)
    if refs_file.is_file():
        refs = json.loads(refs_file.read_text())
    else:
        refs = {k: v.tolist() for k, v in reference_growth(args, starts).items()}
        atomic_write_json(refs_file, refs)
    cells = (
        [json.loads(x) for x in cells_file.read_text().splitlines()] if cells_file.is_file() else []
    )
    if not args.plot_only:
        done = {(c["agent"], c["budget"], c["seed"]) for c in cells}
        for name in args.agents:
            label = name + args.tag
            for budget in args.budgets:
                for seed in args.seeds:
                    if args.resume and (label, budget, seed) in done:
                        continue
                    agent, train_s = train_cell(name, budget, seed, args, train_end)
                    growth = run_windows(agent, args, starts)
                    env = gym.make(ENV_ID, data=test_panel(args), **env_overrides(args))
                    probe = []
                    for s in starts[:8]:  # allocation shape on held-out observations
                        o, _ = env.reset(seed=0, options={"start": s})
                        probe.append(o)
                    w = agent.predict(np.stack(probe))[0]
                    cell = {
                        "agent": label, "budget": budget, "seed": seed, "train_s": train_s,
                        "growth": growth.tolist(), "config": overrides_of(args), "env": parse_assignments(args.env_set),
                        "mean_cash_weight": float(np.mean(1 - w.sum(1))),
                        "mean_max_weight": float(np.mean(w.max(1))),
                    }  # fmt: skip
                    cells.append(cell)
                    with open(cells_file, "a") as f:
                        f.write(json.dumps(cell) + "\n")
                    ref = np.mean(refs["ucrp"])
                    print(f"{label:24s} {budget:>8d} seed {seed}: score/UCRP "
                          f"{100 * growth.mean() / ref:7.1f}  train {train_s:6.1f}s", flush=True)  # fmt: skip
    reference = args.reference if args.reference in refs else "ucrp"
    summary = summarize(cells, refs, reference)
    skip = ("out", "set", "agents", "budgets", "seeds", "resume", "plot_only", "tag")
    summary["protocol"] = {k: v for k, v in vars(args).items() if k not in skip}
    summary["protocol"]["train_end"] = train_end
    summary["protocol"]["quantgym_commit"] = (
        os.popen(f"git -C {ROOT} rev-parse --short HEAD").read().strip()
    )
    atomic_write_json(args.out / "summary.json", summary)
    plot(summary, args.out / "curves.png")
    for r in summary["rows"]:
        print(
            f"{r['agent']:24s} {r['budget']:>8d}  {r['score']:7.1f}  [{r['ci'][0]:6.1f}, {r['ci'][1]:6.1f}]"
        )
    return 0


def overrides_of(args: argparse.Namespace) -> dict[str, Any]:
    return parse_assignments(args.set)


if __name__ == "__main__":
    sys.exit(main())
