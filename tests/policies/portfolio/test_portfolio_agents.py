"""The portfolio baselines bound to PortfolioEnv: exact wealth, causality, masks, batches, files."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from quantgym import PORTFOLIO_ENV_ID
from quantgym.policies import BaseAgent
from quantgym.policies.portfolio import (
    EG,
    OLMAR,
    PAMR,
    PORTFOLIO_AGENTS,
    PORTFOLIO_BOUNDS,
    UBAH,
    UCRP,
    BCRPAgent,
    EGAgent,
    OLMARAgent,
    PAMRAgent,
    UBAHAgent,
    UCRPAgent,
    olps_wealth,
    price_relatives,
)
from tests.policies.portfolio.portfolio_env_frames import ZERO_COSTS, close_panel, make_env, play

FRAME = close_panel()
OLPS = [(UCRPAgent, UCRP()), (UBAHAgent, UBAH()), (EGAgent, EG()), (OLMARAgent, OLMAR()),
        (PAMRAgent, PAMR())]  # fmt: skip


@pytest.mark.parametrize(("agent_cls", "algorithm"), OLPS)
def test_zero_cost_close_only_env_reproduces_the_algorithm_wealth(agent_cls, algorithm):
    """Decided at t, filled at the open of t+1 = the close of t: the OLPS convention."""
    env = make_env(FRAME)
    wealth, _ = play(env, agent_cls(env=env))
    expected = olps_wealth(algorithm, price_relatives(FRAME.to_numpy()))
    assert wealth == pytest.approx(expected, rel=1e-6)  # float32 actions


def test_episode_origin_restarts_the_algorithm_at_the_episode_start():
    env = make_env(FRAME)
    wealth, _ = play(env, UBAHAgent(env=env), start=60)
    assert wealth == pytest.approx(
        olps_wealth(UBAH(), price_relatives(FRAME.to_numpy()[60:])), rel=1e-6
    )
    panel_wealth, _ = play(env, UBAHAgent(env=env, origin="panel"), start=60)
    assert panel_wealth != pytest.approx(wealth, rel=1e-6)


def test_bcrp_bound_is_the_best_constant_portfolio_of_the_episode():
    env = make_env(FRAME)
    wealth, actions = play(env, BCRPAgent(env=env), start=40)
    np.testing.assert_allclose(actions[0], actions[-1])  # constant
    assert wealth >= play(env, UCRPAgent(env=env), start=40)[0]
    assert BCRPAgent.uses_future and not UCRPAgent.uses_future


def _actions_until(frame, agent_kwargs, name, bar):
    env = make_env(frame)
    agent = (PORTFOLIO_AGENTS | PORTFOLIO_BOUNDS)[name](env=env, **agent_kwargs)
    obs, _ = env.reset(seed=0)
    out = []
    while env.unwrapped.bar <= bar:
        action, _ = agent.predict(obs)
        out.append(action)
        obs, *_ = env.step(action)
    return np.array(out)


CAUSAL = {name: {} for name in ("ubah", "ucrp", "eg", "ons", "olmar", "pamr")}
CAUSAL |= {"anticor": {"window": 5}, "corn": {"window": 3}}
CAUSAL |= {name: {"lookback": 20, "rebalance_every": 7}
           for name in ("min_variance", "mean_variance", "hrp", "risk_parity")}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CAUSAL))
def test_decisions_do_not_read_the_future(name):
    if name in ("min_variance", "mean_variance", "hrp", "risk_parity"):
        pytest.importorskip("skfolio")
    frame = close_panel(90)
    changed = frame.copy()
    changed.iloc[61:] *= np.exp(np.random.default_rng(5).normal(0, 0.05, size=(29, 4)))
    np.testing.assert_array_equal(
        _actions_until(frame, CAUSAL[name], name, 60),
        _actions_until(changed, CAUSAL[name], name, 60),
    )


def test_untradable_assets_get_no_weight_and_their_share_goes_to_the_rest():
    frame = FRAME.copy()
    frame.iloc[:50, 1] = np.nan  # S1 lists at bar 50
    frame.iloc[120:, 2] = np.nan  # S2 delists at bar 119
    env = make_env(frame)
    _, actions = play(env, UCRPAgent(env=env))
    actions = np.array(actions)
    tradable = env.unwrapped.panel.tradable[: len(actions)]
    assert (actions[~tradable] == 0).all()
    np.testing.assert_allclose(actions.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(actions[10], [1 / 3, 0, 1 / 3, 1 / 3], atol=1e-7)


def test_vector_env_batch_equals_single_envs():
    starts = [0, 30, 75]
    vec = gym.make_vec(PORTFOLIO_ENV_ID, num_envs=3, data=FRAME, features=(), window_size=1,
                       episode_length=40, **ZERO_COSTS)  # fmt: skip
    agent = OLMARAgent(env=vec)
    obs, _ = vec.reset(seed=0, options={"start": starts})
    batch = []
    for _ in range(20):
        action, _ = agent.predict(obs)
        batch.append(action)
        obs, *_ = vec.step(action)
    for i, start in enumerate(starts):
        env = make_env(FRAME, episode_length=40)
        single = OLMARAgent(env=env)
        obs1, _ = env.reset(seed=0, options={"start": start})
        for k in range(20):
            action, _ = single.predict(obs1)
            np.testing.assert_array_equal(action, batch[k][i])
            obs1, *_ = env.step(action)


def test_save_and_load_round_trip(tmp_path):
    env = make_env(FRAME)
    agent = PAMRAgent(env=env, eps=0.8, variant=1)
    agent.save(tmp_path / "pamr")
    loaded = BaseAgent.load(tmp_path / "pamr", env=env)
    assert type(loaded) is PAMRAgent and loaded.config == agent.config
    assert play(env, loaded)[0] == pytest.approx(olps_wealth(PAMR(eps=0.8, variant=1),
                                                             price_relatives(FRAME.to_numpy())), rel=1e-6)  # fmt: skip


def test_registry_names_and_roles():
    assert set(PORTFOLIO_AGENTS) == {"ubah", "ucrp", "eg", "ons", "olmar", "pamr", "anticor",
                                     "corn", "min_variance", "mean_variance", "hrp", "risk_parity"}  # fmt: skip
    assert set(PORTFOLIO_BOUNDS) == {"best_stock", "bcrp"}
    assert all(cls.uses_future for cls in PORTFOLIO_BOUNDS.values())
    assert not any(cls.uses_future for cls in PORTFOLIO_AGENTS.values())


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda env: UCRPAgent(), "env-bound"),
        (lambda env: UCRPAgent(env=gym.make("CartPole-v1")), "PortfolioEnv"),
        (lambda env: EGAgent(env=env, eta=-1.0), "eta"),
        (lambda env: UCRPAgent(env=env, origin="somewhere"), "origin"),
        (lambda env: UCRPAgent(env=env, bogus=1), "bogus"),
        (
            lambda env: OLMARAgent(env=make_env(FRAME, action_transform="softmax")),
            "action_transform",
        ),
    ],
)
def test_bad_construction_is_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make(make_env(FRAME))


def test_stale_or_misshapen_observations_are_refused():
    env = make_env(FRAME)
    agent = UCRPAgent(env=env)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        agent.predict(obs[:-1])
    with pytest.raises(ValueError, match="single env"):
        agent.predict(np.stack([obs, obs]))
    stale = obs.copy()
    action, _ = agent.predict(obs)
    obs, *_ = env.step(action)
    with pytest.raises(ValueError, match="current observation"):
        agent.predict(stale)
    agent.predict(obs)


def test_dict_observations_are_accepted():
    env = make_env(FRAME, observation_mode="dict")
    agent = EGAgent(env=env)
    obs, _ = env.reset(seed=0)
    action, _ = agent.predict(obs)
    assert action.shape == (4,) and action.dtype == np.float32
    np.testing.assert_array_equal(action, np.full(4, 0.25, dtype=np.float32))
    obs, *_ = env.step(action)
    with pytest.raises(ValueError, match="dict"):
        agent.predict(np.zeros(3))
