"""Market variants in suites (``synthetic:KIND@LABEL`` with ``market_params``): names, validation,
cells that carry the parameters, markets built from them, and cells that run on them (the
validation family of issue 23 is a suite of such variants)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantgym.benchmark.cells import run_cell
from quantgym.benchmark.listing import cells_for
from quantgym.benchmark.protocol import build_market, market_env_kwargs
from quantgym.benchmark.suite import Suite, load_suite, normalize_market
from quantgym.policies.references import market_base, market_kind, reference_policy_name
from tests.benchmark.conftest import tiny_suite

HOURLY = "synthetic:regime@hourly"
PARAMS = {HOURLY: {"freq": "h", "start": "2020-01-01", "mean_duration": 50}}


def test_variant_names() -> None:
    assert normalize_market("regime@hourly") == HOURLY
    assert normalize_market(HOURLY) == HOURLY
    assert market_base(HOURLY) == "synthetic:regime"
    assert market_base("sample:googl") == "sample:googl"
    assert market_kind(HOURLY) == "regime"
    assert reference_policy_name(HOURLY) == "bayes_filter_expert"
    assert reference_policy_name("lagged@slow") == "lag_expert"
    with pytest.raises(ValueError, match="label after '@'"):
        normalize_market("regime@two words")
    with pytest.raises(ValueError, match="unknown market"):
        normalize_market("factor_regime@x")  # variants are of TradingEnv-v0 kinds
    with pytest.raises(ValueError, match="unknown market"):
        normalize_market("sample:googl@x")


@pytest.mark.parametrize(
    ("markets", "params", "match"),
    [
        ([HOURLY], {}, "no market_params entry"),
        (["regime"], {"regime": {"freq": "h"}}, "only variants"),
        (["regime"], {HOURLY: {"freq": "h"}}, "not in markets"),
        ([HOURLY], {HOURLY: {}}, "non-empty mapping"),
        ([HOURLY], {HOURLY: {"seed": 3}}, "set by the protocol"),
        ([HOURLY], {HOURLY: {"moon_phase": 1}}, r"market_params\['synthetic:regime@hourly'\]"),
        ([HOURLY], {HOURLY: {"mean_duration": -5}}, "mean_duration"),
        ([HOURLY], [1, 2], "must be a mapping"),
    ],
)
def test_market_params_validation(markets, params, match) -> None:
    with pytest.raises(ValueError, match=match):
        tiny_suite(markets=markets, market_params=params)


def test_suite_round_trip_and_overrides() -> None:
    suite = tiny_suite(markets=["regime", "regime@hourly"], market_params=PARAMS)
    assert suite.markets == ["synthetic:regime", HOURLY]
    assert Suite.from_dict(suite.to_dict()) == suite
    assert suite.with_overrides(markets=["regime"]).market_params == {}
    assert suite.with_overrides(markets=[HOURLY]).market_params == PARAMS


def test_cells_carry_the_parameters_and_plain_cell_ids_do_not_change() -> None:
    plain = cells_for(tiny_suite())[0]
    suite = tiny_suite(markets=["regime", "regime@hourly"], market_params=PARAMS)
    cells = cells_for(suite)[0]
    base = [c for c in cells if c.market == "synthetic:regime"]
    variant = [c for c in cells if c.market == HOURLY]
    assert [c.cell_id for c in base] == [c.cell_id for c in plain]
    assert all("market_params" not in c.to_dict() for c in base)
    assert all(dict(c.market_params) == PARAMS[HOURLY] for c in variant)
    assert len({c.cell_id for c in cells}) == len(cells)
    kwargs = market_env_kwargs(variant[0])
    assert kwargs["market"] == "regime"
    assert kwargs["market_kwargs"]["freq"] == "h" and kwargs["market_kwargs"]["seed"] == 0


def test_variant_market_is_generated_with_its_parameters() -> None:
    suite = tiny_suite(markets=["regime", "regime@hourly"], market_params=PARAMS)
    by_market = {c.market: c for c in cells_for(suite)[0] if c.agent == "buy_and_hold"}
    base, _ = build_market(by_market["synthetic:regime"])
    hourly, _ = build_market(by_market[HOURLY])
    steps = np.diff(pd.DatetimeIndex(hourly.timestamps[:100]).asi8)
    assert set(steps) == {pd.Timedelta(hours=1).value}
    assert pd.Timestamp(hourly.timestamps[0]) == pd.Timestamp("2020-01-01")
    assert hourly.market_params["mean_duration"] == 50
    assert base.market_params["mean_duration"] == 200


def test_cells_run_on_a_variant_rules_experts_and_an_offline_learner() -> None:
    suite = tiny_suite(
        markets=["regime@hourly"],
        market_params=PARAMS,
        agents=["bayes_filter_expert", "sma_crossover", "supervised"],
        train_steps=20,
    )
    records = {c.agent: run_cell(c) for c in cells_for(suite)[0]}
    for agent, record in records.items():
        assert record["status"] == "ok", (agent, record["error"])
        assert record["market"] == HOURLY
        assert record["reference"] == "bayes_filter_expert"
        assert record["cell"]["market_params"] == PARAMS[HOURLY]
    # hourly bars are annualised as hourly bars, not as business days
    assert records["sma_crossover"]["bars_per_year"] > 1000


def test_validation_suite_is_a_family_on_held_out_seeds() -> None:
    suite = load_suite("validation")
    variants = [m for m in suite.markets if "@" in m]
    assert len(variants) >= 4 and set(suite.market_params) == set(variants)
    assert {market_base(m) for m in suite.markets} == {"synthetic:regime"}
    assert not set(suite.seeds) & set(load_suite("standard").seeds)  # defaults were picked there
    assert any(p.get("freq") == "h" for p in suite.market_params.values())  # intraday bars
    assert {"ppo_mlp", "ppo_lstm", "ppo_transformer", "sma_crossover"} <= {
        a.name for a in suite.agents
    }
    assert all(a.train_steps is None for a in suite.agents)  # at their make_agent defaults
    assert load_suite("standard").market_params == {}


def _summary_rows(rows):
    cols = ("market", "agent", "role", "score", "score_lo", "score_hi")
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])


def test_family_table_mean_and_worst_market() -> None:
    from quantgym.benchmark.report import family_table

    summary = _summary_rows(
        [
            ("synthetic:regime", "ppo_mlp", "causal", 94.0, 90.0, 98.0),
            (HOURLY, "ppo_mlp", "causal", 70.0, 60.0, 80.0),
            ("synthetic:regime", "sma", "causal", 85.0, 80.0, 90.0),
            (HOURLY, "sma", "causal", 82.0, 78.0, 86.0),
            ("synthetic:regime", "only_base", "causal", 99.0, 98.0, 100.0),
            ("synthetic:regime", "regime_expert", "privileged", 150.0, 140.0, 160.0),
            (HOURLY, "regime_expert", "privileged", 150.0, 140.0, 160.0),
            ("synthetic:gbm", "ppo_mlp", "causal", 10.0, 0.0, 20.0),
        ]
    )
    table = family_table(summary)
    assert list(table["agent"]) == ["sma", "ppo_mlp"]  # by worst score; partial/bounds out
    mlp = table.set_index("agent").loc["ppo_mlp"]
    assert mlp["family"] == "synthetic:regime" and mlp["n_markets"] == 2
    assert mlp["mean_score"] == pytest.approx(82.0)
    assert (mlp["worst_market"], mlp["worst_score"], mlp["worst_score_lo"]) == (HOURLY, 70.0, 60.0)
    assert mlp["markets_at_80"] == 1
    assert table.set_index("agent").loc["sma", "markets_at_80"] == 2
    plain = summary[~summary["market"].str.contains("@")]
    assert family_table(plain).empty  # no variants: no family
