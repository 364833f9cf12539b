"""``features="returns[+gaps][+volume]"``: raw normalised returns, causal, in the env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from quantgym import ENV_ID
from quantgym.envs import check_lookahead
from quantgym.envs.features import (
    CLIP,
    RETURN_WARMUP,
    compute_features,
    raw_return_features,
    return_feature_names,
)
from tests.conftest import random_walk_frame
from tests.envs.test_lookahead import perturb_after, trajectory

__all__: list[str] = []

FRAME = random_walk_frame(700, seed=13)
WINDOW = 60


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("returns", ("log_return",)),
        ("returns+volume", ("log_return", "volume_z")),
        ("returns+gaps", ("log_return", "gap_return", "intraday_return")),
        ("returns+volume+gaps", ("log_return", "gap_return", "intraday_return", "volume_z")),
    ],
)
def test_names_follow_the_spec(spec: str, names: tuple[str, ...]) -> None:
    assert return_feature_names(spec) == names
    fs = compute_features(FRAME, spec, normalize_window=WINDOW)
    assert fs.names == names and fs.values.shape == (len(FRAME), len(names))
    assert fs.warmup == max(RETURN_WARMUP[n] for n in names) + WINDOW - 1
    assert np.isnan(fs.values[: fs.warmup]).all() and np.isfinite(fs.values[fs.warmup :]).all()


def test_raw_returns_decompose_the_bar() -> None:
    raw = raw_return_features(FRAME)
    close = FRAME["close"].to_numpy()
    np.testing.assert_allclose(
        raw["log_return"].iloc[1:], np.log(close[1:] / close[:-1]), rtol=1e-12
    )
    np.testing.assert_allclose(
        (raw["gap_return"] + raw["intraday_return"]).iloc[1:], raw["log_return"].iloc[1:],
        rtol=1e-9, atol=1e-15,
    )  # fmt: skip
    leading = {c: int(raw[c].isna().to_numpy().argmin()) for c in raw.columns}
    assert leading == RETURN_WARMUP


def test_returns_are_scaled_by_their_trailing_rms_not_demeaned() -> None:
    fs = compute_features(FRAME, "returns+gaps+volume", normalize_window=WINDOW)
    raw = raw_return_features(FRAME)
    for t in (fs.warmup, 400, len(FRAME) - 1):
        past = raw.iloc[t - WINDOW + 1 : t + 1]
        for j, name in enumerate(fs.names):
            x = raw[name].iloc[t]
            if name == "volume_z":
                expected = (x - past[name].mean()) / past[name].std(ddof=1)
            else:
                expected = x / np.sqrt((past[name] ** 2).mean())
            assert fs.values[t, j] == pytest.approx(np.clip(expected, -CLIP, CLIP), rel=1e-8)


def test_log_return_and_volume_equal_the_default_columns() -> None:
    default = compute_features(FRAME, ["log_return", "volume_z"], normalize_window=WINDOW)
    returns = compute_features(FRAME, "returns+volume", normalize_window=WINDOW)
    rows = slice(max(default.warmup, returns.warmup), None)
    np.testing.assert_allclose(returns.values[rows], default.values[rows], rtol=1e-12, atol=0)


@pytest.mark.parametrize("spec", ["returns", "returns+gaps+volume"])
def test_check_lookahead_passes_strictly(spec: str) -> None:
    report = check_lookahead(FRAME, features=spec, n_cutoffs=6, normalize_window=WINDOW)
    assert report.passed and report.strict_passed, report.summary()
    assert set(report.feature_names) == set(return_feature_names(spec))


def test_env_observations_and_rewards_ignore_the_future() -> None:
    kwargs = {"features": "returns+gaps+volume", "normalize_window": WINDOW}
    actions = np.random.default_rng(0).integers(0, 3, len(FRAME)).tolist()
    first, obs, rewards = trajectory(FRAME, actions, **kwargs)
    for t in (first + 50, first + 200):
        k = t - first  # obs[k] was taken at bar t; rewards[k - 1] was marked at its close
        _, obs_p, rewards_p = trajectory(perturb_after(FRAME, t, seed=t), actions, **kwargs)
        np.testing.assert_array_equal(obs_p[: k + 1], obs[: k + 1])
        np.testing.assert_array_equal(rewards_p[:k], rewards[:k])
        assert not np.array_equal(obs_p[k + 1 :], obs[k + 1 :])


def test_gym_make_takes_the_option_and_the_window_holds_raw_returns() -> None:
    env = gym.make(ENV_ID, data="synthetic:lagged", features="returns+volume", window_size=8,
                   market_kwargs={"n_bars": 800})  # fmt: skip
    core = env.unwrapped
    assert core.feature_names == ("log_return", "volume_z") and core.n_market_features == 2
    obs, _ = env.reset(seed=0)
    window = obs[: 8 * 2].reshape(8, 2)
    bar = core.bar
    np.testing.assert_array_equal(window, core.market.features32[bar - 7 : bar + 1])
    assert env.unwrapped.config.to_dict()["features"] == "returns+volume"
    env.close()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("return", "features='return'"),
        ("momentum", "'returns'"),
        ("returns+rsi", "returns\\+rsi"),
        ("returns+volume+volume", "distinct"),
        ("", "features=''"),
    ],
)
def test_bad_specs_raise_value_error_naming_features(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compute_features(FRAME, spec)


def test_too_few_rows_names_the_requirement() -> None:
    with pytest.raises(ValueError, match="normalize_window=250"):
        compute_features(FRAME.iloc[:200], "returns")
