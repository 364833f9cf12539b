"""PPO agents (ppo_mlp, ppo_lstm, ppo_transformer): fit, fast predict == SB3 predict, recurrent
state, VecNormalize persistence, env inputs, checkpoints, CLI train/evaluate."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from quantgym import ENV_ID
from quantgym.agents.base import BaseAgent
from quantgym.agents.sb3 import (
    PPOLstmAgent,
    PPOMlpAgent,
    PPOTransformerAgent,
    RecentBarsExtractor,
)
from quantgym.agents.sb3.envs import make_sb3_vec_env
from quantgym.envs import to_sb3

ENV_KWARGS = {"market_kwargs": {"n_bars": 700}, "window_size": 8, "episode_length": 64}
TINY = {"n_envs": 2, "n_steps": 32, "batch_size": 64, "n_epochs": 1}
AGENTS = [PPOMlpAgent, PPOLstmAgent, PPOTransformerAgent]


def make_env(**overrides) -> gym.Env:
    return gym.make(ENV_ID, **{**ENV_KWARGS, **overrides})


def rollout_obs(env: gym.Env, n: int, seed: int = 0) -> np.ndarray:
    """n consecutive observations from a random-action episode."""
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = [obs]
    for _ in range(n - 1):
        obs, *_ = env.step(env.action_space.sample() if rng.random() < 2 else None)
        out.append(obs)
    return np.stack(out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each agent fitted briefly on the discrete and the continuous env (shared by the tests)."""
    out = {}
    for cls in AGENTS:
        for action_type in ("discrete", "continuous"):
            agent = cls(**TINY)
            agent.fit(make_env(action_type=action_type), train_steps=128, progress_bar=False)
            out[cls.name, action_type] = agent
    return out


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
@pytest.mark.parametrize("cls", AGENTS, ids=lambda c: c.name)
def test_predict_shapes_single_and_batched(trained, cls, action_type):
    agent = trained[cls.name, action_type]
    env = make_env(action_type=action_type)
    batch = rollout_obs(env, 4)
    single, _ = agent.predict(batch[0])
    many, _ = agent.predict(batch)
    if action_type == "discrete":
        assert (
            single.shape == ()
            and single.dtype == np.int64
            and env.action_space.contains(int(single))
        )
        assert many.shape == (4,) and many.dtype == np.int64
    else:
        assert (
            single.shape == (1,)
            and single.dtype == np.float32
            and env.action_space.contains(single)
        )
        assert many.shape == (4, 1) and np.all(np.abs(many) <= 1.0)
    env.step(single)  # the env accepts it


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
@pytest.mark.parametrize("cls", AGENTS, ids=lambda c: c.name)
def test_fast_predict_equals_sb3_predict(trained, cls, action_type):
    """The per-bar decision (``action_smoothing=1``; the defaults' moving average is
    test_action_smoothing.py's) is SB3's deterministic ``predict``, state included."""
    agent = copy.copy(trained[cls.name, action_type])
    agent.config = dataclasses.replace(agent.config, action_smoothing=1.0)
    obs = rollout_obs(make_env(action_type=action_type), 24)
    normalized = agent.normalize_observation(obs)
    np.testing.assert_array_equal(normalized, agent.vec_normalize.normalize_obs(obs))
    state, ref_state = None, None
    for t in range(len(obs)):
        start = np.array([t % 10 == 0])
        action, state = agent.predict(obs[t], state=state, episode_start=start)
        ref, ref_state = agent.model.predict(
            normalized[t], state=ref_state, episode_start=start, deterministic=True
        )
        np.testing.assert_array_equal(action, ref)
        if agent.recurrent:
            np.testing.assert_array_equal(state[0], ref_state[0])
            np.testing.assert_array_equal(state[1], ref_state[1])
    batch_action, _ = agent.predict(obs, episode_start=np.ones(len(obs), bool))
    batch_ref, _ = agent.model.predict(
        normalized, episode_start=np.ones(len(obs), bool), deterministic=True
    )
    np.testing.assert_array_equal(batch_action, batch_ref)


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
@pytest.mark.parametrize("cls", AGENTS, ids=lambda c: c.name)
def test_save_load_gives_identical_actions(trained, cls, action_type, tmp_path):
    agent = trained[cls.name, action_type]
    obs = rollout_obs(make_env(action_type=action_type), 16, seed=3)
    agent.save(tmp_path / "a")
    assert {p.name for p in (tmp_path / "a").iterdir()} == {
        "agent.json",
        "model.zip",
        "vecnormalize.npz",
        "env.json",
        "train_state.json",
        "rollout_state.npz",
    }
    meta = json.loads((tmp_path / "a" / "agent.json").read_text())
    assert meta["name"] == cls.name and meta["config"]["n_envs"] == 2
    loaded = BaseAgent.load(tmp_path / "a")
    assert type(loaded) is cls
    np.testing.assert_array_equal(
        loaded.vec_normalize.obs_rms.mean, agent.vec_normalize.obs_rms.mean
    )
    np.testing.assert_array_equal(loaded.vec_normalize.obs_rms.var, agent.vec_normalize.obs_rms.var)
    s1 = s2 = None
    for t in range(len(obs)):
        start = np.array([t == 0])
        a1, s1 = agent.predict(obs[t], state=s1, episode_start=start)
        a2, s2 = loaded.predict(obs[t], state=s2, episode_start=start)
        np.testing.assert_array_equal(a1, a2)
    assert loaded.env_kwargs == {**ENV_KWARGS, "action_type": action_type}


