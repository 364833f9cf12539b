"""Tests for the stress suite: its spec, the tables on hand-made records, and one tiny run."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from quantgym.benchmark.stress_spec import DEFAULT_SHIFTS, StressSpec
from quantgym.benchmark.stress_tables import (
    break_even_table,
    condition_table,
    shift_table,
    worst_windows_table,
)
from tests.benchmark.records_factory import make_record

LEVELS = (0.0, 10.0, 20.0, 40.0)


# --------------------------------------------------------------------------------------------
# spec
# --------------------------------------------------------------------------------------------


def test_spec_defaults_round_trip() -> None:
    spec = StressSpec.from_mapping({})
    assert spec.cost_levels_bp == (0.0, 5.0, 15.0, 30.0, 60.0)
    assert spec.shifts_for("regime") == DEFAULT_SHIFTS["regime"]
    assert spec.shifts_for("gbm") == {}
    assert StressSpec.from_mapping(spec.to_dict()) == spec
    assert spec.n_worst(32) == 4 and spec.n_worst(5) == 1


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"cost_levels": [0]}, "unknown keys"),
        ({"cost_levels_bp": [0, -5]}, "must be >= 0"),
        ({"cost_levels_bp": [5, 5]}, "duplicates"),
        ({"cost_levels_bp": "0 5"}, "list of numbers"),
        ({"cost_levels_bp": [0, 600]}, r"\[0, 500\]"),
        ({"noise_scales": [float("nan")]}, "finite"),
        ({"adversarial_steps": 0}, "positive integer"),
        ({"adversarial_target": "best"}, "adversarial_target must be one of"),
        ({"worst_fraction": 0}, r"\(0, 1\]"),
        ({"shifts": {"moon": {"a": {"vol": 1}}}}, "not a synthetic market kind"),
        ({"shifts": {"regime": {"a": {"volz": 0.02}}}}, "unknown parameter 'volz'"),
        ({"shifts": {"regime": {"a": {"vols": -1}}}}, r"shifts\[regime\]\[a\]"),
        ({"shifts": {"regime": {"a": {"seed": 3}}}}, "harness"),
        ({"shifts": {"regime": {"a": {}}}}, "non-empty mapping"),
        ([1, 2], "mapping of probe settings"),
    ],
)
def test_spec_rejects_bad_values(data: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StressSpec.from_mapping(data)


def test_suite_with_stress_refuses_portfolio_markets_and_keeps_ordinary_cell_ids() -> None:
    from quantgym.benchmark import Suite, cells_for

    with pytest.raises(ValueError, match="stress suites trade TradingEnv-v0 markets"):
        Suite(markets=["synthetic:factor_regime"], agents=["ucrp"], stress={}).validate()
    plain = Suite(agents=["flat"]).validate()
    stressed = Suite(agents=["flat"], stress={"cost_levels_bp": [0, 10]}).validate()
    (cell,), _ = cells_for(plain)
    (stress_cell,), _ = cells_for(stressed)
    assert "stress" not in cell.to_dict()  # ordinary suites' cell ids do not change
    assert stress_cell.stress["cost_levels_bp"] == [0.0, 10.0]
    assert stress_cell.cell_id != cell.cell_id


# --------------------------------------------------------------------------------------------
# tables on hand-made records
# --------------------------------------------------------------------------------------------


def _stress_record(
    agent: str,
    base: np.ndarray,
    *,
    conditions: dict[tuple[str, float, str], np.ndarray],
    turnover: float = 0.0,
    extras: dict[str, np.ndarray] | None = None,
    seed: int = 0,
    role: str = "causal",
    reference: str = "ref",
) -> dict[str, Any]:
    rec = make_record(agent, base, seed=seed, role=role, reference=reference)
    spec = StressSpec.from_mapping({"cost_levels_bp": list(LEVELS), "worst_fraction": 0.25})
    rec["cell"]["stress"] = spec.to_dict()
    for unit in rec["units"]:
        unit["turnover"] = turnover
        for name, values in (extras or {}).items():
            unit[name] = float(values[unit["unit"]])
    conds = []
    for (probe, level, label), g in conditions.items():
        units = [dict(u, log_growth=float(x)) for u, x in zip(rec["units"], g, strict=True)]
        conds.append({"probe": probe, "level": level, "label": label, "units": units})
    rec["stress"] = {"reads_observation": True, "differentiable": False, "conditions": conds}
    return rec


def _cost_conditions(edge: np.ndarray, turnover: float) -> dict:
    """Log growth at each level for an agent whose cost is exactly bp/1e4 x turnover."""
    return {("cost", lv, f"{lv:g} bp"): edge - lv / 1e4 * turnover for lv in LEVELS}


def test_break_even_is_gross_edge_over_turnover_when_costs_are_linear() -> None:
    rng = np.random.default_rng(0)
    edge = 0.03 + 0.01 * rng.standard_normal(64)  # mean ~0.03 per window
    turnover = 20.0  # units of equity traded per window
    agent = _stress_record(
        "agent", edge, conditions=_cost_conditions(edge, turnover), turnover=turnover
    )
    ref = _stress_record("ref", edge + 1, conditions=_cost_conditions(edge + 1, 0.0))
    table = break_even_table([agent, ref], comparators=("cash",))
    row = table[(table["agent"] == "agent")].iloc[0]
    expected = 1e4 * edge.mean() / turnover  # 15 bp: between the 10 and 20 bp levels
    assert 10 < expected < 20
    assert row.break_even_bp == pytest.approx(expected, rel=1e-9)
    assert row.predicted_bp == pytest.approx(expected, rel=1e-9)
    assert row.break_even_lo < expected < row.break_even_hi
    assert bool(row.predicted_in_ci)
    # The reference never falls to cash within the levels: an open (+inf) end.
    ref_row = table[table["agent"] == "ref"].iloc[0]
    assert ref_row.break_even_bp == math.inf


def test_break_even_against_another_agent_uses_the_extra_turnover() -> None:
    edge = np.full(16, 0.02)
    a = _stress_record(
        "a", edge + 0.01, conditions=_cost_conditions(edge + 0.01, 30.0), turnover=30.0
    )
    b = _stress_record("b", edge, conditions=_cost_conditions(edge, 10.0), turnover=10.0)
    ref = _stress_record("ref", edge + 1, conditions=_cost_conditions(edge + 1, 0.0))
    table = break_even_table([a, b, ref], comparators=("b",))
    row = table[table["agent"] == "a"].iloc[0]
    # a - b = 0.01 - bp/1e4 * 20: crosses at 5 bp.
    assert row.break_even_bp == pytest.approx(5.0)
    assert row.predicted_bp == pytest.approx(5.0)
    # b trails a already at 0 bp (it only catches up, at 5 bp): "< 0" is -inf.
    other = break_even_table([a, b, ref], comparators=("a",))
    assert other[other["agent"] == "b"].iloc[0].break_even_bp == -math.inf


def test_worst_windows_are_the_same_lowest_asset_return_windows_for_every_agent() -> None:
    asset = np.array([0.1, -0.3, 0.2, -0.5, 0.0, 0.05, 0.3, -0.1])  # worst 2: units 3, 1
    extras = {
        "market_log_return": asset,
        "max_drawdown": np.linspace(0.1, 0.8, 8),
        "recovery_bars": np.array([5, np.nan, 7, 9, 1, 2, 3, 4]),
        "recovered": np.array([1, 0, 1, 1, 1, 1, 1, 1]),
        "ended_early": np.array([0, 0, 0, 1, 0, 0, 0, 1]),
    }
    g = np.arange(8) / 10.0
    agent = _stress_record("agent", g, conditions={}, extras=extras)
    ref = _stress_record("ref", np.ones(8), conditions={}, extras=extras)
    table = worst_windows_table([agent, ref]).set_index("agent")
    row = table.loc["agent"]
    assert row.n_worst == 2 and row.n_all == 8
    assert row.asset_log_return == pytest.approx(-0.4)
    assert row.log_growth == pytest.approx((0.3 + 0.1) / 2)
    assert row.score == pytest.approx(100 * 0.2 / 1.0)
    assert row.max_drawdown_mean == pytest.approx((0.4 + 0.2) / 2)
    assert row.max_drawdown_worst == pytest.approx(0.4)  # drawdowns are positive fractions
    assert row.recovery_bars_median == 9.0 and row.recovered_share == 0.5
    assert row.ended_early_worst == 1 and row.ended_early_all == 2


def test_shift_drop_is_the_shifted_minus_the_base_score() -> None:
    g_ref, g_ref_shift = np.full(10, 0.2), np.full(10, 0.1)
    g, g_shift = np.full(10, 0.1), np.full(10, 0.02)
    agent = _stress_record("agent", g, conditions={("shift", 1.0, "vol_up"): g_shift})
    ref = _stress_record("ref", g_ref, conditions={("shift", 1.0, "vol_up"): g_ref_shift})
    row = shift_table([agent, ref]).set_index("agent").loc["agent"]
    assert row.base_score == pytest.approx(50.0)
    assert row.shifted_score == pytest.approx(20.0)
    assert row.score_drop == pytest.approx(-30.0)
    assert row.score_drop_lo == pytest.approx(-30.0) and row.score_drop_hi == pytest.approx(-30.0)


def test_condition_table_scores_each_condition_against_the_reference_under_it() -> None:
    agent = _stress_record(
        "agent", np.full(4, 0.1), conditions=_cost_conditions(np.full(4, 0.1), 100)
    )
    ref = _stress_record("ref", np.full(4, 0.2), conditions=_cost_conditions(np.full(4, 0.2), 0.0))
    table = condition_table([agent, ref])
    at = table[(table["agent"] == "agent")].set_index("label")
    assert at.loc["base", "score"] == pytest.approx(50.0)
    # at 10 bp the agent pays 100 x 1e-3 = 0.1: nothing left
    assert at.loc["10 bp", "log_growth"] == pytest.approx(0.0, abs=1e-12)
    assert at.loc["10 bp", "score"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="no ok stress records"):
        condition_table([make_record("x", [0.1, 0.2])])


# --------------------------------------------------------------------------------------------
# one tiny stress run, end to end
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_stress_records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    from quantgym.benchmark import run_suite
    from tests.benchmark.conftest import tiny_suite

    suite = tiny_suite(
        name="tiny_stress",
        agents=[
            "flat",
            "random",
            "buy_and_hold",
            "bayes_filter_expert",
            {
                "name": "ppo_mlp",
                "train_steps": 256,
                "kwargs": {"n_envs": 1, "n_steps": 128, "batch_size": 64},
            },
        ],
        n_windows=4,
        stress={
            "cost_levels_bp": [0, 30],
            "shifts": {"regime": {"vol_x2": {"vols": 0.02}}},
            "noise_scales": [1.0],
            "adversarial_eps": [0.5],
            "adversarial_steps": 2,
        },
    )
    out = tmp_path_factory.mktemp("stress")
    return run_suite(suite, out, progress=False).records


def _condition(record: dict[str, Any], probe: str, label: str) -> dict[str, Any]:
    (hit,) = [
        c for c in record["stress"]["conditions"] if (c["probe"], c["label"]) == (probe, label)
    ]
    return hit


def test_stress_run_scores_every_probe(tiny_stress_records: list[dict[str, Any]]) -> None:
    records = {r["agent"]: r for r in tiny_stress_records}
    assert all(r["status"] == "ok" for r in records.values()), [
        r["error"] for r in records.values()
    ]
    learner, rule = records["ppo_mlp"], records["buy_and_hold"]
    assert learner["stress"]["reads_observation"] and learner["stress"]["differentiable"]
    assert not rule["stress"]["reads_observation"]
    labels = {(c["probe"], c["label"]) for c in learner["stress"]["conditions"]}
    assert labels == {
        ("cost", "0 bp"),
        ("cost", "30 bp"),
        ("shift", "vol_x2"),
        ("noise", "1"),
        ("adversarial", "0.5"),
    }
    # Agents that read prices: both perturbation probes are their base units, by construction.
    for probe, label in (("noise", "1"), ("adversarial", "0.5")):
        cond = _condition(rule, probe, label)
        assert cond["by_construction"]
        assert [u["log_growth"] for u in cond["units"]] == [u["log_growth"] for u in rule["units"]]
    # Costs: flat pays nothing; random pays 30 bp on every unit it trades.
    flat = records["flat"]
    assert all(u["log_growth"] == 0.0 for c in flat["stress"]["conditions"] for u in c["units"])
    free, costly = (
        _condition(records["random"], "cost", "0 bp"),
        _condition(records["random"], "cost", "30 bp"),
    )
    for a, b in zip(free["units"], costly["units"], strict=True):
        assert b["log_growth"] < a["log_growth"]
        assert b["costs"] > 0.0 == a["costs"]
    # Base unit rows carry what the worst-window table reads.
    unit = rule["units"][0]
    for key in ("market_log_return", "max_underwater_bars", "recovered", "ended_early"):
        assert key in unit
    # buy_and_hold is long the whole window: its growth tracks the asset's return less costs.
    for u in rule["units"]:
        assert abs(u["log_growth"] - u["market_log_return"]) < 0.05


def test_stress_report_is_written(tiny_stress_records, tmp_path) -> None:
    from quantgym.benchmark.stress_report import write_stress_report

    written = write_stress_report(tiny_stress_records, tmp_path, plots=True)
    text = (tmp_path / "stress.md").read_text()
    for section in (
        "## Cost sweep",
        "### Break-even costs",
        "## Worst windows",
        "## Regime shift",
        "## Input perturbation",
    ):
        assert section in text
    assert "vol_x2" in text and "ppo_mlp" in text
    assert {"costs_synthetic_regime", "perturbation_synthetic_regime"} <= set(written)
    assert written["perturbation_synthetic_regime"].read_bytes()[:4] == b"\x89PNG"


def test_stress_suite_resumes(tmp_path) -> None:
    from quantgym.benchmark import run_suite
    from quantgym.benchmark.records import RESULTS_FILE
    from tests.benchmark.conftest import tiny_suite

    suite = tiny_suite(
        agents=["flat", "buy_and_hold"],
        n_windows=2,
        stress={"cost_levels_bp": [0, 30], "noise_scales": [], "adversarial_eps": []},
    )
    first = run_suite(suite, tmp_path, progress=False)
    assert first.n_run == 2
    path = tmp_path / RESULTS_FILE
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n")  # lose the second record
    again = run_suite(suite, tmp_path, resume=True, progress=False)
    assert (again.n_run, again.n_resumed) == (1, 1)
    assert {r["agent"] for r in again.records} == {"flat", "buy_and_hold"}


def test_worst_case_within_the_ball_takes_each_windows_worst_smaller_or_equal_attack() -> None:
    from quantgym.benchmark.stress_tables import stress_records, worst_case_conditions

    base = np.array([0.5, 0.5, 0.5])
    attacks = {
        ("adversarial", 0.1, "0.1"): np.array([0.6, 0.4, 0.5]),  # helps window 0
        ("adversarial", 0.2, "0.2"): np.array([0.7, 0.45, 0.3]),  # helps 0 more, hurts 2
    }
    rec = _stress_record("agent", base, conditions=attacks)
    worst = {c["label"]: [u["log_growth"] for u in c["units"]] for c in worst_case_conditions(rec)}
    assert worst == {"0.1": [0.5, 0.4, 0.5], "0.2": [0.5, 0.4, 0.3]}
    # stress_records adds them (once, however often it is called).
    (again,) = stress_records(stress_records([rec]))
    assert sum(c["probe"] == "adversarial_worst" for c in again["stress"]["conditions"]) == 2
