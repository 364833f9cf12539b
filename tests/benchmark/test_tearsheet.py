"""quantstats tearsheets: the returns series (exact), the HTML (parsed), both CLIs."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from quantgym.benchmark.cells import run_cell
from quantgym.benchmark.listing import cells_for
from quantgym.benchmark.protocol import BarRange
from quantgym.benchmark.protocol import TestUnit as Unit
from quantgym.benchmark.tearsheet import (
    concatenated_returns,
    suite_tearsheet,
    tearsheet_returns,
    unit_returns,
)
from quantgym.tearsheet import (
    INSTALL_HINT,
    align_returns,
    daily_returns,
    days_per_year,
    join_returns,
    write_tearsheet,
)
from tests.benchmark.conftest import tiny_suite
from tests.benchmark.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
AGENT, REFERENCE, MARKET = "sma_crossover", "bayes_filter_expert", "synthetic:regime"


@pytest.fixture
def quantstats():
    return pytest.importorskip("quantstats")


# -- the returns series -------------------------------------------------------------------------


def _market(n_bars: int = 12) -> SimpleNamespace:
    return SimpleNamespace(timestamps=pd.bdate_range("2020-01-01", periods=n_bars).to_numpy())


def _unit(k: int, start: int, end: int) -> Unit:
    return Unit(k, None, start, end, BarRange(0, 1))


def test_concatenated_returns_are_exact_per_unit_and_in_time_order() -> None:
    market = _market()
    units = [_unit(1, 6, 8), _unit(0, 2, 5)]  # given out of time order
    equities = [np.array([50.0, 55.0, 66.0]), np.array([100.0, 110.0, 99.0, 99.0])]
    returns = concatenated_returns(equities, units, market)
    # unit 0 marks bars 3, 4, 5; unit 1 marks 7, 8; nothing spans the gap from bar 5 to bar 6
    assert returns.index.equals(pd.DatetimeIndex(market.timestamps[[3, 4, 5, 7, 8]]))
    np.testing.assert_allclose(returns.to_numpy(), [0.1, -0.1, 0.0, 0.1, 0.2], rtol=0, atol=1e-15)


def test_unit_cut_short_by_bankruptcy_keeps_its_bars_and_bad_paths_are_refused() -> None:
    market = _market()
    short = unit_returns(np.array([100.0, 50.0, 0.0]), _unit(0, 2, 8), market)
    assert short.tolist() == [-0.5, -1.0]
    assert short.index.equals(pd.DatetimeIndex(market.timestamps[[3, 4]]))
    with pytest.raises(ValueError, match="1-d path of 2..4 values"):
        unit_returns(np.ones(5), _unit(0, 2, 5), market)
    with pytest.raises(ValueError, match="positive"):
        unit_returns(np.array([100.0, 0.0, 10.0]), _unit(0, 2, 5), market)
    with pytest.raises(ValueError, match="2 equity paths for 1 units"):
        concatenated_returns([np.ones(4), np.ones(4)], [_unit(0, 2, 5)], market)


def test_overlapping_units_are_refused_naming_the_shared_bar() -> None:
    market = _market()
    units = [_unit(0, 2, 5), _unit(1, 4, 7)]
    with pytest.raises(ValueError, match="overlap at 2020-01-08"):  # bar 5 is in both
        concatenated_returns([np.ones(4), np.ones(4)], units, market)
    with pytest.raises(ValueError, match="no returns"):
        join_returns([])


def test_align_fills_the_bars_one_series_lacks_with_zero() -> None:
    index = pd.bdate_range("2020-01-01", periods=3)
    a = pd.Series([0.1, 0.2, 0.3], index=index)
    b = pd.Series([0.5, 0.6], index=index[:2])
    a2, b2 = align_returns(a, b)
    assert a2.tolist() == [0.1, 0.2, 0.3] and b2.tolist() == [0.5, 0.6, 0.0]
    assert a2.index.equals(b2.index)


def test_intraday_bars_compound_into_days_daily_bars_pass_through() -> None:
    hours = pd.date_range(
        "2021-03-01 22:00", periods=4, freq="h"
    )  # 2 bars on the 1st, 2 on the 2nd
    hourly = pd.Series([0.1, -0.5, 0.2, 0.25], index=hours)
    daily = daily_returns(hourly)
    assert daily.index.equals(pd.DatetimeIndex(["2021-03-01", "2021-03-02"]))
    np.testing.assert_allclose(daily.to_numpy(), [1.1 * 0.5 - 1, 1.2 * 1.25 - 1], atol=1e-15)
    assert days_per_year(hourly, 24 * 252.0) == 12 * 252  # 2 bars a day in this series
    days = pd.Series([0.01, 0.02], index=pd.bdate_range("2021-03-01", periods=2))
    assert daily_returns(days).equals(days) and days_per_year(days, 252.0) == 252


# -- the HTML -----------------------------------------------------------------------------------


class _Tearsheet(HTMLParser):
    """The heading and the 'Key Performance Metrics' table of a quantstats tearsheet."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.heading, self.header, self.rows = "", [], {}
        self._tag, self._in_metrics, self._row, self._in_h1 = None, False, None, False
        self._after_key_metrics = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        self._in_h1 |= tag == "h1"
        if tag == "table" and self._after_key_metrics:
            self._in_metrics, self._after_key_metrics = True, False
        if tag == "tr" and self._in_metrics:
            self._row = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_metrics = False
        if tag == "h1":
            self._in_h1 = False
        if tag == "tr" and self._in_metrics and self._row:
            if not self.header:
                self.header = self._row
            else:
                self.rows[self._row[0]] = self._row[1:]
            self._row = None
        self._tag = None

    def handle_data(self, data):
        if self._in_h1:
            self.heading += data
        if self._tag == "h3" and "Key Performance Metrics" in data:
            self._after_key_metrics = True
        if self._in_metrics and self._row is not None and self._tag in ("td", "th"):
            self._row.append(data.strip())


