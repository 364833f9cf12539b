"""Baselines, experts and the hindsight oracle: valid actions, causality, quality, exactness."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from quantgym import ENV_ID
from quantgym.agents.base import BaseAgent
from quantgym.agents.registry import make_agent
from quantgym.envs.synthetic import SyntheticMarket, generate_market
from quantgym.envs.vector_env import TradingVectorEnv
from quantgym.policies import (
    BayesFilterExpert,
    BuyAndHoldAgent,
    EnvBinding,
    EpsilonMix,
    FlatAgent,
    HindsightOracle,
    MeanReversionAgent,
    RandomAgent,
    RegimeExpert,
    SMACrossoverAgent,
    hindsight_plan,
)

REGIME = {"market_kwargs": {"n_bars": 1500}}
ALL_AGENTS = [
    RandomAgent,
    FlatAgent,
    BuyAndHoldAgent,
    SMACrossoverAgent,
    MeanReversionAgent,
    RegimeExpert,
    BayesFilterExpert,
    HindsightOracle,
]
CAUSAL_AGENTS = [SMACrossoverAgent, MeanReversionAgent, RegimeExpert, BayesFilterExpert]


def tiny_frame(n: int = 30, seed: int = 0, vol: float = 0.05) -> pd.DataFrame:
    """A volatile random walk with gaps: large moves make the cost chains of the DP matter."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0.0, vol / 2, n))
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.01,
            "low": np.minimum(open_, close) * 0.99,
            "close": close,
            "volume": 1.0,
        },
        index=pd.date_range("2020-01-01", periods=n, freq="D", name="timestamp"),
    )


def run_episode(env: gym.Env, agent, start: int) -> tuple[float, float]:
    """(sum of rewards, final equity) of one episode from ``start``."""
    obs, _ = env.reset(options={"start": start})
    total, done, info = 0.0, False, {}
    episode_start = np.ones(1, dtype=bool)
    while not done:
        action, _ = agent.predict(obs, episode_start=episode_start)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        done = terminated or truncated
        episode_start = np.zeros(1, dtype=bool)
    return total, float(info["equity"])


@pytest.fixture(scope="module")
def single_env():
    env = gym.make(ENV_ID, episode_length=60, **REGIME)
    env.reset(seed=0)
    return env


@pytest.fixture(scope="module")
def vector_env():
    env = gym.make_vec(ENV_ID, num_envs=3, episode_length=60, **REGIME)
    env.reset(seed=0)
    return env


# -- valid actions ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_AGENTS)
def test_single_obs_gives_one_valid_action(cls, single_env):
    obs, _ = single_env.reset(seed=1)
    agent = cls(env=single_env)
    for _ in range(5):
        action, state = agent.predict(obs)
        assert state is None
        assert np.shape(action) == ()
        assert single_env.action_space.contains(np.int64(action))
        obs, *_ = single_env.step(action)


@pytest.mark.parametrize("cls", ALL_AGENTS)
def test_batched_obs_gives_one_valid_action_per_env(cls, vector_env):
    obs, _ = vector_env.reset(seed=2)
    agent = cls(env=vector_env)
    for _ in range(5):
        actions, _ = agent.predict(obs)
        assert actions.shape == (3,) and actions.dtype == np.int64
        assert vector_env.action_space.contains(actions)
        obs, *_ = vector_env.step(actions)


@pytest.mark.parametrize("cls", ALL_AGENTS)
def test_continuous_actions_are_in_the_box(cls):
    single = gym.make(
        ENV_ID, action_type="continuous", max_leverage=2.0, episode_length=30, **REGIME
    )
    vec = gym.make_vec(
        ENV_ID,
        num_envs=2,
        action_type="continuous",
        max_leverage=2.0,
        episode_length=30,
        **REGIME,
    )
    obs, _ = single.reset(seed=0)
    vobs, _ = vec.reset(seed=0)
    action, _ = cls(env=single).predict(obs)
    actions, _ = cls(env=vec).predict(vobs)
    assert action.shape == (1,) and action.dtype == np.float32
    assert actions.shape == (2, 1) and actions.dtype == np.float32
    assert single.action_space.contains(action) and vec.action_space.contains(actions)
    single.step(action)
    vec.step(actions)


