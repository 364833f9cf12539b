"""Are two runs of a suite the same? Compare two ``results.jsonl`` files cell by cell.

    python benchmarks/compare_records.py OLD/results.jsonl NEW/results.jsonl [--rtol 1e-9]

Timings, creation times and provenance (git revision, machine) are ignored. Each cell is
``identical`` (bit for bit: the contract on one machine), ``close`` (every number within
``--rtol``: the contract across machines, whose numpy SIMD kernels differ by ulps) or
``different`` (the largest relative difference and the fields are printed). Exit status 0 when
no cell differs beyond the tolerance and both files hold the same cells, else 1.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from typing import Any

from quantgym.benchmark.records import latest_by_cell, read_records, strip_volatile


def _records(path: str) -> dict[str, dict[str, Any]]:
    out = {}
    for record in latest_by_cell(read_records(path)):
        record = strip_volatile(record)
        record.pop("provenance", None)
        out[record["cell_id"]] = record
    return out


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _leaves(value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def max_relative_difference(a: Any, b: Any) -> tuple[float, list[str]]:
    """The largest relative difference between the numbers of ``a`` and ``b`` and the paths of
    the fields that differ (``inf`` for a field that is not a number, or missing, on one side)."""
    left, right = dict(_leaves(a)), dict(_leaves(b))
    worst, fields = 0.0, []
    for key in sorted(set(left) | set(right)):
        x, y = left.get(key, ...), right.get(key, ...)
        if x == y:
            continue
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
        if numbers and math.isfinite(x) and math.isfinite(y):
            rel = abs(x - y) / max(abs(x), abs(y), 1e-300)
        else:
            rel = math.inf
        worst = max(worst, rel)
        fields.append(key)
    return worst, fields


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rtol", type=float, default=1e-9, help="default 1e-9")
    args = parser.parse_args(argv)
    old, new = _records(args.old), _records(args.new)
    ok = set(old) == set(new)
    if not ok:
        print(f"cells only in {args.old}: {len(set(old) - set(new))}; only in {args.new}: "
              f"{len(set(new) - set(old))}")  # fmt: skip
    counts = {"identical": 0, "close": 0, "different": 0}
    for key in sorted(set(old) & set(new)):
        worst, fields = max_relative_difference(old[key], new[key])
        cell = old[key].get("cell", {})
        name = f"{cell.get('agent')} {cell.get('market')} seed {cell.get('seed')}"
        if not fields:
            counts["identical"] += 1
        elif worst <= args.rtol:
            counts["close"] += 1
        else:
            counts["different"] += 1
            ok = False
            print(f"different: {name}: max relative difference {worst:.3g} in {len(fields)} "
                  f"fields, e.g. {', '.join(fields[:3])}")  # fmt: skip
    print(", ".join(f"{v} {k}" for k, v in counts.items()) + f" (rtol {args.rtol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
