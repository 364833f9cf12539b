"""Agent registry: names, lazy imports, user registration, and the life cycle of every agent
(construct -> tiny fit -> predict single/batched -> save -> load -> identical actions)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

from quantgym import ENV_ID
from quantgym.agents.base import Agent, BaseAgent
from quantgym.agents.registry import (
    agent_class,
    list_agents,
    load_agent,
    make_agent,
    register_agent,
    unregister_agent,
)

API_NAMES = [
    "random",
    "flat",
    "buy_and_hold",
    "sma_crossover",
    "mean_reversion",
    "regime_expert",
    "bayes_filter_expert",
    "hindsight_oracle",
    "epsilon_mix",
    "ppo_mlp",
    "ppo_lstm",
    "ppo_transformer",
]
ENV_KWARGS = {"market_kwargs": {"n_bars": 700}, "window_size": 8, "episode_length": 64}
TINY_SB3 = {"n_envs": 2, "n_steps": 32, "batch_size": 64, "n_epochs": 1}
N_STEPS = 24


def make_env() -> gym.Env:
    return gym.make(ENV_ID, **ENV_KWARGS)


def construct(name: str, env) -> object:
    """Build a registered agent for ``env`` (a single or a vector env) and fit it if it learns."""
    cls = agent_class(name)
    if hasattr(cls, "build"):  # online learners: tiny fit
        agent = make_agent(name, **TINY_SB3)
        agent.fit(dict(ENV_KWARGS), train_steps=64, progress_bar=False)
        return agent
    if name == "epsilon_mix":
        return make_agent(name, policy=make_agent("sma_crossover", env=env), epsilon=0.5, env=env)
    return make_agent(name, env=env)


def act_along_episode(agent, env: gym.Env, n_steps: int = N_STEPS) -> list[np.ndarray]:
    """Deterministic actions over ``n_steps`` of a fixed episode, carrying recurrent state."""
    obs, _ = env.reset(seed=0, options={"start": env.unwrapped.first_bar})
    state, start, actions = None, np.ones(1, bool), []
    for _ in range(n_steps):
        action, state = agent.predict(obs, state=state, episode_start=start, deterministic=True)
        actions.append(np.asarray(action))
        obs, *_ = env.step(action)
        start = np.zeros(1, bool)
    return actions


def test_list_agents_has_every_name_of_the_contract():
    names = list_agents()
    assert names[: len(API_NAMES)] == API_NAMES
    assert len(set(names)) == len(names)


def test_registry_import_and_baselines_do_not_import_torch():
    code = textwrap.dedent(
        """
        import sys, gymnasium as gym
        from quantgym import ENV_ID
        from quantgym.agents.registry import make_agent, list_agents
        list_agents()
        agent = make_agent("bayes_filter_expert", env=gym.make(ENV_ID, market_kwargs={"n_bars": 700}))
        print("torch" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("name", API_NAMES)
def test_agent_life_cycle_construct_fit_predict_save_load(name, tmp_path):
    env = make_env()
    agent = construct(name, env)
    assert isinstance(agent, Agent)
    before = act_along_episode(agent, env)
    agent.save(tmp_path / name)
    fresh_env = make_env()
    loaded = load_agent(tmp_path / name, env=fresh_env)
    assert type(loaded) is type(agent)
    after = act_along_episode(loaded, fresh_env)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    # single observation -> one action of the env's space
    obs, _ = fresh_env.reset(seed=1)
    action, _ = loaded.predict(obs, deterministic=True)
    assert (
        action.shape == ()
        and action.dtype == np.int64
        and fresh_env.action_space.contains(int(action))
    )


@pytest.mark.parametrize("name", API_NAMES)
def test_agent_predicts_on_a_batch(name):
    vec = gym.make_vec(ENV_ID, num_envs=3, **ENV_KWARGS)
    agent = construct(name, vec)
    obs, _ = vec.reset(seed=0)
    state, start = None, np.ones(3, bool)
    for _ in range(4):
        actions, state = agent.predict(obs, state=state, episode_start=start, deterministic=True)
        assert actions.shape == (3,) and actions.dtype == np.int64
        assert vec.action_space.contains(actions)
        obs, *_ = vec.step(actions)
        start = np.zeros(3, bool)


def test_make_agent_unknown_name_lists_the_registered_ones():
    with pytest.raises(ValueError, match="unknown agent 'nope'.*ppo_lstm"):
        make_agent("nope")


def test_make_agent_bad_import_paths():
    with pytest.raises(ValueError, match="cannot import module"):
        make_agent("no_such_module_xyz:Agent")
    with pytest.raises(ValueError, match="has no attribute"):
        make_agent("quantgym.agents.registry:NoSuchAgent")
    with pytest.raises(ValueError, match="not a class"):
        make_agent("quantgym.agents.registry:make_agent")


class _Echo:
    name = "echo"

    def __init__(self, action: int = 1) -> None:
        self.action = action

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.int64(self.action), state


def test_register_class_and_import_path_then_unregister():
    register_agent("echo_class", _Echo)
    register_agent("echo_path", f"{__name__}:_Echo")
    try:
        assert make_agent("echo_class", action=2).action == 2
        assert isinstance(make_agent("echo_path"), _Echo)
        assert {"echo_class", "echo_path"} <= set(list_agents())
        with pytest.raises(ValueError, match="already registered"):
            register_agent("echo_class", _Echo)
        register_agent("echo_class", f"{__name__}:_Echo", overwrite=True)
        assert agent_class("echo_class") is _Echo
    finally:
        unregister_agent("echo_class")
        unregister_agent("echo_path")
    assert "echo_class" not in list_agents()
    with pytest.raises(ValueError, match="not registered"):
        unregister_agent("echo_class")


@pytest.mark.parametrize(
    ("name", "agent", "match"),
    [
        ("bad name", _Echo, "name"),
        ("ok", "no_colon_path", "package.module:Class"),
        ("ok", 42, "class or"),
    ],
)
def test_register_agent_bad_input(name, agent, match):
    with pytest.raises(ValueError, match=match):
        register_agent(name, agent)
    assert name not in list_agents()


def test_make_agent_by_import_path_of_a_user_module(tmp_path, monkeypatch):
    (tmp_path / "user_agents_mod.py").write_text(
        "import numpy as np\n"
        "class Always:\n"
        "    def __init__(self, action=0):\n"
        "        self.action = action\n"
        "    def predict(self, observation, state=None, episode_start=None, deterministic=True):\n"
        "        return np.int64(self.action), state\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_agents_mod", raising=False)
    agent = make_agent("user_agents_mod:Always", action=2)
    assert agent.predict(np.zeros(3))[0] == 2


def test_load_agent_needs_an_agent_directory(tmp_path):
    with pytest.raises(ValueError, match="agent.json"):
        load_agent(tmp_path)


def test_sb3_model_satisfies_the_agent_protocol():
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", make_env(), n_steps=16, batch_size=16, device="cpu")
    assert isinstance(model, Agent)
    assert issubclass(agent_class("ppo_lstm"), BaseAgent)


def test_base_agent_load_dispatches_to_subclass_load(tmp_path):
    """BaseAgent.load on a directory saved by a class with its own load() uses that load()."""
    import gymnasium as gym

    from quantgym.agents import BaseAgent, EpsilonMix, RandomAgent

    env = gym.make(ENV_ID, episode_length=20)
    agent = EpsilonMix(RandomAgent(env=env, seed=1), epsilon=0.3, seed=2)
    agent.save(tmp_path / "mix")
    loaded = BaseAgent.load(tmp_path / "mix", env=env)
    assert isinstance(loaded, EpsilonMix)
    obs, _ = env.reset(seed=0)
    a = [agent.predict(obs)[0] for _ in range(20)]
    again = BaseAgent.load(tmp_path / "mix", env=env)
    assert [again.predict(obs)[0] for _ in range(20)] == a


def test_portfolio_baselines_are_registered_and_build_on_the_portfolio_env():
    from quantgym import PORTFOLIO_ENV_ID
    from quantgym.policies.portfolio import PORTFOLIO_AGENTS, PORTFOLIO_BOUNDS

    env = gym.make(PORTFOLIO_ENV_ID, episode_length=30)
    obs, _ = env.reset(seed=0)
    registered = set(list_agents())
    for name, cls in {**PORTFOLIO_AGENTS, **PORTFOLIO_BOUNDS}.items():
        assert name in registered and agent_class(name) is cls
    weights, _ = make_agent("ucrp", env=env).predict(obs)
    tradable = env.unwrapped.panel.tradable[env.unwrapped.bar]
    np.testing.assert_allclose(weights[tradable], 1.0 / tradable.sum(), rtol=1e-6)
