"""TradingVectorEnv: equals N single envs, gymnasium 1.0 NEXT_STEP autoreset, make_vec, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from quantgym import ENV_ID
from quantgym.envs import TradingEnv, TradingVectorEnv
from quantgym.envs.layout import STEP_INFO_KEYS
from tests.conftest import random_walk_frame

pytestmark = pytest.mark.simd_parity

N_ENVS, N_STEPS = 4, 70
VOLATILE = random_walk_frame(700, seed=5, vol=0.04)


def sample_actions(action_type, rng):
    if action_type == "continuous":
        return rng.uniform(-1, 1, (N_STEPS, N_ENVS, 1)).astype(np.float32)
    return rng.integers(0, 3, (N_STEPS, N_ENVS))


def run_single_envs(kwargs, actions, seed, extra_keys=()):
    """N single envs driven with gymnasium's NEXT_STEP autoreset semantics by hand; the
    ``extra_keys`` of ``info`` are recorded too (0 on a reset step, as the vector env does)."""
    envs = [TradingEnv(**kwargs) for _ in range(N_ENVS)]
    first = [e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]
    done = [False] * N_ENVS
    out = {
        k: [] for k in ("obs", "reward", "terminated", "truncated", "equity", "bar", *extra_keys)
    }
    for step_actions in actions:
        row = {k: [] for k in out}
        for i, env in enumerate(envs):
            if done[i]:
                obs, info = env.reset()
                r, te, tr = 0.0, False, False
            else:
                obs, r, te, tr, info = env.step(step_actions[i])
            done[i] = te or tr
            extra = [float(info.get(k, 0.0)) for k in extra_keys]
            for k, v in zip(
                out, (obs, r, te, tr, info["equity"], info["bar"], *extra), strict=True
            ):
                row[k].append(v)
        for k in out:
            out[k].append(np.array(row[k]))
    return np.stack(first), {k: np.stack(v) for k, v in out.items()}


def run_vector_env(kwargs, actions, seed, extra_keys=()):
    venv = TradingVectorEnv(N_ENVS, **kwargs)
    first, _ = venv.reset(seed=seed)
    out = {
        k: [] for k in ("obs", "reward", "terminated", "truncated", "equity", "bar", *extra_keys)
    }
    for step_actions in actions:
        obs, r, te, tr, info = venv.step(step_actions)
        extra = [np.asarray(info[k], dtype=np.float64) for k in extra_keys]
        for k, v in zip(out, (obs, r, te, tr, info["equity"], info["bar"], *extra), strict=True):
            out[k].append(np.array(v))
    return first, {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
@pytest.mark.parametrize("reward", ["log_return", "differential_sharpe", "risk_adjusted"])
@pytest.mark.parametrize("market", ["regime", "volatile"])
def test_vector_env_equals_single_envs(action_type, reward, market):
    kwargs = dict(action_type=action_type, reward=reward, episode_length=15, window_size=6, borrow_rate=1e-4,
                  slippage="volatility", fixed_fee=0.5)  # fmt: skip
    if market == "volatile":
        kwargs.update(
            data=VOLATILE, positions=(-6.0, 0.0, 6.0), max_leverage=6.0, episode_length=40
        )
    actions = sample_actions(action_type, np.random.default_rng(1))
    first_s, single = run_single_envs(kwargs, actions, seed=11)
    first_v, vector = run_vector_env(kwargs, actions, seed=11)
    np.testing.assert_array_equal(first_v, first_s)
    for key in ("terminated", "truncated", "bar"):
        np.testing.assert_array_equal(vector[key], single[key], err_msg=key)
    for key in ("obs", "reward", "equity"):
        np.testing.assert_allclose(vector[key], single[key], rtol=1e-12, atol=1e-12, err_msg=key)
    ended = single["terminated"] | single["truncated"]
    assert ended.any(), "no episode ended: autoreset untested"
    if market == "volatile" and action_type == "discrete":
        assert single["terminated"].any(), "no bankruptcy: termination path untested"


def test_make_vec_returns_native_vector_env_and_accepts_max_episode_steps():
    venv = gym.make_vec(ENV_ID, num_envs=3, window_size=4)
    assert isinstance(venv, TradingVectorEnv) and venv.num_envs == 3
    assert venv.observation_space.shape == (3, venv.single_observation_space.shape[0])
    short = TradingVectorEnv(2, max_episode_steps=3)
    short.reset(seed=0)
    truncs = [short.step(np.array([1, 1]))[3].all() for _ in range(3)]
    assert truncs == [False, False, True]


def test_autoreset_step_ignores_action_returns_zero_reward_and_masks_step_infos():
    venv = TradingVectorEnv(2, episode_length=2)
    venv.reset(seed=0)
    venv.step(np.array([2, 2]))
    *_, truncated, _ = venv.step(np.array([2, 2]))
    assert truncated.all()
    obs, reward, terminated, truncated, info = venv.step(np.array([0, 0]))
    np.testing.assert_array_equal(reward, 0.0)
    assert not terminated.any() and not truncated.any()
    np.testing.assert_array_equal(info["position"], 0.0)  # the action was ignored
    assert not info["_fees"].any() and info["_equity"].all()
    np.testing.assert_array_equal(info["equity"], 10_000.0)
    np.testing.assert_array_equal(obs[:, -5:], 0.0)  # fresh accounts


def test_infos_follow_gymnasium_mask_convention():
    venv = TradingVectorEnv(3, episode_length=5)
    _, info = venv.reset(seed=0)
    assert {"equity", "_equity", "bar", "_bar", "regime", "_regime"} <= set(info)
    *_, info = venv.step(np.array([0, 1, 2]))
    for key in (
        "equity",
        "position",
        "trade",
        "fees",
        "slippage_cost",
        "borrow_cost",
        "bar",
        "timestamp",
    ):
        assert info[key].shape == (3,) and info[f"_{key}"].dtype == bool


def test_returned_arrays_are_not_mutated_by_later_steps():
    venv = TradingVectorEnv(2, episode_length=1)
    _, info0 = venv.reset(seed=0)
    bars0 = info0["bar"].copy()
    obs, *_, info = venv.step(np.array([2, 0]))
    kept = {k: np.array(v) for k, v in info.items()}
    venv.step(np.array([1, 1]))  # autoreset step
    venv.reset(seed=1)
    np.testing.assert_array_equal(info0["bar"], bars0)
    for k, v in kept.items():
        np.testing.assert_array_equal(info[k], v)


def test_reset_with_start_options():
    venv = TradingVectorEnv(2, episode_length=5)
    bar = venv.first_bar + 3
    _, info = venv.reset(options={"start": bar})
    np.testing.assert_array_equal(info["bar"], [bar, bar])
    _, info = venv.reset(options={"start": [bar, bar + 1]})
    np.testing.assert_array_equal(info["bar"], [bar, bar + 1])


@pytest.mark.parametrize(
    ("kwargs", "actions", "match"),
    [({}, np.array([0, 3]), "outside Discrete"), ({}, np.array([0]), "actions must be"), ({}, np.array([0.5, 1.0]), "integers"),
     ({"action_type": "continuous"}, np.array([[0.1], [1.5]]), "outside Box"),
     ({"action_type": "continuous"}, np.array([[np.nan], [0.0]]), "outside Box")],
)  # fmt: skip
def test_bad_actions_raise(kwargs, actions, match):
    venv = TradingVectorEnv(2, episode_length=5, **kwargs)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        venv.step(actions)


def test_bad_num_envs_and_seeds():
    with pytest.raises(ValueError, match="num_envs"):
        TradingVectorEnv(0)
    with pytest.raises(ValueError, match="seeds"):
        TradingVectorEnv(2).reset(seed=[1, 2, 3])


def test_large_data_fallback_gathers_the_same_observations(monkeypatch):
    """Above the precompute cap the strided window view is gathered instead: same result."""
    import quantgym.envs.vector_env as vector_env

    actions = np.random.default_rng(0).integers(0, 3, (30, 3))
    fast = TradingVectorEnv(3, episode_length=10)
    monkeypatch.setattr(vector_env, "_MAX_PRECOMPUTED_BYTES", 0)
    slow = TradingVectorEnv(3, episode_length=10)
    assert fast._obs_rows is not None and slow._obs_rows is None
    np.testing.assert_array_equal(fast.reset(seed=4)[0], slow.reset(seed=4)[0])
    for a in actions:
        np.testing.assert_array_equal(fast.step(a)[0], slow.step(a)[0])


def test_render_ansi_shows_first_account_and_rgb_array_is_refused():
    venv = TradingVectorEnv(2, episode_length=5, render_mode="ansi")
    venv.reset(seed=0)
    *_, info = venv.step(np.array([2, 0]))
    (line,) = venv.render()
    assert f"{info['equity'][0]:,.2f}" in line
    with pytest.raises(ValueError, match="'ansi' only"):
        TradingVectorEnv(2, render_mode="rgb_array")


REALISM_OPTIONS = {
    "financing": dict(financing_rate=2e-4),
    "margin_terminate": dict(maintenance_margin=0.1, liquidation_fee=0.005),
    "margin_flat": dict(maintenance_margin=0.2, on_liquidation="flat", financing_rate=1e-4),
    "every_bar": dict(rebalance="every_bar"),
    "sqrt_impact": dict(slippage={"model": "sqrt_impact", "impact": 2.0}, initial_equity=1e7),
    "capped_impact": dict(slippage={"model": "sqrt_impact", "max_participation": 0.2},
                          initial_equity=3e6, rebalance="every_bar"),
    "all": dict(slippage={"model": "sqrt_impact", "max_participation": 0.3}, initial_equity=3e6,
                maintenance_margin=0.15, financing_rate=1e-4, rebalance="every_bar"),
}  # fmt: skip


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
@pytest.mark.parametrize("option", sorted(REALISM_OPTIONS))
def test_vector_env_equals_single_envs_with_realism_options(action_type, option):
    kwargs = dict(data=VOLATILE, action_type=action_type, positions=(-6.0, 0.0, 6.0), max_leverage=6.0,
                  episode_length=40, window_size=6, borrow_rate=1e-4, fixed_fee=0.5,
                  **REALISM_OPTIONS[option])  # fmt: skip
    actions = sample_actions(action_type, np.random.default_rng(2))
    # every info value the options add (liquidated, participation, unfilled, ...) must agree too
    extra = tuple(k for k in TradingEnv(**kwargs).layout.info_keys
                  if k in ("fees", "slippage_cost", "borrow_cost", "trade", "position")
                  or k not in STEP_INFO_KEYS)  # fmt: skip
    first_s, single = run_single_envs(kwargs, actions, seed=5, extra_keys=extra)
    first_v, vector = run_vector_env(kwargs, actions, seed=5, extra_keys=extra)
    np.testing.assert_array_equal(first_v, first_s)
    for key in ("terminated", "truncated", "bar"):
        np.testing.assert_array_equal(vector[key], single[key], err_msg=key)
    for key in ("obs", "reward", "equity", *extra):
        np.testing.assert_allclose(vector[key], single[key], rtol=1e-10, atol=1e-9, err_msg=key)
    assert (single["terminated"] | single["truncated"]).any(), "no episode ended"
    if "margin" in option and action_type == "discrete":
        assert single["terminated"].any() or option == "margin_flat"


@pytest.mark.parametrize("option", sorted(REALISM_OPTIONS))
def test_both_envs_report_the_layouts_info_record(option):
    kwargs = dict(data=VOLATILE, episode_length=10, window_size=4, **REALISM_OPTIONS[option])
    env, venv = TradingEnv(**kwargs), TradingVectorEnv(2, **kwargs)
    env.reset(seed=0)
    venv.reset(seed=0)
    *_, info = env.step(2)
    *_, vinfo = venv.step(np.array([2, 0]))
    assert tuple(info) == env.layout.info_keys == venv.layout.info_keys
    assert {k for k in vinfo if not k.startswith("_")} == set(env.layout.info_keys)


def _trajectory(venv, actions):
    """Observations, rewards, flags and equity of ``venv`` driven by ``actions``."""
    out = {k: [] for k in ("obs", "reward", "terminated", "truncated", "equity", "bar")}
    for step_actions in actions:
        obs, r, te, tr, info = venv.step(step_actions)
        for k, v in zip(out, (obs, r, te, tr, info["equity"], info["bar"]), strict=True):
            out[k].append(np.array(v))
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("reward", ["log_return", "differential_sharpe"])
def test_set_state_replays_the_steps_after_get_state(reward):
    """step, get_state, step more, set_state, step again: the same trajectory (short episodes,
    so autoresets and the accounts' RNGs are part of it; differential_sharpe has reward state)."""
    venv = TradingVectorEnv(3, episode_length=6, reward=reward)
    venv.reset(seed=11)
    rng = np.random.default_rng(0)
    venv.step(rng.integers(0, 3, 3))
    for _ in range(6):  # an account whose episode ended is reset on the next step
        _, _, terminated, truncated, _ = venv.step(rng.integers(0, 3, 3))
        if (terminated | truncated).any():
            break
    assert venv.get_state()["accounts"]["autoreset"].any()
    state = venv.get_state()
    actions = rng.integers(0, 3, (20, 3))
    first = _trajectory(venv, actions)
    venv.set_state(state)
    second = _trajectory(venv, actions)
    assert first["truncated"].any()  # new episodes started after get_state
    for key in first:  # same process, same operations: equal to the bit (tolerance 0)
        np.testing.assert_allclose(second[key], first[key], rtol=0, atol=0, err_msg=key)


def test_get_state_is_a_copy_and_set_state_checks_the_shape():
    venv = TradingVectorEnv(2, episode_length=5)
    venv.reset(seed=0)
    state = venv.get_state()
    equity = state["accounts"]["equity"].copy()
    venv.step(np.array([2, 0]))
    np.testing.assert_array_equal(state["accounts"]["equity"], equity)  # later steps: no effect
    with pytest.raises(ValueError, match="shape"):
        TradingVectorEnv(3, episode_length=5).set_state(state)


def test_reset_finished_leaves_the_last_steps_infos_as_they_were():
    """Same-step autoreset (what the SB3 adapter calls) restarts finished accounts without
    rewriting the ``info`` arrays the ending step already returned (its final equity, bar and
    position stay readable)."""
    venv = TradingVectorEnv(2, episode_length=2, window_size=4)
    venv.reset(seed=0)
    venv.step(np.array([2, 0]))
    *_, truncated, info = venv.step(np.array([2, 0]))
    assert truncated.all()
    snapshot = {k: np.array(info[k], copy=True) for k in ("equity", "bar", "position")}
    assert snapshot["equity"][0] != venv.config.initial_equity
    venv.reset_finished()
    for key, value in snapshot.items():
        np.testing.assert_array_equal(info[key], value, err_msg=key)
