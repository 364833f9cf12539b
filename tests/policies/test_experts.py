"""The exact experts of the ``lagged`` and ``crash`` markets: their rules, causality, and that
they beat cash and buy-and-hold over many held-out windows (paired, with a stated margin)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from quantgym import ENV_ID
from quantgym.agents.registry import make_agent
from quantgym.envs.synthetic import SyntheticMarket, generate_market
from quantgym.envs.synthetic_lagged import DEFAULT_LAG_BAND
from quantgym.policies import BuyAndHoldAgent, CrashExpert, LagExpert
from quantgym.policies.experts import flat_band_positions, kelly_positions
from quantgym.policies.references import (
    SYNTHETIC_KINDS,
    expert_policy_name,
    market_kind,
    reference_policy_name,
)

__all__: list[str] = []

N_WINDOWS = 64
WINDOW = 1000
# One-sided 99% normal quantile for the paired lower bound over the windows.
Z_99 = 2.326


def window_growth(kind: str, agent_cls: type, seed: int, n_windows: int = N_WINDOWS) -> np.ndarray:
    """Log growth of ``agent_cls`` on each of ``n_windows`` disjoint ``WINDOW``-bar windows of
    one long ``kind`` market (seeded), all traded at once by a vector env (default costs)."""
    n_bars = 400 + n_windows * WINDOW
    env = gym.make_vec(
        ENV_ID,
        num_envs=n_windows,
        market=kind,
        market_kwargs={"n_bars": n_bars, "seed": seed, "freq": "h"},  # 100k+ bars fit
        features="returns",
        window_size=8,
        episode_length=WINDOW,
    )
    starts = [int(env.unwrapped.first_bar) + i * WINDOW for i in range(n_windows)]
    agent = agent_cls(env=env)
    obs, _ = env.reset(seed=0, options={"start": starts})
    total = np.zeros(n_windows)
    alive = np.ones(n_windows, dtype=bool)
    for _ in range(WINDOW):
        action, _ = agent.predict(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += np.where(alive, reward, 0.0)
        alive &= ~(terminated | truncated)
    assert not alive.any()
    env.close()
    return total


def paired_lower_bound(a: np.ndarray, b: np.ndarray) -> float:
    """One-sided 99% lower confidence bound of the mean of ``a - b`` (normal approximation)."""
    d = a - b
    return float(d.mean() - Z_99 * d.std(ddof=1) / math.sqrt(d.size))


# -- rules -------------------------------------------------------------------------------------


def test_flat_band_positions_trade_only_beyond_the_band() -> None:
    expected = np.array([0.02, 0.001, -0.001, -0.02, 0.0])
    assert flat_band_positions(expected, 0.003).tolist() == [1.0, 0.0, 0.0, -1.0, 0.0]
    assert flat_band_positions(expected, 0.003, allow_short=False).tolist() == [1, 0, 0, 0, 0]


def test_kelly_positions_pick_the_best_growth_net_of_the_band() -> None:
    grid = np.array([-1.0, 0.0, 1.0])
    growth = np.array([[-0.001, 0.0, 0.0005]] * 3)
    current = np.array([-1.0, 0.0, 1.0])
    assert kelly_positions(growth, grid, current, 0.0).tolist() == [1.0, 1.0, 1.0]
    # a band of 3e-4 per unit: moving from flat to long gains 5e-4 - 3e-4 > 0; from short to
    # long 1.5e-3 - 6e-4 > 5e-4 (flat): still long
    assert kelly_positions(growth, grid, current, 3e-4).tolist() == [1.0, 1.0, 1.0]
    # a band of 6e-4: flat stays flat, short moves only to flat (1e-3 - 6e-4 > 1.5e-3 - 1.2e-3)
    assert kelly_positions(growth, grid, current, 6e-4).tolist() == [0.0, 0.0, 1.0]


# -- binding -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "kind"), [(LagExpert, "lagged"), (CrashExpert, "crash")])
def test_experts_refuse_other_markets_and_build_by_name(cls: type, kind: str) -> None:
    with pytest.raises(ValueError, match=kind):
        cls(env=gym.make(ENV_ID, market_kwargs={"n_bars": 700}))
    env = gym.make(ENV_ID, market=kind, market_kwargs={"n_bars": 700})
    agent = make_agent(cls.name, env=env)
    assert isinstance(agent, cls) and not getattr(cls, "privileged", False)
    obs, _ = env.reset(seed=0)
    action, _ = agent.predict(obs)
    assert env.action_space.contains(action)


def test_default_bands_scale_with_the_cost() -> None:
    cheap = gym.make(ENV_ID, market="lagged", market_kwargs={"n_bars": 700}, commission=0.0,
                     slippage=0.00075)  # fmt: skip
    assert LagExpert(env=cheap).band == pytest.approx(DEFAULT_LAG_BAND / 2)
    assert LagExpert(env=cheap, band=0.01).band == 0.01
    with pytest.raises(ValueError, match="band"):
        LagExpert(env=cheap, band=-1.0)


def test_references_and_dataset_experts_of_the_new_markets() -> None:
    assert {"lagged", "crash"} <= set(SYNTHETIC_KINDS)
    for kind, expert in (("lagged", "lag_expert"), ("crash", "crash_expert")):
        assert market_kind(f"synthetic:{kind}") == kind
        assert reference_policy_name(f"synthetic:{kind}") == expert
        assert expert_policy_name(kind) == expert
        env = gym.make(ENV_ID, market=kind, market_kwargs={"n_bars": 700})
        assert reference_policy_name(env.unwrapped.market) == expert


# -- causality -----------------------------------------------------------------------------------


def _spliced(market: SyntheticMarket, t0: int, seed: int) -> SyntheticMarket:
    """``market`` up to bar ``t0``, then another seed's path of the same kind from its close."""
    other = generate_market(market.params["kind"], n_bars=len(market.frame), seed=seed,
                            **({"jump_mean": -0.2} if market.params["kind"] == "crash" else {}))  # fmt: skip
    scale = market.frame["close"].iloc[t0] / other.frame["close"].iloc[t0]
    frame = market.frame.copy()
    prices = ["open", "high", "low", "close"]
    frame.iloc[t0 + 1 :, :4] = other.frame[prices].iloc[t0 + 1 :].to_numpy() * scale
    return SyntheticMarket(frame=frame, regime=market.regime, params=market.params)


