"""Online agents deciding from a moving average of their action probabilities
(``action_smoothing``): each agent is trained once per (market, seed) of a suite, exactly as
the suite trains it, and the same trained policy is scored at every smoothing weight, so the
differences between weights are paired (same model, same windows).

    nice -n 5 .venv/bin/python benchmarks/online_smoothing.py --agents ppo_transformer \
        --out benchmarks/results/online_smoothing/validation_ppo_transformer.json

Why: the online policies switch position far more often than the Bayes filter (issue 23, item
4; docs/results.md, "What drives ppo_transformer's turnover"): they act on short patterns of
the newest bars. A decision read from ``m_t = (1 - w) m_{t-1} + w p_t`` accumulates evidence
over about ``1 / w`` bars, as the filter does. Training is unchanged (the weight only enters
``predict``), which is what lets one training serve every weight.

Output: per agent, per weight, per market the score (the market's reference = 100, as in the
suite's report) with its
paired bootstrap 95% CI over the (seed, window) keys, the turnover per window, the mean over
the markets and the worst market; the JSON ``--out`` keeps the per-window log growth (so any
paired comparison can be recomputed).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from quantgym.benchmark import train_and_score
from quantgym.benchmark.listing import cells_for
from quantgym.benchmark.protocol import build_market, plan_for
from quantgym.benchmark.scoring import LOG_GROWTH_FLOOR, evaluate_units, fixed_agent
from quantgym.benchmark.statistics import bootstrap_ci
from quantgym.benchmark.suite import load_suite
from quantgym.benchmark.training import seed_everything
from quantgym.files import atomic_write_json
from quantgym.policies.references import reference_policy_name

ROOT = Path(__file__).resolve().parents[1]
RULE = "sma_crossover"


def _growth(equities: list[np.ndarray]) -> list[float]:
    return [math.log(e[-1] / e[0]) if e[-1] > 0 else LOG_GROWTH_FLOOR for e in equities]


def _score(x: np.ndarray, ref: np.ndarray, axis: int = -1) -> Any:
    return 100.0 * np.mean(x, axis=axis) / np.mean(ref, axis=axis)


def run(suite: Any, agents: list[str], weights: list[float], progress: Any) -> dict[str, Any]:
    """``{"growth": {market: {row: [per-key log growth]}}, "turnover": ...}``; rows are the
    reference, the rule and ``agent@w`` for every agent and weight. Every cell is the suite's
    own (:func:`~quantgym.benchmark.listing.cells_for`), trained as ``compare.py`` trains it."""
    cells = {(c.market, c.seed, c.agent): c for c in cells_for(suite)[0]}
    growth: dict[str, dict[str, list[float]]] = {}
    turnover: dict[str, dict[str, list[float]]] = {}
    for market in suite.markets:
        g, t = growth.setdefault(market, {}), turnover.setdefault(market, {})
        reference = reference_policy_name(market)
        for seed in suite.seeds:
            for name in dict.fromkeys((reference, RULE, *agents)):
                cell = cells[market, seed, name]
                learns = name in agents
                seed_everything(seed, torch_needed=learns)  # as run_cell: the same training
                data, first_bar = build_market(cell)
                plan = plan_for(cell, data, first_bar)
                result = train_and_score(cell, data, plan.trains[0], plan.units)
                if not learns:
                    g.setdefault(name, []).extend(_growth(result.equities))
                    t.setdefault(name, []).extend(m["turnover"] for m in result.metrics)
                    continue
                for w in weights:
                    agent = result.agent
                    agent.config = dataclasses.replace(agent.config, action_smoothing=w)
                    equities, metrics = evaluate_units(fixed_agent(agent), cell, data, plan.units)
                    g.setdefault(f"{name}@{w}", []).extend(_growth(equities))
                    t.setdefault(f"{name}@{w}", []).extend(m["turnover"] for m in metrics)
                progress(f"{market} seed {seed} {name}: trained {result.train_s:.0f} s")
    return {"growth": growth, "turnover": turnover}


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """Per row: per market ``[score, lo, hi, turnover]``, the mean score and the worst market."""
    out: dict[str, Any] = {}
    for market, rows in data["growth"].items():
        ref = np.asarray(rows[reference_policy_name(market)])
        for row, x in rows.items():
            x = np.asarray(x)
            lo, hi = bootstrap_ci(_score, x, ref)
            turn = float(np.mean(data["turnover"][market][row]))
            cells = out.setdefault(row, {"markets": {}})["markets"]
            cells[market] = [round(float(_score(x, ref)), 1), round(float(lo), 1),
                             round(float(hi), 1), round(turn, 1)]  # fmt: skip
    for entry in out.values():
        scores = {m: v[0] for m, v in entry["markets"].items()}
        entry["mean"] = round(float(np.mean(list(scores.values()))), 1)
        entry["worst"] = min(scores, key=scores.__getitem__)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--suite", default="validation", help="suite name or YAML")
    p.add_argument("--agents", nargs="+", default=["ppo_mlp", "ppo_lstm", "ppo_transformer"])
    p.add_argument("--weights", nargs="+", type=float, default=[1.0, 0.5, 0.3, 0.2, 0.1])
    p.add_argument("--markets", nargs="+", help="a subset of the suite's markets")
    p.add_argument("--out", type=Path, required=True, help="JSON to write")
    args = p.parse_args(argv)
    if not all(0.0 < w <= 1.0 for w in args.weights):
        raise SystemExit(f"--weights must be in (0, 1], got {args.weights}")
    suite = load_suite(args.suite)
    if args.markets:
        unknown = sorted(set(args.markets) - set(suite.markets))
        if unknown:
            raise SystemExit(f"--markets: {unknown} are not in suite {suite.name!r}")
        suite = dataclasses.replace(suite, markets=list(args.markets))
    needed = {RULE, *args.agents, *map(reference_policy_name, suite.markets)}
    missing = needed - {spec.name for spec in suite.agents}
    if missing:
        raise SystemExit(f"suite {suite.name!r} must list {sorted(missing)} among its agents")
    t0 = time.perf_counter()

    def progress(line: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {line}", flush=True)

    data = run(suite, args.agents, args.weights, progress)
    table = summary(data)
    keys = len(suite.seeds) * suite.n_windows
    print(
        f"\n{suite.name}: {keys} keys per market; the market's reference = 100; score [95% CI] turnover"
    )
    for row, entry in table.items():
        cells = "  ".join(
            f"{m.removeprefix('synthetic:')} {v[0]:.1f} [{v[1]:.1f}, {v[2]:.1f}] t{v[3]:.0f}"
            for m, v in entry["markets"].items()
        )
        print(f"{row:<24} mean {entry['mean']:6.1f}  worst {entry['worst']}\n    {cells}")
    atomic_write_json(
        args.out,
        {"suite": suite.name, "markets": list(suite.markets), "seeds": list(suite.seeds),
         "n_windows": suite.n_windows, "agents": args.agents, "weights": args.weights,
         "wall_s": round(time.perf_counter() - t0, 1), "summary": table, **data},
    )  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