def test_lstm_state_is_carried_and_reset_on_episode_start(trained):
    agent = trained["ppo_lstm", "discrete"]
    obs = rollout_obs(make_env(), 6)
    state = None
    for t in range(5):
        _, state = agent.predict(obs[t], state=state, episode_start=np.array([t == 0]))
    assert state[0].shape == (1, 1, agent.config.lstm_hidden_size)
    assert np.abs(state[0]).sum() > 0
    _, carried = agent.predict(obs[5], state=state, episode_start=np.array([False]))
    _, reset = agent.predict(obs[5], state=state, episode_start=np.array([True]))
    _, fresh = agent.predict(obs[5], state=None)
    assert not np.array_equal(carried[0], fresh[0])
    np.testing.assert_array_equal(reset[0], fresh[0])
    np.testing.assert_array_equal(reset[1], fresh[1])
    # batched: only the flagged episode is reset
    batch_state = tuple(np.concatenate([s, s], axis=1) for s in state)
    _, both = agent.predict(obs[[5, 5]], state=batch_state, episode_start=np.array([False, True]))
    np.testing.assert_array_equal(both[0][:, 0], carried[0][:, 0])
    np.testing.assert_array_equal(both[0][:, 1], fresh[0][:, 0])


@pytest.mark.parametrize("source", ["single", "vector", "adapter", "kwargs"])
def test_fit_accepts_every_env_form(source):
    env = {
        "single": lambda: make_env(),
        "vector": lambda: gym.make_vec(ENV_ID, num_envs=2, **ENV_KWARGS),
        "adapter": lambda: to_sb3(gym.make_vec(ENV_ID, num_envs=2, **ENV_KWARGS)),
        "kwargs": lambda: dict(ENV_KWARGS),
    }[source]()
    agent = PPOMlpAgent(**TINY)
    agent.fit(env, train_steps=64, progress_bar=False)
    assert agent.num_timesteps >= 64
    assert agent.model.n_envs == 2
    assert agent.env_kwargs == ENV_KWARGS


def test_make_sb3_vec_env_replicates_a_single_env_n_times():
    venv, kwargs = make_sb3_vec_env(make_env(), 3)
    assert venv.num_envs == 3 and kwargs == ENV_KWARGS
    assert venv.reset().shape == (3, make_env().observation_space.shape[0])


def test_fit_on_plain_gymnasium_env_without_vector_entry_point():
    class Tiny(gym.Env):
        observation_space = spaces.Box(-1, 1, (4,), np.float32)
        action_space = spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self.observation_space.sample(), {}

        def step(self, action):
            self.t += 1
            return self.observation_space.sample(), float(action), False, self.t >= 16, {}

    agent = PPOMlpAgent(n_envs=1, n_steps=32, batch_size=32, n_epochs=1)
    agent.fit(Tiny(), train_steps=32, progress_bar=False)
    action, _ = agent.predict(np.zeros(4, np.float32))
    assert action.shape == () and action in (0, 1)
    assert agent.env_kwargs is None


def test_fit_twice_continues_the_step_count():
    agent = PPOMlpAgent(**TINY, env=make_env())
    agent.fit(train_steps=64, progress_bar=False)
    first = agent.num_timesteps
    agent.fit(train_steps=64, progress_bar=False)
    assert agent.num_timesteps == first + 64


