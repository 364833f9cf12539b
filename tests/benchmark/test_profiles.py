"""Profiles: per-unit scores, performance profiles with bands, the P(beat) matrix, the plot."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from quantgym.benchmark.profiles import (
    BEAT_COLUMNS,
    PROFILE_COLUMNS,
    beat_matrix,
    beat_table,
    performance_profile,
    unit_scores,
)
from quantgym.benchmark.statistics import summarize
from tests.benchmark.records_factory import make_market_records, make_record

MARKET = "synthetic:regime"

# Binary-exact log growths: the reference's mean is 0.5 on both seeds, so scores are exact.
REF = ([0.25, 0.5, 0.75, 0.5], [0.5, 0.5, 0.5, 0.5])
GOOD = ([0.0, 0.5, 0.5, 1.0], [0.5, 0.75, 0.25, 1.5])  # scores 0 100 100 200 | 100 150 50 300
BAD = ([-0.5, 0.25, 0.5, 0.0], [0.25, 0.5, 0.25, -0.25])  # -100 50 100 0 | 50 100 50 -50
ORACLE = ([4.0, 4.0, 4.0, 4.0], [4.0, 4.0, 4.0, 4.0])


def _hand_records(reference: str = "ref") -> list[dict]:
    out = []
    for name, growth, role in (
        ("ref", REF, "causal"),
        ("good", GOOD, "causal"),
        ("bad", BAD, "causal"),
        ("oracle", ORACLE, "future"),
    ):
        for seed, g in enumerate(growth):
            out.append(make_record(name, g, seed=seed, role=role, reference=reference))
    return out


def _fractions(profile: pd.DataFrame, agent: str) -> np.ndarray:
    return profile.loc[profile["agent"] == agent, "fraction"].to_numpy()


def test_unit_scores_are_growth_over_the_reference_mean_and_average_to_the_table_score():
    scores = unit_scores(_hand_records(), MARKET)
    good = scores[scores["agent"] == "good"].sort_values(["seed", "unit"])
    assert good["score"].tolist() == [0.0, 100.0, 100.0, 200.0, 100.0, 150.0, 50.0, 300.0]
    assert list(good[["seed", "unit"]].itertuples(index=False, name=None))[3:5] == [(0, 3), (1, 0)]
    table = summarize(make_market_records(n_units=12), n_resamples=50).set_index("agent")
    means = unit_scores(make_market_records(n_units=12), MARKET).groupby("agent")["score"].mean()
    for agent, mean in means.items():
        assert mean == pytest.approx(table.loc[agent, "score"], rel=1e-12)


def test_profile_fractions_are_exact_and_ties_at_tau_do_not_count():
    taus = [-101.0, -100.0, 0.0, 99.0, 100.0, 200.0, 300.0]
    profile = performance_profile(_hand_records(), MARKET, taus, n_boot=200)
    assert list(profile.columns) == list(PROFILE_COLUMNS)
    # good's 8 scores: 0 100 100 200 100 150 50 300; "> tau" is strict
    assert _fractions(profile, "good").tolist() == [1.0, 1.0, 7 / 8, 6 / 8, 3 / 8, 1 / 8, 0.0]
    # bad's: -100 50 100 0 50 100 50 -50
    assert _fractions(profile, "bad").tolist() == [1.0, 7 / 8, 5 / 8, 2 / 8, 0.0, 0.0, 0.0]
    # the reference's own: 50 100 150 100 and four times 100
    assert _fractions(profile, "ref").tolist() == [1.0, 1.0, 1.0, 7 / 8, 1 / 8, 0.0, 0.0]
    # causal agents best first, then the bound; every agent on every tau
    assert list(dict.fromkeys(profile["agent"])) == ["good", "ref", "bad", "oracle"]
    assert profile.groupby("agent")["tau"].apply(list).map(lambda t: t == taus).all()
    assert set(profile["n_units"]) == {8}


def test_default_grid_spans_the_causal_scores_and_fractions_fall_from_one_to_zero():
    profile = performance_profile(make_market_records(n_units=16), MARKET, n_boot=100)
    causal = profile[profile["role"] == "causal"]
    for _, part in causal.groupby("agent"):
        fraction = part["fraction"].to_numpy()
        assert fraction[0] == 1.0 and fraction[-1] == 0.0
        assert (np.diff(fraction) <= 0).all()
        assert (np.diff(part["lo"]) <= 1e-12).all() and (np.diff(part["hi"]) <= 1e-12).all()
    scores = unit_scores(make_market_records(n_units=16), MARKET)
    causal_scores = scores.loc[scores["role"] == "causal", "score"]
    assert causal["tau"].min() < causal_scores.min() and causal["tau"].max() > causal_scores.max()
    # the oracle (~20x the reference) is far off the causal grid: always above it
    assert (profile.loc[profile["agent"] == "hindsight_oracle", "fraction"] == 1.0).all()


def test_bands_hold_the_estimate_and_shrink_with_more_units():
    def width(n_units: int) -> tuple[pd.DataFrame, float]:
        records = make_market_records(n_units=n_units, seeds=(0,), rng_seed=3)
        profile = performance_profile(records, MARKET, np.linspace(-100, 300, 41), n_boot=400)
        inner = profile[(profile["fraction"] > 0) & (profile["fraction"] < 1)]
        return profile, float((inner["hi"] - inner["lo"]).mean())

    small, w_small = width(16)
    large, w_large = width(256)
    for profile in (small, large):
        assert (profile["lo"] <= profile["fraction"]).all()
        assert (profile["fraction"] <= profile["hi"]).all()
        assert ((profile["lo"] >= 0) & (profile["hi"] <= 1)).all()
    assert w_large < w_small / 2.5  # ~ 1 / sqrt(16): 4x narrower in theory
    one_key = [make_record(a, [g], reference="ref") for a, g in (("ref", 0.5), ("good", 1.0))]
    single = performance_profile(one_key, MARKET, [0.0, 150.0, 250.0], n_boot=50)
    assert single["lo"].isna().all() and single["fraction"].tolist() == [1, 1, 0, 1, 0, 0]


def test_profile_bands_are_seeded():
    records = make_market_records(n_units=8, seeds=(0,))
    a = performance_profile(records, MARKET, n_boot=100, seed=1)
    b = performance_profile(records, MARKET, n_boot=100, seed=1)
    c = performance_profile(records, MARKET, n_boot=100, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a["lo"].equals(c["lo"]) or not a["hi"].equals(c["hi"])


def test_beat_matrix_is_exact_complementary_and_leaves_bounds_out():
    matrix = beat_matrix(_hand_records(), MARKET)
    assert list(matrix.index) == list(matrix.columns) == ["good", "ref", "bad"]
    # good vs ref, 8 keys: 0<.25, .5=.5, .5<.75, 1>.5 | .5=.5, .75>.5, .25<.5, 1.5>.5
    assert matrix.loc["good", "ref"] == (3 + 0.5 * 2) / 8
    # good vs bad: > on every key but two ties (seed 0 unit 2: .5 = .5; seed 1 unit 2: .25 = .25)
    assert matrix.loc["good", "bad"] == (6 + 0.5 * 2) / 8
    values = matrix.to_numpy()
    np.testing.assert_array_equal(np.diag(values), 0.5)
    np.testing.assert_allclose(values + values.T, 1.0, atol=0)
    with_bounds = beat_matrix(_hand_records(), MARKET, include_bounds=True)
    assert list(with_bounds.index) == ["good", "ref", "bad", "oracle"]
    assert (with_bounds.loc[["good", "ref", "bad"], "oracle"] == 0.0).all()


def test_beat_table_carries_the_matrix_with_complementary_cis():
    records = make_market_records(n_units=16)
    table = beat_table(records, MARKET, n_boot=300)
    matrix = beat_matrix(records, MARKET)
    assert list(table.columns) == list(BEAT_COLUMNS)
    assert len(table) == 4 * 3 and set(table["n_units"]) == {32}
    for row in table.itertuples():
        assert row.p_beat == matrix.loc[row.agent, row.opponent]
        assert row.lo <= row.p_beat <= row.hi
        other = table[(table["agent"] == row.opponent) & (table["opponent"] == row.agent)].iloc[0]
        assert other.p_beat == pytest.approx(1 - row.p_beat)
        assert other.lo == pytest.approx(1 - row.hi) and other.hi == pytest.approx(1 - row.lo)
    best = table[(table["agent"] == "ppo_lstm") & (table["opponent"] == "buy_and_hold")].iloc[0]
    assert best.lo > 0.5  # a 0.01-per-window edge on shared noise is resolved


def test_bad_input_raises_a_clear_value_error():
    records = _hand_records()
    with pytest.raises(ValueError, match=r"unknown market 'gbm'.*synthetic:regime"):
        performance_profile(records, "gbm")
    with pytest.raises(ValueError, match="unknown market"):
        beat_matrix(records, "gbm")
    no_ref = [r for r in records if r["agent"] != "ref"]
    with pytest.raises(ValueError, match="reference 'ref' has no ok records"):
        performance_profile(no_ref, MARKET)
    with pytest.raises(ValueError, match="name no reference"):
        unit_scores(_hand_records(reference=""), MARKET)
    negative = make_market_records(n_units=8, ref_shift=-0.05)
    with pytest.raises(ValueError, match="undefined"):
        performance_profile(negative, MARKET)
    assert unit_scores(negative, MARKET)["score"].isna().all()
    with pytest.raises(ValueError, match="taus"):
        performance_profile(records, MARKET, [0.0, float("nan")])
    with pytest.raises(ValueError, match="n_boot"):
        beat_table(records, MARKET, n_boot=0)


def test_plot_performance_profile_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from quantgym.benchmark.plots import plot_performance_profile

    profile = performance_profile(make_market_records(n_units=16), MARKET, n_boot=100)
    path = plot_performance_profile(profile, tmp_path / "profile.png")
    data = path.read_bytes()
    assert path == tmp_path / "profile.png" and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    with pytest.raises(ValueError, match="performance_profile"):
        plot_performance_profile(profile.drop(columns="lo"), tmp_path / "x.png")
    with pytest.raises(ValueError, match="no agent to draw"):
        plot_performance_profile(profile[profile["role"] != "causal"], tmp_path / "x.png")


def test_plot_without_matplotlib_names_the_extra(monkeypatch, tmp_path):
    from quantgym.benchmark.plots import plot_performance_profile

    profile = performance_profile(_hand_records(), MARKET, [0.0, 100.0], n_boot=20)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"quantgym\[plot\]"):
        plot_performance_profile(profile, tmp_path / "profile.png")
    assert not (tmp_path / "profile.png").exists()
