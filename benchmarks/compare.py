"""Compare every agent on the same held-out markets (the common benchmark harness).

    .venv/bin/python benchmarks/compare.py --preset demo       # `make demo`: ~3-5 min on 2 cores
    .venv/bin/python benchmarks/compare.py --preset full --workers 2
    .venv/bin/python benchmarks/compare.py --markets synthetic:gbm sample:googl \\
        --agents flat buy_and_hold sma_crossover ppo_mlp --seeds 0 1 2 --train-steps 50000

Each market is split chronologically (train / val / test = 0.7 / 0.15 / 0.15); learners train
on the train range, every agent is evaluated on the test range (one deterministic pass by
default) and scored with cash = 0 and a reference = 100. Writes results.json, results.csv,
equity_curves.png and scores.png to --out. The protocol is documented in
``quantgym.comparison``, which this script is a thin CLI over.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from quantgym.comparison import (
    MARKETS,
    PRESETS,
    preset_config,
    print_table,
    run_comparison,
)

__all__ = ["build_parser", "main"]


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
    parser = argparse.ArgumentParser(
        prog="compare.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--preset", default="demo", choices=sorted(PRESETS), help="base config (default: demo)"
    )
    parser.add_argument(
        "--markets", nargs="+", metavar="MARKET", help=f"override: any of {', '.join(MARKETS)}"
    )
    parser.add_argument("--agents", nargs="+", metavar="AGENT", help="override: registered names")
    parser.add_argument("--seeds", nargs="+", metavar="SEED", help="override: e.g. 0 1 2")
    parser.add_argument(
        "--train-steps", type=int, help="override: learners' budget (default: the preset's)"
    )
    parser.add_argument(
        "--n-episodes", type=int, help="evaluation episodes per run (needs --episode-length)"
    )
    parser.add_argument(
        "--episode-length",
        type=int,
        help="evaluation episode length (default: one pass over the whole test range)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="process-pool size (default 1; torch threads = 1 each)",
    )
    parser.add_argument("--out", default="results/compare", help="output directory")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; bad names or values print ``error: ...`` and return 2."""
    args = build_parser().parse_args(argv)
    try:
        config = preset_config(
            args.preset,
            markets=_names(args.markets),
            agents=_names(args.agents),
            seeds=_seeds(args.seeds),
            train_steps=args.train_steps,
            n_episodes=args.n_episodes,
            episode_length=args.episode_length,
            workers=args.workers,
        )
        results = run_comparison(
            config, out=args.out, progress=not args.no_progress, plots=not args.no_plots
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_table(results)
    print(f"git {results.git_rev}, quantgym {results.version}, config {config.config_id}")
    for path in results.paths.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
