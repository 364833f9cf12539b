"""With margin off and ``rebalance="on_change"`` trajectories are bit-identical to those of
the env before margin, financing, liquidation and impact existed.

``data/trajectories_v0.json`` holds SHA-256 digests of every step's observation, reward and
info values, recorded with the code of commit 068a7fc by running this file as a script::

    PYTHONPATH=<checkout of 068a7fc> python tests/envs/test_bit_identity.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantgym.envs import TradingEnv, TradingVectorEnv
from tests.conftest import random_walk_frame

RECORDING = Path(__file__).parent / "data" / "trajectories_v0.json"
N_STEPS = 120
INFO_KEYS = ("equity", "position", "trade", "fees", "slippage_cost", "borrow_cost", "bar")

CASES: dict[str, dict] = {
    "default": {},
    "continuous_levered": dict(action_type="continuous", max_leverage=3.0, borrow_rate=1e-4,
                               slippage="volatility", fixed_fee=0.5),
    "volatile_6x": dict(data="volatile", positions=(-6.0, 0.0, 6.0), borrow_rate=1e-4,
                        episode_length=40, window_size=6),
    "googl_sharpe": dict(data="sample:googl", reward="differential_sharpe", slippage="spread",
                         episode_length=200),
    "risk_adjusted": dict(reward="risk_adjusted", positions=(-1.0, -0.5, 0.0, 0.5, 1.0),
                          commission=0.002, episode_length=50),
}  # fmt: skip


def _kwargs(case: str) -> dict:
    kwargs = dict(CASES[case])
    if kwargs.get("data") == "volatile":
        kwargs["data"] = random_walk_frame(700, seed=5, vol=0.04)
    return kwargs


def _actions(env_space, n: int, seed: int, num_envs: int | None = None) -> list:
    rng = np.random.default_rng(seed)
    shape = (n,) if num_envs is None else (n, num_envs)
    if hasattr(env_space, "n"):
        return list(rng.integers(0, env_space.n, shape))
    return list(rng.uniform(-1, 1, (*shape, 1)).astype(np.float32))


def _digest(arrays: list) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
    return h.hexdigest()


def single_digests(case: str) -> dict[str, str]:
    env = TradingEnv(**_kwargs(case))
    obs, _ = env.reset(seed=3)
    out: dict[str, list] = {"obs": [obs], "reward": [], **{k: [] for k in INFO_KEYS}}
    for a in _actions(env.action_space, N_STEPS, 7):
        a = int(a) if np.ndim(a) == 0 else a
        obs, r, terminated, truncated, info = env.step(a)
        out["obs"].append(obs)
        out["reward"].append(r)
        for k in INFO_KEYS:
            out[k].append(info[k])
        if terminated or truncated:
            obs, _ = env.reset()
            out["obs"].append(obs)
    return {k: _digest(v) for k, v in out.items()}


def vector_digests(case: str) -> dict[str, str]:
    venv = TradingVectorEnv(3, **_kwargs(case))
    obs, _ = venv.reset(seed=3)
    out: dict[str, list] = {"obs": [obs], "reward": [], **{k: [] for k in INFO_KEYS}}
    for a in _actions(venv.single_action_space, N_STEPS, 7, num_envs=3):
        obs, r, _, _, info = venv.step(np.asarray(a))
        out["obs"].append(obs)
        out["reward"].append(r)
        for k in INFO_KEYS:
            out[k].append(info[k])
    return {k: _digest(v) for k, v in out.items()}


def record() -> dict:
    return {
        case: {"single": single_digests(case), "vector": vector_digests(case)} for case in CASES
    }


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", ["single", "vector"])
def test_trajectories_are_bit_identical_to_the_recording(case, kind):
    expected = json.loads(RECORDING.read_text())[case][kind]
    got = single_digests(case) if kind == "single" else vector_digests(case)
    assert got == expected


FRAMES = [random_walk_frame(420, seed=s, vol=0.03) for s in range(3)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, len(FRAMES) - 1),
    acts=st.lists(st.integers(0, 2), min_size=1, max_size=40),
    commission=st.floats(0.0, 0.01),
    slippage=st.sampled_from([0.0, 0.002, "volatility", "spread"]),
    borrow=st.floats(0.0, 1e-3),
    leverage=st.sampled_from([1.0, 3.0, 8.0]),
)
def test_the_options_path_with_the_options_off_is_bit_identical_to_v0(
    seed, acts, commission, slippage, borrow, leverage
):
    """Property: with margin off, no financing and ``rebalance="on_change"``, the ledger path
    the options run through books exactly what v0's path (pinned by the recording above)
    books, for any costs, leverage and actions, in both envs."""
    kwargs = dict(data=FRAMES[seed], window_size=4,
                  positions=(-leverage, 0.0, leverage), commission=commission,
                  slippage=slippage, borrow_rate=borrow, episode_length=None,
                  maintenance_margin=None, financing_rate=0.0, rebalance="on_change")  # fmt: skip
    v0, opt = TradingEnv(**kwargs), TradingEnv(**kwargs)
    assert v0._plain
    opt._plain = False  # force the options path
    for env in (v0, opt):
        env.reset(options={"start": env.first_bar})
    venv = TradingVectorEnv(2, **kwargs)
    venv._plain = False
    venv.reset(options={"start": v0.first_bar})
    for a in acts:
        o1, r1, te1, tr1, i1 = v0.step(a)
        o2, r2, te2, tr2, i2 = opt.step(a)
        ov, rv, tev, trv, iv = venv.step(np.array([a, a]))
        assert o1.tobytes() == o2.tobytes() == ov[0].tobytes() == ov[1].tobytes()
        assert (r1, te1, tr1) == (r2, te2, tr2) == (rv[0], tev[0], trv[0])
        for k in INFO_KEYS:
            assert i1[k] == i2[k] == iv[k][0], k
        if te1 or tr1:
            break


if __name__ == "__main__":
    RECORDING.write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORDING}")