def test_desired_positions_map_to_the_nearest_env_action():
    env = gym.make(ENV_ID, positions=(-1.0, -0.5, 0.0, 0.5, 1.0), **REGIME)
    binding = EnvBinding(env)
    assert binding.to_actions(np.array([-1.0, -0.4, 0.1, 0.8, 3.0])).tolist() == [0, 1, 2, 4, 4]
    cont = EnvBinding(gym.make(ENV_ID, action_type="continuous", max_leverage=2.0, **REGIME))
    np.testing.assert_array_equal(
        cont.to_actions(np.array([1.0, -5.0])), np.array([[0.5], [-1.0]], dtype=np.float32)
    )


def test_batch_size_must_match_the_bound_env(single_env, vector_env):
    obs, _ = vector_env.reset(seed=0)
    with pytest.raises(ValueError, match="3 envs"):
        SMACrossoverAgent(env=vector_env).predict(obs[:2])
    with pytest.raises(ValueError, match="single env"):
        SMACrossoverAgent(env=single_env).predict(obs)
    with pytest.raises(ValueError, match="observation must have shape"):
        SMACrossoverAgent(env=single_env).predict(np.zeros(7, dtype=np.float32))


def test_agents_bind_through_the_sb3_adapter(vector_env):
    from quantgym.envs import to_sb3

    sb3_env = to_sb3(vector_env)
    obs = sb3_env.reset()
    actions, _ = RegimeExpert(env=sb3_env).predict(obs)
    assert actions.shape == (3,)
    np.testing.assert_array_equal(actions, RegimeExpert(env=vector_env).predict(obs)[0])


@pytest.mark.parametrize(
    "name",
    [
        "random",
        "flat",
        "buy_and_hold",
        "sma_crossover",
        "mean_reversion",
        "regime_expert",
        "bayes_filter_expert",
        "hindsight_oracle",
    ],
)
def test_registry_builds_every_baseline_by_name(name, single_env):
    agent = make_agent(name, env=single_env)
    assert agent.name == name
    assert agent.uses_future is (name == "hindsight_oracle")


# -- configuration errors ----------------------------------------------------------------------


def test_bad_configs_raise_value_errors(single_env):
    with pytest.raises(ValueError, match="env-bound"):
        SMACrossoverAgent()
    with pytest.raises(ValueError, match="fast"):
        SMACrossoverAgent(env=single_env, fast=50, slow=10)
    with pytest.raises(ValueError, match="num_std"):
        MeanReversionAgent(env=single_env, num_std=0.0)
    with pytest.raises(ValueError, match="band"):
        RegimeExpert(env=single_env, band=-1.0)
    with pytest.raises(ValueError, match="on_deviation"):
        HindsightOracle(env=single_env, on_deviation="sometimes")
    gbm = gym.make(ENV_ID, data="synthetic:gbm", market_kwargs={"n_bars": 1500})
    with pytest.raises(ValueError, match="regime"):
        RegimeExpert(env=gbm)
    real = gym.make(ENV_ID, data=tiny_frame(60), features=["close"], window_size=1)
    with pytest.raises(ValueError, match="market_params"):
        BayesFilterExpert(env=real)
    with pytest.raises(ValueError, match="unexpected keyword|got an unexpected"):
        FlatAgent(env=single_env, window=3)


# -- causality -------------------------------------------------------------------------------


def _perturbed_future(market: SyntheticMarket, t0: int, seed: int) -> SyntheticMarket:
    rng = np.random.default_rng(seed)
    frame = market.frame.copy()
    factor = np.exp(np.cumsum(rng.normal(0.0, 0.03, len(frame) - t0 - 1)))
    for col in ("open", "high", "low", "close"):
        frame.iloc[t0 + 1 :, frame.columns.get_loc(col)] *= factor
    regime = market.regime.copy()
    regime[t0 + 1 :] = rng.integers(0, 3, len(regime) - t0 - 1)
    return SyntheticMarket(frame=frame, regime=regime, params=market.params)