def test_loaded_agent_keeps_training_with_its_normalizer(tmp_path):
    agent = PPOMlpAgent(**TINY)
    agent.fit(make_env(), train_steps=64, progress_bar=False)
    agent.save(tmp_path / "a")
    loaded = BaseAgent.load(tmp_path / "a")
    count_before = loaded.vec_normalize.obs_rms.count
    loaded.fit(make_env(), train_steps=64, progress_bar=False)
    assert loaded.num_timesteps == agent.num_timesteps + 64
    assert loaded.vec_normalize.obs_rms.count > count_before


def test_checkpoints_are_full_agents_with_their_config(tmp_path):
    agent = PPOMlpAgent(**TINY)
    agent.fit(
        make_env(),
        train_steps=128,
        progress_bar=False,
        checkpoint_every=64,
        checkpoint_dir=tmp_path,
    )
    dirs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert dirs == ["step_000000064", "step_000000128"]
    assert json.loads((tmp_path / "latest.json").read_text())["path"] == "step_000000128"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
    for d in dirs:
        assert (tmp_path / d / "agent.json").is_file() and (tmp_path / d / "model.zip").is_file()
    restored = BaseAgent.load(tmp_path / "step_000000064")
    assert restored.num_timesteps == 64 and restored.config == agent.config


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is not None, reason="tensorboard installed"
)
def test_tensorboard_without_tensorboard_installed_raises(tmp_path):
    with pytest.raises(ValueError, match="pip install tensorboard"):
        PPOMlpAgent(**TINY).fit(make_env(), train_steps=64, tensorboard_log=str(tmp_path))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_envs": 0}, "n_envs"),
        ({"gamma": 1.5}, "gamma"),
        ({"activation": "sigmoid"}, "activation"),
        ({"net_arch": [64, -1]}, "net_arch"),
        ({"lr_schedule": "cosine"}, "lr_schedule"),
        ({"no_such_field": 1}, "no_such_field"),
    ],
)
def test_bad_config_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PPOLstmAgent(**kwargs)


def test_bad_inputs_raise_value_error(trained):
    with pytest.raises(ValueError, match="fit"):
        PPOMlpAgent().predict(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="env"):
        PPOMlpAgent(**TINY).fit(train_steps=64)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        PPOMlpAgent(**TINY).fit(make_env(), train_steps=64, checkpoint_every=10)
    agent = trained["ppo_mlp", "discrete"]
    with pytest.raises(ValueError, match="observation"):
        agent.predict(np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="sub-envs"):
        agent.fit(gym.make_vec(ENV_ID, num_envs=3, **ENV_KWARGS), train_steps=8)
    lstm = trained["ppo_lstm", "discrete"]
    obs = rollout_obs(make_env(), 2)
    with pytest.raises(ValueError, match="episode_start"):
        lstm.predict(obs, episode_start=np.array([True]))


