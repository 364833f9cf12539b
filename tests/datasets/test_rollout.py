"""The rollout loop: exact episode boundaries, recurrent state, single env == vector env of
one, metadata; from_vector_rollout on arrays recorded elsewhere."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import quantgym
from quantgym import ENV_ID
from quantgym.datasets.rollout import SingleEnvStepper, from_vector_rollout, rollout
from quantgym.policies import RandomAgent, SMACrossoverAgent
from tests.datasets.factory import COLUMNS

KWARGS = {"market_kwargs": {"n_bars": 1500}, "episode_length": 20}


def make_vec(n: int = 3, **overrides):
    return gym.make_vec(ENV_ID, num_envs=n, **{**KWARGS, **overrides})


def make_single(**overrides):
    return gym.make(ENV_ID, **{**KWARGS, **overrides})


def replay(env: gym.Env, episode) -> None:
    """Replay an episode's actions from its start bar and check every recorded value."""
    start = int(episode.infos["bar"][0]) - 1
    obs, _ = env.reset(options={"start": start})
    np.testing.assert_array_equal(episode.observations[0], obs)  # the env's reset obs
    for t, action in enumerate(episode.actions):
        obs, reward, terminated, truncated, info = env.step(action)
        np.testing.assert_array_equal(episode.observations[t + 1], obs)
        assert episode.rewards[t] == pytest.approx(reward, rel=1e-12, abs=1e-15)
        assert episode.infos["equity"][t] == info["equity"]
        assert bool(episode.terminations[t]) == terminated
        if t < len(episode) - 1:
            assert not (terminated or truncated)


@pytest.mark.parametrize("n_steps", [200, 211, 59])
def test_vector_episodes_are_exact_env_episodes(n_steps):
    vec = make_vec(3)
    ds = rollout(vec, RandomAgent(env=vec, seed=1), n_steps=n_steps, seed=7, progress=False)
    assert ds.n_steps == n_steps == int(ds.episode_lengths.sum())
    assert ds.observations.shape[0] == n_steps + ds.n_episodes  # final observation kept
    bars = ds.infos["bar"]
    starts = ds.episode_starts
    for i in range(ds.n_episodes):
        episode_bars = bars[starts[i] : starts[i] + ds.episode_lengths[i]]
        assert np.all(np.diff(episode_bars) == 1)  # no autoreset step inside an episode
    single = make_single()
    for i in range(ds.n_episodes):
        replay(single, ds.episode(i))
    # Episodes that ran their full length end truncated by the env; the rest were cut.
    full = ds.episode_lengths == 20
    assert ds.truncations[starts[full] + 19].all()


def test_n_episodes_keeps_the_first_finished_episodes():
    vec = make_vec(3)
    ds = rollout(vec, SMACrossoverAgent(env=vec), n_episodes=4, seed=0, progress=False)
    assert ds.n_episodes == 4
    assert ds.episode_lengths.tolist() == [20, 20, 20, 20]
    # All three envs finish their first episode on the same step; the fourth is env 0's second.
    first_bars = ds.infos["bar"][ds.episode_starts]
    assert first_bars[1] == first_bars[0] + 21 or len(set(first_bars.tolist())) == 4
    for i in range(4):
        replay(make_single(), ds.episode(i))


def test_single_env_is_recorded_like_a_vector_env_of_one():
    single, vec = make_single(), make_vec(1)
    a = rollout(single, RandomAgent(env=single, seed=3), n_steps=70, seed=11, progress=False)
    b = rollout(vec, RandomAgent(env=vec, seed=3), n_steps=70, seed=11, progress=False)
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.episode_lengths, b.episode_lengths)
    np.testing.assert_allclose(a.rewards, b.rewards, rtol=1e-12, atol=1e-15)
    for key in ("equity", "position", "bar", "timestamp", "regime"):
        np.testing.assert_array_equal(a.infos[key], b.infos[key])


def test_vector_env_i_equals_single_env_seeded_seed_plus_i():
    vec = make_vec(2)
    ds = rollout(vec, SMACrossoverAgent(env=vec), n_episodes=4, seed=5, progress=False)
    for i in range(2):
        single = make_single()
        one = rollout(
            single, SMACrossoverAgent(env=single), n_episodes=2, seed=5 + i, progress=False
        )
        for j in range(2):
            mine, ref = ds.episode(2 * i + j), one.episode(j)
            np.testing.assert_array_equal(mine.observations, ref.observations)
            np.testing.assert_array_equal(mine.actions, ref.actions)
            np.testing.assert_allclose(mine.rewards, ref.rewards, rtol=1e-12, atol=1e-15)
            np.testing.assert_array_equal(mine.infos["bar"], ref.infos["bar"])


