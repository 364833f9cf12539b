"""d3rlpy agents: fit a few steps on a tiny exported dataset, batched predict, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("d3rlpy")

from quantgym.agents import load_agent, make_agent  # noqa: E402
from quantgym.agents.d3rlpy import D3rlpyDecisionTransformerAgent  # noqa: E402
from quantgym.agents.observations import realised_log_return, recent_bar_columns  # noqa: E402
from quantgym.datasets.presets import make_dataset  # noqa: E402
from quantgym.datasets.trajectory import TrajectoryDataset  # noqa: E402

ENV = {"episode_length": 60, "window_size": 4}
SMALL = {"hidden_units": [16], "batch_size": 16}
DT_SMALL = {
    "context_length": 4,
    "n_layers": 1,
    "d_model": 16,
    "batch_size": 8,
    "action_sampler": "greedy",  # the tests compare actions with argmax paths
}


@pytest.fixture(scope="module")
def tiny_dataset():
    return make_dataset("regime", "mixed", n_steps=600, seed=0, num_envs=3, env_kwargs=ENV)


@pytest.fixture(scope="module")
def tiny_continuous_dataset():
    env = {**ENV, "action_type": "continuous"}
    return make_dataset("regime", "random", n_steps=300, seed=0, num_envs=3, env_kwargs=env)


AGENTS = [
    ("bc", SMALL),
    ("filtered_bc", SMALL),
    ("cql", SMALL),
    ("bcq", SMALL),
    ("dt_d3rlpy", DT_SMALL),
]


@pytest.mark.parametrize(("name", "fields"), AGENTS)
def test_fit_predict_save_load_same_greedy_actions(
    name: str, fields: dict, tiny_dataset, tmp_path: Path
) -> None:
    agent = make_agent(name, **fields)
    assert agent.offline is True
    agent.fit(tiny_dataset, train_steps=3, progress_bar=False)
    obs = tiny_dataset.step_observations()[:6]
    actions, _ = agent.predict(obs)
    assert actions.shape == (6,) and actions.dtype == np.int64
    assert set(actions.tolist()) <= {0, 1, 2}
    agent.save(tmp_path / name)
    assert (tmp_path / name / "model.pt").is_file()
    loaded = load_agent(tmp_path / name)
    assert type(loaded) is type(agent)
    np.testing.assert_array_equal(loaded.predict(obs)[0], actions)
    single, _ = loaded.predict(obs[0])
    assert single.shape == () and int(single) == int(actions[0])


@pytest.mark.parametrize("name", ["bc", "cql"])
def test_continuous_datasets_use_continuous_algorithms(name: str, tiny_continuous_dataset) -> None:
    agent = make_agent(name, **SMALL).fit(
        tiny_continuous_dataset, train_steps=2, progress_bar=False
    )
    assert agent.config.discrete is False
    actions, _ = agent.predict(tiny_continuous_dataset.step_observations()[:4])
    assert actions.shape == (4, 1) and np.all(np.abs(actions) <= 1.0 + 1e-6)


def test_fit_trains_exactly_train_steps_and_writes_no_logs(
    tiny_dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    agent = make_agent("bc", **SMALL)
    agent.fit(tiny_dataset, train_steps=7, progress_bar=False)  # below any epoch size
    assert agent.algo.grad_step == 7
    assert not (tmp_path / "d3rlpy_logs").exists()


def test_action_size_comes_from_the_action_space(tiny_dataset) -> None:
    d = tiny_dataset
    never_long = TrajectoryDataset.from_arrays(
        d.observations,
        np.minimum(d.actions, 1),  # action 2 never taken; the space still has 3 actions
        d.rewards,
        d.terminations,
        d.truncations,
        d.episode_lengths,
        metadata=d.metadata,
    )
    agent = make_agent("bc", **SMALL).fit(never_long, train_steps=1, progress_bar=False)
    assert agent.config.action_size == 3
    assert agent.algo.impl.action_size == 3


def test_cql_short_run_defaults_sync_the_target() -> None:
    config = make_agent("cql").config
    assert config.target_update_interval < config.train_steps


def test_dt_drops_the_padding_row_of_truncated_episodes(tiny_dataset) -> None:
    agent = make_agent("dt_d3rlpy", **DT_SMALL).fit(tiny_dataset, train_steps=1, progress_bar=False)
    exported = agent._export(tiny_dataset)
    lengths = [ep.size() for ep in exported.episodes]
    assert lengths == tiny_dataset.episode_lengths.tolist()
    # Q-learning agents keep it: one extra row per truncated episode, all transitions kept.
    bc = make_agent("bc", **SMALL).fit(tiny_dataset, train_steps=1, progress_bar=False)
    assert bc._export(tiny_dataset).transition_count == tiny_dataset.n_steps


def test_dt_state_decrements_return_to_go_and_resets(tiny_dataset) -> None:
    agent = make_agent("dt_d3rlpy", **DT_SMALL, target_return=1.0)
    agent.fit(tiny_dataset, train_steps=1, progress_bar=False)
    episode = tiny_dataset.episode(0)
    obs = np.asarray(episode.observations[:3], dtype=np.float32)
    _, state = agent.predict(obs[:1])
    assert state.return_rest[0] == pytest.approx(1.0)
    _, state = agent.predict(obs[1:2], state, episode_start=np.array([False]))
    _, state = agent.predict(obs[2:3], state, episode_start=np.array([False]))
    realised = float(np.sum(episode.rewards[:2]))
    assert state.return_rest[0] == pytest.approx(1.0 - realised, abs=1e-6)
    assert state.valid[0].sum() == 3 and state.timesteps[0, -1] == 3
    _, state = agent.predict(obs[2:3], state, episode_start=np.array([True]))
    assert state.return_rest[0] == pytest.approx(1.0)
    assert state.valid[0].sum() == 1 and state.timesteps[0, -1] == 1


def test_dt_batched_predict_equals_one_env_at_a_time(tiny_dataset) -> None:
    agent = make_agent("dt_d3rlpy", **DT_SMALL).fit(tiny_dataset, train_steps=2, progress_bar=False)
    eps = [np.asarray(tiny_dataset.episode(i).observations[:5], np.float32) for i in range(3)]
    batch_state, singles = None, [None, None, None]
    for t in range(5):
        start = np.full(3, t == 0)
        batch_actions, batch_state = agent.predict(
            np.stack([e[t] for e in eps]), batch_state, episode_start=start
        )
        for i in range(3):
            action, singles[i] = agent.predict(eps[i][t][None], singles[i], start[:1])
            assert int(action[0]) == int(batch_actions[i])


def test_realised_log_return_matches_the_rewards(tiny_dataset) -> None:
    episode = tiny_dataset.episode(0)
    got = realised_log_return(episode.observations[:-1], episode.observations[1:])
    exact = np.abs(got - episode.rewards) < 1e-6
    assert exact.mean() > 0.9  # only closing a position at a new equity peak is approximate


def test_bad_inputs_raise_value_errors(tiny_dataset) -> None:
    with pytest.raises(ValueError, match="train_steps"):
        make_agent("bc", train_steps=0)
    with pytest.raises(ValueError, match="dataset"):
        make_agent("bc").fit(np.zeros((3, 4)), train_steps=1)
    agent = make_agent("bc", **SMALL)
    with pytest.raises(ValueError, match="no model"):
        agent.predict(np.zeros(10, np.float32))
    agent.fit(tiny_dataset, train_steps=1, progress_bar=False)
    with pytest.raises(ValueError, match="observation"):
        agent.predict(np.zeros(3, np.float32))


def test_load_rejects_a_checkpoint_of_another_shape(tiny_dataset, tmp_path: Path) -> None:
    make_agent("bc", **SMALL).fit(tiny_dataset, train_steps=1, progress_bar=False).save(
        tmp_path / "a"
    )
    make_agent("bc", hidden_units=[8]).fit(tiny_dataset, train_steps=1, progress_bar=False).save(
        tmp_path / "b"
    )
    (tmp_path / "a" / "model.pt").write_bytes((tmp_path / "b" / "model.pt").read_bytes())
    with pytest.raises(ValueError, match="model.pt"):
        load_agent(tmp_path / "a")


def test_dt_needs_discrete_actions(tiny_continuous_dataset) -> None:
    with pytest.raises(ValueError, match="discrete"):
        D3rlpyDecisionTransformerAgent(**DT_SMALL).fit(tiny_continuous_dataset, train_steps=1)


@pytest.mark.parametrize(
    ("recent_bars", "account", "expected"),
    [(1, False, (8, 12)), (2, False, (4, 12)), (1, True, (8, 17)), (None, True, (0, 17))],
)
def test_recent_bar_columns(recent_bars, account, expected) -> None:
    # window of 3 bars x 4 features, then 5 account features: 17 columns
    columns = recent_bar_columns(17, 3, recent_bars, account)
    first, stop = expected
    market = list(range(first, 12))
    assert columns.tolist() == market + (list(range(12, 17)) if account else [])
    assert stop == 17 or not account


@pytest.mark.parametrize(("recent_bars", "account"), [(1, False), (None, True), (2, True)])
def test_network_reads_the_selected_columns(recent_bars, account, tiny_dataset) -> None:
    agent = make_agent("bc", **SMALL, recent_bars=recent_bars, account_features=account)
    agent.fit(tiny_dataset, train_steps=1, progress_bar=False)
    n_features = (tiny_dataset.observation_shape[0] - 5) // ENV["window_size"]
    bars = ENV["window_size"] if recent_bars is None else recent_bars
    assert agent.input_dim == bars * n_features + (5 if account else 0)
    assert agent.algo.impl.observation_shape == (agent.input_dim,)
    # predict takes raw env observations
    assert agent.predict(tiny_dataset.step_observations()[:2])[0].shape == (2,)


def test_dt_predict_equals_d3rlpys_greedy_stateful_wrapper(tiny_dataset) -> None:
    from d3rlpy.algos import GreedyTransformerActionSampler

    agent = make_agent("dt_d3rlpy", **DT_SMALL).fit(tiny_dataset, train_steps=3, progress_bar=False)
    episode = tiny_dataset.episode(1)
    obs = np.asarray(episode.observations[:12], np.float32)
    rewards = realised_log_return(obs[:-1], obs[1:])  # what our state recovers
    wrapper = agent.algo.as_stateful_wrapper(
        target_return=agent.config.target_return, action_sampler=GreedyTransformerActionSampler()
    )
    state, reward = None, 0.0
    for t in range(len(obs)):
        ours, state = agent.predict(obs[t], state, episode_start=np.array([t == 0]))
        theirs = wrapper.predict(agent._select(obs[t]), reward)
        assert int(ours) == int(theirs)
        reward = float(rewards[t]) if t < len(rewards) else 0.0


def test_named_account_features_select_those_columns(tiny_dataset) -> None:
    agent = make_agent("cql", **SMALL, account_features=["position"])
    agent.fit(tiny_dataset, train_steps=1, progress_bar=False)
    dim = tiny_dataset.observation_shape[0]
    assert agent.columns[-1] == dim - 5  # the position, first of the five account columns
    n_features = (dim - 5) // ENV["window_size"]
    assert agent.input_dim == n_features + 1
    with pytest.raises(ValueError, match="unknown account_features"):
        make_agent("cql", account_features=["cash"])
    with pytest.raises(ValueError, match="account_features"):
        make_agent("cql", account_features="position")


def test_filtered_bc_trains_on_the_best_episodes_only(tiny_dataset) -> None:
    agent = make_agent("filtered_bc", **SMALL, top_fraction=0.25)
    kept = agent.best_episodes(tiny_dataset)
    returns = tiny_dataset.episode_returns()
    assert kept.size == int(np.ceil(0.25 * tiny_dataset.n_episodes))
    assert returns[kept].min() >= np.delete(returns, kept).max()
    agent.fit(tiny_dataset, train_steps=1, progress_bar=False)
    exported = agent._export(tiny_dataset)  # noqa: SLF001 - what d3rlpy is given
    assert exported.transition_count == int(tiny_dataset.episode_lengths[kept].sum())
    with pytest.raises(ValueError, match="top_fraction"):
        make_agent("filtered_bc", top_fraction=0.0)


def test_cql_rewards_are_scaled_to_unit_std(tiny_dataset) -> None:
    agent = make_agent("cql", **SMALL).fit(tiny_dataset, train_steps=1, progress_bar=False)
    scale = agent.config.fitted_reward_scale
    assert scale == pytest.approx(1.0 / np.std(tiny_dataset.rewards))
    assert np.std(agent._training_rewards(tiny_dataset)) == pytest.approx(1.0, rel=1e-5)  # noqa: SLF001
    fixed = make_agent("cql", **SMALL, reward_scale=1.0).fit(
        tiny_dataset, train_steps=1, progress_bar=False
    )
    assert fixed.config.fitted_reward_scale == 1.0
    with pytest.raises(ValueError, match="reward_scale"):
        make_agent("cql", reward_scale=-1.0)
    with pytest.raises(ValueError, match="reward_scale must be a number"):
        make_agent("cql", reward_scale="2")  # a string is not a number, even one float() reads


def test_dt_softmax_sampler_is_seeded_and_samples(tiny_dataset) -> None:
    fields = {**DT_SMALL, "action_sampler": "softmax", "seed": 3}
    obs = tiny_dataset.step_observations()[:64]

    def run() -> np.ndarray:
        agent = make_agent("dt_d3rlpy", **fields).fit(
            tiny_dataset, train_steps=2, progress_bar=False
        )
        agent._generator = None  # noqa: SLF001 - a fresh generator, as after load
        return agent.predict(obs)[0]

    first, second = run(), run()
    np.testing.assert_array_equal(first, second)  # same seed, same samples
    greedy = make_agent("dt_d3rlpy", **DT_SMALL, seed=3).fit(
        tiny_dataset, train_steps=2, progress_bar=False
    )
    assert not np.array_equal(first, greedy.predict(obs)[0])  # 64 draws are not all the argmax
    with pytest.raises(ValueError, match="action_sampler"):
        make_agent("dt_d3rlpy", action_sampler="beam")


@pytest.mark.parametrize("name", ["bc", "filtered_bc"])
def test_bc_decides_from_the_moving_average_of_its_probabilities(
    name: str, tiny_dataset, tmp_path: Path
) -> None:
    import torch

    agent = make_agent(name, **SMALL, action_smoothing=0.3)
    agent.fit(tiny_dataset, train_steps=5, progress_bar=False)
    obs = np.asarray(tiny_dataset.episode(0).observations[:8], np.float32)
    both = np.stack([obs, obs[::-1]], axis=1)  # (T, 2 envs, D)
    with torch.no_grad():
        probs = torch.softmax(agent.action_scores(torch.from_numpy(both.reshape(16, -1))), -1)
    probs = probs.double().numpy().reshape(8, 2, -1)
    state, average = None, None
    for t in range(8):
        start = np.array([t == 0, t in (0, 5)])  # env 1 restarts at t = 5
        actions, state = agent.predict(both[t], state, episode_start=start)
        average = probs[t] if average is None else 0.7 * average + 0.3 * probs[t]
        average[start] = probs[t][start]
        np.testing.assert_allclose(state, average, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(actions, average.argmax(1))
    agent.save(tmp_path / name)
    assert load_agent(tmp_path / name).config.action_smoothing == 0.3
    plain = make_agent(name, **SMALL, action_smoothing=1.0)
    plain.fit(tiny_dataset, train_steps=5, progress_bar=False)
    greedy = plain.action_scores(torch.from_numpy(obs)).argmax(1).numpy()
    np.testing.assert_array_equal(plain.predict(obs, "ignored")[0], greedy)
    with pytest.raises(ValueError, match="action_smoothing"):
        make_agent(name, action_smoothing=0.0)


def test_continuous_bc_smooths_its_actions(tiny_continuous_dataset) -> None:
    agent = make_agent("bc", **SMALL, action_smoothing=0.5)
    agent.fit(tiny_continuous_dataset, train_steps=5, progress_bar=False)
    obs = np.asarray(tiny_continuous_dataset.episode(0).observations[:3], np.float32)
    raw = make_agent("bc", **SMALL, action_smoothing=1.0)
    raw.fit(tiny_continuous_dataset, train_steps=5, progress_bar=False)
    expected = raw.predict(obs)[0]  # the same seed and data: the same network
    a0, state = agent.predict(obs[:1])
    a1, state = agent.predict(obs[1:2], state, np.array([False]))
    np.testing.assert_allclose(a0, expected[:1], atol=1e-6)
    np.testing.assert_allclose(a1, 0.5 * expected[:1] + 0.5 * expected[1:2], atol=1e-6)


def test_bcq_greedy_action_is_d3rlpys_and_continuous_data_is_refused(
    tiny_dataset, tiny_continuous_dataset
) -> None:
    agent = make_agent("bcq", **SMALL).fit(tiny_dataset, train_steps=20, progress_bar=False)
    obs = tiny_dataset.step_observations()[:50]
    ours, _ = agent.predict(obs)
    np.testing.assert_array_equal(ours, agent.algo.predict(agent._select(obs)))
    values = agent.state_values(obs)
    import torch

    q = agent.action_scores(torch.from_numpy(np.asarray(obs, np.float32))).detach().numpy()
    np.testing.assert_allclose(values, q.max(1) / agent.config.fitted_reward_scale, rtol=1e-6)
    with pytest.raises(ValueError, match="discrete"):
        make_agent("bcq", **SMALL).fit(tiny_continuous_dataset, train_steps=1, progress_bar=False)
    with pytest.raises(ValueError, match="action_flexibility"):
        make_agent("bcq", action_flexibility=1.0)


def test_dt_decides_from_the_moving_average_of_its_probabilities(tiny_dataset) -> None:
    import torch

    agent = make_agent("dt_d3rlpy", **DT_SMALL, action_smoothing=0.5)
    agent.fit(tiny_dataset, train_steps=3, progress_bar=False)
    obs = np.asarray(tiny_dataset.episode(1).observations[:6], np.float32)
    state, average = None, None
    for t in range(len(obs)):
        start = np.array([t in (0, 3)])  # a second episode starts at t = 3
        batch = obs[t : t + 1]
        with torch.no_grad():  # the logits at the context predict is about to build
            logits = agent.action_scores(torch.from_numpy(batch), state, start)
        p = torch.softmax(logits.double(), dim=-1).numpy()
        average = p if start[0] else 0.5 * average + 0.5 * p
        actions, state = agent.predict(batch, state, start)
        np.testing.assert_allclose(state.smoothed, average, rtol=1e-12)
        assert actions[0] == average.argmax(axis=1)[0]
    with pytest.raises(ValueError, match="action_smoothing"):
        make_agent("dt_d3rlpy", action_smoothing=1.5)


def test_dt_learning_rate_schedule_spans_the_steps_of_the_fit_that_builds_it(
    tiny_dataset,
) -> None:
    agent = make_agent("dt_d3rlpy", **DT_SMALL)  # config.train_steps: the 3k default
    agent.fit(tiny_dataset, train_steps=4, progress_bar=False)
    c = agent.config
    assert c.train_steps == 4
    # the cosine decay ends after this fit's tokens, not after 3k steps' worth
    assert agent.algo.config.final_tokens == 4 * c.batch_size * c.context_length
    agent.fit(tiny_dataset, train_steps=2, progress_bar=False)  # continued: the schedule stays
    assert agent.algo.config.final_tokens == 4 * c.batch_size * c.context_length
