"""Run a suite at several cost levels, learners *retrained* at each: the headline report at one
level, the cost-sensitivity table and plot over all of them (any suite; the portfolio suite's
levels are 0, 5, 10 and 25 bp; the stress suite's 0, 5, 15, 30 and 60 bp:
``--suite stress --levels 0 5 15 30 60 --headline 15``). ``compare.py --suite stress`` is the
cheaper sweep that evaluates each agent *as trained* at every level.

    nice -n 10 .venv/bin/python benchmarks/cost_sweep.py                 # suite `portfolio`
    .venv/bin/python benchmarks/cost_sweep.py --suite portfolio --levels 0 5 10 25 --headline 10
    .venv/bin/python benchmarks/cost_sweep.py --markets synthetic:factor_regime --seeds 0 --resume

Each level ``bp`` is an ordinary suite run with ``commission = bp / 1e4`` per unit traded (each
side) and no slippage in every env, into ``OUT/cost_<bp>bp/results.jsonl`` (``--resume``
continues one). ``--sweep-seeds 0`` runs the levels other than the headline on seed 0 only (the
headline keeps the suite's seeds) and builds the cost table from those seeds at every level. Into ``OUT`` (default ``benchmarks/results/<suite>/``;
``.../stress/retrained/`` for a stress suite, whose probes are dropped here) go the headline level's
report (``report.md/csv/json``) and plots (scores, equity and drawdown per market), and the cost
table (``costs.md``, ``costs.csv``) and plots (``costs_<market>.png``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]

RESULTS_ROOT = Path(__file__).resolve().parent / "results"


def build_parser() -> argparse.ArgumentParser:
    from quantgym.benchmark.costs import COST_LEVELS_BP

    parser = argparse.ArgumentParser(
        prog="cost_sweep.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--suite", default="portfolio", help="suite name or YAML path")
    parser.add_argument(
        "--levels", nargs="+", type=float, default=list(COST_LEVELS_BP), help="bp per unit traded"
    )
    parser.add_argument("--headline", type=float, default=10.0, help="level of the main report")
    parser.add_argument(
        "--sweep-seeds",
        nargs="+",
        type=int,
        help="seeds of the other levels, and of every level in the cost table (default: all)",
    )
    parser.add_argument("--markets", nargs="+", help="override the suite's markets")
    parser.add_argument("--agents", nargs="+", help="override the suite's agents")
    parser.add_argument("--seeds", nargs="+", type=int, help="override the suite's seeds")
    parser.add_argument("--train-steps", type=int, help="override every learner's budget")
    parser.add_argument("--workers", type=int, default=1, help="parallel cells (default 1)")
    parser.add_argument("--resume", action="store_true", help="skip cells already done")
    parser.add_argument("--out", help="output folder (default benchmarks/results/<suite>/)")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: report the records already in OUT/cost_<bp>bp/ (e.g. a partial run)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _recorded(folder: Path, suite: object) -> list[dict]:
    """The latest ok record of each of ``suite``'s cells already in ``folder``."""
    from quantgym.benchmark.listing import cells_for
    from quantgym.benchmark.records import RESULTS_FILE, latest_by_cell, read_records

    wanted = {cell.cell_id for cell in cells_for(suite)[0]}
    path = folder / RESULTS_FILE
    records = latest_by_cell(read_records(path)) if path.is_file() else []
    return [r for r in records if r["cell_id"] in wanted and r.get("status") == "ok"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run every level, then write the reports; bad values print ``error: ...`` and return 2."""
    from quantgym.benchmark import load_suite, run_suite
    from quantgym.benchmark.costs import cost_table, format_cost_table, suite_at_cost
    from quantgym.benchmark.report import format_report, write_report
    from quantgym.benchmark.statistics import summarize
    from quantgym.files import atomic_write

    args = build_parser().parse_args(argv)
    try:
        if args.headline not in args.levels:
            raise ValueError(f"--headline {args.headline:g} must be one of --levels")
        base = load_suite(args.suite).with_overrides(
            markets=args.markets, agents=args.agents, seeds=args.seeds, train_steps=args.train_steps
        )
        out = Path(args.out) if args.out else RESULTS_ROOT / base.name
        if base.stress is not None:  # retrained sweep of a stress suite: ordinary cells
            base = dataclasses.replace(base, stress=None).validate()
            out = out if args.out else out / "retrained"
        summaries, headline_records = {}, []
        sweep = set(args.sweep_seeds or base.seeds)
        for bp in sorted(set(args.levels)):
            suite = suite_at_cost(base, bp)
            if bp != args.headline and args.sweep_seeds:
                suite = suite.with_overrides(seeds=args.sweep_seeds)
            folder = out / f"cost_{bp:g}bp"
            if args.report_only:
                records = _recorded(folder, suite)
                print(f"{bp:g} bp: {len(records)} records in {folder}")
            else:
                run = run_suite(
                    suite,
                    folder,
                    workers=args.workers,
                    resume=args.resume,
                    progress=not args.no_progress,
                )
                print(f"{bp:g} bp: {run.n_run} cells run, {run.n_resumed} resumed; {run.path}")
                records = run.records
            summaries[bp] = summarize([r for r in records if r["seed"] in sweep])
            if bp == args.headline:
                headline_records = records
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun with --resume", file=sys.stderr)
        return 130
    headline = summarize(headline_records)
    print(format_report(headline, "text", records=headline_records))
    paths = list(
        write_report(headline, out, ("md", "csv", "json"), records=headline_records).values()
    )
    table = cost_table(summaries)
    text = format_cost_table(table, headline_bp=args.headline)
    print(text)
    for name, content in (("costs.md", text), ("costs.csv", table.to_csv(index=False))):
        path = out / name
        atomic_write(path, lambda tmp, c=content: Path(tmp).write_text(c, encoding="utf-8"))
        paths.append(path)
    if not args.no_plots:
        from quantgym.benchmark.plots import plot_all, plot_cost_sweep

        paths += list(plot_all(headline_records, headline, out).values())
        paths += list(plot_cost_sweep(table, out).values())
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