class RecordingPolicy:
    """Returns action 1, counts calls in its recurrent state and records what it was given."""

    def __init__(self) -> None:
        self.states: list = []
        self.starts: list = []

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        self.states.append(state)
        self.starts.append(np.array(episode_start, copy=True))
        n = obs.shape[0] if obs.ndim == 2 else 1
        counter = np.zeros(n, dtype=np.int64) if state is None else state + 1
        counter = np.where(episode_start, 0, counter)
        return np.ones(n, dtype=np.int64), counter


@pytest.mark.parametrize("vector", [True, False])
def test_recurrent_state_and_episode_starts(vector):
    env = make_vec(2, episode_length=5) if vector else make_single(episode_length=5)
    policy = RecordingPolicy()
    rollout(env, policy, n_steps=24, seed=0, progress=False)
    starts = np.array(policy.starts)
    n = 2 if vector else 1
    assert starts.shape[1] == n
    assert policy.states[0] is None
    # State is passed back: call k receives what call k - 1 returned.
    for k in range(1, len(policy.states)):
        expected = np.where(
            policy.starts[k - 1], 0, 0 if policy.states[k - 1] is None else policy.states[k - 1] + 1
        )
        np.testing.assert_array_equal(policy.states[k], expected)
    # Episodes of 5 steps: steps 0..4, autoreset step 5, next episode from step 6, etc.
    expected_starts = np.zeros(len(starts), dtype=bool)
    expected_starts[::6] = True
    for i in range(n):
        np.testing.assert_array_equal(starts[:, i], expected_starts)


def test_infos_and_metadata_are_recorded():
    vec = make_vec(2)
    ds = rollout(
        vec, SMACrossoverAgent(env=vec, fast=4, slow=12), n_steps=50, seed=3, progress=False
    )
    assert set(ds.infos) == {"equity", "position", "bar", "timestamp", "regime"}
    assert ds.infos["timestamp"].dtype == np.int64
    stamps = vec.unwrapped.market.timestamps.view(np.int64)
    np.testing.assert_array_equal(ds.infos["timestamp"], stamps[ds.infos["bar"]])
    np.testing.assert_array_equal(ds.infos["regime"], vec.unwrapped.market.regime[ds.infos["bar"]])
    meta = ds.metadata
    assert meta["env_id"] == ENV_ID
    assert meta["env_kwargs"]["episode_length"] == 20
    assert meta["env_kwargs"]["market_kwargs"] == {"n_bars": 1500}
    assert meta["data_fingerprint"] == vec.unwrapped.market.fingerprint
    assert meta["data_name"] == "synthetic:regime"
    assert len(meta["market_date_range"]) == 2 and len(meta["date_range"]) == 2
    assert meta["behavior_policy"] == "sma_crossover"
    assert meta["policy_params"] == {"fast": 4, "slow": 12, "allow_short": True}
    assert meta["seed"] == 3 and meta["n_envs"] == 2
    assert meta["quantgym_version"] == quantgym.__version__ and meta["created_at"]
    assert meta["action_space"] == {"type": "discrete", "n": 3}


def test_continuous_actions_are_recorded():
    vec = make_vec(2, action_type="continuous")
    ds = rollout(vec, RandomAgent(env=vec), n_steps=40, seed=0, progress=False)
    assert ds.actions.shape == (40, 1) and ds.actions.dtype == np.float32
    assert ds.action_space["type"] == "continuous"
    replay(make_single(action_type="continuous"), ds.episode(0))


def test_any_gymnasium_vector_env_and_buffer_growth():
    # A SyncVectorEnv has no config (no capacity hint) and very short episodes: the buffers grow.
    envs = gym.vector.SyncVectorEnv([lambda: make_single(episode_length=3) for _ in range(2)])

    class Flat:
        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            return np.ones(len(obs), dtype=np.int64), state

    ds = rollout(envs, Flat(), n_steps=301, seed=0, progress=False)
    assert ds.n_steps == 301
    lengths = ds.episode_lengths
    assert np.count_nonzero(lengths != 3) <= 2  # at most one cut episode per env
    assert ds.truncations[np.cumsum(lengths) - 1].all()
    assert np.all(np.diff(ds.infos["bar"])[np.diff(ds.episode_index()) == 0] == 1)


