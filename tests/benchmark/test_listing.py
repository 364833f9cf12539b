"""Listing: a suite's cells, agent kinds and roles, what an agent learns from, how it is built."""

from __future__ import annotations

import gymnasium as gym
import pytest

import quantgym
from quantgym.agents import agent_class
from quantgym.benchmark.listing import (
    Cell,
    accepts_keyword,
    agent_factory,
    agent_init_kwargs,
    agent_kind,
    agent_learns,
    agent_role,
    cells_for,
    not_applicable,
)
from tests.benchmark.conftest import tiny_suite


class SeedlessAgent:
    """A custom agent that takes no seed."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale


@pytest.mark.parametrize(
    ("agent", "kind", "role"),
    [
        ("buy_and_hold", "rule", "causal"),
        ("mean_reversion", "rule", "causal"),
        ("bayes_filter_expert", "expert", "causal"),
        ("regime_expert", "expert", "privileged"),
        ("hindsight_oracle", "oracle", "future"),
        ("ppo_lstm", "online", "causal"),
        ("bc", "offline", "causal"),
        ("supervised", "offline", "causal"),
    ],
)
def test_kind_and_role(agent, kind, role) -> None:
    cls = agent_class(agent)
    assert (agent_kind(cls), agent_role(cls)) == (kind, role)


@pytest.mark.parametrize(
    ("agent", "learns"),
    [("flat", None), ("bayes_filter_expert", None), ("ppo_mlp", "online"), ("dt", "offline")],
)
def test_agent_learns_from_an_env_a_dataset_or_nothing(agent, learns) -> None:
    assert agent_learns(agent_class(agent)) == learns


def test_agents_that_refuse_a_market_are_left_out_with_the_reason() -> None:
    assert not_applicable("regime_expert", "synthetic:regime") is None
    assert "regime" in not_applicable("regime_expert", "synthetic:gbm")
    assert not_applicable("ppo_mlp", "sample:googl") is None
    cells, skipped = cells_for(tiny_suite(markets=["gbm"], agents=["flat", "regime_expert"]))
    assert [c.agent for c in cells] == ["flat"]
    assert skipped[0]["agent"] == "regime_expert" and skipped[0]["market"] == "synthetic:gbm"


def test_cell_records_protocol_settings_only_where_they_apply() -> None:
    suite = tiny_suite(markets=["regime", "sample:googl"], agents=["flat", "bc"])
    cells, _ = cells_for(suite)
    by = {(c.market, c.agent): c for c in cells}
    syn, real = by[("synthetic:regime", "flat")], by[("sample:googl", "bc")]
    assert (syn.window_bars, syn.n_folds, syn.dataset_steps) == (200, None, None)
    assert (real.window_bars, real.n_folds, real.dataset_steps) == (None, 5, 600)
    assert isinstance(syn, Cell) and syn.cell_id != real.cell_id


def test_cells_expand_markets_then_agents_then_seeds_and_round_trip() -> None:
    suite = tiny_suite(markets=["regime", "gbm"], agents=["flat", "ppo_mlp"], seeds=[0, 1])
    cells, skipped = cells_for(suite)
    assert skipped == []
    assert [(c.market, c.agent, c.seed) for c in cells] == [
        (m, a, s)
        for m in ("synthetic:regime", "synthetic:gbm")
        for a in ("flat", "ppo_mlp")
        for s in (0, 1)
    ]
    assert len({c.cell_id for c in cells}) == len(cells)
    for cell in cells:
        assert Cell.from_dict(cell.to_dict()) == cell
        assert Cell.from_dict(cell.to_dict()).cell_id == cell.cell_id


def test_agent_init_kwargs_add_the_cell_seed_only_where_taken() -> None:
    cell = Cell("s", "synthetic:regime", "ppo_mlp", 7, "windows", agent_kwargs={"n_envs": 2})
    assert agent_init_kwargs(agent_class("ppo_mlp"), cell) == {"n_envs": 2, "seed": 7}
    given = Cell("s", "synthetic:regime", "ppo_mlp", 7, "windows", agent_kwargs={"seed": 3})
    assert agent_init_kwargs(agent_class("ppo_mlp"), given) == {"seed": 3}  # never overridden
    assert agent_init_kwargs(SeedlessAgent, cell) == {"n_envs": 2}
    assert accepts_keyword(SeedlessAgent, "scale") and not accepts_keyword(SeedlessAgent, "seed")
    assert accepts_keyword(agent_class("random"), "anything")  # **kwargs takes every keyword


def test_agent_factory_binds_env_bound_agents_to_each_env() -> None:
    cell = Cell("s", "synthetic:regime", "sma_crossover", 0, "windows")
    make = agent_factory(agent_class("sma_crossover"), cell)
    first, second = (gym.make(quantgym.ENV_ID) for _ in range(2))
    a, b = make(first), make(second)
    assert a is not b
    assert a.binding.env is first and b.binding.env is second
