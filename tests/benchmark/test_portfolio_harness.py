"""The harness on PortfolioEnv markets: suite fields, listing by env, cells on the factor market
and on a real panel, batched scoring equal to single envs, learners never see the test bars."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

from quantgym import PORTFOLIO_ENV_ID
from quantgym.agents import agent_class
from quantgym.benchmark.cells import run_cell, train_and_score
from quantgym.benchmark.listing import (
    agent_env_ids,
    agent_kind,
    agent_role,
    cells_for,
    not_applicable,
)
from quantgym.benchmark.protocol import build_market, plan_for
from quantgym.benchmark.scoring import evaluate_units, step_fields
from quantgym.benchmark.suite import Suite
from quantgym.policies.portfolio import UCRPAgent

TINY_PORTFOLIO = {
    "name": "tiny_portfolio",
    "markets": ["synthetic:factor_regime"],
    "window_bars": 60,
    "n_windows": 3,
    "train_bars": 200,
    "embargo_bars": 10,
    "portfolio_env_kwargs": {"commission": 0.001, "slippage": 0.0},
}


def portfolio_suite(**overrides) -> Suite:
    values = {**TINY_PORTFOLIO, "agents": ["ucrp"], "seeds": [0], **overrides}
    return Suite(**values).validate()


class PanelLearner:
    """An online portfolio learner: ``fit`` records the last bar its env could ever show."""

    env_ids = ("PortfolioEnv-v0",)

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.num_timesteps = 0
        self.seen_last: list = []

    def fit(self, env, train_steps=None):
        panel = env.unwrapped.panel
        self.seen_last.append(panel.timestamps[panel.last_bar])
        self.num_timesteps = train_steps or 1
        return self

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        n = 8
        obs = np.asarray(observation)
        return np.full((obs.shape[0], n) if obs.ndim == 2 else (n,), 1.0 / n), state


@pytest.mark.parametrize(
    ("agent", "kind", "role"),
    [
        ("ucrp", "rule", "causal"),
        ("olmar", "rule", "causal"),
        ("kelly_filter_expert", "expert", "causal"),
        ("regime_seer", "expert", "privileged"),
        ("bcrp", "oracle", "future"),
        ("best_stock", "oracle", "future"),
    ],
)
def test_kind_and_role_of_portfolio_agents(agent, kind, role):
    cls = agent_class(agent)
    assert (agent_kind(cls), agent_role(cls)) == (kind, role)


def test_agents_run_only_on_the_markets_of_their_env():
    assert not_applicable("ucrp", "synthetic:factor_regime") is None
    assert not_applicable("ucrp", "sample:djia") is None
    assert "PortfolioEnv" in not_applicable("ucrp", "synthetic:regime")
    assert not_applicable("buy_and_hold", "synthetic:factor_regime") is not None
    assert "factor_regime" in not_applicable("kelly_filter_expert", "sample:djia")
    learner = "tests.benchmark.test_cells:LongLearner"  # a TradingEnv learner (no torch import)
    assert "TradingEnv-v0" in not_applicable(learner, "synthetic:factor_regime")
    assert agent_env_ids(PanelLearner) == ("PortfolioEnv-v0",)
    assert agent_env_ids(object, "ppo_eiie") == ("PortfolioEnv-v0",)
    assert agent_env_ids(object, "ppo_mlp") == ("TradingEnv-v0",)


def test_each_env_gets_its_own_kwargs():
    suite = portfolio_suite(
        markets=["synthetic:factor_regime", "synthetic:regime"],
        agents=["ucrp", "buy_and_hold"],
        env_kwargs={"commission": 0.0},
    )
    cells, skipped = cells_for(suite)
    by_market = {c.market: c for c in cells}
    assert {(c.market, c.agent) for c in cells} == {
        ("synthetic:factor_regime", "ucrp"),
        ("synthetic:regime", "buy_and_hold"),
    }
    assert by_market["synthetic:factor_regime"].env_kwargs == {"commission": 0.001, "slippage": 0.0}
    assert by_market["synthetic:regime"].env_kwargs == {"commission": 0.0}
    assert len(skipped) == 2


def test_portfolio_suite_fields_are_validated():
    with pytest.raises(ValueError, match=r"portfolio_env_kwargs\['data'\]"):
        portfolio_suite(portfolio_env_kwargs={"data": "sample:nyse_o"})
    with pytest.raises(ValueError, match="portfolio_env_kwargs must be a mapping"):
        portfolio_suite(portfolio_env_kwargs=[1])
    with pytest.raises(ValueError, match="unknown market"):
        portfolio_suite(markets=["sample:nyse_x"])
    with pytest.raises(ValueError, match="optional must be true or false"):
        portfolio_suite(agents=[{"name": "ucrp", "optional": "yes"}])


def test_optional_agents_that_do_not_exist_are_dropped_with_a_warning():
    with pytest.warns(UserWarning, match="optional agent 'no_such_agent' left out"):
        suite = portfolio_suite(agents=["ucrp", {"name": "no_such_agent", "optional": True}])
    assert [a.name for a in suite.agents] == ["ucrp"]
    with pytest.raises(ValueError, match="unknown agent"):
        portfolio_suite(agents=["ucrp", "no_such_agent"])
    with warnings.catch_warnings(), pytest.raises(ValueError, match="no agent left"):
        warnings.simplefilter("ignore")
        portfolio_suite(agents=[{"name": "no_such_agent", "optional": True}])


@pytest.mark.parametrize("agent", ["ucrp", "kelly_filter_expert", "regime_seer", "bcrp"])
def test_cells_on_the_factor_market(agent):
    cell = cells_for(portfolio_suite(agents=[agent]))[0][0]
    record = run_cell(cell)
    assert record["status"] == "ok", record["error"]
    assert record["reference"] == "kelly_filter_expert"
    assert [u["n_bars"] for u in record["units"]] == [60, 60, 60]
    assert all(np.isfinite(u["log_growth"]) for u in record["units"])
    assert record["role"] == {"regime_seer": "privileged", "bcrp": "future"}.get(agent, "causal")


def test_walk_forward_cell_on_a_real_panel():
    suite = portfolio_suite(markets=["sample:djia"], n_folds=2, fold_train=0.5, fold_test=0.2,
                            fold_embargo_bars=5, portfolio_env_kwargs={"normalize_window": 20})  # fmt: skip
    record = run_cell(cells_for(suite)[0][0])
    assert record["status"] == "ok", record["error"]
    assert record["reference"] == "ucrp" and [u["fold"] for u in record["units"]] == [0, 1]
    assert record["units"][0]["end"] < record["units"][1]["start"]


def test_batched_scoring_equals_a_single_env_per_window():
    cell = cells_for(portfolio_suite())[0][0]
    market, first_bar = build_market(cell)
    units = plan_for(cell, market, first_bar).units
    equities, metrics = evaluate_units(lambda env: UCRPAgent(env=env), cell, market, units)
    for unit, equity in zip(units, equities, strict=True):
        env = gym.make(PORTFOLIO_ENV_ID, data=market, episode_length=unit.n_steps,
                       **cell.env_kwargs)  # fmt: skip
        obs, _ = env.reset(seed=0, options={"start": unit.start})
        agent, path = UCRPAgent(env=env), [env.unwrapped.equity]
        for _ in range(unit.n_steps):
            obs, _, _, _, info = env.step(agent.predict(obs)[0])
            path.append(info["equity"])
        np.testing.assert_allclose(equity, path, rtol=1e-12)
    assert all(m["turnover"] > 0 for m in metrics)


def test_step_fields_of_a_portfolio_step():
    info = {"equity": [2.0], "weights": [[0.25, -0.5]], "turnover": [0.1], "fees": [0.01]}
    fields = step_fields(info)
    np.testing.assert_allclose(fields["position"], [0.75])
    np.testing.assert_allclose(fields["trade"], [0.1])


def test_a_portfolio_learner_never_loads_the_bars_after_its_train_range():
    suite = portfolio_suite(agents=["tests.benchmark.test_portfolio_harness:PanelLearner"])
    cell = cells_for(suite)[0][0]
    market, first_bar = build_market(cell)
    plan = plan_for(cell, market, first_bar)
    train = plan.trains[0]
    result = train_and_score(cell, market, train, plan.units_for(train))
    assert result.agent.seen_last == [market.timestamps[train.end]]
    assert train.end < plan.units[0].start and len(result.equities) == 3