def test_bad_arguments_raise_value_errors():
    env = make_single()
    agent = RandomAgent(env=env)
    with pytest.raises(ValueError, match="exactly one"):
        rollout(env, agent, progress=False)
    with pytest.raises(ValueError, match="exactly one"):
        rollout(env, agent, n_steps=5, n_episodes=1, progress=False)
    with pytest.raises(ValueError, match="n_steps"):
        rollout(env, agent, n_steps=0, progress=False)
    with pytest.raises(ValueError, match="predict"):
        rollout(env, object(), n_steps=5, progress=False)
    with pytest.raises(ValueError, match="Env or VectorEnv"):
        rollout("env", agent, n_steps=5, progress=False)
    with pytest.raises(ValueError, match="seed"):
        rollout(env, agent, n_steps=5, seed=1.5, progress=False)


def test_progress_bar_runs(capsys):
    vec = make_vec(2)
    ds = rollout(vec, RandomAgent(env=vec), n_steps=30, progress=True)
    assert ds.n_steps == 30
    assert "collect" in capsys.readouterr().err


def rollout_by_hand(vec, act, t_steps: int, seed: int, info: str, metadata=None):
    """Step ``vec`` ``t_steps`` times with ``act(obs)``; the dataset of the recorded arrays."""
    obs, _ = vec.reset(seed=seed)
    record: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "term", "trunc", info)}
    record["obs"].append(obs)
    for _ in range(t_steps):
        action = act(obs)
        obs, reward, terminated, truncated, infos = vec.step(action)
        step = (obs, action, reward, terminated, truncated, infos[info])
        for values, value in zip(record.values(), step, strict=True):
            values.append(value)
    arrays = [np.asarray(v) for v in record.values()]
    return from_vector_rollout(*arrays[:5], infos={info: arrays[5]}, metadata=metadata)


