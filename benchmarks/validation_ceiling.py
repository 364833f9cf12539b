"""How much of the Bayes filter's edge a reader of the newest ``K`` bars can earn, on each market
of the validation family (issue 23's ">= 80 on every variant" target, measured against what
the inputs can carry).

    nice -n 5 .venv/bin/python benchmarks/validation_ceiling.py

The reference (100) is ``bayes_filter_expert``: the exact HMM filter with the market's true
parameters on *every* close so far. ``bayes_filter_expert`` with ``filter_window=K`` runs the
same exact filter, the same no-trade band and the same trading rule on the newest ``K``
closes only (:func:`quantgym.envs.synthetic.hmm_forward_filter`'s ``window``): the best a
reader of a ``K``-bar history who *knows the market's model* can do with this rule. A policy
that sees a window learns its reader from 20,000 training bars and does not know the model,
so it is not expected to reach the row of its window.

What the online agents read, for scale: the default features summarise up to 60 bars with
windows (``momentum_60``; RSI 14, ``momentum_20``, volatility 20) and longer with decaying
weights (MACD's EMAs), z-scored over 250 bars; ``ppo_mlp`` reads the newest row,
``ppo_transformer`` the newest 8 rows, ``ppo_lstm`` the newest row with a memory.
``sma_crossover`` (20/50 bars) is shown alongside.

Protocol: the validation suite's (``benchmarks/suites/validation.yaml``): its five markets,
seeds and held-out windows. Scores are ``100 x mean log growth / the reference's`` with a
paired bootstrap 95% CI over the (seed, window) keys. Output: a table per market and the
JSON ``--out`` (default ``benchmarks/results/validation_ceiling.json``).
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
from quantgym.benchmark.scoring import log_growth
from quantgym.benchmark.statistics import bootstrap_ci, normalized_score
from quantgym.benchmark.suite import load_suite
from quantgym.files import atomic_write_json
from quantgym.policies.references import reference_policy_name

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "bayes_filter_expert"
RULE = "sma_crossover"


def run(suite: Any, windows: list[int]) -> dict[str, Any]:
    """``{market: {row: {score, lo, hi, turnover}}}`` over the suite's seeds and windows (the
    suite's own cells of the reference and the rule; the windowed rows are the reference's
    cell with ``filter_window``)."""
    cells = {(c.market, c.seed, c.agent): c for c in cells_for(suite)[0]}
    rows = [RULE, *(f"filter_window={k}" for k in windows), REFERENCE]
    out: dict[str, Any] = {}
    for market in suite.markets:
        growth: dict[str, list[np.ndarray]] = {r: [] for r in rows}
        turnover: dict[str, list[float]] = {r: [] for r in rows}
        for seed in suite.seeds:
            reference = cells[market, seed, REFERENCE]
            data, first_bar = build_market(reference)
            plan = plan_for(reference, data, first_bar)
            for row in rows:
                if row.startswith("filter_window="):
                    window = int(row.partition("=")[2])
                    cell = dataclasses.replace(reference, agent_kwargs={"filter_window": window})
                else:
                    cell = cells[market, seed, row]
                result = train_and_score(cell, data, plan.trains[0], plan.units)
                growth[row].append(np.array([log_growth(e) for e in result.equities]))
                turnover[row].append(float(np.mean([m["turnover"] for m in result.metrics])))
        ref = np.concatenate(growth[REFERENCE])
        out[market] = {}
        for row in rows:
            x = np.concatenate(growth[row])
            lo, hi = bootstrap_ci(normalized_score, x, ref)
            out[market][row] = {
                "score": round(float(normalized_score(x, ref)), 1),
                "lo": round(float(lo), 1),
                "hi": round(float(hi), 1),
                "turnover": round(float(np.mean(turnover[row])), 1),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--suite", default="validation", help="suite name or YAML (regime markets)")
    p.add_argument("--windows", nargs="+", type=int, default=[20, 60, 120, 250],
                   help="bars the windowed filter reads")  # fmt: skip
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/validation_ceiling.json")
    args = p.parse_args(argv)
    if not all(k >= 1 for k in args.windows):
        raise SystemExit(f"--windows must be >= 1 bar, got {args.windows}")
    suite = load_suite(args.suite)
    others = [m for m in suite.markets if reference_policy_name(m) != REFERENCE]
    if others:
        raise SystemExit(
            f"{others}: the windowed filter is {REFERENCE}'s, the reference of regime markets only"
        )
    missing = {REFERENCE, RULE} - {spec.name for spec in suite.agents}
    if missing:
        raise SystemExit(f"suite {suite.name!r} must list {sorted(missing)} among its agents")
    t0 = time.perf_counter()
    table = run(suite, sorted(set(args.windows)))
    wall = round(time.perf_counter() - t0, 1)
    keys = len(suite.seeds) * suite.n_windows
    print(f"{suite.name}: {len(suite.seeds)} seeds x {suite.n_windows} windows = {keys} keys "
          f"per market; {REFERENCE} = 100; {wall} s")  # fmt: skip
    for market, rows in table.items():
        print(f"\n{market}")
        for row, r in rows.items():
            print(f"  {row:<22} {r['score']:7.1f} [{r['lo']:6.1f}, {r['hi']:6.1f}]"
                  f"  turnover {r['turnover']:6.1f}")  # fmt: skip
    atomic_write_json(
        args.out,
        {"suite": suite.name, "seeds": list(suite.seeds), "n_windows": suite.n_windows,
         "windows": sorted(set(args.windows)), "wall_s": wall, "markets": table},
    )  # fmt: skip
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
