"""Statistics: bootstrap CIs, IQM, P(improvement) and the summarize contract."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quantgym.benchmark.statistics import (
    NOTE_REFERENCE_NOT_POSITIVE,
    SUMMARY_COLUMNS,
    bootstrap_ci,
    iqm,
    normalized_gain,
    normalized_score,
    probability_of_improvement,
    summarize,
)
from tests.benchmark.records_factory import make_error_record, make_market_records, make_record

# The column contract of records.md, written out here so a change to either side fails.
CONTRACT_COLUMNS = """market agent kind role reference n_units n_seeds log_growth log_growth_lo
log_growth_hi score score_lo score_hi score_iqm score_note excess_ann excess_ann_lo excess_ann_hi
p_improve_ref p_improve_ref_lo p_improve_ref_hi p_improve_rule p_improve_rule_lo p_improve_rule_hi
best_rule total_return sharpe sharpe_lo sharpe_hi sortino sortino_lo sortino_hi max_drawdown
max_drawdown_lo max_drawdown_hi turnover turnover_lo turnover_hi costs costs_lo costs_hi train_s
rank""".split()


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def test_bootstrap_ci_of_a_mean_covers_the_truth():
    rng = np.random.default_rng(123)
    covered = 0
    n_rep = 200
    for rep in range(n_rep):
        sample = rng.normal(1.0, 2.0, 60)
        lo, hi = bootstrap_ci(_mean, sample, n_resamples=400, seed=rep)
        covered += lo <= 1.0 <= hi
    assert 0.90 <= covered / n_rep <= 0.99


def test_paired_bootstrap_is_narrower_when_samples_share_noise():
    rng = np.random.default_rng(0)
    common = rng.normal(0.0, 1.0, 100)
    a = common + rng.normal(0.0, 0.05, 100) + 0.1
    b = common + rng.normal(0.0, 0.05, 100)

    def diff(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    lo_p, hi_p = bootstrap_ci(diff, a, b, paired=True, n_resamples=500)
    lo_u, hi_u = bootstrap_ci(diff, a, b, paired=False, n_resamples=500)
    assert hi_p - lo_p < (hi_u - lo_u) / 5
    assert lo_p > 0.0 > lo_u  # only the paired CI resolves the 0.1 edge


def test_bootstrap_ci_is_seeded_and_validates():
    x = np.arange(20.0)
    assert bootstrap_ci(_mean, x, seed=3) == bootstrap_ci(_mean, x, seed=3)
    assert all(math.isnan(v) for v in bootstrap_ci(_mean, [1.0]))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(_mean, x, confidence=1.5)
    with pytest.raises(ValueError, match="paired"):
        bootstrap_ci(lambda a, b, axis=-1: a.mean(axis), x, x[:5])


def test_iqm_hand_examples():
    assert iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)
    # The outlier is trimmed: mean of 2, 3, 4, 5.
    assert iqm([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1000.0]) == pytest.approx(3.5)


def test_probability_of_improvement_hand_example_with_ties():
    # wins, tie, loss, win -> (1 + 0.5 + 0 + 1) / 4
    assert probability_of_improvement([1, 2, 3, 4], [0, 2, 5, 3]) == pytest.approx(0.625)
    assert probability_of_improvement([1, 1], [1, 1]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="paired"):
        probability_of_improvement([1, 2], [1])


def test_normalized_score_and_gain_hand_examples():
    ref = np.array([0.01, 0.02, 0.01, 0.02])
    agent = np.array([0.03, 0.0, 0.0, 0.03])
    base = np.array([0.0, 0.0, 0.015, 0.0])
    assert normalized_score(agent, ref) == pytest.approx(100.0)  # mean of ratios: 112.5
    assert normalized_gain(agent, base, ref) == pytest.approx(100 * (0.015 - 0.00375) / 0.015)
    # along an axis, as bootstrap_ci resamples them: one value per row
    stacked = np.stack([agent, 2 * agent])
    assert normalized_score(stacked, np.stack([ref, ref]), axis=-1) == pytest.approx([100, 200])
    low, high = bootstrap_ci(normalized_gain, agent, base, ref, n_resamples=200)
    assert low <= normalized_gain(agent, base, ref) <= high


def test_score_is_a_ratio_of_means_not_a_mean_of_ratios():
    ref = make_record("bayes_filter_expert", [0.01, 0.02, 0.01, 0.02], kind="expert")
    agent = make_record("sma_crossover", [0.03, 0.0, 0.0, 0.03])
    row = summarize([ref, agent]).set_index("agent").loc["sma_crossover"]
    assert row["score"] == pytest.approx(100.0)  # 0.015 / 0.015; the mean of ratios is 112.5
    assert row["score_lo"] <= row["score"] <= row["score_hi"]
    assert row["score_iqm"] == pytest.approx(100 * 0.015 / 0.015)
    assert row["total_return"] == pytest.approx(math.expm1(0.015))
    # beats the reference on 2 of 4 units
    assert row["p_improve_ref"] == pytest.approx(0.5)
    assert row["excess_ann"] == pytest.approx(0.0)


def test_summary_columns_and_ranking():
    records = make_market_records(seeds=(0, 1), n_units=16)
    records.append(make_error_record("ppo_lstm", seed=7))
    summary = summarize(records)
    assert list(summary.columns) == CONTRACT_COLUMNS == list(SUMMARY_COLUMNS)
    assert len(summary) == 6
    by = summary.set_index("agent")
    assert (by["n_units"] == 32).all() and (by["n_seeds"] == 2).all()
    assert by.loc["bayes_filter_expert", "score"] == pytest.approx(100.0)
    bounds = by[by["role"] != "causal"]
    assert set(bounds.index) == {"regime_expert", "hindsight_oracle"}
    assert bounds["rank"].isna().all()
    causal = by[by["role"] == "causal"].sort_values("rank")
    assert causal["rank"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert causal["score"].is_monotonic_decreasing
    # bounds come after every ranked agent
    assert summary["role"].tolist()[-2:] != ["causal", "causal"]
    assert set(summary["role"].iloc[:4]) == {"causal"}
    # best rule: the causal rule with the highest mean log growth; it ties with itself
    assert (by["best_rule"] == "sma_crossover").all()
    assert by.loc["sma_crossover", "p_improve_rule"] == pytest.approx(0.5)
    for col in ("score", "sharpe", "max_drawdown", "turnover", "costs", "log_growth"):
        ok = by[col].notna()
        assert (by.loc[ok, f"{col}_lo"] <= by.loc[ok, col] + 1e-12).all(), col
        assert (by.loc[ok, col] <= by.loc[ok, f"{col}_hi"] + 1e-12).all(), col
    assert by.loc["ppo_lstm", "train_s"] == pytest.approx(1.5)


def test_undefined_score_when_reference_does_not_grow():
    summary = summarize(make_market_records("gbm", ref_shift=-0.05, n_units=16))
    causal = summary[summary["role"] == "causal"]
    assert summary["score"].isna().all() and summary["score_iqm"].isna().all()
    assert (summary["score_note"] == NOTE_REFERENCE_NOT_POSITIVE).all()
    assert summary["excess_ann"].notna().all()
    ranked = causal.sort_values("rank")
    assert ranked["excess_ann"].is_monotonic_decreasing
    assert ranked["agent"].iloc[-1] == "bayes_filter_expert"  # excess 0 vs positive others


def test_summarize_is_deterministic_and_validates():
    records = make_market_records(n_units=8, seeds=(0,))
    pd.testing.assert_frame_equal(summarize(records), summarize(records))
    with pytest.raises(ValueError, match="records\\[0\\]"):
        summarize([{"status": "ok", "agent": "x"}])
    assert summarize([make_error_record("x")]).empty


@pytest.mark.slow
def test_summarize_covers_every_agent_and_market_of_a_large_grid():
    """30 agents x 5 markets x 400 units in < 10 s of CPU time (one core; CPU time, not wall
    time, so a busy shared box does not make the test flaky)."""

    rng = np.random.default_rng(0)
    records = []
    for m in range(5):
        market = f"synthetic:m{m}"
        common = rng.normal(0.01, 0.02, 400)
        records.append(make_record("bayes_filter_expert", common, market=market, kind="expert"))
        for a in range(29):
            records.append(
                make_record(f"agent{a}", common + rng.normal(0, 0.01, 400), market=market)
            )
    summary = summarize(records)
    assert len(summary) == 150
