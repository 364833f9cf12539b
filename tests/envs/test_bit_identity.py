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


if __name__ == "__main__":
    RECORDING.write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORDING}")
