"""evaluate(): fixed seeded starts, full passes, recurrent handling, custom agents; normalized_score."""

from __future__ import annotations

import math
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from quantgym import ENV_ID
from quantgym.evaluation import (
    EvaluationResult,
    episode_starts,
    evaluate,
    normalized_score,
    reference_agent_name,
)

ENV_KWARGS = {"market_kwargs": {"n_bars": 700}, "window_size": 8, "episode_length": 64}


def make_env(**overrides) -> gym.Env:
    return gym.make(ENV_ID, **{**ENV_KWARGS, **overrides})


class ConstantAgent:
    """Always the same discrete action (0 short, 1 flat, 2 long)."""

    name = "constant"

    def __init__(self, action: int = 2) -> None:
        self.action = action

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.int64(self.action), state


class StepCounter:
    """Recurrent-style agent: its state counts steps since the last episode start."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, int | None]] = []

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        start = bool(np.asarray(episode_start).reshape(-1)[0])
        self.seen.append((start, state))
        count = 0 if start or state is None else state
        return np.int64(1), count + 1


def test_normalized_score_formula():
    assert normalized_score(0.1, 0.2) == pytest.approx(50.0)
    assert normalized_score(0.2, 0.2) == pytest.approx(100.0)
    assert normalized_score(0.0, 0.2) == 0.0
    assert normalized_score(0.05, 0.25, baseline_ret=0.05) == 0.0
    assert normalized_score(-0.1, 0.2) == pytest.approx(-50.0)
    assert normalized_score(0.3, 0.1, baseline_ret=-0.1) == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0.1, 0.2, 0.2), "reference_ret equals baseline_ret"),
        ((0.1, 0.0), "reference_ret"),
        ((math.nan, 0.2), "ret"),
    ],
)
def test_normalized_score_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        normalized_score(*args)


def test_episode_starts_are_seeded_sorted_and_fit_an_episode():
    env = make_env()
    base = env.unwrapped
    starts = episode_starts(env, 20, seed=3)
    assert starts == sorted(starts) and len(starts) == 20
    assert starts == episode_starts(env, 20, seed=3)
    assert starts != episode_starts(env, 20, seed=4)
    assert min(starts) >= base.first_bar and max(starts) <= base.market.last_bar - 64


def test_evaluate_runs_fixed_full_episodes_and_is_reproducible():
    env = make_env()
    result = evaluate(ConstantAgent(2), env, n_episodes=3, seed=1)
    assert isinstance(result, EvaluationResult)
    assert result.agent == "constant" and result.n_episodes == 3
    assert result.starts == episode_starts(env, 3, seed=1)
    assert all(len(h) == 64 for h in result.histories)
    assert all((h["position"] == 1.0).all() for h in result.histories)
    again = evaluate(ConstantAgent(2), make_env(), n_episodes=3, seed=1)
    np.testing.assert_array_equal(result.returns, again.returns)
    assert result.total_return == pytest.approx(np.mean(result.returns))
    assert set(result.mean) >= {"total_return", "sharpe", "max_drawdown", "turnover", "n_trades"}
    assert result.std["total_return"] == pytest.approx(np.std(result.returns, ddof=1))
    assert isinstance(result.metrics, pd.DataFrame) and list(result.metrics.index) == result.starts
    # the equity curve is the history's equity and ends at the reported return
    curve = result.equity_curves[0]
    assert curve.iloc[-1] / 10_000.0 - 1 == pytest.approx(result.episodes[0]["total_return"])
    summary = result.summary()
    assert summary["n_episodes"] == 3 and summary["starts"] == result.starts


def test_flat_agent_scores_zero_and_long_agent_matches_price_path_minus_costs():
    env = make_env()
    flat = evaluate(ConstantAgent(1), env, n_episodes=2)
    assert flat.total_return == 0.0
    long_ = evaluate(ConstantAgent(2), env, starts=flat.starts)
    hist = long_.histories[0]
    # long all equity from the open of the first marked bar to the last close, minus entry costs
    market = env.unwrapped.market
    first, last = int(hist["bar"].iloc[0]), int(hist["bar"].iloc[-1])
    gross_return = market.close[last] / market.open[first] - 1
    cost = gross_return - long_.episodes[0]["total_return"]
    assert 0.0 < cost < 0.003
    assert (hist["trade"] != 0).sum() == 1


def test_explicit_starts_bars_or_timestamps():
    env = make_env()
    base = env.unwrapped
    bar = base.first_bar + 5
    result = evaluate(
        ConstantAgent(2), env, starts=[bar, pd.Timestamp(base.market.timestamps[bar + 10])]
    )
    assert result.starts == [bar, bar + 10]
    with pytest.raises(ValueError, match="n_episodes"):
        evaluate(ConstantAgent(2), env, starts=[bar], n_episodes=2)
    with pytest.raises(ValueError, match="starts"):
        evaluate(ConstantAgent(2), env, starts=[])


def test_whole_range_when_episode_length_is_none():
    env = make_env(episode_length=None)
    result = evaluate(ConstantAgent(2), env)
    base = env.unwrapped
    assert result.n_episodes == 1 and result.starts == [base.first_bar]
    assert len(result.histories[0]) == base.market.last_bar - base.first_bar


def test_env_kwargs_dict_is_accepted():
    result = evaluate(ConstantAgent(0), dict(ENV_KWARGS), n_episodes=1)
    assert result.n_episodes == 1 and (result.histories[0]["position"] == -1.0).all()


def test_recurrent_state_is_carried_and_reset_each_episode():
    agent = StepCounter()
    evaluate(agent, make_env(), n_episodes=2)
    assert len(agent.seen) == 128
    for episode in (agent.seen[:64], agent.seen[64:]):
        assert episode[0] == (True, None)  # fresh state and episode_start at each episode
        assert all(not start for start, _ in episode[1:])
        assert [s for _, s in episode[1:]] == list(range(1, 64))  # state carried step to step


def test_custom_agent_by_import_path_works_with_evaluate(tmp_path, monkeypatch):
    (tmp_path / "my_agents_pkg.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            class Contrarian:
                name = "contrarian"

                def __init__(self, lookback_column=0):
                    self.column = lookback_column

                def predict(self, observation, state=None, episode_start=None, deterministic=True):
                    return np.int64(0 if observation[self.column] > 0 else 2), state
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_agents_pkg", raising=False)
    from quantgym.agents.registry import make_agent

    agent = make_agent("my_agents_pkg:Contrarian", lookback_column=3)
    result = evaluate(agent, make_env(), n_episodes=2)
    assert result.agent == "contrarian" and result.n_episodes == 2
    assert set(np.unique(np.concatenate([h["position"] for h in result.histories]))) <= {-1.0, 1.0}


def test_bad_env_raises_value_error():
    with pytest.raises(ValueError, match="env"):
        evaluate(ConstantAgent(), object())
    with pytest.raises(ValueError, match="n_episodes"):
        evaluate(ConstantAgent(), make_env(), n_episodes=0)


def test_reference_agent_is_bayes_on_synthetic_and_buy_and_hold_on_real(walk_frame):
    assert reference_agent_name(make_env().unwrapped.market) == "bayes_filter_expert"
    real = gym.make(ENV_ID, data=walk_frame, window_size=8)
    assert reference_agent_name(real.unwrapped.market) == "buy_and_hold"


@pytest.mark.parametrize(
    ("data", "expected"),
    [(None, "bayes_filter_expert"), ("synthetic:mean_reversion", "bayes_filter_expert"),
     ("synthetic:gbm", "buy_and_hold"), ("sample:googl", "buy_and_hold")],
)  # fmt: skip
def test_reference_agent_per_market(data, expected):
    from quantgym.envs import MarketData
    from quantgym.evaluation import reference_agent_name

    assert (
        reference_agent_name(MarketData.from_source(data, market_kwargs={"n_bars": 600}))
        == expected
    )


@pytest.mark.parametrize("ret", [0.37, -0.2, 1e-7, 123.4])
def test_reference_scores_exactly_100(ret):
    from quantgym.evaluation import normalized_score

    assert normalized_score(ret, ret) == 100.0


def test_step_returns_start_from_the_initial_equity_and_compound_to_the_total_return():
    env = make_env(initial_equity=5_000.0)
    result = evaluate(ConstantAgent(2), env, n_episodes=2, seed=3)
    assert result.initial_equity == 5_000.0
    for returns, curve, episode in zip(
        result.step_returns, result.equity_curves, result.episodes, strict=True
    ):
        assert returns.index.equals(curve.index) and len(returns) == 64
        assert returns.iloc[0] == pytest.approx(curve.iloc[0] / 5_000.0 - 1.0, rel=1e-12)
        assert returns.iloc[1] == pytest.approx(curve.iloc[1] / curve.iloc[0] - 1.0, rel=1e-12)
        assert np.prod(1.0 + returns.to_numpy()) - 1.0 == pytest.approx(
            episode["total_return"], rel=1e-9
        )
    unknown = EvaluationResult("x", [0], [{}], [pd.DataFrame({"equity": [1.0]})], [0.0])
    with pytest.raises(ValueError, match="initial_equity"):
        _ = unknown.step_returns
