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
the markets, the worst market and the paired gain over the same policy unsmoothed (@1.0); the
JSON ``--out`` keeps the per-window log growth (so any paired comparison can be recomputed).
``--summarise A.json B.json`` prints the merged tables of earlier runs (e.g. one per market
subset) without training.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from quantgym.benchmark import train_and_score
from quantgym.benchmark.listing import cells_for
from quantgym.benchmark.protocol import build_market, plan_for
from quantgym.benchmark.scoring import evaluate_units, fixed_agent, log_growth
from quantgym.benchmark.statistics import bootstrap_ci, normalized_gain, normalized_score
from quantgym.benchmark.suite import load_suite
from quantgym.benchmark.training import seed_everything
from quantgym.files import atomic_write_json, read_json
from quantgym.policies.references import reference_policy_name

ROOT = Path(__file__).resolve().parents[1]
RULE = "sma_crossover"


def run(suite: Any, agents: list[str], weights: list[float], progress: Any) -> dict[str, Any]:
    """``{"growth": {market: {row: [per-key log growth]}}, "turnover": ...}``; rows are the
    reference, the rule and ``agent@w`` for every agent and weight. Every cell is the suite's
    own (:func:`~quantgym.benchmark.listing.cells_for`), trained as ``compare.py`` trains it."""
    cells = {(c.market, c.seed, c.agent): c for c in cells_for(suite)[0]}
    growth: dict[str, dict[str, list[float]]] = {}
    turnover: dict[str, dict[str, list[float]]] = {}
    for market in suite.markets:
        reference = reference_policy_name(market)
        names = list(dict.fromkeys((reference, RULE, *agents)))
        if any((market, seed, name) not in cells for seed in suite.seeds for name in names):
            progress(f"{market}: skipped (not every one of {names} applies to it)")
            continue
        g, t = growth.setdefault(market, {}), turnover.setdefault(market, {})
        for seed in suite.seeds:
            for name in names:
                cell = cells[market, seed, name]
                learns = name in agents
                seed_everything(seed, torch_needed=learns)  # as run_cell: the same training
                data, first_bar = build_market(cell)
                plan = plan_for(cell, data, first_bar)
                result = train_and_score(cell, data, plan.trains[0], plan.units)
                if not learns:
                    g.setdefault(name, []).extend(map(log_growth, result.equities))
                    t.setdefault(name, []).extend(m["turnover"] for m in result.metrics)
                    continue
                for w in weights:
                    agent = result.agent
                    agent.config = dataclasses.replace(agent.config, action_smoothing=w)
                    equities, metrics = evaluate_units(fixed_agent(agent), cell, data, plan.units)
                    g.setdefault(f"{name}@{w}", []).extend(map(log_growth, equities))
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
            lo, hi = bootstrap_ci(normalized_score, x, ref)
            turn = float(np.mean(data["turnover"][market][row]))
            cells = out.setdefault(row, {"markets": {}})["markets"]
            cells[market] = [round(float(normalized_score(x, ref)), 1), round(float(lo), 1),
                             round(float(hi), 1), round(turn, 1)]  # fmt: skip
    for market, rows in data["growth"].items():  # each weight against the same policy unsmoothed
        ref = np.asarray(rows[reference_policy_name(market)])
        for row, x in rows.items():
            agent, _, weight = row.partition("@")
            base = rows.get(f"{agent}@1.0")
            if not weight or float(weight) == 1.0 or base is None:
                continue
            lo, hi = bootstrap_ci(normalized_gain, np.asarray(x), np.asarray(base), ref)
            gain = float(normalized_gain(np.asarray(x), np.asarray(base), ref))
            out[row].setdefault("gain", {})[market] = [round(gain, 1), round(float(lo), 1),
                                                       round(float(hi), 1)]  # fmt: skip
    for entry in out.values():
        scores = {m: v[0] for m, v in entry["markets"].items()}
        entry["mean"] = round(float(np.mean(list(scores.values()))), 1)
        entry["worst"] = min(scores, key=scores.__getitem__)
    return out


def print_table(table: dict[str, Any], title: str) -> None:
    """Each row's score [95% CI] and turnover per market, its mean and worst market, and its
    paired gain over the same policy unsmoothed."""
    print(f"\n{title}; the market's reference = 100; score [95% CI] (turnover); gain over @1.0")
    for row, entry in table.items():
        print(f"{row:<24} mean {entry['mean']:6.1f}  worst {entry['worst']}")
        for m, v in entry["markets"].items():
            gain = entry.get("gain", {}).get(m)
            extra = f"  gain {gain[0]:+.1f} [{gain[1]:+.1f}, {gain[2]:+.1f}]" if gain else ""
            print(f"    {m:<28} {v[0]:7.1f} [{v[1]:7.1f}, {v[2]:7.1f}] ({v[3]:.0f}){extra}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--suite", default="validation", help="suite name or YAML")
    p.add_argument("--agents", nargs="+", default=["ppo_mlp", "ppo_lstm", "ppo_transformer"])
    p.add_argument("--weights", nargs="+", type=float, default=[1.0, 0.5, 0.3, 0.2, 0.1])
    p.add_argument("--markets", nargs="+", help="a subset of the suite's markets")
    p.add_argument("--out", type=Path, help="JSON to write (required unless --summarise)")
    p.add_argument("--summarise", nargs="+", type=Path, metavar="JSON",
                   help="print the tables of earlier outputs, merged (no training)")  # fmt: skip
    args = p.parse_args(argv)
    if args.summarise:
        merged: dict[str, Any] = {"growth": {}, "turnover": {}}
        for path in args.summarise:
            earlier = read_json(path)
            for key in ("growth", "turnover"):
                for market, rows in earlier[key].items():
                    merged[key].setdefault(market, {}).update(rows)
        print_table(summary(merged), "merged")
        return 0
    if args.out is None:
        raise SystemExit("--out is required (or --summarise earlier outputs)")
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
    print_table(table, f"{suite.name}: {len(suite.seeds) * suite.n_windows} keys per market")
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