def _parse(path: Path) -> _Tearsheet:
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html") or "<html" in text[:500].lower()
    return _Tearsheet(text)


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _compounded(returns: pd.Series) -> float:
    return float(np.prod(1.0 + returns.to_numpy()) - 1.0)


def _quantstats_pct(cell: str) -> float:
    """quantstats prints percentages with up to 2 decimals and drops trailing zeros."""
    assert cell.endswith("%"), cell
    return float(cell.rstrip("%").replace(",", ""))


def _assert_cumulative(sheet: _Tearsheet, column: str, returns: pd.Series) -> None:
    col = sheet.header.index(column) - 1
    shown = _quantstats_pct(sheet.rows["Cumulative Return"][col])
    assert shown == pytest.approx(100 * _compounded(returns), abs=0.0051)


def test_tearsheet_returns_are_the_records_windows() -> None:
    """Compounding the series over each window gives that window's total return in the record."""
    suite = tiny_suite(agents=[AGENT, REFERENCE])
    agent_returns, reference_returns = tearsheet_returns(suite, AGENT, "regime")
    assert agent_returns.index.equals(reference_returns.index)
    assert len(agent_returns) == suite.n_windows * suite.window_bars
    assert agent_returns.index.is_monotonic_increasing and agent_returns.index.is_unique
    cells = {c.agent: c for c in cells_for(suite)[0]}
    for name, series in ((AGENT, agent_returns), (REFERENCE, reference_returns)):
        record = run_cell(cells[name])
        assert record["status"] == "ok"
        for unit in record["units"]:
            window = series[pd.Timestamp(unit["start_time"]) : pd.Timestamp(unit["end_time"])]
            assert len(window) == unit["n_bars"]  # the start bar is observed, not marked
            assert window.index[0] > pd.Timestamp(unit["start_time"])
            assert _compounded(window) == pytest.approx(unit["total_return"], rel=1e-9, abs=1e-12)


def test_suite_tearsheet_html_shows_the_agents_returns(quantstats, tmp_path) -> None:
    suite = tiny_suite(agents=[AGENT, REFERENCE])
    path = suite_tearsheet(suite, AGENT, MARKET, tmp_path / "deep" / "sheet.html")
    assert path == tmp_path / "deep" / "sheet.html" and path.is_file()
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left nothing behind
    agent_returns, reference_returns = tearsheet_returns(suite, AGENT, MARKET)
    sheet = _parse(path)
    assert sheet.header == ["Metric", REFERENCE, AGENT]
    _assert_cumulative(sheet, AGENT, agent_returns)
    _assert_cumulative(sheet, REFERENCE, reference_returns)
    first, last = agent_returns.index[0], agent_returns.index[-1]
    assert f"{first.day} {first:%b, %Y} - {last.day} {last:%b, %Y}" in " ".join(
        sheet.heading.split()
    )
    assert f"{AGENT} vs {REFERENCE} on {MARKET}" in sheet.heading


def test_hourly_returns_are_reported_per_day(quantstats, tmp_path) -> None:
    rng = np.random.default_rng(0)
    index = pd.date_range("2021-01-04", periods=24 * 30, freq="h")
    returns = pd.Series(rng.normal(0.0, 0.002, len(index)), index=index)
    bench = pd.Series(rng.normal(0.0, 0.002, len(index)), index=index)
    path = write_tearsheet(returns, bench, tmp_path / "h.html", "hourly", bars_per_year=24 * 252)
    text = path.read_text(encoding="utf-8")
    assert "Periods/Year: 252" in text
    sheet = _Tearsheet(text)
    _assert_cumulative(sheet, "agent", returns)
    _assert_cumulative(sheet, "reference", bench)


