"""Plots: one score, equity and drawdown PNG per market, filename-safe, non-empty."""

from __future__ import annotations

import sys

import pytest

from quantgym.benchmark.plots import plot_all, safe_name
from quantgym.benchmark.statistics import summarize
from tests.benchmark.records_factory import make_error_record, make_market_records

pytest.importorskip("matplotlib")


def test_plot_all_writes_non_empty_pngs_per_market(tmp_path):
    records = [
        *make_market_records("synthetic:regime", n_units=8, seeds=(0,)),
        *make_market_records("csv:/data/my prices.csv", n_units=8, seeds=(0,), ref_shift=-0.05),
        make_error_record("ppo_lstm"),
    ]
    summary = summarize(records, n_resamples=100)
    written = plot_all(records, summary, tmp_path)
    safe = ["synthetic_regime", "csv_data_my_prices.csv"]
    # csv market: the reference's mean log growth is < 0, so the score has no profile there
    assert set(written) == {
        f"{kind}_{m}" for kind in ("scores", "equity", "drawdown") for m in safe
    } | {"profile_synthetic_regime"}
    for key, path in written.items():
        assert path == tmp_path / f"{key}.png"
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, key
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{k}.png" for k in written)


def test_safe_name():
    assert safe_name("synthetic:regime") == "synthetic_regime"
    assert safe_name("sample:googl") == "sample_googl"
    assert safe_name("../../etc") == "etc"


def test_missing_matplotlib_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    records = make_market_records(n_units=4, seeds=(0,))
    with pytest.raises(ImportError, match=r"quantgym\[plot\]"):
        plot_all(records, summarize(records, n_resamples=50), tmp_path)
