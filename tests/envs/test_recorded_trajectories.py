"""With margin off and ``rebalance="on_change"`` the envs book what they booked at commit 068a7fc,
before margin, financing, liquidation and impact existed.

``data/trajectories_v0.npz`` holds every step's observation, reward and info values of five
configurations, single env and vector env (``"<case>/<single|vector>/<key>"``). It was recorded
on numpy's baseline SIMD path by running this file as a script::

    NPY_DISABLE_CPU_FEATURES="$(python -m quantgym.machine --dispatched)" \\
        python -m tests.envs.test_recorded_trajectories

Before the SHA-256 digests that commit 068a7fc recorded on an AVX2 machine were retired, these
arrays were checked to hash to exactly those digests, so the recording *is* the v0 behaviour.

Why a tolerance and not equality: numpy dispatches ``np.exp``/``np.log`` to SIMD kernels chosen
by the CPU (AVX2, AVX-512, NEON ...) that differ from each other and from the C library by at
most one ulp (measured: 1e6 inputs in [0.5, 2] on AVX-512, max 1 ulp). The synthetic prices
inherit that ulp, and so does everything booked on them. Across the paths measured here
(baseline, AVX2, AVX-512) the largest difference on these trajectories is 1.2e-14 relative
(equity) and 4.7e-15 absolute (rewards near 0). ``RTOL``/``ATOL`` leave three orders of magnitude
above that and stay five below the smallest economic error a bug would make (a basis point of
cost is 1e-4 of notional). Observations are float32, compared to a few float32 ulps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantgym.envs import TradingEnv, TradingVectorEnv
from tests.conftest import random_walk_frame

pytestmark = pytest.mark.simd_parity

RECORDING = Path(__file__).parent / "data" / "trajectories_v0.npz"
N_STEPS = 120
INFO_KEYS = ("equity", "position", "trade", "fees", "slippage_cost", "borrow_cost", "bar")
RTOL, ATOL = 1e-11, 1e-12  # float64 values: see the module docstring
OBS_RTOL, OBS_ATOL = 1e-6, 1e-7  # float32 observations: a few float32 ulps
# math.log (single env) vs numpy's SIMD log (vector env): at most 1 ulp of a reward of <= ~1
REWARD_ATOL = 1e-15

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


def _stack(out: dict[str, list]) -> dict[str, np.ndarray]:
    return {
        k: np.asarray(v, dtype=np.float32 if k == "obs" else np.float64) for k, v in out.items()
    }


def single_trajectory(case: str) -> dict[str, np.ndarray]:
    """One env, seed 3, 120 seeded actions, reset after each episode end."""
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
    return _stack(out)


def vector_trajectory(case: str) -> dict[str, np.ndarray]:
    """Three envs in one vector env, seed 3, 120 seeded action rows (NEXT_STEP autoreset)."""
    venv = TradingVectorEnv(3, **_kwargs(case))
    obs, _ = venv.reset(seed=3)
    out: dict[str, list] = {"obs": [obs], "reward": [], **{k: [] for k in INFO_KEYS}}
    for a in _actions(venv.single_action_space, N_STEPS, 7, num_envs=3):
        obs, r, _, _, info = venv.step(np.asarray(a))
        out["obs"].append(obs)
        out["reward"].append(r)
        for k in INFO_KEYS:
            out[k].append(info[k])
    return _stack(out)


def record() -> dict[str, np.ndarray]:
    arrays = {}
    for case in CASES:
        for kind, run in (("single", single_trajectory), ("vector", vector_trajectory)):
            arrays.update({f"{case}/{kind}/{k}": v for k, v in run(case).items()})
    return arrays


@pytest.fixture(scope="module")
def recording():
    with np.load(RECORDING) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", ["single", "vector"])
def test_trajectories_equal_the_recording(case, kind, recording):
    got = single_trajectory(case) if kind == "single" else vector_trajectory(case)
    assert sorted(got) == sorted(
        k.rsplit("/", 1)[1] for k in recording if k.startswith(f"{case}/{kind}/")
    )
    for key, value in got.items():
        expected = recording[f"{case}/{kind}/{key}"]
        assert value.shape == expected.shape, key
        if key in ("position", "bar"):  # chosen, never computed: exact on every CPU
            np.testing.assert_array_equal(value, expected, err_msg=key)
        elif key == "obs":
            np.testing.assert_allclose(value, expected, rtol=OBS_RTOL, atol=OBS_ATOL, err_msg=key)
        else:
            np.testing.assert_allclose(value, expected, rtol=RTOL, atol=ATOL, err_msg=key)


def test_the_recording_is_not_trivial(recording):
    """The recorded runs trade, pay costs and end episodes, so the comparison above can fail."""
    for case in CASES:
        single = {k: recording[f"{case}/single/{k}"] for k in ("trade", "fees", "reward")}
        assert np.count_nonzero(single["trade"]) > 10, case
        assert single["fees"].sum() > 0, case
        assert np.ptp(single["reward"]) > 0, case
    assert len(recording["volatile_6x/single/obs"]) > N_STEPS + 1  # episodes ended and reset


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
def test_the_options_path_with_the_options_off_books_what_v0_books(
    seed, acts, commission, slippage, borrow, leverage
):
    """Property: with margin off, no financing and ``rebalance="on_change"``, the ledger path
    the options run through books exactly what v0's path (pinned by the recording above)
    books, for any costs, leverage and actions, in both envs. The two single envs share every
    operation, so they agree bit for bit on any CPU; the vector env takes its log from numpy's
    SIMD kernel, so its reward may differ from ``math.log``'s by an ulp (``REWARD_ATOL``)."""
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
        assert (r1, te1, tr1) == (r2, te2, tr2) and (te1, tr1) == (tev[0], trv[0])
        np.testing.assert_allclose(rv, [r1, r1], rtol=0, atol=REWARD_ATOL)
        for k in INFO_KEYS:
            assert i1[k] == i2[k] == iv[k][0], k
        if te1 or tr1:
            break


if __name__ == "__main__":
    np.savez_compressed(RECORDING, **record())
    print(f"wrote {RECORDING}")