@pytest.mark.parametrize("cls", CAUSAL_AGENTS)
@pytest.mark.parametrize("t0", [400, 900])
def test_signals_up_to_t_ignore_the_future(cls, t0):
    market = generate_market("regime", n_bars=1200, seed=3)
    envs = [gym.make(ENV_ID, data=m) for m in (market, _perturbed_future(market, t0, seed=t0))]
    agents = [cls(env=e) for e in envs]
    bars = np.arange(t0 + 1)
    for current in (-1.0, 0.0, 1.0):
        held = np.full(bars.size, current)
        a, b = (agent.desired_positions(bars, held) for agent in agents)
        np.testing.assert_array_equal(a, b)
    later = np.arange(t0 + 1, 1200)
    held = np.zeros(later.size)
    # Sanity: the perturbation is large enough to change some later decision.
    assert not np.array_equal(
        agents[0].desired_positions(later, held), agents[1].desired_positions(later, held)
    )


def test_banded_experts_hold_inside_the_band(single_env):
    agent = BayesFilterExpert(env=single_env, band=1.0)  # nothing exceeds the band: always hold
    bars = np.arange(500, 520)
    for current in (-1.0, 0.0, 1.0):
        np.testing.assert_array_equal(
            agent.desired_positions(bars, np.full(20, current)), np.full(20, current)
        )


def test_bayes_filter_expert_with_a_filter_window_reads_the_newest_closes_only():
    market = generate_market("regime", n_bars=1200, seed=3)
    t0 = 700
    past = market.frame.copy()
    factor = np.exp(np.random.default_rng(0).normal(0.0, 0.03, t0 - 40))
    for col in ("open", "high", "low", "close"):
        past.iloc[: t0 - 40, past.columns.get_loc(col)] *= factor  # rewrite the distant past
    changed = SyntheticMarket(frame=past, regime=market.regime, params=market.params)
    windowed = [
        BayesFilterExpert(env=gym.make(ENV_ID, data=m), filter_window=30) for m in (market, changed)
    ]
    np.testing.assert_allclose(windowed[0].expected[t0:], windowed[1].expected[t0:], atol=1e-15)
    full = BayesFilterExpert(env=gym.make(ENV_ID, data=market))
    assert not np.allclose(full.expected[t0:], windowed[0].expected[t0:])
    gbm = gym.make(ENV_ID, data="synthetic:gbm", market_kwargs={"n_bars": 1500})
    with pytest.raises(ValueError, match="filter_window applies to the 'regime' market only"):
        BayesFilterExpert(env=gbm, filter_window=30)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="filter_window"):
            BayesFilterExpert(env=gym.make(ENV_ID, data=market), filter_window=bad)


def test_mean_reversion_exits_at_the_mean(single_env):
    agent = MeanReversionAgent(env=single_env)
    bars = np.flatnonzero(agent.ready & np.isnan(agent.zone))
    above = bars[agent.side[bars] > 0][:5]
    below = bars[agent.side[bars] < 0][:5]
    assert agent.desired_positions(above, np.ones(above.size)).tolist() == [0.0] * above.size
    assert agent.desired_positions(above, -np.ones(above.size)).tolist() == [-1.0] * above.size
    assert agent.desired_positions(below, -np.ones(below.size)).tolist() == [0.0] * below.size


# -- quality ------------------------------------------------------------------------------


@pytest.mark.parametrize("expert_cls", [RegimeExpert, BayesFilterExpert])
def test_experts_beat_random_on_the_regime_market(expert_cls):
    env = gym.make(ENV_ID, episode_length=250, **REGIME)
    starts = [400, 700, 1000]
    expert = expert_cls(env=env)
    random_agent = RandomAgent(env=env, seed=0)
    expert_total = sum(run_episode(env, expert, s)[0] for s in starts)
    random_total = sum(run_episode(env, random_agent, s)[0] for s in starts)
    assert expert_total > random_total + 0.3


def test_regime_expert_beats_bayes_filter_expert_which_beats_random():
    env = gym.make(ENV_ID, episode_length=None, **REGIME)
    start = env.unwrapped.first_bar
    regime = run_episode(env, RegimeExpert(env=env), start)[0]
    bayes = run_episode(env, BayesFilterExpert(env=env), start)[0]
    flat = run_episode(env, FlatAgent(env=env), start)[0]
    assert regime > bayes > flat == 0.0


# -- hindsight oracle ----------------------------------------------------------------------


