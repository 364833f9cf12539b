"""PortfolioEnv: the env contract, checkers, timing, info, history, metrics, determinism, errors."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from quantgym import PORTFOLIO_ENV_ID
from quantgym.envs import PortfolioEnv
from quantgym.envs.metrics import METRIC_NAMES
from quantgym.envs.portfolio.layout import STEP_INFO_KEYS
from tests.envs.portfolio_frames import wide_panel

SMALL = {
    "market_kwargs": {"n_bars": 600, "n_assets": 4},
    "normalize_window": 40,
    "episode_length": 50,
}


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"observation_mode": "dict"}, {"weights": "long_short", "max_gross": 2.0},
     {"action_transform": "softmax"}, {"data": "sample:djia", "normalize_window": 20}],
)  # fmt: skip
def test_checkers_pass(kwargs):
    env = PortfolioEnv(**{**SMALL, **kwargs})
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)


def test_make_with_no_arguments_gives_the_seeded_factor_market():
    env = gym.make(PORTFOLIO_ENV_ID)
    obs, info = env.reset(seed=0)
    panel = env.unwrapped.panel
    assert panel.name == "synthetic:factor_regime" and panel.n_assets == 8
    assert "regime" in info and panel.market_params["kind"] == "factor_regime"
    assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
    assert gym.make(PORTFOLIO_ENV_ID).unwrapped.panel.fingerprint == panel.fingerprint
    assert env.action_space == gym.spaces.Box(0.0, 1.0, (8,), np.float32)


def test_observation_layout_reshapes_the_flat_vector():
    env = PortfolioEnv(**SMALL, window_size=5)
    layout, panel = env.layout, env.panel
    obs, _ = env.reset(seed=1)
    parts = layout.split(obs)
    t = env.bar
    assert layout.shapes["windows"] == (4, 5, panel.n_features)
    np.testing.assert_array_equal(parts["windows"][:, -1], panel.features32[:, t])
    np.testing.assert_array_equal(parts["windows"][:, 0], panel.features32[:, t - 4])
    np.testing.assert_array_equal(parts["cross_section"], panel.cross_section32[t])
    np.testing.assert_array_equal(parts["weights"], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(parts["mask"], 1.0)
    assert layout.obs_dim == obs.size == sum(int(np.prod(s)) for s in layout.shapes.values())
    obs, *_ = env.step(np.array([0.5, 0.0, 0.25, 0.0]))
    w = layout.split(obs)["weights"]
    assert w[-1] == pytest.approx(0.25, abs=0.01) and w.sum() == pytest.approx(1.0, abs=1e-6)


def test_fill_at_next_open_mark_at_next_close():
    frame = wide_panel(60, 2)
    env = PortfolioEnv(
        frame, features=(), window_size=1, commission=0.0, slippage=0.0, episode_length=None
    )
    _, info = env.reset(seed=0)
    t = info["bar"]
    o = frame.xs("open", axis=1, level=1).to_numpy()
    c = frame.xs("close", axis=1, level=1).to_numpy()
    _, reward, _, _, info = env.step(np.array([1.0, 0.0]))
    expected = 10_000.0 / o[t + 1, 0] * c[t + 1, 0]
    assert info["bar"] == t + 1 and info["equity"] == pytest.approx(expected, rel=1e-14)
    assert reward == pytest.approx(math.log(expected / 10_000.0), rel=1e-12)
    assert info["timestamp"] == frame.index[t + 1].to_datetime64()


def test_info_history_metrics_and_episode_end():
    env = PortfolioEnv(**SMALL)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    done, n = False, 0
    while not done:
        _, _, terminated, truncated, info = env.step(rng.uniform(0, 0.3, 4))
        done, n = terminated or truncated, n + 1
    assert truncated and n == 50
    assert set(STEP_INFO_KEYS) | {"regime"} == set(info) == set(env.layout.info_keys)
    with pytest.raises(ValueError, match="after the episode ended"):
        env.step(np.zeros(4))
    history = env.history()
    assert len(history) == 50 and isinstance(history.index, pd.DatetimeIndex)
    assert {
        "equity",
        "fees",
        "turnover",
        "cash_weight",
        "weight_asset_0",
        "trade_asset_3",
        "regime",
    } <= set(history)
    np.testing.assert_allclose(
        history[[f"weight_asset_{j}" for j in range(4)]].sum(axis=1) + history["cash_weight"], 1.0
    )
    metrics = env.metrics()
    assert metrics["final_equity"] == pytest.approx(info["equity"])
    assert metrics["fees_paid"] == pytest.approx(history["fees"].sum())
    assert metrics["n_steps"] == 50 and 0 < metrics["exposure"] <= 1.0
    assert set(METRIC_NAMES) == set(metrics)


def test_same_seed_same_episode():
    def episode(seed):
        env = PortfolioEnv(**SMALL)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in np.random.default_rng(9).uniform(0, 0.5, (20, 4)):
            out.append(env.step(a)[0])
        return np.stack(out), env.bar

    a, bar_a = episode(5)
    b, bar_b = episode(5)
    np.testing.assert_array_equal(a, b)
    assert bar_a == bar_b != episode(6)[1]


def test_render_modes():
    env = PortfolioEnv(**SMALL, render_mode="ansi")
    env.reset(seed=0)
    env.step(np.array([0.4, 0.3, 0.0, 0.0]))
    line = env.render()
    assert "equity" in line and "asset_0 +40%" in line and "cash 3" in line
    env = PortfolioEnv(**SMALL, render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.array([0.4, 0.3, 0.0, 0.0]))
    image = env.render()
    assert image.shape == (400, 640, 3) and image.dtype == np.uint8
    assert PortfolioEnv(**SMALL).render() is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weights": "long_flat"}, "weights must be one of"),
        ({"weights": "long_short", "action_transform": "softmax"}, "softmax"),
        ({"max_gross": 1.0, "max_net": 2.0}, "max_net <= max_gross"),
        ({"commission": [0.001, 0.002]}, r"commission must be a number or 4 numbers"),
        ({"commission": [0.001, 0.002, -0.1, 0.0]}, r"commission\[2\] must be in"),
        ({"slippage": [0.4, 0.4, 0.4, 0.4], "commission": 0.5, "weights": "long_short", "max_gross": 2.0}, "must stay below 1"),
        ({"rebalance_band": 1.5}, "rebalance_band"),
        ({"window_size": 0}, "window_size"),
        ({"observation_mode": "image"}, "observation_mode"),
        ({"windowsize": 3}, "unexpected keyword"),
        ({"episode_length": 0}, "episode_length"),
        ({"data": "sample:djia", "slippage": {"model": "sqrt_impact"}}, "close-only"),
    ],
)  # fmt: skip
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PortfolioEnv(**{**SMALL, **kwargs})


@pytest.mark.parametrize(
    "action, match",
    [
        (np.full(3, 0.1), r"action must have shape \(4,\)"),
        (np.array([0.1, np.nan, 0.1, 0.1]), "NaN at index"),
        (
            np.array([0.1, -0.2, 0.1, 0.1]),
            "-0.2 at index \\[1\\] is a negative weight in long-only mode",
        ),
        (np.array([0.1, 1.5, 0.1, 0.1]), "outside the space"),
        ("buy", "not an array of numbers"),
    ],
)
def test_bad_actions_raise_value_error_naming_the_problem(action, match):
    env = PortfolioEnv(**SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_bankruptcy_terminates():
    frame = wide_panel(40, 2)
    frame.loc[frame.index[6] :, ("A0", "close")] *= 0.01  # a crash the short side cannot survive...
    frame.loc[frame.index[6] :, ("A0", "low")] *= 0.01
    crash = frame.copy()
    for f in ("open", "high", "low", "close"):
        crash.loc[crash.index[6] :, ("A1", f)] = frame.loc[frame.index[6] :, ("A1", f)] * 50.0
    env = PortfolioEnv(crash, features=(), window_size=1, weights="long_short", episode_length=None)
    env.reset(options={"start": 4})
    _, _, terminated, truncated, _ = env.step(np.array([0.0, -1.0]))  # short A1, filled at bar 5
    _, reward, terminated, truncated, info = env.step(np.array([0.0, -1.0]))  # A1 x50 at bar 6
    assert terminated and not truncated and info["equity"] == 0.0 and reward < -10
