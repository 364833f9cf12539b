"""Online-agent quality on held-out data: train on a market's train range, evaluate one full
deterministic pass over its test range (default costs: 10 bp commission + 5 bp slippage).

    .venv/bin/python benchmarks/online_quality.py                        # regime + gbm, ppo_lstm
    .venv/bin/python benchmarks/online_quality.py --markets regime --agents ppo_lstm ppo_mlp
    .venv/bin/python benchmarks/online_quality.py --steps 100000 --set ent_coef=0.005

Split: the synthetic market's tradable bars are cut at ``1 - test_fraction`` (default 0.2);
the train env ends at the cut (later bars are never loaded), the test env starts after it
(earlier bars only feed the causal features). Scores: ``normalized_score`` with cash = 0 and
``BayesFilterExpert`` = 100 on synthetic markets. Targets: on ``regime``, ``ppo_lstm`` with
its default budget reaches >= 80 and beats the best rule baseline (SMA crossover / mean
reversion) and buy-and-hold in Sharpe; on ``gbm`` (no edge) no agent's test return beats
buy-and-hold by more than noise (2 standard errors of the per-bar log-return difference).
Training CPU time (``time.process_time``, all threads) is reported next to each agent.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

import quantgym  # noqa: F401  (registers TradingEnv-v0)
from quantgym._io import atomic_write_json
from quantgym.agents.cli import parse_assignments
from quantgym.agents.registry import load_agent, make_agent
from quantgym.evaluation import EvaluationResult, evaluate, normalized_score, reference_agent_name

__all__ = ["split_kwargs", "run_market", "main"]

BASELINES = (
    "flat",
    "buy_and_hold",
    "sma_crossover",
    "mean_reversion",
    "bayes_filter_expert",
    "regime_expert",
    "hindsight_oracle",
)
RULE_BASELINES = ("sma_crossover", "mean_reversion")
PRIVILEGED = {"regime_expert": "true regime", "hindsight_oracle": "future bars"}


def split_kwargs(
    market: str, test_fraction: float, env_kwargs: dict[str, Any], *, validation: bool = False
) -> tuple[dict, dict]:
    """Train and test ``TradingEnv-v0`` kwargs for a synthetic ``market``, split by date.

    With ``validation=True`` the test range is replaced by a validation range (the last
    ``test_fraction`` of the train range) and training stops before it: tune on that, report
    on the test range.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    full = gym.make("TradingEnv-v0", market=market, episode_length=None, **env_kwargs).unwrapped
    first, last = full.first_bar, full.market.last_bar
    cut = first + int((1.0 - test_fraction) * (last - first))
    end = None
    if validation:
        end, cut = cut, first + int((1.0 - test_fraction) * (cut - first))
    stamps = full.market.timestamps
    day = lambda i: str(pd.Timestamp(stamps[i]).date())  # noqa: E731
    train = {"market": market, "end": day(cut), **env_kwargs}
    test = {"market": market, "start": day(cut + 1), "episode_length": None, **env_kwargs}
    if end is not None:
        test["end"] = day(end)
    return train, test


def excess_over(result: EvaluationResult, other: EvaluationResult) -> tuple[float, float]:
    """(log growth of ``result`` minus ``other``, 2 standard errors of the per-bar difference).

    A bankrupt episode ends early with equity 0: its excess is ``-inf`` and the noise is
    measured over the bars both episodes traded.
    """

    def log_returns(res: EvaluationResult) -> np.ndarray:
        equity = np.concatenate([[10_000.0], res.equity_curves[0].to_numpy()])
        with np.errstate(divide="ignore"):
            return np.diff(np.log(equity))

    a, b = log_returns(result), log_returns(other)
    n = min(a.size, b.size)
    d = a[:n] - b[:n]
    finite = d[np.isfinite(d)]
    noise = float(2.0 * finite.std(ddof=1) * math.sqrt(n)) if finite.size > 1 else math.nan
    with np.errstate(divide="ignore"):
        excess = float(np.log1p(result.total_return) - np.log1p(other.total_return))
    return excess, noise


def print_curve(name: str, directory: Path, env: gym.Env, results: dict) -> None:
    """Score every checkpoint on ``env`` (a learning curve; diagnostics only)."""
    ref = results.get(reference_agent_name(env.unwrapped.market))
    for ckpt in sorted(directory.glob("step_*")):
        res = evaluate(load_agent(ckpt), env)
        score = (
            normalized_score(res.total_return, ref.total_return)
            if ref and ref.total_return
            else math.nan
        )
        print(
            f"    {name} @ {int(ckpt.name[5:]):>8d} steps: return {res.total_return:8.3f} "
            f"Sharpe {res.episodes[0]['sharpe']:6.2f} score {score:7.1f}"
        )


