"""Input perturbation (quantgym.agents.perturbation): the scale, Gaussian noise and FGSM/PGD
checked on a linear-threshold agent whose sensitivity is known in closed form, then the hook
of each real agent family."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
import torch

from quantgym import ENV_ID, PORTFOLIO_ENV_ID
from quantgym.agents import make_agent
from quantgym.agents.perturbation import (
    AdversarialObservationAgent,
    NoisyObservationAgent,
    is_differentiable,
    market_feature_mask,
    observation_scale,
    reads_observation,
    sample_observations,
)

# -- a hand-made agent of known sensitivity ----------------------------------------------
# Four market dims and two account dims; the account dims carry weight too, so a test sees
# that they never move even where the gradient says they should.
W = np.array([0.5, -1.0, 2.0, 0.0, 3.0, 1.0])
SCALE = np.array([1.0, 0.5, 0.25, 2.0, 0.0, 0.0])
B = 0.3
L1 = float(np.sum(np.abs(W) * SCALE))  # 1.5: how far FGSM moves w.x per unit of epsilon
L2 = float(np.sqrt(np.sum((W * SCALE) ** 2)))  # std of w.noise per unit of noise scale
FLAT, LONG = 0, 1


class LinearThresholdAgent:
    """Long (1) if ``w.x > b`` else flat (0); logits ``(0, w.x - b)``. Records the
    observations its ``predict`` receives."""

    action_scores_kind = "logits"

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        x = np.asarray(observation, dtype=np.float64)
        self.seen.append(x.copy())
        return (x @ W > B).astype(np.int64), state

    def action_scores(self, observation, state=None, episode_start=None):
        z = observation.double() @ torch.from_numpy(W) - B  # (N,)
        return torch.stack([torch.zeros_like(z), z], dim=1)


class PlainAgent:
    """An agent without the hook (what a rule agent looks like to the probe)."""

    name = "plain"

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.zeros(np.shape(observation)[:-1], np.int64), state


def with_margin(margin: float, n: int = 1, seed: int = 0) -> np.ndarray:
    """``n`` random float32 observations with ``w.x - b == margin`` (to float32 rounding)."""
    x = np.random.default_rng(seed).normal(size=(n, W.size))
    x[:, 0] += (margin + B - x @ W) / W[0]  # fix dim 0 so that w.x - b = margin
    return x.astype(np.float32)


def margins(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64) @ W - B


# -- the scale -----------------------------------------------------------------------------
ENV_KWARGS = {"market_kwargs": {"n_bars": 700}, "window_size": 8, "episode_length": 64}


@pytest.fixture(scope="module")
def env():
    return gym.make(ENV_ID, **ENV_KWARGS)


@pytest.fixture(scope="module")
def clean_obs(env) -> np.ndarray:
    return sample_observations(env, 300, seed=0)


def test_scale_is_the_std_of_market_features_and_zero_on_account_features(env, clean_obs):
    layout = env.unwrapped.layout
    scale = observation_scale(env, clean_obs)
    market = layout.market_dim
    assert scale.shape == (layout.obs_dim,)
    assert np.all(scale[market:] == 0.0)  # position, unrealised PnL ... never perturbed
    assert np.all(scale[:market] > 0.0)  # every window feature varies over 300 bars
    np.testing.assert_allclose(scale[:market], clean_obs[:, :market].astype(np.float64).std(0))
    assert np.array_equal(market_feature_mask(env), np.arange(layout.obs_dim) < market)
    # the layout itself, a vector env and the SB3 adapter give the same mask
    vec = gym.make_vec(ENV_ID, num_envs=2, **ENV_KWARGS)
    assert np.array_equal(market_feature_mask(vec), market_feature_mask(layout))


def test_constant_dimensions_get_scale_zero_not_nan(env, clean_obs):
    obs = clean_obs.copy()
    obs[:, 0] = 0.1  # constant over the sample
    scale = observation_scale(env, obs)
    assert scale[0] == 0.0 and np.isfinite(scale).all()


def test_scale_rejects_bad_samples(env, clean_obs):
    with pytest.raises(ValueError, match="shape"):
        observation_scale(env, clean_obs[:, :-1])
    with pytest.raises(ValueError, match="n >= 2"):
        observation_scale(env, clean_obs[:1])
    bad = clean_obs.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        observation_scale(env, bad)
    with pytest.raises(ValueError, match="TradingEnv"):
        observation_scale(object(), clean_obs)


def test_sample_observations_is_seeded_and_spreads_over_the_range(env):
    a = sample_observations(env, 200, seed=3)
    b = sample_observations(env, 200, seed=3)
    c = sample_observations(env, 200, seed=4)
    assert a.shape == (200, env.unwrapped.layout.obs_dim) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # random start bars: more distinct newest-bar rows than one 64-step episode could give
    assert len(np.unique(a[:, 0])) > 64
    with pytest.raises(ValueError, match="single env"):
        sample_observations(gym.make_vec(ENV_ID, num_envs=2, **ENV_KWARGS), 10)


def test_portfolio_weights_and_mask_are_account_features():
    penv = gym.make(PORTFOLIO_ENV_ID, market_kwargs={"n_bars": 600}, window_size=4)
    layout = penv.unwrapped.layout
    mask = market_feature_mask(penv)
    for part, market in (("windows", True), ("cross_section", True), ("weights", False)):
        assert np.all(mask[layout.slices[part]] == market), part
    assert not mask[layout.slices["mask"]].any()
    scale = observation_scale(penv, sample_observations(penv, 50, seed=0))
    assert np.all(scale[~mask] == 0.0) and np.isfinite(scale).all()


# -- Gaussian noise --------------------------------------------------------------------------
@pytest.mark.parametrize("noise", [0.25, 0.5, 1.0])
def test_noise_flips_the_action_with_the_closed_form_probability(noise):
    # w.noise ~ N(0, (noise * L2)^2): a long with margin m turns flat with p = Phi(-m / sigma)
    n, margin = 20_000, 0.4
    x = np.repeat(with_margin(margin), n, axis=0)
    actions, _ = NoisyObservationAgent(LinearThresholdAgent(), noise, SCALE, seed=1).predict(x)
    p = 0.5 * math.erfc(margin / (noise * L2) / math.sqrt(2.0))
    tolerance = 5.0 * math.sqrt(p * (1 - p) / n)  # 5 binomial standard deviations
    assert abs(np.mean(actions == FLAT) - p) <= tolerance


def test_noise_is_scale_times_obs_scale_times_standard_normal_on_market_dims_only():
    inner = LinearThresholdAgent()
    x = with_margin(0.1, n=5000)
    NoisyObservationAgent(inner, 0.5, SCALE, seed=0).predict(x)
    z = (inner.seen[0] - x.astype(np.float64))[:, :4] / (0.5 * SCALE[:4])
    assert np.all(np.abs(z.mean(0)) < 0.1) and np.all(np.abs(z.std(0) - 1.0) < 0.05)
    assert np.array_equal(inner.seen[0][:, 4:], x[:, 4:])  # account dims untouched


def test_noise_is_seeded_and_forwards_single_observations_state_and_attributes():
    x = with_margin(0.05, n=200)
    runs = []
    for seed in (7, 7, 8):
        inner = LinearThresholdAgent()
        agent = NoisyObservationAgent(inner, 1.0, SCALE, seed=seed)
        agent.predict(x)
        runs.append(inner.seen[0])
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])
    agent = NoisyObservationAgent(LinearThresholdAgent(), 0.0, SCALE, seed=0)
    action, state = agent.predict(x[0], state="s")
    assert action.shape == () and state == "s"
    assert int(action) == int(margins(x[:1])[0] > 0)  # scale 0: the clean action
    assert agent.action_scores_kind == "logits"  # attributes of the wrapped agent


def test_noise_on_a_rule_agent_does_not_import_torch():
    code = textwrap.dedent(
        """
        import sys, gymnasium as gym
        from quantgym import ENV_ID
        from quantgym.agents import make_agent
        from quantgym.agents.perturbation import (
            NoisyObservationAgent, is_differentiable, observation_scale, sample_observations,
        )
        env = gym.make(ENV_ID, market_kwargs={"n_bars": 700})
        obs = sample_observations(env, 50, seed=0)
        agent = make_agent("sma_crossover", env=env)
        current, _ = env.reset(seed=0)
        NoisyObservationAgent(agent, 1.0, observation_scale(env, obs)).predict(current)
        print(is_differentiable(agent), "torch" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_env_bound_rule_agents_get_the_clean_observation(env, clean_obs):
    """A rule reads its env's bar and rejects an observation that is not the env's current
    one: the noise wrapper passes it the clean observation, so its actions are the clean ones
    (the flat reference curve)."""
    rule_env = gym.make(ENV_ID, **ENV_KWARGS)
    rule = make_agent("sma_crossover", env=rule_env)
    noisy = NoisyObservationAgent(rule, 2.0, observation_scale(env, clean_obs), seed=0)
    assert not reads_observation(rule) and not noisy.perturbs
    assert reads_observation(LinearThresholdAgent())
    obs, _ = rule_env.reset(seed=0)
    for _ in range(20):
        action, _ = noisy.predict(obs)
        assert action == rule.predict(obs)[0]
        obs, *_ = rule_env.step(action)
    with pytest.raises(ValueError, match="current observation"):  # what the pass-through avoids
        rule.predict(obs + noisy.noise(1)[0])


# -- FGSM / PGD ----------------------------------------------------------------------------
@pytest.mark.parametrize("margin", [0.6, -0.6])
@pytest.mark.parametrize("steps", [1, 10])
def test_worst_case_flips_exactly_when_epsilon_times_l1_exceeds_the_margin(margin, steps):
    # the best L-inf perturbation moves w.x by epsilon * sum |w_i| scale_i = epsilon * L1
    x = with_margin(margin, n=8, seed=2)
    clean = margins(x) > 0
    for factor, flips in ((0.99, False), (1.01, True)):
        eps = abs(margin) * factor / L1
        for random_start in (False, True):
            agent = AdversarialObservationAgent(
                LinearThresholdAgent(), eps, SCALE, steps=steps, random_start=random_start
            )
            actions, _ = agent.predict(x)
            assert np.all((actions != clean) == flips), (factor, random_start)


def test_fgsm_moves_every_market_dim_to_the_corner_against_the_action():
    x = with_margin(0.5, n=3)  # long: push w.x down
    delta = AdversarialObservationAgent(LinearThresholdAgent(), 0.2, SCALE).perturbation(x)
    expected = -0.2 * SCALE * np.sign(W)  # dims with w = 0 or scale 0 stay
    np.testing.assert_allclose(delta, np.broadcast_to(expected, x.shape), rtol=1e-6)


def test_pgd_is_at_least_as_strong_as_fgsm_and_account_dims_never_move():
    x = with_margin(0.0, n=400, seed=5)
    x[:, 0] += np.linspace(-1.5, 1.5, 400, dtype=np.float32)  # margins from -0.75 to 0.75
    clean = margins(x) > 0
    for eps in (0.1, 0.3, 0.45):
        flipped = {}
        for steps in (1, 5):
            inner = LinearThresholdAgent()
            actions, _ = AdversarialObservationAgent(inner, eps, SCALE, steps=steps).predict(x)
            flipped[steps] = actions != clean
            assert np.array_equal(inner.seen[-1][:, 4:], x[:, 4:])
            assert np.all(np.abs(inner.seen[-1] - x) <= eps * SCALE * (1 + 1e-6) + 1e-6)
        assert np.all(flipped[5] >= flipped[1]) and flipped[1].any() and not flipped[1].all()


def test_random_start_is_seeded():
    x = with_margin(0.9, n=4)
    deltas = [
        AdversarialObservationAgent(
            LinearThresholdAgent(), 0.1, SCALE, steps=2, random_start=True, seed=s
        ).perturbation(x)
        for s in (1, 1, 2)
    ]
    assert np.array_equal(deltas[0], deltas[1]) and not np.array_equal(deltas[0], deltas[2])


def test_epsilon_zero_is_the_clean_agent():
    x = with_margin(0.01, n=50)
    actions, _ = AdversarialObservationAgent(LinearThresholdAgent(), 0.0, SCALE).predict(x)
    assert np.array_equal(actions, margins(x) > 0)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_scale_or_epsilon_is_a_value_error(bad):
    with pytest.raises(ValueError, match="scale"):
        NoisyObservationAgent(LinearThresholdAgent(), bad, SCALE)
    with pytest.raises(ValueError, match="epsilon"):
        AdversarialObservationAgent(LinearThresholdAgent(), bad, SCALE)
    with pytest.raises(ValueError, match="obs_scale"):
        NoisyObservationAgent(LinearThresholdAgent(), 0.1, np.where(SCALE > 1, bad, SCALE))


def test_wrong_obs_scale_shape_steps_or_agent_is_a_value_error():
    with pytest.raises(ValueError, match="obs_scale"):
        NoisyObservationAgent(LinearThresholdAgent(), 0.1, SCALE[None])
    with pytest.raises(ValueError, match="obs_scale"):
        NoisyObservationAgent(LinearThresholdAgent(), 0.1, SCALE[:-1]).predict(with_margin(0.1))
    with pytest.raises(ValueError, match="obs_scale"):
        AdversarialObservationAgent(LinearThresholdAgent(), 0.1, SCALE[:-1]).predict(
            with_margin(0.1)
        )
    with pytest.raises(ValueError, match="steps"):
        AdversarialObservationAgent(LinearThresholdAgent(), 0.1, SCALE, steps=0)
    assert not is_differentiable(PlainAgent()) and is_differentiable(LinearThresholdAgent())
    with pytest.raises(ValueError, match="'plain' is not differentiable"):
        AdversarialObservationAgent(PlainAgent(), 0.1, SCALE)


# -- real agents: the hook is the greedy action, and the probe moves it --------------------
def check_probe(agent, obs, scale, starts, continuous=False):
    """The hook's scores give ``predict``'s greedy action; epsilon 0 gives the clean
    actions and state; a large epsilon changes some actions (PGD and FGSM)."""
    clean, clean_state = agent.predict(obs, episode_start=starts)
    scores = agent.action_scores(torch.from_numpy(obs), None, starts).detach().numpy()
    if continuous:
        np.testing.assert_allclose(np.clip(scores, -1, 1), clean.reshape(scores.shape), atol=1e-6)
    else:
        assert np.array_equal(scores.argmax(1), clean)
    same, state = AdversarialObservationAgent(agent, 0.0, scale).predict(obs, episode_start=starts)
    assert np.array_equal(same, clean)
    if clean_state is not None and isinstance(clean_state, tuple):
        for a, b in zip(state, clean_state, strict=True):
            assert np.array_equal(np.asarray(a), np.asarray(b))
    for steps in (1, 10):
        adv = AdversarialObservationAgent(agent, 3.0, scale, steps=steps)
        actions, _ = adv.predict(obs, episode_start=starts)
        changed = np.abs(np.asarray(actions, np.float64) - clean).reshape(len(obs), -1).max(1)
        assert (changed > 1e-5).any(), steps  # float noise is ~1e-7


TINY = {"n_envs": 2, "n_steps": 32, "batch_size": 64, "n_epochs": 1}


@pytest.mark.parametrize(
    ("name", "action_type"),
    [("ppo_mlp", "discrete"), ("ppo_mlp", "continuous"), ("ppo_lstm", "discrete")],
)
def test_sb3_agents(name, action_type, clean_obs):
    env = gym.make(ENV_ID, **ENV_KWARGS, action_type=action_type)
    agent = make_agent(name, **TINY).build(env)  # untrained: its own random network
    assert is_differentiable(agent)
    assert agent.action_scores_kind == ("mean" if action_type == "continuous" else "logits")
    scale = observation_scale(env, clean_obs)
    check_probe(agent, clean_obs[:64], scale, np.ones(64, bool), action_type == "continuous")


@pytest.mark.parametrize("name", ["ppo_eiie", "ppo_cross_attention"])
def test_portfolio_agents(name):
    penv = gym.make(
        PORTFOLIO_ENV_ID, market_kwargs={"n_bars": 600}, window_size=4, episode_length=40
    )
    obs = sample_observations(penv, 100, seed=0)
    agent = make_agent(name, n_envs=2, n_steps=32, batch_size=32, n_epochs=1).build(penv)
    assert is_differentiable(agent) and agent.action_scores_kind == "mean"
    check_probe(agent, obs[:32], observation_scale(penv, obs), None, continuous=True)


@pytest.fixture(scope="module")
def tiny_dataset():
    from quantgym.datasets.presets import make_dataset

    return make_dataset(
        "regime",
        "mixed",
        n_steps=600,
        seed=0,
        num_envs=3,
        env_kwargs={"episode_length": 60, "window_size": 4},
    )


OFFLINE = [
    ("bc", {"hidden_units": [16], "batch_size": 16}, "logits"),
    ("cql", {"hidden_units": [16], "batch_size": 16}, "q_values"),
    ("bcq", {"hidden_units": [16], "batch_size": 16}, "q_values"),
    (
        "dt_d3rlpy",
        {"context_length": 4, "n_layers": 1, "d_model": 16, "batch_size": 8},
        "logits",
    ),
    ("dt", {"context_length": 4, "n_layers": 1, "d_model": 16, "batch_size": 8}, "logits"),
]


@pytest.mark.parametrize(("name", "fields", "kind"), OFFLINE, ids=[o[0] for o in OFFLINE])
def test_offline_agents(name, fields, kind, tiny_dataset):
    pytest.importorskip("d3rlpy")
    if name == "dt_d3rlpy":
        fields = {**fields, "action_sampler": "greedy"}  # compare with the argmax
    agent = make_agent(name, **fields).fit(tiny_dataset, train_steps=3, progress_bar=False)
    assert is_differentiable(agent) and agent.action_scores_kind == kind
    obs = tiny_dataset.step_observations()[:64]
    scale = obs.astype(np.float64).std(0)
    scale[-5:] = 0.0  # account features
    check_probe(agent, obs, scale, np.ones(64, bool))


def test_stateful_agents_keep_their_context_under_attack(tiny_dataset):
    """Two steps of ``dt`` under PGD: the hook reads the context the agent holds, and the
    wrapper hands back the state the agent's own predict returned on the perturbed input."""
    agent = make_agent("dt", context_length=4, n_layers=1, d_model=16, batch_size=8)
    agent.fit(tiny_dataset, train_steps=3, progress_bar=False)
    obs = tiny_dataset.step_observations()
    scale = obs.astype(np.float64).std(0)
    scale[-5:] = 0.0
    first, second = obs[:16], obs[1:17]
    adv = AdversarialObservationAgent(agent, 0.5, scale, steps=3)
    _, state = adv.predict(first, episode_start=np.ones(16, bool))
    starts = np.zeros(16, bool)
    delta = AdversarialObservationAgent(agent, 0.5, scale, steps=3).perturbation(
        second, state, starts
    )
    actions, new_state = adv.predict(second, state=state, episode_start=starts)
    expected, expected_state = agent.predict(second + delta, state=state, episode_start=starts)
    assert np.array_equal(actions, expected)
    assert np.array_equal(new_state.states, expected_state.states)
    assert np.array_equal(new_state.length, np.full(16, 2))


class ThreeActionAgent:
    """Scores ``z = M x`` for (short, flat, long); greedy = argmax."""

    action_scores_kind = "logits"
    M = np.array([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.2]])  # short, flat, long over 2 dims

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        x = np.asarray(observation, dtype=np.float64)
        return np.argmax(x @ self.M.T, axis=-1), state

    def action_scores(self, observation, state=None, episode_start=None):
        return observation.double() @ torch.from_numpy(self.M.T)


def test_worst_action_target_steers_to_the_least_preferred_action() -> None:
    # x = (0.3, 0): scores short -0.3, flat 0, long 0.3: greedy long, least preferred short.
    x = np.array([[0.3, 0.0]], dtype=np.float32)
    scale = np.array([1.0, 0.0])
    agent = ThreeActionAgent()
    assert agent.predict(x)[0][0] == 2
    # Within radius 0.2 only long is reachable (x0 >= 0.1); at 0.35 x0 can reach -0.05, where
    # short (the action the agent scored lowest on the clean input) is greedy: the targeted
    # attack must get there.
    worst = AdversarialObservationAgent(agent, 0.35, scale, steps=4, target="worst_action")
    assert worst.predict(x)[0][0] == 0
    assert abs(worst.perturbation(x)[0, 0]) <= 0.35 + 1e-6
    small = AdversarialObservationAgent(agent, 0.2, scale, steps=4, target="worst_action")
    assert small.predict(x)[0][0] == 2  # out of reach: the greedy action stays
    with pytest.raises(ValueError, match="target must be one of"):
        AdversarialObservationAgent(agent, 0.1, scale, target="best")
