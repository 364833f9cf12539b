"""Paired difference of two cells of ``benchmarks/portfolio_learning.py`` on the same windows.

    python benchmarks/portfolio_paired.py benchmarks/results/portfolio_agents_window ppo_eiie:100000 \
        benchmarks/results/portfolio_agents_window ucrp

Each side is a results folder and an agent label with its budget (``label:budget``), or a
reference of that folder's ``references.json`` (``ucrp``, ``kelly_filter_expert``). Prints
``100 x mean(growth_a - growth_b) / mean(growth of the reference)`` with its paired bootstrap
95% CI over windows (seed-averaged growth), and the share of windows where ``a`` earns more.
Both folders must come from the same protocol (same windows).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from quantgym.benchmark.statistics import bootstrap_ci, normalized_gain


def growth(folder: Path, spec: str) -> np.ndarray:
    """Seed-averaged log growth per window of ``spec`` (``label:budget`` or a reference)."""
    refs = json.loads((folder / "references.json").read_text())
    if spec in refs:
        return np.asarray(refs[spec])
    label, _, budget = spec.partition(":")
    lines = (folder / "cells.jsonl").read_text().splitlines()
    cells = [json.loads(x) for x in lines]
    rows = [c["growth"] for c in cells if c["agent"] == label and str(c["budget"]) == budget]
    if not rows:
        raise ValueError(f"no cell {spec!r} in {folder}")
    return np.mean(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("folder_a", type=Path)
    p.add_argument("a")
    p.add_argument("folder_b", type=Path)
    p.add_argument("b")
    p.add_argument("--reference", default="kelly_filter_expert")
    args = p.parse_args(argv)
    a, b = growth(args.folder_a, args.a), growth(args.folder_b, args.b)
    ref = growth(args.folder_a, args.reference)
    if not a.shape == b.shape == ref.shape:
        raise ValueError(f"window counts differ: {a.shape}, {b.shape}, {ref.shape}")
    low, high = bootstrap_ci(normalized_gain, a, b, ref)
    print(f"{args.a} - {args.b}: {normalized_gain(a, b, ref):+.1f} [{low:+.1f}, {high:+.1f}] "
          f"({args.reference} = 100); {args.a} earns more in {np.mean(a > b):.0%} of "
          f"{a.size} windows")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