def run_market(market: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    env_kwargs = parse_assignments(args.env_set, "--env-set")
    train_kwargs, test_kwargs = split_kwargs(
        market, args.test_fraction, env_kwargs, validation=args.validation
    )
    test_env = gym.make("TradingEnv-v0", **test_kwargs)
    split = "VALIDATION" if args.validation else "test"
    n_bars = test_env.unwrapped.market.last_bar - test_env.unwrapped.first_bar
    print(
        f"\n== {market}: train until {train_kwargs['end']}, {split} from {test_kwargs['start']} "
        f"({n_bars} bars)"
    )
    results: dict[str, EvaluationResult] = {}
    info: dict[str, dict[str, Any]] = {}
    for name in BASELINES:
        try:
            agent = make_agent(name, env=test_env)
        except ValueError as exc:  # e.g. regime_expert on a market without regimes
            print(f"  {name}: skipped ({exc})")
            continue
        results[name] = evaluate(agent, test_env)
        info[name] = {}
    overrides = parse_assignments(args.set)
    for name in args.agents:
        agent = make_agent(name, seed=args.seed, **overrides)
        wall, cpu = time.perf_counter(), time.process_time()
        checkpoints = out / market / f"{name}_checkpoints"
        agent.fit(
            dict(train_kwargs),
            total_timesteps=args.steps,
            progress_bar=args.progress,
            checkpoint_every=args.checkpoint_every,
            checkpoint_dir=checkpoints if args.checkpoint_every else None,
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        agent.save(out / market / name)
        if args.checkpoint_every:
            print_curve(name, checkpoints, test_env, results)
        results[name] = evaluate(agent, test_env)
        info[name] = {"train_wall_s": wall, "train_cpu_s": cpu, "steps": agent.num_timesteps}
        print(
            f"  trained {name}: {agent.num_timesteps} steps, {wall / 60:.1f} wall-min, {cpu / 60:.1f} CPU-min"
        )

    ref_name = reference_agent_name(test_env.unwrapped.market)
    ref_return = results[ref_name].total_return
    rows = []
    for name, res in results.items():
        m = res.episodes[0]
        try:
            score = normalized_score(res.total_return, ref_return, 0.0)
        except ValueError:
            score = float("nan")
        rows.append(
            {
                "agent": name + (f" [{PRIVILEGED[name]}]" if name in PRIVILEGED else ""),
                "test_return": m["total_return"],
                "sharpe": m["sharpe"],
                "max_drawdown": m["max_drawdown"],
                "n_trades": m["n_trades"],
                "score": score,
                **{
                    k: round(v, 1) if isinstance(v, float) else v
                    for k, v in info[name].items()
                    if k != "steps"
                },
            }
        )
    table = pd.DataFrame(rows).set_index("agent")
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 140):
        print(table.to_string())
    print(f"  score: cash = 0, {ref_name} = 100 (test return {ref_return:.4f})")

    summary: dict[str, Any] = {
        "train": train_kwargs,
        "test": test_kwargs,
        "reference": ref_name,
        "agents": {},
    }
    bh = results["buy_and_hold"]
    rule = [n for n in RULE_BASELINES if n in results]
    best_rule = max(rule, key=lambda n: _finite(results[n].episodes[0]["sharpe"]))
    for name in args.agents:
        res = results[name]
        sharpe = res.episodes[0]["sharpe"]
        excess, noise = excess_over(res, bh)
        entry = {
            "test_return": res.total_return,
            "sharpe": sharpe,
            "score": normalized_score(res.total_return, ref_return, 0.0)
            if ref_return != 0
            else None,
            "sharpe_vs_buy_and_hold": sharpe - bh.episodes[0]["sharpe"],
            f"sharpe_vs_{best_rule}": sharpe - results[best_rule].episodes[0]["sharpe"],
            "excess_log_return_vs_buy_and_hold": excess,
            "noise_2se": noise,
            **info[name],
        }
        summary["agents"][name] = entry
        score_text = "n/a" if entry["score"] is None else f"{entry['score']:.1f}"
        print(
            f"  {name}: score {score_text}; Sharpe {sharpe:.2f} vs buy-and-hold "
            f"{bh.episodes[0]['sharpe']:.2f}, vs best rule ({best_rule}) "
            f"{results[best_rule].episodes[0]['sharpe']:.2f}; "
            f"excess log return over buy-and-hold {excess:+.3f} (noise 2se {noise:.3f}: "
            f"{'not above noise' if excess <= noise else 'ABOVE noise'})"
        )
    summary["table"] = table.reset_index().to_dict(orient="records")
    return summary


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--markets", nargs="+", default=["regime", "gbm"])
    parser.add_argument("--agents", nargs="+", default=["ppo_lstm"], help="online agents to train")
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps (default: the agent's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument(
        "--validation",
        action="store_true",
        help="evaluate on the last test-fraction of the train range instead (for tuning)",
    )
    parser.add_argument(
        "--checkpoint-every", type=int, default=None, help="also score checkpoints (learning curve)"
    )
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="agent config override")
    parser.add_argument(
        "--env-set", action="append", metavar="KEY=VALUE", help="TradingEnv kwarg (train and test)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch.set_num_threads (1 is fastest for these nets)"
    )
    parser.add_argument("--progress", action="store_true", help="show SB3's progress bar")
    parser.add_argument(
        "--out", default="runs/online_quality", help="trained agents and results.json go here"
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    summaries = {market: run_market(market, args, out) for market in args.markets}
    atomic_write_json(out / "results.json", {"args": vars(args), "markets": summaries})
    print(f"\nresults: {out / 'results.json'}")


if __name__ == "__main__":
    main()
