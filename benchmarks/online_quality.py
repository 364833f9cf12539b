"""Learning curves of the online agents: held-out score with its 95% CI against the training
budget (env steps) and against training wall-clock, one line per agent.

    .venv/bin/python benchmarks/online_quality.py                     # regime, seed 0, 3 agents
    .venv/bin/python benchmarks/online_quality.py --agents ppo_mlp --budgets 25000 50000 100000
    .venv/bin/python benchmarks/online_quality.py --seeds 0 1 --market gbm --no-plot
    .venv/bin/python benchmarks/online_quality.py --seeds 0 1 2 --workers 2   # the README's

Protocol: the harness's (:mod:`quantgym.benchmark.protocol`) window protocol. For each seed one
long synthetic series; every learner trains from scratch with its *default* hyperparameters on
the first ``--train-bars`` bars, once per budget (a budget is a separate run, so linear
learning-rate schedules anneal over that budget, as a user's ``fit(env, budget)`` would), and
trades the ``--n-windows`` disjoint held-out 1,000-bar windows after the embargo. Scores come
from :func:`quantgym.benchmark.statistics.summarize`: 100 x mean log growth / the
reference's (``bayes_filter_expert`` on ``regime``; cash = 0) with paired-bootstrap 95% CIs
over the (seed, window) keys. ``sma_crossover`` and ``buy_and_hold`` are drawn as horizontal
references. Wall-clock is the harness's ``timing.train_s`` (one torch thread per cell).

Every cell is one record in ``--out/results.jsonl`` (resumable with ``--resume``); the curve
table goes to ``--out/curves.csv`` and the plot to ``--plot`` (default
``docs/learning_curves.png``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from quantgym.files import atomic_write

__all__ = [
    "DEFAULT_AGENTS",
    "DEFAULT_BUDGETS",
    "default_budgets",
    "REFERENCE_AGENTS",
    "curve_cells",
    "curve_table",
    "plot_curves",
    "main",
]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_AGENTS = ("ppo_mlp", "ppo_transformer", "ppo_lstm")
#: Budgets (env steps) below each agent's default; :func:`default_budgets` appends the default
#: (its ``Config.train_steps``, read from the agent so the two cannot drift apart).
DEFAULT_BUDGETS: Mapping[str, tuple[int, ...]] = {
    "ppo_mlp": (25_000, 50_000, 100_000),
    "ppo_transformer": (50_000, 100_000, 200_000),
    "ppo_lstm": (100_000, 200_000, 400_000),
}
#: Non-learning agents run next to the learners: the score's reference and the horizontal lines.
REFERENCE_AGENTS = ("bayes_filter_expert", "sma_crossover", "buy_and_hold")
CURVE_COLUMNS = (
    "agent",
    "budget",
    "steps",
    "train_s",
    "score",
    "score_lo",
    "score_hi",
    "turnover",
    "n_units",
)


def curve_cells(
    market: str,
    agents: Sequence[str],
    budgets: Mapping[str, Sequence[int]],
    seeds: Sequence[int],
    *,
    n_windows: int = 64,
    window_bars: int = 1000,
    train_bars: int = 20_000,
    embargo_bars: int = 200,
) -> list[Any]:
    """The harness cells of a learning curve: the reference agents once per seed, each learner
    once per (budget, seed)."""
    from quantgym.benchmark import Cell
    from quantgym.benchmark.suite import normalize_market

    market = normalize_market(market)
    common = {
        "suite": "online_quality",
        "market": market,
        "protocol": "windows",
        "window_bars": window_bars,
        "n_windows": n_windows,
        "train_bars": train_bars,
        "embargo_bars": embargo_bars,
    }
    cells = [Cell(agent=a, seed=s, **common) for s in seeds for a in REFERENCE_AGENTS]
    for agent in agents:
        if agent not in budgets:
            raise ValueError(f"budgets: no budget list for agent {agent!r}")
        for budget in budgets[agent]:
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                raise ValueError(f"budgets: {agent} budget must be a positive int, got {budget!r}")
            cells += [Cell(agent=agent, seed=s, train_steps=budget, **common) for s in seeds]
    return cells


def curve_table(records: Sequence[Mapping[str, Any]], n_resamples: int = 1000) -> pd.DataFrame:
    """One row per (learner, budget) plus one per reference agent (``budget`` NaN): score and CI
    from :func:`~quantgym.benchmark.statistics.summarize`, mean train steps and seconds."""
    from quantgym.benchmark.statistics import summarize

    refs = [r for r in records if r["agent"] in REFERENCE_AGENTS]
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for rec in records:
        budget = rec["cell"].get("train_steps")
        if rec["agent"] not in REFERENCE_AGENTS and budget is not None:
            groups.setdefault((rec["agent"], int(budget)), []).append(rec)
    rows = []
    summary = summarize(refs, n_resamples=n_resamples)
    for _, row in summary.iterrows():
        rows.append({**{k: row[k] for k in ("agent", "score", "score_lo", "score_hi")}})
        rows[-1].update(budget=math.nan, steps=math.nan, train_s=math.nan)
        rows[-1].update(turnover=row["turnover"], n_units=row["n_units"])
    for (agent, budget), recs in sorted(groups.items()):
        ok = [r for r in recs if r.get("status") == "ok"]
        if not ok:
            continue
        label = f"{agent}@{budget}"
        part = summarize([*refs, *({**r, "agent": label} for r in ok)], n_resamples=n_resamples)
        row = part[part["agent"] == label].iloc[0]
        steps = [r["train"].get("steps") for r in ok if isinstance(r["train"].get("steps"), int)]
        rows.append(
            {
                "agent": agent,
                "budget": budget,
                "steps": sum(steps) / len(steps) if steps else math.nan,
                "train_s": sum(r["timing"]["train_s"] for r in ok) / len(ok),
                "score": row["score"],
                "score_lo": row["score_lo"],
                "score_hi": row["score_hi"],
                "turnover": row["turnover"],
                "n_units": row["n_units"],
            }
        )
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def plot_curves(table: pd.DataFrame, path: str | os.PathLike, title: str = "") -> Path:
    """Two panels (score vs env steps, score vs training seconds), one line per learner with
    its 95% CI band; the reference agents as horizontal lines. Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    learners = table[table["budget"].notna()]
    refs = table[table["budget"].isna()]
    for ax, x, xlabel in (
        (axes[0], "steps", "training env steps"),
        (axes[1], "train_s", "training wall-clock (s, one torch thread)"),
    ):
        for agent, part in learners.groupby("agent", sort=False):
            part = part.sort_values(x)
            (line,) = ax.plot(part[x], part["score"], marker="o", label=str(agent))
            ax.fill_between(
                part[x], part["score_lo"], part["score_hi"], color=line.get_color(), alpha=0.2
            )
        for style, (_, ref) in zip(("--", ":", "-."), refs.iterrows(), strict=False):
            ax.axhline(ref["score"], color="grey", linestyle=style, linewidth=1, label=ref["agent"])
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out score (bayes_filter_expert = 100, cash = 0)")
    axes[1].legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def _budgets(agents: Sequence[str], given: Sequence[int] | None) -> dict[str, tuple[int, ...]]:
    if given:
        return {a: tuple(given) for a in agents}
    missing = [a for a in agents if a not in DEFAULT_BUDGETS]
    if missing:
        raise ValueError(f"--budgets is required for agents without default budgets: {missing}")
    return default_budgets(agents)


