"""Compare agents on the same held-out data, with confidence intervals (thin CLI over
``quantgym.benchmark``).

    .venv/bin/python benchmarks/compare.py                        # the smoke suite (`make demo`, < 3 min)
    .venv/bin/python benchmarks/compare.py --suite standard --workers 2     # `make bench`
    .venv/bin/python benchmarks/compare.py --suite my_suite.yaml --backend ray --ray-address auto
    .venv/bin/python benchmarks/compare.py --markets gbm sample:googl \\
        --agents buy_and_hold sma_crossover ppo_mlp --seeds 0 1 2 --train-steps 50000
    .venv/bin/python benchmarks/compare.py --suite standard --resume    # continue after a crash
    .venv/bin/python benchmarks/compare.py --suite stress --workers 2   # where agents break
    .venv/bin/python benchmarks/compare.py --tearsheet sma_crossover regime  # quantstats HTML

Protocol: synthetic markets give one long seeded series per (market, seed); learners train on
its first part, and after an embargo every agent trades the same disjoint test windows. Real data
(``sample:googl``, ``sample:eurusd``, CSV paths) uses walk-forward folds (expanding train
window, embargo, learners retrained per fold). Each window's score is its log growth; the
table shows 100 x mean log growth / the reference's (cash = 0) with paired-bootstrap 95% CIs,
the IQM and the probability of improvement; privileged and future-peeking agents are listed
apart as bounds. Each cell (market, agent, seed) is one line of ``results.jsonl`` in ``--out``
(default ``benchmarks/results/<suite>/``), next to the report and its PNG plots. A suite with a
``stress:`` section (``stress``) also re-scores each trained agent under cost, shift, noise and
adversarial probes and writes ``stress.md`` beside the report.
``--tearsheet AGENT MARKET`` runs only that agent's cell and its reference's (first seed) and
writes quantstats' HTML tearsheet of the agent's returns on the concatenated held-out windows or
folds, the reference as benchmark, to ``OUT/tearsheet_<agent>_<market>.html``
(``pip install 'quantgym[tearsheet]'``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main", "run_tearsheet", "DEFAULT_SUITE", "RESULTS_ROOT"]

DEFAULT_SUITE = "smoke"
RESULTS_ROOT = Path(__file__).resolve().parent / "results"
FORMATS = ("md", "csv", "json")


def _names(values: Sequence[str] | None) -> list[str] | None:
    """Accept ``a b c`` and ``a,b,c``."""
    if values is None:
        return None
    return [part for value in values for part in value.split(",") if part]


def _seeds(values: Sequence[str] | None) -> list[int] | None:
    names = _names(values)
    if names is None:
        return None
    try:
        return [int(v) for v in names]
    except ValueError:
        raise ValueError(f"--seeds must be integers, got {' '.join(values or [])!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from quantgym.benchmark import BACKENDS, list_suites

    parser = argparse.ArgumentParser(
        prog="compare.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--suite",
        default=DEFAULT_SUITE,
        help=f"suite name ({', '.join(list_suites())}) or a YAML path (default: {DEFAULT_SUITE})",
    )
    parser.add_argument("--markets", nargs="+", metavar="MARKET", help="override the suite's")
    parser.add_argument(
        "--agents", nargs="+", metavar="AGENT", help="override: names or package.module:Class"
    )
    parser.add_argument("--seeds", nargs="+", metavar="SEED", help="override: e.g. 0 1 2")
    parser.add_argument("--train-steps", type=int, help="override every learner's budget")
    parser.add_argument("--workers", type=int, default=1, help="parallel cells (default 1)")
    parser.add_argument("--backend", default="local", choices=BACKENDS, help="default: local")
    parser.add_argument(
        "--ray-address", help="Ray cluster address (default: start a local Ray instance)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip cells already in results.jsonl with status ok"
    )
    parser.add_argument("--out", help="output folder (default: benchmarks/results/<suite>/)")
    parser.add_argument(
        "--format",
        nargs="+",
        default=list(FORMATS),
        choices=FORMATS,
        help="report files to write (default: md csv json)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--tearsheet",
        nargs=2,
        metavar=("AGENT", "MARKET"),
        help="instead of the suite: write OUT/tearsheet_<agent>_<market>.html (quantstats) of "
        "AGENT on MARKET's held-out data against its reference (the suite's first seed)",
    )
    return parser


def run_tearsheet(suite: Any, agent: str, market: str, out: Path) -> Path:
    """``--tearsheet AGENT MARKET``: the tearsheet of one agent of ``suite`` on ``market``
    (``ValueError`` for an unknown agent or market, or a pair that does not apply)."""
    from quantgym.benchmark.plots import safe_name
    from quantgym.benchmark.suite import normalize_market
    from quantgym.benchmark.tearsheet import suite_tearsheet

    market = normalize_market(market)
    path = out / f"tearsheet_{safe_name(agent)}_{safe_name(market)}.html"
    return suite_tearsheet(suite, agent, market, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite and report; bad names or values print ``error: ...`` and return 2."""
    from quantgym.benchmark import load_suite, run_suite

    args = build_parser().parse_args(argv)
    try:
        suite = load_suite(args.suite).with_overrides(
            markets=_names(args.markets),
            agents=_names(args.agents),
            seeds=_seeds(args.seeds),
            train_steps=args.train_steps,
        )
        out = Path(args.out) if args.out else RESULTS_ROOT / suite.name
        if args.tearsheet:
            print(f"wrote {run_tearsheet(suite, *args.tearsheet, out)}")
            return 0
        run = run_suite(
            suite,
            out,
            backend=args.backend,
            workers=args.workers,
            ray_address=args.ray_address,
            resume=args.resume,
            progress=not args.no_progress,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: the records written so far are valid; rerun with --resume",
            file=sys.stderr,
        )
        return 130
    for item in run.not_applicable:
        print(f"not run: {item['agent']} on {item['market']}: {item['reason']}")
    print(f"{run.n_run} cells run, {run.n_resumed} resumed; records in {run.path}")

    from quantgym.benchmark.report import format_report, write_report
    from quantgym.benchmark.statistics import summarize

    summary = summarize(run.records)
    print(format_report(summary, "text", records=run.records))
    written = write_report(summary, out, args.format, records=run.records)
    paths = list(written.values()) if isinstance(written, dict) else list(written or [])
    if not args.no_plots:
        from quantgym.benchmark.plots import plot_all

        paths += list(plot_all(run.records, summary, out).values())
    if suite.stress is not None:
        from quantgym.benchmark.stress_report import write_stress_report

        paths += list(write_stress_report(run.records, out, plots=not args.no_plots).values())
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