def test_write_tearsheet_refuses_unaligned_or_bad_series(tmp_path) -> None:
    index = pd.bdate_range("2020-01-01", periods=3)
    good = pd.Series([0.01, 0.02, 0.03], index=index)
    with pytest.raises(ValueError, match="share their index"):
        write_tearsheet(good, good.iloc[1:], tmp_path / "x.html", "t")
    with pytest.raises(ValueError, match=">= -1"):
        write_tearsheet(good.replace(0.02, -2.0), None, tmp_path / "x.html", "t")
    with pytest.raises(ValueError, match="DatetimeIndex"):
        write_tearsheet(good.reset_index(drop=True), None, tmp_path / "x.html", "t")
    assert not (tmp_path / "x.html").exists()


def test_missing_quantstats_names_the_extra(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "quantstats", None)  # import quantstats -> ImportError
    series = pd.Series([0.01, 0.02], index=pd.bdate_range("2020-01-01", periods=2))
    with pytest.raises(ValueError, match=r"pip install 'quantgym\[tearsheet\]'"):
        write_tearsheet(series, None, tmp_path / "x.html", "t")
    assert INSTALL_HINT == "pip install 'quantgym[tearsheet]'"


def test_quantgym_imports_without_quantstats() -> None:
    code = (
        "import sys; sys.modules['quantstats'] = None\n"
        "import quantgym, quantgym.cli, quantgym.tearsheet, quantgym.benchmark.tearsheet\n"
        "print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# -- CLIs ---------------------------------------------------------------------------------------


def _compare():
    return load_script("compare", "compare_cli")


TINY_YAML = """
markets: [synthetic:regime]
agents: [sma_crossover]
seeds: [3]
window_bars: 200
n_windows: 4
train_bars: 2000
embargo_bars: 50
"""


def test_compare_tearsheet_writes_only_the_tearsheet(quantstats, tmp_path, capsys) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_YAML)
    out = tmp_path / "out"
    argv = ["--suite", str(suite), "--out", str(out), "--tearsheet", AGENT, "regime"]
    assert _compare().main(argv) == 0
    path = out / "tearsheet_sma_crossover_synthetic_regime.html"
    assert f"wrote {path}" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [path.name]  # no records, no report
    sheet = _parse(path)
    assert sheet.header == ["Metric", REFERENCE, AGENT]
    assert "seed 3" in sheet.heading
    agent_returns, _ = tearsheet_returns(
        tiny_suite(agents=[AGENT], seeds=[3], n_windows=4), AGENT, MARKET
    )
    _assert_cumulative(sheet, AGENT, agent_returns)


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        (["no_such_agent", "regime"], "unknown agent 'no_such_agent'"),
        ([AGENT, "nowhere"], "unknown market 'nowhere'"),
        (["ucrp", "regime"], "ucrp does not run on synthetic:regime"),
        (["all", "regime"], "a tearsheet is of one agent"),
    ],
)
def test_compare_tearsheet_bad_arguments_exit_2(pair, message, tmp_path, capsys) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_YAML)
    argv = ["--suite", str(suite), "--out", str(tmp_path / "out"), "--tearsheet", *pair]
    assert _compare().main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "out").exists()


@pytest.fixture
def saved_rule(tmp_path) -> Path:
    import gymnasium as gym

    from quantgym.agents import make_agent

    env = gym.make("TradingEnv-v0", market="regime", market_kwargs={"n_bars": 900, "seed": 2})
    make_agent(AGENT, env=env).save(tmp_path / "rule")
    return tmp_path / "rule"


EVAL_ENV = ["--market", "regime", "--env-set", 'market_kwargs={"n_bars": 900, "seed": 2}']


def test_evaluate_tearsheet_matches_the_evaluated_pass(quantstats, saved_rule, tmp_path, capsys):
    from quantgym.cli import main

    html, summary = tmp_path / "ts" / "eval.html", tmp_path / "eval.json"
    argv = [
        "evaluate",
        str(saved_rule),
        *EVAL_ENV,
        "--json",
        str(summary),
        "--tearsheet",
        str(html),
    ]
    assert main(argv) == 0
    assert f"wrote {html}" in capsys.readouterr().out
    results = json.loads(summary.read_text())["results"]
    sheet = _parse(html)
    assert sheet.header == ["Metric", REFERENCE, AGENT]
    for name in (AGENT, REFERENCE):
        col = sheet.header.index(name) - 1
        shown = _quantstats_pct(sheet.rows["Cumulative Return"][col])
        assert shown == pytest.approx(100 * results[name]["total_return"], abs=0.0051)


def test_evaluate_tearsheet_refuses_overlapping_episodes(saved_rule, tmp_path, capsys):
    from quantgym.cli import main

    html = tmp_path / "eval.html"
    argv = ["evaluate", str(saved_rule), *EVAL_ENV, "--episodes", "2", "--no-reference"]
    assert main([*argv, "--tearsheet", str(html)]) == 2  # two passes over the same range
    assert "overlap" in capsys.readouterr().err
    assert not html.exists()
