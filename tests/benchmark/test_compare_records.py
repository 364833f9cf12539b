"""benchmarks/compare_records.py: identical, close within a tolerance, or different."""

from __future__ import annotations

import copy
from pathlib import Path

from quantgym.benchmark.records import append_record
from tests.benchmark.records_factory import make_record
from tests.benchmark.scripts import load_script


def _script():
    return load_script("compare_records", "compare_records")


def _write(path: Path, records: list[dict]) -> str:
    for record in records:
        append_record(path, record)
    return str(path)


def test_identical_close_and_different_runs(tmp_path, capsys) -> None:
    script = _script()
    base = [make_record("flat", [0.0] * 4), make_record("sma_crossover", [0.1, -0.2, 0.3, 0.05])]
    old = _write(tmp_path / "old.jsonl", base)
    same = copy.deepcopy(base)
    same[0]["timing"] = {"train_s": 123.0}  # volatile: ignored
    same[0].setdefault("provenance", {})["machine"] = {"cpu": "another"}  # provenance: ignored
    assert script.main([old, _write(tmp_path / "same.jsonl", same)]) == 0
    assert "2 identical" in capsys.readouterr().out

    close = copy.deepcopy(base)
    close[1]["units"][0]["log_growth"] *= 1 + 1e-12  # an ulp-scale difference
    assert script.main([old, _write(tmp_path / "close.jsonl", close)]) == 0
    assert "1 close" in capsys.readouterr().out

    far = copy.deepcopy(base)
    far[1]["units"][0]["log_growth"] *= 1.01
    assert script.main([old, _write(tmp_path / "far.jsonl", far)]) == 1
    out = capsys.readouterr().out
    assert "different: sma_crossover" in out and "units[0].log_growth" in out
    assert script.main([old, _write(tmp_path / "fewer.jsonl", base[:1])]) == 1
