"""No look-ahead in PortfolioEnv: perturbing every bar after t changes nothing seen up to t."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantgym.envs import PortfolioEnv
from tests.envs.portfolio_frames import blank_rows, wide_panel

N = 340


def universe(seed: int) -> pd.DataFrame:
    """Four assets: one listing late, one delisted early, one with missing bars."""
    frame = wide_panel(N, 4, seed=seed, vol=0.02)
    frame = blank_rows(frame, "A1", slice(0, 90))
    frame = blank_rows(frame, "A2", slice(260, N))
    return blank_rows(frame, "A3", [140, 141, 200])


def perturb_after(frame: pd.DataFrame, t: int, seed: int) -> pd.DataFrame:
    """Every present bar after ``t`` replaced by different valid bars (missing bars stay missing)."""
    garbage = wide_panel(len(frame), 4, seed=seed + 100, vol=0.06)
    garbage.index = frame.index
    out = frame.copy()
    later = out.iloc[t + 1 :]
    replaced = garbage.iloc[t + 1 :].to_numpy() * 3.0
    out.iloc[t + 1 :] = np.where(np.isnan(later.to_numpy()), np.nan, replaced)
    return out


def trajectory(frame, actions, **kwargs):
    env = PortfolioEnv(frame, window_size=6, episode_length=None, normalize_window=30, **kwargs)
    obs, _ = env.reset(options={"start": env.first_bar})
    observations, rewards = [obs], []
    for a in actions:
        obs, r, terminated, truncated, _ = env.step(a)
        observations.append(obs)
        rewards.append(r)
        if terminated or truncated:
            break
    return env.first_bar, np.stack(observations), np.array(rewards)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"reward": "differential_sharpe", "rebalance_band": 0.02},
     {"weights": "long_short", "borrow_rate": 1e-4, "financing_rate": 1e-4, "slippage": "volatility"},
     {"slippage": {"model": "sqrt_impact"}, "action_transform": "softmax"}],
)  # fmt: skip
def test_future_bars_do_not_change_past_observations_or_rewards(seed, kwargs):
    frame = universe(seed)
    rng = np.random.default_rng(seed)
    space = PortfolioEnv(frame, window_size=6, normalize_window=30, **kwargs).action_space
    actions = rng.uniform(space.low, space.high, (N, *space.shape))
    first, obs, rewards = trajectory(frame, actions, **kwargs)
    for t in sorted(rng.integers(first + 1, N - 3, 3)):
        k = t - first  # obs[k] was taken at bar t; rewards[k-1] was marked at the close of bar t
        _, obs_p, rewards_p = trajectory(perturb_after(frame, t, seed), actions, **kwargs)
        np.testing.assert_array_equal(obs_p[: k + 1], obs[: k + 1])
        np.testing.assert_array_equal(rewards_p[:k], rewards[:k])
        assert not np.array_equal(obs_p[k + 1 :], obs[k + 1 :]), "perturbation had no effect"


def test_cutting_the_data_after_t_changes_nothing_before_t():
    """The same panel ending at bar t (``end=``) gives the same observations up to t: in
    particular an asset whose data ends with the panel is not treated as delisted."""
    frame = universe(0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(0, 1, (N, 4))
    first, obs, rewards = trajectory(frame, actions)
    t = 300
    _, obs_c, rewards_c = trajectory(frame, actions, end=frame.index[t])
    k = t - first
    np.testing.assert_array_equal(obs_c[: k + 1], obs[: k + 1])
    np.testing.assert_array_equal(rewards_c, rewards[:k])