@pytest.mark.parametrize(("cls", "kind"), [(LagExpert, "lagged"), (CrashExpert, "crash")])
@pytest.mark.parametrize("t0", [900, 1500])
def test_decisions_up_to_t_ignore_the_future(cls: type, kind: str, t0: int) -> None:
    """Another future (spliced from another seed) changes no decision at bars <= t0, for any
    position held, and changes some later one."""
    market = generate_market(kind, n_bars=2000, seed=3)
    envs = [gym.make(ENV_ID, data=m) for m in (market, _spliced(market, t0, seed=99))]
    experts = [cls(env=e) for e in envs]
    past, future = np.arange(t0 + 1), np.arange(t0 + 1, 2000)
    for held in (-1.0, 0.0, 1.0):
        before = [x.desired_positions(past, np.full(past.size, held)) for x in experts]
        np.testing.assert_array_equal(before[0], before[1])
    after = [x.desired_positions(future, np.zeros(future.size)) for x in experts]
    assert not np.array_equal(after[0], after[1])


# -- quality -------------------------------------------------------------------------------------


def test_lag_expert_beats_cash_and_buy_and_hold_by_a_margin() -> None:
    """64 windows x 1,000 bars at 15 bp: the paired 99% lower bound of the expert's excess log
    growth per window is above 0.3 (3 bp per bar) over both cash and buy-and-hold."""
    expert = window_growth("lagged", LagExpert, seed=7)
    hold = window_growth("lagged", BuyAndHoldAgent, seed=7)
    assert paired_lower_bound(expert, np.zeros(N_WINDOWS)) > 0.3
    assert paired_lower_bound(expert, hold) > 0.3


def test_crash_expert_beats_cash() -> None:
    """64 windows x 1,000 bars at 15 bp: the paired 99% lower bound of the expert's log growth
    per window is above 0.05."""
    expert = window_growth("crash", CrashExpert, seed=7)
    assert paired_lower_bound(expert, np.zeros(expert.size)) > 0.05


@pytest.mark.slow
def test_crash_expert_beats_buy_and_hold() -> None:
    """256 windows x 1,000 bars at 15 bp (crashes make single windows noisy; the expected edge
    over buy-and-hold is ~0.08 per window against a paired std of ~0.3): the paired 99% lower
    bound of the expert's excess log growth over buy-and-hold is above 0 (~3 s)."""
    expert = window_growth("crash", CrashExpert, seed=7, n_windows=256)
    hold = window_growth("crash", BuyAndHoldAgent, seed=7, n_windows=256)
    assert paired_lower_bound(expert, hold) > 0.0
