"""Report: tables per market, bounds apart and unranked, best causal agent bold, formats parse."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from quantgym.benchmark.profiles import BEAT_COLUMNS
from quantgym.benchmark.report import format_report, write_report
from quantgym.benchmark.statistics import SUMMARY_COLUMNS, summarize
from tests.benchmark.records_factory import make_error_record, make_market_records


@pytest.fixture(scope="module")
def records():
    return [
        *make_market_records("synthetic:regime", n_units=16),
        *make_market_records("gbm", n_units=16, ref_shift=-0.05, rng_seed=1),
        make_error_record("ppo_lstm", market="gbm", seed=3, error="CUDA out of memory"),
    ]


@pytest.fixture(scope="module")
def summary(records):
    return summarize(records, n_resamples=200)


def _section(text: str, market: str) -> str:
    start = text.index(f"## {market}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_markdown_bolds_the_best_causal_agent_and_lists_bounds_apart(summary, records):
    text = format_report(summary, "md", records)
    regime = _section(text, "synthetic:regime")
    ranked, bounds = regime.split("Bounds (not ranked")
    best = summary[(summary["market"] == "synthetic:regime") & (summary["rank"] == 1)]
    best_line = next(line for line in ranked.splitlines() if best["agent"].iloc[0] in line)
    assert best_line.startswith("| **1** | **ppo_lstm** |")
    assert ranked.count("**") == 2 * 13  # only the best row is bold, every cell of it
    for bound in ("hindsight_oracle", "regime_expert"):
        assert bound not in ranked and bound in bounds
    assert "Reference (score 100): bayes_filter_expert" in regime
    assert "2 seed(s) x 16 units = 32 paired keys; 95% paired-bootstrap CIs" in regime


def test_undefined_score_falls_back_to_excess_and_failures_are_listed(summary, records):
    text = format_report(summary, "text", records)
    assert "Score undefined" in text and "excess_ann" in text
    assert "- ppo_lstm on gbm, seed 3: RuntimeError: CUDA out of memory" in text
    assert "Traceback line 2" not in text  # first line of the error only
    assert "**" not in text


def test_csv_and_json_parse(summary, records):
    frame = pd.read_csv(io.StringIO(format_report(summary, "csv")))
    assert list(frame.columns) == list(SUMMARY_COLUMNS)
    assert len(frame) == len(summary)
    payload = json.loads(format_report(summary, "json", records))
    assert len(payload["rows"]) == len(summary)
    assert payload["failed"][0]["agent"] == "ppo_lstm"
    oracle = next(r for r in payload["rows"] if r["agent"] == "hindsight_oracle")
    assert oracle["rank"] is None and oracle["role"] == "future"


def test_write_report_is_atomic_and_complete(summary, records, tmp_path):
    written = write_report(summary, tmp_path / "out", records=records)
    beat = {"beat_synthetic_regime", "beat_gbm"}
    assert set(written) == {"md", "csv", "json", *beat}
    for fmt in ("md", "csv", "json"):
        assert written[fmt].read_text(encoding="utf-8") == format_report(summary, fmt, records)
    for key in beat:
        frame = pd.read_csv(written[key])
        assert list(frame.columns) == list(BEAT_COLUMNS)
        assert len(frame) == 4 * 3  # ordered pairs of the 4 causal agents; bounds left out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "beat_gbm.csv",
        "beat_synthetic_regime.csv",
        "report.csv",
        "report.json",
        "report.md",
    ]
    only_md = write_report(summary, tmp_path / "md", formats=("md",), records=records)
    assert set(only_md) == {"md"}


def test_beat_matrix_only_in_markdown(summary, records):
    md = format_report(summary, "md", records)
    regime = _section(md, "synthetic:regime")
    assert "### P(beat) on synthetic:regime" in regime
    matrix = regime[regime.index("| P(row beats column)") :].splitlines()
    assert matrix[0].split(" | ")[1:3] == ["ppo_lstm", "bayes_filter_expert"]
    assert len(matrix) == 2 + 4 and "hindsight_oracle" not in "".join(matrix)
    assert "P(beat)" not in format_report(summary, "text", records)
    assert "P(beat) on" not in format_report(summary, "md")  # no records, no matrix


def test_bad_input_names_the_argument(summary):
    with pytest.raises(ValueError, match="fmt"):
        format_report(summary, "html")
    with pytest.raises(ValueError, match="columns"):
        format_report(summary.drop(columns="score"), "md")
    with pytest.raises(ValueError, match="formats"):
        write_report(summary, "/tmp", formats=("pdf",))
