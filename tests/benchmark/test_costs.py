"""Cost sweep: suites at a cost level, the long table, its markdown, its plot."""

from __future__ import annotations

import pytest

from quantgym.benchmark.costs import (
    COST_COLUMNS,
    COST_LEVELS_BP,
    cost_table,
    format_cost_table,
    suite_at_cost,
)
from quantgym.benchmark.plots import plot_cost_sweep
from quantgym.benchmark.statistics import summarize
from tests.benchmark.conftest import tiny_suite
from tests.benchmark.records_factory import make_record

MARKET = "synthetic:factor_regime"


def _summary(bp: float):
    """Three agents whose growth falls with the cost at different rates (a high-turnover one
    collapses), plus a bound."""
    drag = bp / 10.0
    records = [
        make_record("kelly_filter_expert", [0.30, 0.32, 0.28, 0.31], market=MARKET, kind="expert",
                    reference="kelly_filter_expert"),
        make_record("ucrp", [0.10 - 0.01 * drag] * 2 + [0.12 - 0.01 * drag] * 2, market=MARKET,
                    reference="kelly_filter_expert"),
        make_record("olmar", [0.50 - 0.4 * drag, 0.40 - 0.4 * drag, 0.45 - 0.4 * drag,
                              0.42 - 0.4 * drag], market=MARKET, reference="kelly_filter_expert"),
        make_record("regime_seer", [0.4, 0.41, 0.39, 0.42], market=MARKET, kind="expert",
                    role="privileged", reference="kelly_filter_expert"),
    ]  # fmt: skip
    return summarize(records, n_resamples=200)


def test_levels_are_the_issue_levels():
    assert COST_LEVELS_BP == (0.0, 5.0, 10.0, 25.0)


def test_suite_at_cost_charges_commission_only_in_both_envs():
    suite = tiny_suite(env_kwargs={"window_size": 8}, portfolio_env_kwargs={"slippage": 0.01})
    costly = suite_at_cost(suite, 25)
    assert costly.env_kwargs == {"window_size": 8, "commission": 0.0025, "slippage": 0.0}
    assert costly.portfolio_env_kwargs == {"commission": 0.0025, "slippage": 0.0}
    assert suite.env_kwargs == {"window_size": 8}  # the original is unchanged
    for bad in (-1, float("nan"), "10", True, 1000):
        with pytest.raises(ValueError, match="cost level"):
            suite_at_cost(suite, bad)


def test_cost_table_stacks_the_levels_in_order():
    table = cost_table({10: _summary(10), 0: _summary(0)})
    assert list(table.columns) == list(COST_COLUMNS)
    assert list(dict.fromkeys(table["cost_bp"])) == [0.0, 10.0]
    olmar = table[table["agent"] == "olmar"].set_index("cost_bp")["log_growth"]
    assert olmar[0.0] > olmar[10.0]
    with pytest.raises(ValueError, match="at least one"):
        cost_table({})


def test_format_cost_table_ranks_at_the_headline_and_lists_bounds_last():
    table = cost_table({0: _summary(0), 10: _summary(10)})
    text = format_cost_table(table, headline_bp=10)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "agent" not in line]
    names = [r.split("|")[1].strip() for r in rows]
    assert names[0] == "kelly_filter_expert" and names[-1] == "regime_seer (privileged bound)"
    assert names.index("ucrp") < names.index("olmar")  # olmar collapsed at 10 bp
    assert "| agent | 0 bp | 10 bp | turnover/unit at 10 bp |" in text
    first_at_zero = format_cost_table(table, headline_bp=0)
    assert first_at_zero.index("| olmar") < first_at_zero.index("| kelly_filter_expert")
    with pytest.raises(ValueError, match="not one of the levels"):
        format_cost_table(table, headline_bp=5)
    with pytest.raises(ValueError, match="cost_table"):
        format_cost_table(table.drop(columns="turnover"))


def test_plot_cost_sweep_writes_one_png_per_market(tmp_path):
    pytest.importorskip("matplotlib")
    table = cost_table({bp: _summary(bp) for bp in COST_LEVELS_BP})
    written = plot_cost_sweep(table, tmp_path)
    path = written["costs_synthetic_factor_regime"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="cost_table"):
        plot_cost_sweep(table.iloc[:, :3], tmp_path)