def test_from_vector_rollout_drops_autoreset_steps_by_hand() -> None:
    t_steps, n_env = 6, 2
    # observation value = 10 * env + t (the obs returned after step t - 1)
    obs = (10.0 * np.arange(n_env)[None, :] + np.arange(t_steps + 1)[:, None])[..., None]
    terminations = np.zeros((t_steps, n_env), bool)
    truncations = np.zeros((t_steps, n_env), bool)
    terminations[1, 0] = True  # env 0: episode of steps 0..1, autoreset at 2, then 3..5 (cut)
    truncations[3, 1] = True  # env 1: episode of steps 0..3, autoreset at 4, then step 5 (cut)
    ds = from_vector_rollout(
        observations=obs.astype(np.float32),
        actions=np.arange(t_steps * n_env).reshape(t_steps, n_env) % 3,
        rewards=np.arange(t_steps * n_env, dtype=np.float64).reshape(t_steps, n_env),
        terminations=terminations,
        truncations=truncations,
        infos={"bar": np.arange(t_steps)[:, None].repeat(n_env, axis=1)},
    )
    np.testing.assert_array_equal(ds.episode_lengths, [2, 3, 4, 1])
    np.testing.assert_array_equal(ds.episode(0).observations[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(
        ds.episode(1).observations[:, 0], [3, 4, 5, 6]
    )  # starts at reset obs
    np.testing.assert_array_equal(ds.episode(2).observations[:, 0], [10, 11, 12, 13, 14])
    np.testing.assert_array_equal(ds.episode(3).observations[:, 0], [15, 16])
    np.testing.assert_array_equal(
        ds.infos["bar"], [0, 1, 3, 4, 5, 0, 1, 2, 3, 5]
    )  # no autoreset step
    np.testing.assert_array_equal(ds.episode(1).rewards, [6.0, 8.0, 10.0])
    assert ds.episode(0).terminated and ds.episode(2).truncated and not ds.episode(2).terminated
    assert ds.episode(1).truncated and ds.episode(3).truncated  # cut by the end of the rollout
    with pytest.raises(ValueError, match="observations must have shape \\(7, 2"):
        from_vector_rollout(
            obs[:-1], np.zeros((6, 2), int), np.zeros((6, 2)), terminations, truncations
        )


def test_from_vector_rollout_with_trading_vector_env() -> None:
    n_env, t_steps, length, window = 3, 20, 5, 4
    vec = gym.make_vec(ENV_ID, num_envs=n_env, episode_length=length, window_size=window)
    rng = np.random.default_rng(0)
    ds = rollout_by_hand(
        vec, lambda obs: rng.integers(0, 3, n_env), t_steps, seed=0, info="bar",
        metadata={"action_space": {"type": "discrete", "n": 3}},
    )  # fmt: skip
    # per env: 5-step episodes, one autoreset step each, then a 2-step remainder (20 = 3 * 6 + 2)
    np.testing.assert_array_equal(ds.episode_lengths, [5, 5, 5, 2] * n_env)
    position_column = window * vec.unwrapped.n_market_features  # account feature 0
    positions = np.array([-1.0, 0.0, 1.0])
    for episode in ds.iter_episodes():
        np.testing.assert_array_equal(
            np.diff(episode.infos["bar"]), 1
        )  # one market, no reset inside
        # every next observation (the final one included) holds the position the action chose
        np.testing.assert_allclose(
            episode.observations[1:, position_column], positions[episode.actions]
        )
    vec.close()


# ---- one loop for single and vector envs ---------------------------------------------------


class FollowTheSign:
    """A policy of the observation alone (same action for a batch row and a single obs)."""

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        batch = np.atleast_2d(obs)
        return (batch[:, -3] > 0).astype(np.int64) * 2, state  # long when the position > 0


@pytest.mark.parametrize("budget", [{"n_steps": 57}, {"n_episodes": 3}])
def test_single_env_and_vector_env_of_one_give_the_same_dataset(budget):
    single, vec = make_single(episode_length=15), make_vec(1, episode_length=15)
    a = rollout(single, FollowTheSign(), seed=4, progress=False, **budget)
    b = rollout(vec, FollowTheSign(), seed=4, progress=False, **budget)
    assert a.observation_storage == b.observation_storage == "reference"
    for name in COLUMNS:
        if name == "rewards":  # the two env steppers agree to an ulp (tests/envs)
            np.testing.assert_allclose(a.rewards, b.rewards, rtol=1e-12, atol=1e-15)
        else:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert list(a.infos) == list(b.infos)
    for key in a.infos:
        np.testing.assert_array_equal(a.infos[key], b.infos[key])
    assert a.metadata["n_envs"] == b.metadata["n_envs"] == 1


def test_single_env_stepper_autoresets_like_a_vector_env():
    env = make_single(episode_length=2)
    stepper = SingleEnvStepper(env)
    obs, policy_obs, infos = stepper.reset(seed=0)
    assert obs.shape == (1, *env.observation_space.shape) and policy_obs.shape == obs.shape[1:]
    assert infos["position"] == [0.0]
    steps = [stepper.step(np.array([2])) for _ in range(4)]
    assert [bool(s[3][0] or s[4][0]) for s in steps] == [False, True, False, False]
    autoreset = steps[2]  # the step after the done: action ignored, reset observation, reward 0
    assert autoreset[2].tolist() == [0.0] and autoreset[5]["position"] == [0.0]
    np.testing.assert_array_equal(autoreset[0][0], autoreset[1])
    assert steps[1][5]["position"] == [1.0] and steps[3][5]["position"] == [1.0]
    assert steps[3][5]["bar"][0] == autoreset[5]["bar"][0] + 1  # the new episode goes on


def test_from_vector_rollout_equals_the_rollout_loop():
    """The same cut: arrays recorded by hand give the dataset the loop records."""
    n_env, t_steps = 3, 47
    vec = make_vec(n_env, episode_length=10)
    policy = SMACrossoverAgent(env=vec, fast=3, slow=8)  # no state: actions from obs alone
    by_hand = rollout_by_hand(vec, lambda obs: policy.predict(obs)[0], t_steps, 2, "equity")
    looped = rollout(
        vec, SMACrossoverAgent(env=vec, fast=3, slow=8), n_steps=by_hand.n_steps, seed=2,
        progress=False, observations="dense",
    )  # fmt: skip
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(by_hand, name), getattr(looped, name))
    np.testing.assert_array_equal(by_hand.infos["equity"], looped.infos["equity"])
