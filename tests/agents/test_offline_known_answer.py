"""Offline value learning on a market whose right action is known exactly.

The market: each bar's close carries a ``signal`` of +1 or -1 (a fair coin), and the next bar's
open-to-close log return is ``signal * MU`` plus Gaussian noise of ``SIGMA``; the open equals the
previous close and trading is free. A position bought at the open of t+1 on the signal seen at
the close of t therefore earns ``position * signal * MU`` in expectation, so the optimal action
is long when the signal is +1 and short when it is -1, whatever the position held (no costs).
A ``noise`` column is a distractor. The logs are uniformly random actions: every action is
tried in every state, the textbook case in which Q-learning recovers the optimal policy and
behaviour cloning cannot.

Before rewards were scaled to unit standard deviation (``cql``'s ``reward_scale=None``), the
greedy action was right in 27-36 % of states (``reward_scale=1.0`` below; worse than the 1/3 of a
random choice) or at best 63 %; with the scaling, in 96-99 %.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from quantgym import ENV_ID
from quantgym.datasets.collect import collect
from quantgym.policies import RandomAgent

pytest.importorskip("d3rlpy")

from quantgym.agents import make_agent  # noqa: E402

MU, SIGMA = 0.002, 0.01  # per-bar signal edge and noise: a per-transition SNR of 0.2
LONG, SHORT = 2, 0  # indices of +1 and -1 in the default positions (-1, 0, 1)
SIGNAL_COLUMN = -7  # newest bar's "signal": window rows of (signal, noise), then 5 account features


def signal_market(n_bars: int, seed: int) -> pd.DataFrame:
    """OHLCV bars whose next open-to-close return has the sign of this bar's ``signal``."""
    rng = np.random.default_rng(seed)
    signal = rng.choice([-1.0, 1.0], size=n_bars)
    log_return = np.zeros(n_bars)
    log_return[1:] = signal[:-1] * MU + SIGMA * rng.standard_normal(n_bars - 1)
    close = 100.0 * np.exp(np.cumsum(log_return))
    open_ = np.r_[100.0, close[:-1]]
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": 1e6,
            "signal": signal,
            "noise": rng.standard_normal(n_bars),
        },
        index=pd.date_range("1900-01-01", periods=n_bars, freq="D"),
    )


def env_kwargs(frame: pd.DataFrame) -> dict:
    return {
        "data": frame,
        "features": ["signal", "noise"],
        "window_size": 4,
        "commission": 0.0,
        "slippage": 0.0,
        "episode_length": 200,
    }


def random_logs(frame: pd.DataFrame, n_steps: int, seed: int):
    env = gym.make_vec(ENV_ID, num_envs=8, **env_kwargs(frame))
    try:
        return collect(
            env, RandomAgent(env=env, seed=seed), n_steps=n_steps, seed=seed, progress=False
        )
    finally:
        env.close()


@pytest.fixture(scope="module")
def train_logs():
    return random_logs(signal_market(10_000, seed=0), 20_000, seed=0)


@pytest.fixture(scope="module")
def test_states():
    """Observations of a held-out market, visited by random actions (every position held)."""
    return np.asarray(random_logs(signal_market(3_000, seed=1), 2_000, seed=1).observations)


def optimal_action_rate(agent, observations: np.ndarray) -> float:
    actions, _ = agent.predict(observations, deterministic=True)
    optimal = np.where(observations[:, SIGNAL_COLUMN] > 0, LONG, SHORT)
    return float(np.mean(actions == optimal))


def test_market_signal_sits_where_the_test_reads_it(test_states):
    assert set(np.unique(test_states[:, SIGNAL_COLUMN])) == {-1.0, 1.0}


def test_cql_recovers_the_optimal_action_from_random_logs(train_logs, test_states):
    agent = make_agent("cql", train_steps=1_500, hidden_units=[32], batch_size=128, seed=0)
    agent.fit(train_logs, progress_bar=False)
    assert agent.config.fitted_reward_scale == pytest.approx(1.0 / np.std(train_logs.rewards))
    assert optimal_action_rate(agent, test_states) >= 0.95


@pytest.mark.slow
def test_cql_at_its_defaults_recovers_the_optimal_action(train_logs, test_states):
    agent = make_agent("cql", seed=1).fit(train_logs, progress_bar=False)
    assert optimal_action_rate(agent, test_states) >= 0.95


@pytest.mark.slow
def test_unscaled_rewards_do_not_recover_it(train_logs, test_states):
    """The failure the scaling fixes, kept as a fact: with raw log-return rewards the greedy
    action misses the 95 % bar by far (27 %, 36 % and 63 % of states in three tries)."""
    agent = make_agent(
        "cql", train_steps=1_500, hidden_units=[32], batch_size=128, seed=0, reward_scale=1.0
    )
    agent.fit(train_logs, progress_bar=False)
    assert optimal_action_rate(agent, test_states) < 0.9


def test_bcq_recovers_the_optimal_action_from_random_logs(train_logs, test_states):
    """``bcq`` shares ``cql``'s reward scaling; on uniformly random logs its imitation head
    allows every action, so it must find the optimal one as well."""
    agent = make_agent("bcq", train_steps=1_500, hidden_units=[32], batch_size=128, seed=0)
    agent.fit(train_logs, progress_bar=False)
    assert agent.config.fitted_reward_scale == pytest.approx(1.0 / np.std(train_logs.rewards))
    assert optimal_action_rate(agent, test_states) >= 0.95
