"""No look-ahead: perturbing every bar after t changes nothing the agent saw up to t."""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.envs import TradingEnv
from tests.conftest import random_walk_frame

N = 420


def perturb_after(frame, t, seed):
    """Replace every bar after ``t`` with different, valid random bars."""
    garbage = random_walk_frame(len(frame), seed=seed + 100, vol=0.05)
    garbage.index = frame.index
    out = frame.copy()
    out.iloc[t + 1 :] = garbage.iloc[t + 1 :].to_numpy() * 3.0
    return out


def trajectory(frame, actions, **kwargs):
    env = TradingEnv(frame, window_size=8, episode_length=None, **kwargs)
    obs, _ = env.reset(options={"start": env.first_bar})
    observations, rewards = [obs], []
    for a in actions:
        obs, r, terminated, truncated, _ = env.step(a)
        observations.append(obs)
        rewards.append(r)
        if terminated or truncated:
            break
    return env.first_bar, np.stack(observations), np.array(rewards)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"reward": "differential_sharpe"}, {"reward": "risk_adjusted", "slippage": "volatility"},
     {"action_type": "continuous", "borrow_rate": 0.0001}],
)  # fmt: skip
def test_future_bars_do_not_change_past_observations_or_rewards(seed, kwargs):
    frame = random_walk_frame(N, seed=seed)
    rng = np.random.default_rng(seed)
    if kwargs.get("action_type") == "continuous":
        actions = [rng.uniform(-1, 1, 1).astype(np.float32) for _ in range(N)]
    else:
        actions = rng.integers(0, 3, N).tolist()
    first, obs, rewards = trajectory(frame, actions, **kwargs)
    for t in rng.integers(first + 1, N - 2, 3):
        k = t - first  # obs[k] was taken at bar t; rewards[k-1] was marked at close of bar t
        _, obs_p, rewards_p = trajectory(perturb_after(frame, t, seed), actions, **kwargs)
        np.testing.assert_array_equal(obs_p[: k + 1], obs[: k + 1])
        np.testing.assert_array_equal(rewards_p[:k], rewards[:k])
        assert not np.array_equal(obs_p[k + 1 :], obs[k + 1 :]), (
            "perturbation had no effect: test is vacuous"
        )


def test_leak_canary_is_not_reachable_through_default_features():
    """A column equal to the next bar's return: no default feature at t may predict it."""
    frame = random_walk_frame(3000, seed=9)
    env = TradingEnv(frame, window_size=1, episode_length=None)
    market = env.market
    next_ret = np.log(market.close[1:] / market.close[:-1])
    rows = np.arange(market.warmup, len(market) - 1)
    for j, name in enumerate(market.feature_names):
        corr = np.corrcoef(market.features[rows, j], next_ret[rows])[0, 1]
        assert abs(corr) < 0.1, f"feature {name} correlates {corr:.2f} with the next bar's return"
    # the same check catches a leaky user feature
    leaky = frame.assign(canary=np.append(next_ret, 0.0))
    leaky_market = TradingEnv(leaky, features=["canary"], window_size=1).market
    corr = np.corrcoef(leaky_market.features[rows, 0], next_ret[rows])[0, 1]
    assert corr > 0.99
