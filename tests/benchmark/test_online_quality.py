"""benchmarks/online_quality.py: variants, env kwargs, references per market, the curve table
labels, and a tiny end-to-end run on the lagged market with raw returns."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from tests.benchmark.records_factory import make_record
from tests.benchmark.scripts import load_script

oq = load_script("online_quality", "online_quality_cli")
TINY = {"n_envs": 2, "n_steps": 32, "batch_size": 64, "n_epochs": 1}


@pytest.mark.parametrize(
    ("text", "label", "agent", "kwargs"),
    [
        ("lstm=ppo_lstm", "lstm", "ppo_lstm", {}),
        (
            'mlp_window=ppo_mlp:{"recent_bars": null}',
            "mlp_window",
            "ppo_mlp",
            {"recent_bars": None},
        ),
        ('mlp_newest = ppo_mlp : {"recent_bars": 1}', "mlp_newest", "ppo_mlp", {"recent_bars": 1}),
        (
            'attn_learned=ppo_transformer:{"pooling": "learned"}',
            "attn_learned",
            "ppo_transformer",
            {"pooling": "learned"},
        ),
    ],
)
def test_parse_variant(text, label, agent, kwargs):
    assert oq.parse_variant(text) == oq.Variant(label, agent, kwargs)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("ppo_mlp", "LABEL=AGENT"),
        ("=ppo_mlp", "LABEL=AGENT"),
        ("a=", "LABEL=AGENT"),
        ("a=ppo_mlp:{recent_bars: 1}", "not JSON"),
        ("a=no_such_agent", "unknown agent"),
        ("a=sma_crossover", "not an online learner"),
        ('a=ppo_mlp:{"no_such_field": 1}', "no config fields"),
        ('a=ppo_mlp:{"train_steps": 1000}', "--budgets"),
        ('a=ppo_mlp:{"seed": 3}', "--seeds"),
        ('a=ppo_transformer:{"pooling": "max"}', "pooling"),
    ],
)
def test_parse_variant_rejects(text, match):
    with pytest.raises(ValueError, match=match):
        oq.parse_variant(text)


def test_parse_env_kwargs():
    assert oq.parse_env_kwargs("") == {}
    assert oq.parse_env_kwargs('{"features": "returns", "window_size": 32}') == {
        "features": "returns",
        "window_size": 32,
    }
    with pytest.raises(ValueError, match="JSON object"):
        oq.parse_env_kwargs('["features"]')
    with pytest.raises(ValueError, match="protocol"):
        oq.parse_env_kwargs('{"market_kwargs": {"lag": 3}}')


def test_reference_agents_per_market():
    assert oq.reference_agents("regime") == oq.REFERENCE_AGENTS
    assert oq.reference_agents("lagged") == ("lag_expert", "sma_crossover", "buy_and_hold")
    assert oq.reference_agents("gbm") == ("buy_and_hold", "sma_crossover")


def test_curve_cells_variants_env_kwargs_and_references():
    variants = [
        "ppo_mlp",
        oq.Variant("mlp_window", "ppo_mlp", {"recent_bars": None}),
        oq.Variant("attn_learned", "ppo_transformer", {"pooling": "learned"}),
    ]
    budgets = {"ppo_mlp": [100], "mlp_window": [100, 200], "attn_learned": [100]}
    env = {"features": "returns", "window_size": 16}
    cells = oq.curve_cells("lagged", variants, budgets, [0, 1], env_kwargs=env)
    assert len(cells) == 2 * 3 + 2 * (1 + 2 + 1)
    assert [c.agent for c in cells[:3]] == ["lag_expert", "sma_crossover", "buy_and_hold"]
    assert all(c.market == "synthetic:lagged" and dict(c.env_kwargs) == env for c in cells)
    assert len({c.cell_id for c in cells}) == len(cells)
    mlp = [c for c in cells if c.agent == "ppo_mlp" and c.train_steps == 100 and c.seed == 0]
    assert sorted(json.dumps(dict(c.agent_kwargs)) for c in mlp) == ['{"recent_bars": null}', "{}"]
    assert {dict(c.agent_kwargs).get("pooling") for c in cells if c.agent == "ppo_transformer"} == {
        "learned"
    }


@pytest.mark.parametrize(
    ("variants", "budgets", "env", "match"),
    [
        (["ppo_mlp", oq.Variant("ppo_mlp", "ppo_lstm")], None, {}, "used twice"),
        ([oq.Variant("a", "ppo_mlp"), oq.Variant("b", "ppo_mlp")], None, {}, "same agent"),
        ([oq.Variant("lag_expert", "ppo_mlp")], None, {}, "reference agents"),
        (["ppo_mlp"], {"ppo_mlp": [0]}, {}, "positive int"),
        (["ppo_mlp"], {}, {}, "no budget list"),
        (["ppo_mlp"], None, {"end": 5}, "protocol"),
    ],
)
def test_curve_cells_rejects(variants, budgets, env, match):
    budgets = (
        {"ppo_mlp": [10], "a": [10], "b": [10], "lag_expert": [10]} if budgets is None else budgets
    )
    with pytest.raises(ValueError, match=match):
        oq.curve_cells("lagged", variants, budgets, [0], env_kwargs=env)


def _learner(agent: str, kwargs: dict, budget: int, growth: list[float], train_s: float) -> dict:
    rec = make_record(agent, growth, kind="online", reference="lag_expert", train_s=train_s,
                      market="synthetic:lagged")  # fmt: skip
    rec["cell"].update(agent_kwargs=kwargs, train_steps=budget)
    rec["train"] = {"steps": budget}
    return rec


def test_curve_table_labels_learners_by_variant_and_keeps_references():
    ref = make_record("lag_expert", [0.02] * 8, kind="expert", reference="lag_expert",
                      market="synthetic:lagged")  # fmt: skip
    records = [
        ref,
        _learner("ppo_mlp", {"recent_bars": 1}, 100, [0.01] * 8, 2.0),
        _learner("ppo_mlp", {"recent_bars": None}, 100, [0.005] * 8, 3.0),
        _learner("ppo_mlp", {"recent_bars": None}, 200, [0.015] * 8, 5.0),
        _learner("ppo_mlp", {"gamma": 0.5}, 100, [0.0] * 8, 1.0),  # no variant: named by kwargs
    ]
    variants = [
        oq.Variant("mlp_newest", "ppo_mlp", {"recent_bars": 1}),
        oq.Variant("mlp_window", "ppo_mlp", {"recent_bars": None}),
    ]
    table = oq.curve_table(records, n_resamples=50, variants=variants).set_index(["label", "budget"],
                                                                                 drop=False)  # fmt: skip
    assert list(table.columns) == list(oq.CURVE_COLUMNS)
    ref_row = table[table["label"] == "lag_expert"].iloc[0]
    assert ref_row["score"] == pytest.approx(100.0) and math.isnan(ref_row["budget"])
    assert table.loc[("mlp_newest", 100), "score"] == pytest.approx(50.0)
    assert table.loc[("mlp_window", 100), "score"] == pytest.approx(25.0)
    assert table.loc[("mlp_window", 200), "score"] == pytest.approx(75.0)
    assert table.loc[("mlp_window", 200), "train_s"] == pytest.approx(5.0)
    assert table.loc[("mlp_window", 200), "agent"] == "ppo_mlp"
    assert json.loads(table.loc[("mlp_window", 200), "agent_kwargs"]) == {"recent_bars": None}
    assert ('ppo_mlp:{"gamma": 0.5}', 100) in table.index


def test_tiny_run_on_lagged_returns_writes_labelled_curves_and_a_plot(tmp_path):
    """End to end through the harness: two variants of distinct agents at 64 env steps, two
    held-out windows, raw returns in an 8-bar window."""
    tiny = json.dumps(TINY)[1:-1]
    out, plot = tmp_path / "out", tmp_path / "curves.png"
    argv = [
        "--market", "lagged",
        "--env-kwargs", '{"features": "returns", "window_size": 8}',
        "--variant", f'mlp_window=ppo_mlp:{{"recent_bars": null, {tiny}}}',
        "--variant", f'attn_learned=ppo_transformer:{{"pooling": "learned", {tiny}}}',
        "--budgets", "64",
        "--n-windows", "2",
        "--out", str(out),
        "--plot", str(plot),
    ]  # fmt: skip
    assert oq.main(argv) == 0
    table = pd.read_csv(out / "curves.csv")
    assert set(table["label"]) == {
        "lag_expert", "sma_crossover", "buy_and_hold", "mlp_window", "attn_learned"
    }  # fmt: skip
    assert table.loc[table["label"] == "lag_expert", "score"].item() == pytest.approx(100.0)
    learners = table[table["budget"].notna()].set_index("label")
    assert (learners["steps"] == 64).all()
    assert learners.loc["attn_learned", "agent"] == "ppo_transformer"
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert all(
        r["cell"]["env_kwargs"] == {"features": "returns", "window_size": 8} for r in records
    )
    assert plot.stat().st_size > 0


def test_budget_for_overrides_budgets_per_label():
    assert oq.parse_budget_for("attn=100, 400") == ("attn", (100, 400))
    for bad in ("attn", "=100", "attn=", "attn=1e5", "attn=0,100"):
        with pytest.raises(ValueError, match="LABEL=STEPS"):
            oq.parse_budget_for(bad)
    variants = [oq.Variant("attn", "ppo_transformer"), oq.Variant("mlp", "ppo_mlp")]
    got = oq._budgets(variants, [100, 400], {"attn": (100, 400, 1600)})
    assert got == {"attn": (100, 400, 1600), "mlp": (100, 400)}
    with pytest.raises(ValueError, match="no learner labelled"):
        oq._budgets(variants, [100], {"lstm": (100,)})


def test_paired_differences_on_hand_made_records():
    """A - B on the shared (seed, unit) keys, scaled by the reference's mean growth; the CI
    brackets the point; reference agents are sides too; unknown sides are a ValueError."""
    cell = {"train_steps": None, "agent_kwargs": {}}

    def rec(agent, growth, steps=None, kwargs=None):
        units = [{"unit": i, "log_growth": g} for i, g in enumerate(growth)]
        c = {**cell, "train_steps": steps, "agent_kwargs": kwargs or {}}
        return {
            "agent": agent,
            "market": "synthetic:lagged",
            "seed": 0,
            "status": "ok",
            "cell": c,
            "units": units,
        }

    ref = [0.2, 0.1, 0.3, 0.2]
    a = [0.2, 0.2, 0.3, 0.1]
    b = [0.1, 0.1, 0.1, 0.1]
    records = [
        rec("lag_expert", ref),
        rec("ppo_mlp", a, 400, {"recent_bars": None}),
        rec("ppo_mlp", b, 400),
    ]
    variants = [oq.Variant("mlp_window", "ppo_mlp", {"recent_bars": None}), "ppo_mlp"]
    table = oq.paired_differences(
        records, [("mlp_window@400", "ppo_mlp@400"), ("ppo_mlp@400", "lag_expert")], variants
    )
    first = table.iloc[0]
    assert first["diff"] == pytest.approx(100 * (0.2 - 0.1) / 0.2)
    assert first["diff_lo"] <= first["diff"] <= first["diff_hi"]
    assert first["p_a_beats_b"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert table.iloc[1]["diff"] == pytest.approx(100 * (0.1 - 0.2) / 0.2)
    with pytest.raises(ValueError, match="no records"):
        oq.paired_differences(records, [("mlp_window@800", "ppo_mlp@400")], variants)
    with pytest.raises(ValueError, match="LABEL@STEPS"):
        oq.parse_pair_side("mlp_window@1e5")
