"""TradingEnv: the env contract, checkers, timing, info, history, determinism, errors."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from quantgym import ENV_ID
from quantgym.envs import ACCOUNT_FEATURES, TradingEnv
from tests.conftest import random_walk_frame, simple_feature_frame

INFO_KEYS = {
    "equity",
    "position",
    "trade",
    "fees",
    "slippage_cost",
    "borrow_cost",
    "bar",
    "timestamp",
}


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
@pytest.mark.parametrize("data", [None, "sample:googl", "sample:eurusd", "synthetic:gbm"])
def test_checkers_pass(data, action_type):
    env = TradingEnv(data, action_type=action_type, episode_length=64)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)


def test_make_with_no_arguments_gives_seeded_regime_market():
    env = gym.make(ENV_ID)
    obs, info = env.reset(seed=0)
    market = env.unwrapped.market
    assert market.name == "synthetic:regime"
    assert "regime" in info and market.market_params["kind"] == "regime"
    assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
    assert gym.make(ENV_ID).unwrapped.market.fingerprint == market.fingerprint


def test_observation_layout_attributes():
    env = TradingEnv(window_size=7)
    u = env.unwrapped
    assert u.window_size == 7
    assert u.n_account_features == len(ACCOUNT_FEATURES) == 5
    assert env.observation_space.shape == (7 * u.n_market_features + 5,)
    assert len(u.feature_names) == u.n_market_features
    obs, _ = env.reset(seed=3)
    window = obs[: 7 * u.n_market_features].reshape(7, u.n_market_features)
    t = u.bar
    np.testing.assert_array_equal(window[-1], u.market.features32[t])
    np.testing.assert_array_equal(window[0], u.market.features32[t - 6])


def test_fill_at_next_open_mark_at_next_close():
    frame = simple_feature_frame(40)
    env = TradingEnv(
        frame, features=["x"], window_size=1, commission=0.001, slippage=0.0005, episode_length=None
    )
    obs, info = env.reset(seed=0)
    t = info["bar"]
    o, c = frame["open"].to_numpy(), frame["close"].to_numpy()
    _, reward, _, _, info = env.step(2)  # long 100%
    units = 10_000.0 / o[t + 1]
    cost = 10_000.0 * (0.001 + 0.0005)
    expected = 10_000.0 - cost + units * (c[t + 1] - o[t + 1])
    assert info["bar"] == t + 1
    assert info["equity"] == pytest.approx(expected, rel=1e-12)
    assert info["fees"] == pytest.approx(10.0) and info["slippage_cost"] == pytest.approx(5.0)
    assert info["trade"] == pytest.approx(1.0)
    assert reward == pytest.approx(math.log(expected / 10_000.0), rel=1e-12)
    # holding: no order, no cost, marked at the next close
    _, _, _, _, info2 = env.step(2)
    assert info2["fees"] == 0.0 and info2["trade"] == 0.0
    assert info2["equity"] == pytest.approx(expected + units * (c[t + 2] - c[t + 1]), rel=1e-12)


def test_info_keys_and_types():
    env = TradingEnv(episode_length=5)
    _, info = env.reset(seed=0)
    assert {"equity", "position", "bar", "timestamp", "regime"} <= set(info)
    _, reward, terminated, truncated, info = env.step(0)
    assert INFO_KEYS | {"regime"} <= set(info)
    assert (
        isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
    )
    assert isinstance(info["timestamp"], np.datetime64)


def test_episode_length_truncates_and_step_after_end_raises():
    env = TradingEnv(episode_length=4)
    env.reset(seed=0)
    flags = [env.step(1)[3] for _ in range(4)]
    assert flags == [False, False, False, True]
    with pytest.raises(ValueError, match="reset"):
        env.step(1)


def test_runs_to_end_of_data_when_episode_length_none(walk_frame):
    env = TradingEnv(walk_frame, episode_length=None, window_size=4)
    _, info = env.reset(seed=0)
    assert info["bar"] == env.first_bar
    steps, truncated = 0, False
    while not truncated:
        *_, truncated, info = env.step(1)
        steps += 1
    assert info["bar"] == len(walk_frame) - 1
    assert steps == len(walk_frame) - 1 - env.first_bar


def test_reset_start_option_by_index_and_timestamp(walk_frame):
    env = TradingEnv(walk_frame, episode_length=10, window_size=4)
    bar = env.first_bar + 5
    assert env.reset(options={"start": bar})[1]["bar"] == bar
    ts = walk_frame.index[bar]
    assert env.reset(options={"start": ts})[1]["bar"] == bar
    with pytest.raises(ValueError, match="outside the tradable bars"):
        env.reset(options={"start": 0})


def test_determinism_same_seed_same_trajectory_different_seed_different_start():
    def run(seed):
        env = TradingEnv(episode_length=50)
        obs, info = env.reset(seed=seed)
        rng = np.random.default_rng(123)
        out = [obs]
        for a in rng.integers(0, 3, 50):
            obs, r, *_ = env.step(int(a))
            out.append(obs)
        return info["bar"], np.stack(out), env.unwrapped.history()

    bar_a, obs_a, hist_a = run(7)
    bar_b, obs_b, hist_b = run(7)
    assert bar_a == bar_b
    np.testing.assert_array_equal(obs_a, obs_b)
    pd.testing.assert_frame_equal(hist_a, hist_b)
    assert len({run(s)[0] for s in range(5)}) > 1


def test_history_and_metrics():
    env = TradingEnv(episode_length=30)
    env.reset(seed=0)
    for a in [2] * 10 + [0] * 10 + [1] * 10:
        env.step(a)
    hist = env.unwrapped.history()
    assert len(hist) == 30
    assert {
        "bar",
        "open",
        "close",
        "position",
        "trade",
        "fees",
        "equity",
        "reward",
        "regime",
    } <= set(hist.columns)
    assert isinstance(hist.index, pd.DatetimeIndex)
    m = env.unwrapped.metrics()
    for key in ("total_return", "annualized_return", "sharpe", "sortino", "max_drawdown", "calmar",
                "turnover", "n_trades", "win_rate", "fees_paid"):  # fmt: skip
        assert key in m
    assert m["n_trades"] == 3
    assert m["fees_paid"] == pytest.approx(hist["fees"].sum())
    assert m["total_return"] == pytest.approx(hist["equity"].iloc[-1] / 10_000.0 - 1.0)


def test_continuous_action_scaled_by_max_leverage():
    env = TradingEnv(action_type="continuous", max_leverage=2.0, episode_length=5)
    env.reset(seed=0)
    *_, info = env.step(np.array([0.25], dtype=np.float32))
    assert info["position"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kwargs", "action"),
    [({}, 3), ({}, -1), ({}, 1.5), ({}, np.array([0, 1])), ({"action_type": "continuous"}, np.array([1.5])),
     ({"action_type": "continuous"}, np.array([np.nan])), ({"action_type": "continuous"}, "x")],
)  # fmt: skip
def test_out_of_space_actions_raise(kwargs, action):
    env = TradingEnv(episode_length=5, **kwargs)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(action)


def test_numpy_integer_actions_accepted():
    env = TradingEnv(episode_length=5)
    env.reset(seed=0)
    assert env.step(np.int64(2))[4]["position"] == 1.0
    assert env.step(np.array(0))[4]["position"] == -1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"window_size": 0}, "window_size"), ({"action_type": "bad"}, "action_type"), ({"positions": []}, "positions"),
     ({"commission": -0.1}, "commission"), ({"slippage": "magic"}, "slippage"), ({"reward": "nope"}, "reward"),
     ({"initial_equity": 0}, "initial_equity"), ({"episode_length": 0}, "episode_length"),
     ({"render_mode": "human"}, "render_mode"), ({"not_an_arg": 1}, "not_an_arg"), ({"max_leverage": 0}, "max_leverage")],
)  # fmt: skip
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TradingEnv(**kwargs)


def test_bankruptcy_terminates():
    frame = simple_feature_frame(30)
    frame.loc[frame.index[10:], ["open", "high", "low", "close"]] *= (
        3.0  # a gap up ruins a 3x short
    )
    frame.loc[frame.index[10], "low"] = frame["close"].iloc[9] * 0.5
    env = TradingEnv(
        frame,
        features=["x"],
        window_size=1,
        positions=(-3.0, 0.0),
        episode_length=None,
        commission=0,
        slippage=0,
    )
    env.reset(options={"start": 5})
    done = False
    for _ in range(10):
        _, reward, done, truncated, info = env.step(0)
        if done:
            break
    assert done and info["equity"] == 0.0 and np.isfinite(reward) and reward < -10


@pytest.mark.parametrize("mode", ["ansi", "rgb_array"])
def test_render_modes(mode):
    env = TradingEnv(episode_length=20, render_mode=mode)
    env.reset(seed=0)
    for a in [2] * 10 + [0] * 10:
        env.step(a)
    out = env.render()
    if mode == "ansi":
        assert isinstance(out, str) and "equity" in out
    else:
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.std() > 0


@pytest.mark.parametrize("reward", ["log_return", "differential_sharpe", "risk_adjusted"])
def test_named_rewards_are_finite(reward):
    env = TradingEnv(episode_length=40, reward=reward)
    env.reset(seed=0)
    rewards = [env.step(a)[1] for a in np.random.default_rng(0).integers(0, 3, 40)]
    assert np.all(np.isfinite(rewards)) and np.std(rewards) > 0


def test_custom_reward_callable_sees_the_ledger():
    env = TradingEnv(episode_length=5, reward=lambda ctx: ctx.equity - ctx.equity_prev)
    env.reset(seed=0)
    _, reward, *_, info = env.step(2)
    assert reward == pytest.approx(info["equity"] - 10_000.0)


@pytest.mark.parametrize(
    "model", ["fixed", "spread", "volatility", {"model": "spread", "spread": 0.002}]
)
def test_slippage_models(model):
    env = TradingEnv(random_walk_frame(400), slippage=model, window_size=4, episode_length=10)
    env.reset(seed=0)
    *_, info = env.step(2)
    assert info["slippage_cost"] > 0


def test_borrow_rate_charges_shorts_only():
    env = TradingEnv(borrow_rate=0.001, episode_length=5, commission=0, slippage=0)
    env.reset(seed=0)
    assert env.step(2)[4]["borrow_cost"] == 0.0
    info = env.step(0)[4]
    assert info["borrow_cost"] == pytest.approx(
        0.001 * -env.unwrapped.units * env.unwrapped.market.close[info["bar"]]
    )