def default_budgets(agents: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """:data:`DEFAULT_BUDGETS` of each agent plus its default budget (``train_steps``)."""
    from quantgym.agents.registry import agent_class

    out = {}
    for agent in agents:
        default = int(agent_class(agent).Config().train_steps)
        out[agent] = tuple(sorted({*DEFAULT_BUDGETS[agent], default}))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--market", default="regime", help="synthetic market (default regime)")
    parser.add_argument("--agents", nargs="+", default=list(DEFAULT_AGENTS))
    parser.add_argument("--budgets", nargs="+", type=int, help="env steps, for every agent")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--n-windows", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/online_quality")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/learning_curves.png")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--resume", action="store_true", help="skip cells already in --out")
    parser.add_argument("--workers", type=int, default=1, help="cells run in parallel processes")
    args = parser.parse_args(argv)

    from quantgym.benchmark import RESULTS_FILE, read_records, run_cells
    from quantgym.benchmark.records import completed_ids, latest_by_cell

    try:
        budgets = _budgets(args.agents, args.budgets)
        cells = curve_cells(args.market, args.agents, budgets, args.seeds, n_windows=args.n_windows)
    except ValueError as exc:
        parser.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / RESULTS_FILE
    done = completed_ids(read_records(path)) if args.resume and path.exists() else set()
    if not args.resume and path.exists():
        os.replace(path, path.with_name(RESULTS_FILE + ".bak"))
    run_cells([c for c in cells if c.cell_id not in done], path, workers=args.workers)
    wanted = {c.cell_id for c in cells}
    records = [r for r in latest_by_cell(read_records(path)) if r["cell_id"] in wanted]
    failed = [r for r in records if r.get("status") != "ok"]
    for rec in failed:
        print(f"FAILED {rec['agent']} seed {rec['seed']}:\n{rec.get('error')}", file=sys.stderr)
    table = curve_table(records)

    def write_csv(tmp: str) -> None:
        table.to_csv(tmp, index=False, float_format="%.4g")

    atomic_write(args.out / "curves.csv", write_csv)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if not args.no_plot:
        title = f"{cells[0].market}, seeds {args.seeds}, {args.n_windows} held-out windows each"
        print(f"plot: {plot_curves(table, args.plot, title)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
