"""Suites: YAML loading by name or path, validation naming the field, CLI overrides."""

from __future__ import annotations

import pytest

from quantgym.benchmark.suite import (
    AgentSpec,
    Suite,
    available_agents,
    list_suites,
    load_suite,
    normalize_market,
)


def test_bundled_suites_load() -> None:
    assert {"smoke", "standard", "full"} <= set(list_suites())
    smoke = load_suite("smoke")
    assert smoke.name == "smoke"
    assert smoke.markets == ["synthetic:regime", "synthetic:factor_regime"]
    assert smoke.portfolio_env_kwargs == {"commission": 0.001, "slippage": 0.0}
    assert smoke.n_windows >= 64
    names = [a.name for a in smoke.agents]
    assert {"buy_and_hold", "bayes_filter_expert", "regime_expert", "hindsight_oracle"} <= set(
        names
    )
    standard = load_suite("standard")
    assert set(standard.markets) == {
        "synthetic:regime",
        "synthetic:gbm",
        "synthetic:mean_reversion",
        "sample:googl",
        "sample:eurusd",
        "synthetic:factor_regime",
        "sample:nyse_o",
        "sample:sp500_20",
    }
    assert standard.seeds == [0, 1, 2]
    assert {a.name for a in standard.agents} == set(available_agents())  # optional learners out
    portfolio = load_suite("portfolio")
    assert {"kelly_filter_expert", "regime_seer", "ucrp", "bcrp"} <= {
        a.name for a in portfolio.agents
    }
    assert "epsilon_mix" not in {a.name for a in standard.agents}


def test_load_by_path_and_yaml_errors(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "markets: [gbm]\nagents: [flat, {name: ppo_mlp, train_steps: 64, kwargs: {n_envs: 2}}]\n"
    )
    suite = load_suite(path)
    assert suite.name == "mine" and suite.markets == ["synthetic:gbm"]
    assert suite.agents[1] == AgentSpec("ppo_mlp", {"n_envs": 2}, 64)
    path.write_text("markets: [gbm]\nagents: [flat]\nwindows: 3\n")
    with pytest.raises(ValueError, match="unknown suite fields.*windows"):
        load_suite(path)
    with pytest.raises(ValueError, match="neither a YAML file"):
        load_suite("no_such_suite")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("markets", ["nowhere"], "markets: unknown market"),
        ("agents", ["no_such_agent"], "unknown agent"),
        ("agents", ["epsilon_mix"], "wraps another policy"),
        ("agents", ["ppo_mlp", {"name": "ppo_mlp", "kwargs": {"n_envs": 2}}], "listed twice"),
        ("seeds", [0, 0], "seeds has duplicates"),
        ("seeds", [-1], "seeds must be"),
        ("n_windows", 0, "n_windows must be"),
        ("window_bars", 1.5, "window_bars must be"),
        ("fold_test", 0.3, "walk-forward folds do not fit"),
        ("env_kwargs", {"start": "2020"}, r"env_kwargs\['start'\]"),
        ("dataset_quality", "great", "dataset_quality must be"),
        ("train_steps", 0, "train_steps must be"),
    ],
)
def test_validation_names_the_field(field, value, match) -> None:
    values = {"markets": ["regime"], "agents": ["flat"], field: value}
    with pytest.raises(ValueError, match=match):
        Suite(**values).validate()


def test_overrides_keep_agent_settings_and_train_steps_wins() -> None:
    suite = Suite(
        markets=["regime"],
        agents=["flat", {"name": "ppo_mlp", "train_steps": 64, "kwargs": {"n_envs": 2}}],
    ).validate()
    out = suite.with_overrides(markets=["gbm", "sample:googl"], agents=["ppo_mlp"], seeds=[3])
    assert out.markets == ["synthetic:gbm", "sample:googl"] and out.seeds == [3]
    assert out.agents == [AgentSpec("ppo_mlp", {"n_envs": 2}, 64)]
    out = suite.with_overrides(train_steps=128)
    assert out.train_steps == 128 and all(a.train_steps is None for a in out.agents)
    assert suite.agents[1].train_steps == 64  # the original is untouched


def test_round_trip_and_markets() -> None:
    suite = load_suite("smoke")
    assert Suite.from_dict(suite.to_dict()) == suite
    assert normalize_market("synthetic:gbm") == normalize_market("gbm") == "synthetic:gbm"
    assert normalize_market("sample:eurusd") == "sample:eurusd"


def test_per_market_budgets() -> None:
    from quantgym.benchmark.listing import cells_for

    suite = Suite(
        markets=["regime", "gbm", "sample:googl"],
        agents=[
            {"name": "ppo_mlp", "train_steps": {"regime": 300, "real": 100, "default": 200}},
            "flat",
        ],
        train_steps=50,
    ).validate()
    steps = {(c.market, c.agent): c.train_steps for c in cells_for(suite)[0]}
    assert steps[("synthetic:regime", "ppo_mlp")] == 300
    assert steps[("synthetic:gbm", "ppo_mlp")] == 200
    assert steps[("sample:googl", "ppo_mlp")] == 100
    assert steps[("synthetic:regime", "flat")] is None  # rules do not train
    with pytest.raises(ValueError, match="unknown market"):
        Suite(markets=["gbm"], agents=[{"name": "ppo_mlp", "train_steps": {"moon": 1}}]).validate()
    with pytest.raises(ValueError, match=r"train_steps\[gbm\] must be"):
        Suite(markets=["gbm"], agents=[{"name": "ppo_mlp", "train_steps": {"gbm": 0}}]).validate()


def test_agent_market_filter() -> None:
    from quantgym.benchmark.listing import cells_for

    suite = Suite(
        markets=["regime", "gbm"],
        agents=["flat", {"name": "buy_and_hold", "markets": ["regime"]}],
    ).validate()
    pairs = {(c.market, c.agent) for c in cells_for(suite)[0]}
    assert pairs == {
        ("synthetic:regime", "flat"),
        ("synthetic:gbm", "flat"),
        ("synthetic:regime", "buy_and_hold"),
    }
    with pytest.raises(ValueError, match="unknown market"):
        Suite(markets=["gbm"], agents=[{"name": "flat", "markets": ["moon"]}]).validate()


def test_standard_suite_trains_learners_at_their_defaults_on_synthetic_markets() -> None:
    """The headline table has no starved rows: on synthetic markets no learner's budget is
    set below its ``make_agent`` default (``None`` = the agent's own default)."""
    from quantgym.agents.registry import agent_class
    from quantgym.benchmark.listing import cells_for

    cells = [c for c in cells_for(load_suite("standard"))[0] if c.market.startswith("synthetic:")]
    learners = [c for c in cells if hasattr(agent_class(c.agent), "fit")]
    assert {"ppo_mlp", "ppo_lstm", "ppo_transformer", "bc", "cql", "dt"} <= {
        c.agent for c in learners
    }
    for c in learners:
        config = getattr(agent_class(c.agent), "Config", None)
        default = getattr(config(), "train_steps", None) if config else None
        assert c.train_steps is None or c.train_steps >= (default or 0), (c.agent, c.market)