def test_cli_train_then_evaluate(tmp_path, capsys):
    from quantgym.agents.cli import main

    out = tmp_path / "run"
    args = [
        "train",
        "ppo_mlp",
        "--market",
        "regime",
        "--steps",
        "64",
        "--out",
        str(out),
        "--no-progress",
    ]
    args += [
        "--window-size",
        "8",
        "--episode-length",
        "64",
        "--env-set",
        'market_kwargs={"n_bars": 700}',
    ]
    args += ["--set", "n_envs=2", "--set", "n_steps=32", "--set", "batch_size=64"]
    assert main(args) == 0
    assert (out / "model.zip").is_file()
    assert json.loads((out / "env.json").read_text())["env_kwargs"]["window_size"] == 8
    code = main(
        [
            "evaluate",
            str(out),
            "--market",
            "regime",
            "--no-reference",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "ppo_mlp" in printed and "sharpe" in printed
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["results"]["ppo_mlp"]["n_episodes"] == 1


def test_recent_bars_extractor_is_the_newest_bar_plus_account_features():
    space = spaces.Box(-np.inf, np.inf, (8 * 3 + 5,), np.float32)
    extractor = RecentBarsExtractor(space, n_bars=2, n_market_features=3, n_account_features=5)
    obs = torch.arange(2 * 29, dtype=torch.float32).reshape(2, 29)
    out = extractor(obs)
    assert extractor.features_dim == 11
    assert torch.equal(out, obs[:, 6 * 3 :])  # bars 6 and 7 (newest) of the window, then account
    with pytest.raises(ValueError, match="n_bars"):
        RecentBarsExtractor(space, n_bars=9, n_market_features=3, n_account_features=5)


def test_recent_bars_extractor_keeps_only_the_named_account_features():
    space = spaces.Box(-np.inf, np.inf, (8 * 3 + 5,), np.float32)
    extractor = RecentBarsExtractor(
        space, n_bars=2, n_market_features=3, n_account_features=5, account_offsets=[0, 3]
    )
    obs = torch.arange(2 * 29, dtype=torch.float32).reshape(2, 29)
    assert extractor.features_dim == 8
    expected = torch.cat([obs[:, 18:24], obs[:, [24, 27]]], dim=1)  # 2 bars, position, drawdown
    assert torch.equal(extractor(obs), expected)
    none = RecentBarsExtractor(
        space, n_bars=1, n_market_features=3, n_account_features=5, account_offsets=[]
    )
    assert torch.equal(none(obs), obs[:, 21:24])
    with pytest.raises(ValueError, match="account_offsets"):
        RecentBarsExtractor(
            space, n_bars=1, n_market_features=3, n_account_features=5, account_offsets=[5]
        )


@pytest.mark.parametrize("cls", [PPOMlpAgent, PPOLstmAgent, PPOTransformerAgent])
def test_account_features_choose_what_the_policy_reads_of_the_account(cls, tmp_path):
    """``account_features=["position"]``: the policy reads the market and the position; the
    other account features (exposure, unrealized PnL ...) do not move its output."""
    env = make_env()
    agent = cls(**TINY, account_features=["position"]).fit(env, train_steps=64, progress_bar=False)
    every = cls(**TINY, account_features=True).build(env)
    assert agent.model.policy.features_dim == every.model.policy.features_dim - 4
    obs = assert_reads_the_position_alone(agent, env)
    agent.save(tmp_path / "agent")
    loaded = BaseAgent.load(tmp_path / "agent")
    assert loaded.config.account_features == ["position"]
    np.testing.assert_array_equal(scores(loaded, obs), scores(agent, obs))


def scores(agent, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return agent.action_scores(torch.as_tensor(obs)).numpy()


def assert_reads_the_position_alone(agent, env: gym.Env) -> np.ndarray:
    """Moving exposure, unrealized PnL, drawdown and time in position leaves the agent's action
    scores unchanged; moving the position does not. Returns the observations it used."""
    obs, _ = env.reset(seed=1)
    obs = np.stack([obs, obs])
    moved = obs.copy()
    moved[:, -4:] += 3.0  # exposure, unrealized_pnl, drawdown, time_in_position
    position = obs.copy()
    position[:, -5] += 3.0
    np.testing.assert_array_equal(scores(agent, moved), scores(agent, obs))
    assert not np.allclose(scores(agent, position), scores(agent, obs))
    return obs


@pytest.mark.parametrize("cls", [PPOMlpAgent, PPOTransformerAgent])
def test_mlp_and_transformer_read_the_position_alone_by_default(cls):
    """The decision made on the validation family (docs/results.md): the other account features
    are paths that leave the training range in a losing held-out window."""
    assert_reads_the_position_alone(cls(**TINY).build(make_env()), make_env())


@pytest.mark.parametrize("cls", [PPOMlpAgent, PPOLstmAgent, PPOTransformerAgent])
@pytest.mark.parametrize("bad", [["nope"], "position", ["position", "position"]])
def test_bad_account_features_raise_value_error(cls, bad):
    with pytest.raises(ValueError, match="account_features"):
        cls(account_features=bad)


def test_lstm_reads_recent_bars_or_the_whole_observation():
    env = make_env()
    recent = PPOLstmAgent(**TINY).build(env)
    base = env.unwrapped
    assert recent.model.policy.features_dim == base.n_market_features + base.n_account_features
    assert recent.config.window_size == 8
    full = PPOLstmAgent(**TINY, recent_bars=None).build(env)
    assert full.model.policy.features_dim == env.observation_space.shape[0]
    with pytest.raises(ValueError, match="recent_bars"):
        PPOLstmAgent(**TINY, recent_bars=9).build(env)
    with pytest.raises(ValueError, match="recent_bars"):
        PPOLstmAgent(recent_bars=0)


def test_linear_lr_schedule_anneals_to_zero_over_fit():
    agent = PPOMlpAgent(**TINY, learning_rate=1e-3, lr_schedule="linear")
    agent.fit(make_env(), train_steps=64, progress_bar=False)
    assert agent.model.lr_schedule(1.0) == pytest.approx(1e-3)
    assert agent.model.lr_schedule(0.0) == 0.0
    assert agent.model.policy.optimizer.param_groups[0]["lr"] < 1e-3
