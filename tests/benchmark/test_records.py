"""Records: cell ids, atomic appends, reading back (torn last line), resume keys."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from quantgym.benchmark.records import (
    append_record,
    canonical_json,
    cell_id,
    completed_ids,
    json_clean,
    latest_by_cell,
    provenance,
    read_records,
    strip_volatile,
)
from quantgym.machine import dispatched_features


def test_cell_id_is_order_independent_and_sensitive() -> None:
    a = {"market": "synthetic:regime", "agent": "flat", "seed": 0, "env_kwargs": {"x": 1}}
    b = {"seed": 0, "env_kwargs": {"x": 1}, "agent": "flat", "market": "synthetic:regime"}
    assert cell_id(a) == cell_id(b)
    assert len(cell_id(a)) == 16 and int(cell_id(a), 16) >= 0
    assert cell_id({**a, "seed": 1}) != cell_id(a)


def test_json_clean_makes_strict_json() -> None:
    out = json_clean({"a": np.float64(1.5), "b": math.nan, "c": (np.int64(2), math.inf)})
    assert out == {"a": 1.5, "b": None, "c": [2, None]}
    assert json.loads(canonical_json({"z": 1, "a": [1.0]})) == {"a": [1.0], "z": 1}


def test_append_and_read_back(tmp_path) -> None:
    path = tmp_path / "sub" / "results.jsonl"
    assert read_records(path) == []
    for i in range(3):
        append_record(path, {"cell_id": f"{i:016x}", "status": "ok" if i else "error", "x": i})
    records = read_records(path)
    assert [r["x"] for r in records] == [0, 1, 2]
    assert path.read_text().count("\n") == 3
    assert completed_ids(records) == {f"{1:016x}", f"{2:016x}"}


def test_torn_last_line_is_skipped_but_corruption_elsewhere_raises(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    append_record(path, {"cell_id": "a" * 16, "status": "ok"})
    with open(path, "a") as fh:
        fh.write('{"cell_id": "b')  # a crash mid-write
    assert [r["cell_id"] for r in read_records(path)] == ["a" * 16]
    path.write_text('{"cell_id": "b\n' + canonical_json({"cell_id": "a" * 16}) + "\n")
    with pytest.raises(ValueError, match="results.jsonl:1"):
        read_records(path)


def test_latest_by_cell_prefers_ok() -> None:
    records = [
        {"cell_id": "a", "status": "error", "n": 1},
        {"cell_id": "a", "status": "ok", "n": 2},
        {"cell_id": "a", "status": "error", "n": 3},
        {"cell_id": "b", "status": "error", "n": 4},
    ]
    assert [r["n"] for r in latest_by_cell(records)] == [2, 4]


def test_strip_volatile_and_provenance() -> None:
    prov = provenance()
    assert set(prov) == {"git_rev", "versions", "machine", "created_at"}
    machine = prov["machine"]
    assert machine["cpu"] and machine["arch"] and isinstance(machine["cpu_count"], int)
    simd = machine["numpy_simd"]
    assert simd["baseline"] and set(simd["found"]) <= set(dispatched_features())
    assert set(prov["versions"]) >= {"quantgym", "numpy", "torch", "gymnasium", "d3rlpy"}
    assert prov["versions"]["numpy"] == np.__version__
    record = {"cell_id": "a", "timing": {"train_s": 1.0}, "provenance": prov}
    stripped = strip_volatile(record)
    assert "timing" not in stripped and "created_at" not in stripped["provenance"]
    assert stripped["provenance"]["git_rev"] == prov["git_rev"]
