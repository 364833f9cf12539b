"""``quantgym dataset make|info``: build an offline dataset from a preset, or summarise one.

``quantgym/cli.py`` calls :func:`add_dataset_parser` on its subparsers; each subcommand sets
``func`` (``func(args) -> int`` exit code). ``python -m quantgym.datasets.cli`` runs it alone.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from collections.abc import Sequence
from typing import Any

from quantgym.datasets import presets
from quantgym.datasets.trajectory import TrajectoryDataset

__all__ = [
    "AUTO_SHARD_STEPS",
    "add_dataset_parser",
    "cmd_make",
    "cmd_info",
    "format_summary",
    "main",
]

AUTO_SHARD_STEPS = 1_000_000
"""``dataset make`` writes shards of this many steps when ``--steps`` exceeds it."""


def add_dataset_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``dataset`` with its ``make`` and ``info`` subcommands on ``subparsers``."""
    parser = subparsers.add_parser(
        "dataset",
        help="build or inspect offline trajectory datasets",
        description="Build offline RL datasets from presets, or summarise a saved one.",
    )
    commands = parser.add_subparsers(dest="dataset_command", metavar="{make,info}")
    commands.required = True

    make = commands.add_parser(
        "make",
        help="collect a dataset from a preset market and behavior quality",
        description="Collect trajectories with a preset behavior policy and save them as .npz.",
    )
    make.add_argument(
        "--market",
        default="regime",
        help="market preset, e.g. regime, gbm, sample:googl (default: regime)",
    )
    make.add_argument(
        "--quality",
        default="expert",
        help="behavior quality, e.g. random, medium, expert, mixed (default: expert)",
    )
    make.add_argument(
        "--steps",
        type=_positive_int,
        default=200_000,
        help="number of transitions (default: 200000)",
    )
    make.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    make.add_argument(
        "--split", default="train", help="date-range split to collect on (default: train)"
    )
    make.add_argument("--out", required=True, help="output path; '.npz' is appended when missing")
    make.add_argument(
        "--no-compress", action="store_true", help="write an uncompressed .npz (faster, larger)"
    )
    make.add_argument(
        "--shard-steps",
        type=_positive_int,
        default=None,
        help="write a sharded directory, one shard per this many steps, as the collection goes "
        f"(bounded memory, resumable); default: sharded with {AUTO_SHARD_STEPS} from "
        f"--steps > {AUTO_SHARD_STEPS}, else one .npz",
    )
    make.add_argument("--num-envs", type=_positive_int, default=16, help="vector env width")
    make.add_argument(
        "--no-resume",
        action="store_true",
        help="start a sharded collection afresh instead of keeping the finished shards",
    )
    make.set_defaults(func=cmd_make)

    info = commands.add_parser(
        "info",
        help="summarise a saved dataset",
        description="Print episodes, steps, return stats, action histogram and date range.",
    )
    info.add_argument("path", help="dataset file (.npz suffix optional) or sharded directory")
    info.set_defaults(func=cmd_info)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def cmd_make(args: argparse.Namespace) -> int:
    """Handler of ``dataset make``: ``presets.make_dataset(...)`` then ``.save(out)``, or, with
    ``--shard-steps`` (or more than :data:`AUTO_SHARD_STEPS` steps), ``make_dataset(out=...)``:
    a sharded directory written as the collection goes."""
    shard_steps = getattr(args, "shard_steps", None)
    if shard_steps is None and args.steps > AUTO_SHARD_STEPS:
        shard_steps = AUTO_SHARD_STEPS
    preset = {
        "market": args.market,
        "quality": args.quality,
        "n_steps": args.steps,
        "seed": args.seed,
        "split": args.split,
    }
    if shard_steps is not None:
        try:
            sharded = presets.make_dataset(
                **preset,
                num_envs=getattr(args, "num_envs", 16),
                progress=True,
                out=args.out,
                shard_steps=shard_steps,
                resume=not getattr(args, "no_resume", False),
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"saved {sharded.n_episodes} episodes, {sharded.n_steps} steps to {args.out}/")
        return 0
    dataset = presets.make_dataset(**preset)
    path = dataset.save(args.out, compress=not getattr(args, "no_compress", False))
    print(f"saved {dataset.n_episodes} episodes, {dataset.n_steps} steps to {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Handler of ``dataset info``: print a summary of a saved dataset."""
    try:
        dataset = TrajectoryDataset.load(args.path, mmap=True)  # shards stay on disk
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(dataset.describe(), title=str(args.path)), end="")
    return 0


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if value is None:
        return "-"
    return str(value)


def format_summary(summary: dict[str, Any], title: str = "dataset", *, width: int = 100) -> str:
    """Render :meth:`TrajectoryDataset.describe` output as rich tables (plain text)."""
    from rich.console import Console
    from rich.table import Table

    overview = Table(title=title, show_header=False)
    overview.add_column("field", style="bold")
    overview.add_column("value")
    date_range = summary.get("date_range")
    rows = [
        ("episodes", summary["n_episodes"]),
        ("steps", summary["n_steps"]),
        ("terminated / truncated", f"{summary['n_terminated']} / {summary['n_truncated']}"),
        ("date range", " .. ".join(date_range) if date_range else None),
        ("observation shape", tuple(summary["observation_shape"])),
        ("action space", summary["action_space"]),
        ("env", summary.get("env_id")),
        ("data", summary.get("data_name")),
        ("data fingerprint", summary.get("data_fingerprint")),
        ("behavior policy", summary.get("behavior_policy")),
        ("seed", summary.get("seed")),
        ("quantgym version", summary.get("quantgym_version")),
        ("created at", summary.get("created_at")),
    ]
    for name, value in rows:
        overview.add_row(name, _fmt(value))

    stats = Table(title="per episode")
    stats.add_column("")
    for column in ("mean", "std", "min", "median", "max"):
        stats.add_column(column, justify="right")
    for name in ("episode_return", "episode_length"):
        values = summary[name]
        stats.add_row(
            name.replace("episode_", ""),
            *(_fmt(values[c]) for c in ("mean", "std", "min", "median", "max")),
        )

    histogram = Table(title="actions")
    histogram.add_column("action")
    histogram.add_column("count", justify="right")
    histogram.add_column("share", justify="right")
    counts = summary["action_histogram"]["counts"]
    total = max(sum(counts), 1)
    for label, count in zip(summary["action_histogram"]["labels"], counts, strict=True):
        histogram.add_row(label, str(count), f"{count / total:.1%}")

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    for table in (overview, stats, histogram):
        console.print(table)
    return console.export_text()


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m quantgym.datasets.cli dataset info PATH``."""
    parser = argparse.ArgumentParser(prog="quantgym")
    add_dataset_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