ORACLE_CASES = [
    {"commission": 0.02, "slippage": 0.01},
    {"commission": 0.01, "fixed_fee": 50.0, "borrow_rate": 0.01, "positions": (-1.0, 0.5, 1.0)},
    {"commission": 0.03, "positions": (-2.0, 0.0, 1.5)},
    {"commission": 0.001, "slippage": "volatility", "borrow_rate": 0.02},
]


@pytest.mark.parametrize("case", range(len(ORACLE_CASES)))
@pytest.mark.parametrize("seed", [0, 1])
def test_oracle_equals_brute_force_over_every_action_sequence(case, seed):
    kwargs = {
        "data": tiny_frame(30, seed=seed),
        "features": ["close"],
        "window_size": 1,
        "episode_length": 8,
    }
    kwargs.update(ORACLE_CASES[case])
    start, n_bars, n_pos = 5, 8, 3
    sequences = np.array(list(itertools.product(range(n_pos), repeat=n_bars)))  # 3**8 = 6561
    brute = TradingVectorEnv(num_envs=len(sequences), **kwargs)
    brute.reset(seed=0, options={"start": start})
    alive = np.ones(len(sequences), dtype=bool)
    for k in range(n_bars):
        _, _, terminated, _, infos = brute.step(sequences[:, k])
        alive &= ~terminated
    best_equity = np.where(alive, infos["equity"], 0.0).max()

    env = gym.make(ENV_ID, **kwargs)
    oracle = HindsightOracle(env=env)
    total, final_equity = run_episode(env, oracle, start)
    plan = oracle.plans[0]
    assert oracle.n_plans == 1
    assert plan.equity[-1] == best_equity  # bit-identical ledger
    assert final_equity == plan.equity[-1]
    assert abs(total - plan.log_growth) < 1e-9
    assert abs(plan.log_growth - np.log(best_equity / 10_000.0)) < 1e-12


def test_oracle_beats_every_policy_on_the_same_bars():
    env = gym.make(ENV_ID, episode_length=150, **REGIME)
    start = 600
    oracle_total, oracle_equity = run_episode(env, HindsightOracle(env=env), start)
    for cls in ALL_AGENTS[:-1]:
        total, equity = run_episode(env, cls(env=env), start)
        assert oracle_equity >= equity and oracle_total >= total - 1e-12, cls.__name__


def test_oracle_plan_matches_env_with_continuous_actions():
    env = gym.make(ENV_ID, action_type="continuous", max_leverage=1.5, episode_length=80, **REGIME)
    oracle = HindsightOracle(env=env, grid=(-1.5, -0.3, 0.0, 0.7, 1.5))
    total, equity = run_episode(env, oracle, 500)
    assert equity == oracle.plans[0].equity[-1]
    assert abs(total - oracle.plans[0].log_growth) < 1e-9


class _DeviateOnce:
    """The oracle, except at step ``at`` where it takes ``(oracle action + 1) % 3``."""

    def __init__(self, oracle: HindsightOracle, at: int) -> None:
        self.oracle, self.at, self.step = oracle, at, 0

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        action, state = self.oracle.predict(obs, state, episode_start, deterministic)
        self.step += 1
        return ((action + 1) % 3 if self.step - 1 == self.at else action), state


@pytest.mark.parametrize("on_deviation", ["replan", "follow"])
def test_oracle_after_a_deviation(on_deviation):
    env = gym.make(ENV_ID, episode_length=60, **REGIME)
    oracle = HindsightOracle(env=env, on_deviation=on_deviation)
    _, equity = run_episode(env, _DeviateOnce(oracle, at=10), 700)
    if on_deviation == "replan":
        assert oracle.n_plans == 2
        # After the replan the oracle played the new plan to the end, exactly.
        assert equity == oracle.plans[0].equity[-1]
        assert oracle.plans[0].start == 711
    else:
        assert oracle.n_plans == 1
        assert equity < oracle.plans[0].equity[-1]  # the deviation cost something


def test_epsilon_mixed_oracle_replans_but_follow_does_not():
    env = gym.make(ENV_ID, episode_length=60, **REGIME)
    replan, follow = HindsightOracle(env=env), HindsightOracle(env=env, on_deviation="follow")
    run_episode(env, EpsilonMix(replan, 0.3, seed=4), 700)
    run_episode(env, EpsilonMix(follow, 0.3, seed=4), 700)
    assert replan.n_plans > 1 and follow.n_plans == 1


