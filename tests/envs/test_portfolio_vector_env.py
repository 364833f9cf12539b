"""PortfolioVectorEnv: equals N single envs within 1e-12, NEXT_STEP autoreset, make_vec, infos."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from quantgym import PORTFOLIO_ENV_ID
from quantgym.envs import PanelData, PortfolioEnv, PortfolioVectorEnv
from quantgym.envs.portfolio.layout import STEP_INFO_KEYS
from tests.envs.portfolio_frames import blank_rows, wide_panel

pytestmark = pytest.mark.simd_parity

N_ENVS, N_STEPS = 4, 60
SMALL = {"market_kwargs": {"n_bars": 600, "n_assets": 5}, "normalize_window": 40}
UNIVERSE = blank_rows(blank_rows(blank_rows(wide_panel(300, 4, seed=7, vol=0.02), "A1", slice(0, 120)),
                                 "A2", slice(230, 300)), "A3", [150, 151, 170])  # fmt: skip
CASES = {
    "long_only": {},
    "long_short": {"weights": "long_short", "max_gross": 1.5, "max_net": 0.5, "borrow_rate": 1e-4,
                   "financing_rate": 1e-4},
    "band_fixed_fee": {"rebalance_band": 0.03, "fixed_fee": 0.5, "commission": [0.001, 0.002, 0.0, 0.003, 0.001]},
    "sqrt_impact": {"slippage": {"model": "sqrt_impact", "half_spread": 2e-4, "impact": 0.5}, "initial_equity": 1e8},
    "softmax": {"action_transform": "softmax", "reward": "differential_sharpe"},
    "risk_adjusted": {"reward": "risk_adjusted", "slippage": "volatility"},
}  # fmt: skip


def actions_for(space, rng):
    low, high = float(space.low.flat[0]), float(space.high.flat[0])
    shape = (N_STEPS, N_ENVS, *space.shape)
    a = rng.uniform(low, high, shape) * (rng.random(shape) < 0.7)
    return a


def run_single_envs(kwargs, actions, seed):
    envs = [PortfolioEnv(**kwargs) for _ in range(N_ENVS)]
    first = [e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]
    done = [False] * N_ENVS
    out = {
        k: []
        for k in ("obs", "reward", "terminated", "truncated", "equity", "bar", "fees", "weights")
    }
    for step_actions in actions:
        row = {k: [] for k in out}
        for i, env in enumerate(envs):
            if done[i]:
                obs, info = env.reset()
                r, te, tr = 0.0, False, False
                info = {**info, "fees": 0.0}
            else:
                obs, r, te, tr, info = env.step(step_actions[i])
            done[i] = te or tr
            for k, v in zip(out, (obs, r, te, tr, info["equity"], info["bar"], info["fees"], info["weights"]),
                            strict=True):  # fmt: skip
                row[k].append(v)
        for k in out:
            out[k].append(np.array(row[k]))
    return np.stack(first), {k: np.stack(v) for k, v in out.items()}


def run_vector_env(kwargs, actions, seed):
    venv = PortfolioVectorEnv(N_ENVS, **kwargs)
    first, _ = venv.reset(seed=seed)
    out = {
        k: []
        for k in ("obs", "reward", "terminated", "truncated", "equity", "bar", "fees", "weights")
    }
    for step_actions in actions:
        obs, r, te, tr, info = venv.step(step_actions)
        for k, v in zip(out, (obs, r, te, tr, info["equity"], info["bar"], info["fees"], info["weights"]),
                        strict=True):  # fmt: skip
            out[k].append(np.array(v))
    return first, {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_vector_env_equals_single_envs(case):
    kwargs = {**SMALL, "window_size": 4, "episode_length": 25, **CASES[case]}
    space = PortfolioEnv(**kwargs).action_space
    actions = actions_for(space, np.random.default_rng(1))
    first_s, single = run_single_envs(kwargs, actions, seed=11)
    first_v, vector = run_vector_env(kwargs, actions, seed=11)
    np.testing.assert_array_equal(first_v, first_s)
    for key in ("terminated", "truncated", "bar"):
        np.testing.assert_array_equal(vector[key], single[key], err_msg=key)
    for key in ("obs", "reward", "equity", "fees", "weights"):
        np.testing.assert_allclose(vector[key], single[key], rtol=1e-12, atol=1e-12, err_msg=key)
    assert (single["truncated"]).any(), "no episode ended: autoreset untested"


def test_vector_env_equals_single_envs_on_a_changing_universe():
    panel = PanelData.from_source(UNIVERSE, features=("log_return",), normalize_window=10)
    kwargs = {"data": panel, "window_size": 3, "episode_length": 80, "commission": 0.002}
    actions = actions_for(PortfolioEnv(**kwargs).action_space, np.random.default_rng(2))
    _, single = run_single_envs(kwargs, actions, seed=3)
    _, vector = run_vector_env(kwargs, actions, seed=3)
    for key in ("obs", "reward", "equity", "weights"):
        np.testing.assert_allclose(vector[key], single[key], rtol=1e-12, atol=1e-12, err_msg=key)
    assert (single["weights"][..., 2] == 0).any() and (single["weights"][..., 1] == 0).any()


def test_dict_observations_equal_the_flat_parts():
    flat = PortfolioVectorEnv(2, window_size=3, **SMALL)
    parts = PortfolioVectorEnv(2, window_size=3, observation_mode="dict", **SMALL)
    obs_f, _ = flat.reset(seed=0)
    obs_d, _ = parts.reset(seed=0)
    assert isinstance(parts.observation_space, gym.spaces.Dict)
    for name, value in flat.layout.split(obs_f).items():
        np.testing.assert_array_equal(obs_d[name], value)
        assert parts.observation_space[name].shape == (2, *flat.layout.shapes[name])


def test_make_vec_returns_native_vector_env_and_accepts_max_episode_steps():
    venv = gym.make_vec(PORTFOLIO_ENV_ID, num_envs=3, window_size=4, **SMALL)
    assert isinstance(venv, PortfolioVectorEnv) and venv.num_envs == 3
    assert venv.observation_space.shape == (3, venv.single_observation_space.shape[0])
    short = PortfolioVectorEnv(2, max_episode_steps=3, **SMALL)
    short.reset(seed=0)
    truncs = [short.step(np.zeros((2, 5)))[3].all() for _ in range(3)]
    assert truncs == [False, False, True]


def test_autoreset_step_ignores_action_returns_zero_reward_and_masks_step_infos():
    venv = PortfolioVectorEnv(2, episode_length=2, **SMALL)
    venv.reset(seed=0)
    full = np.full((2, 5), 0.2)
    venv.step(full)
    *_, truncated, _ = venv.step(full)
    assert truncated.all()
    obs, reward, terminated, truncated, info = venv.step(full)
    np.testing.assert_array_equal(reward, 0.0)
    assert not terminated.any() and not truncated.any()
    np.testing.assert_array_equal(info["weights"], 0.0)  # the action was ignored
    assert not info["_fees"].any() and info["_equity"].all()
    np.testing.assert_array_equal(info["equity"], 10_000.0)
    np.testing.assert_array_equal(venv.layout.split(obs)["weights"][:, -1], 1.0)  # all cash


def test_infos_carry_every_step_key_with_masks():
    venv = PortfolioVectorEnv(3, episode_length=5, **SMALL)
    _, info = venv.reset(seed=0)
    assert set(venv.layout.reset_info_keys) <= set(info)
    *_, info = venv.step(np.full((3, 5), 0.1))
    assert set(STEP_INFO_KEYS) | {"regime"} <= set(info)
    for key in STEP_INFO_KEYS:
        assert info[key].shape[0] == 3 and info[f"_{key}"].dtype == bool
    assert info["weights"].shape == (3, 5) and info["trades"].shape == (3, 5)


def test_returned_arrays_are_not_mutated_by_later_steps():
    venv = PortfolioVectorEnv(2, episode_length=1, **SMALL)
    _, info0 = venv.reset(seed=0)
    kept0 = {k: np.array(v) for k, v in info0.items()}
    obs, *_, info = venv.step(np.full((2, 5), 0.2))
    kept = {k: np.array(v) for k, v in info.items()}
    obs_kept = obs.copy()
    venv.reset_finished()
    venv.step(np.full((2, 5), 0.1))
    for k, v in info.items():
        np.testing.assert_array_equal(v, kept[k], err_msg=k)
    for k, v in info0.items():
        np.testing.assert_array_equal(v, kept0[k], err_msg=k)
    np.testing.assert_array_equal(obs, obs_kept)


def test_bad_actions_name_the_problem():
    venv = PortfolioVectorEnv(2, **SMALL)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        venv.step(np.full((2, 5), np.nan))
    with pytest.raises(ValueError, match="negative weight in long-only"):
        venv.step(np.full((2, 5), -0.1))
    with pytest.raises(ValueError, match="rgb_array"):
        PortfolioVectorEnv(2, render_mode="rgb_array", **SMALL)
    assert PortfolioVectorEnv(2, render_mode="ansi", **SMALL).render()[0].count("|") >= 4