def test_oracle_serves_a_vector_env_with_one_plan_per_env():
    kwargs = {"episode_length": 40, **REGIME}
    vec = gym.make_vec(ENV_ID, num_envs=2, **kwargs)
    obs, _ = vec.reset(seed=5)
    oracle = HindsightOracle(env=vec)
    starts = vec.unwrapped.bars.copy()
    final = np.zeros(2)
    for _ in range(40):
        actions, _ = oracle.predict(obs)
        obs, _, terminated, truncated, infos = vec.step(actions)
        final = np.where(terminated | truncated, infos["equity"], final)
    single = gym.make(ENV_ID, **kwargs)
    for i in range(2):
        assert final[i] == oracle.plans[i].equity[-1]
        assert final[i] == run_episode(single, HindsightOracle(env=single), int(starts[i]))[1]


def test_hindsight_plan_rejects_bad_ranges():
    close = np.full(10, 100.0)
    with pytest.raises(ValueError, match="end"):
        hindsight_plan(
            close,
            close,
            np.zeros(10),
            np.array([0.0, 1.0]),
            start=5,
            end=5,
            units=0.0,
            cash=1.0,
            current_target=0.0,
            commission=0.0,
        )
    with pytest.raises(ValueError, match="outside"):
        hindsight_plan(
            close,
            close,
            np.zeros(10),
            np.array([0.0, 1.0]),
            start=5,
            end=10,
            units=0.0,
            cash=1.0,
            current_target=0.0,
            commission=0.0,
        )


# -- epsilon mixture --------------------------------------------------------------------------


def test_epsilon_mix_extremes_and_seeding(vector_env):
    obs, _ = vector_env.reset(seed=0)
    expert = RegimeExpert(env=vector_env)
    expected, _ = expert.predict(obs)
    np.testing.assert_array_equal(EpsilonMix(expert, 0.0).predict(obs)[0], expected)
    draws = np.concatenate([EpsilonMix(expert, 1.0, seed=s).predict(obs)[0] for s in range(30)])
    assert set(draws.tolist()) == {0, 1, 2}
    a = [EpsilonMix(expert, 0.5, seed=9).predict(obs)[0] for _ in range(1)]
    b = [EpsilonMix(expert, 0.5, seed=9).predict(obs)[0] for _ in range(1)]
    np.testing.assert_array_equal(a, b)
    single = gym.make(ENV_ID, episode_length=60, **REGIME)
    single_obs, _ = single.reset(seed=0)  # env-bound agents refuse a foreign observation
    action, _ = EpsilonMix(RegimeExpert(env=single), 1.0).predict(single_obs)
    assert np.shape(action) == ()


def test_epsilon_mix_rate_and_errors(single_env):
    obs, _ = single_env.reset(seed=0)
    mix = EpsilonMix(FlatAgent(env=single_env), 0.3, seed=1)
    flat_action = FlatAgent(env=single_env).predict(obs)[0]
    changed = np.mean([mix.predict(obs)[0] != flat_action for _ in range(3000)])
    assert abs(changed - 0.3 * 2 / 3) < 0.04  # a random draw equals the flat action 1/3 of the time
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonMix(FlatAgent(env=single_env), 1.5)
    with pytest.raises(ValueError, match="predict"):
        EpsilonMix(object(), 0.1)


# -- persistence ----------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path, single_env):
    obs, _ = single_env.reset(seed=3)
    agent = SMACrossoverAgent(env=single_env, fast=5, slow=30, allow_short=False)
    agent.save(tmp_path / "sma")
    loaded = BaseAgent.load(tmp_path / "sma", env=single_env)
    assert isinstance(loaded, SMACrossoverAgent) and loaded.config == agent.config
    np.testing.assert_array_equal(loaded.signal, agent.signal)

    mix = EpsilonMix(RegimeExpert(env=single_env, band=0.001), 0.2, seed=3)
    mix.save(tmp_path / "mix")
    again = EpsilonMix.load(tmp_path / "mix", env=single_env)
    assert again.config == mix.config and again.policy.config == mix.policy.config
    np.testing.assert_array_equal(
        [again.predict(obs)[0] for _ in range(20)], [mix.predict(obs)[0] for _ in range(20)]
    )
