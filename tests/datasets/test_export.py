"""Exports: d3rlpy MDPDataset (episodes, transitions, action space) and Minari round trip."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from quantgym.datasets.export import gym_action_space, to_d3rlpy, to_minari
from quantgym.datasets.trajectory import TrajectoryDataset
from tests.datasets.factory import hand_made_dataset as make_dataset

d3rlpy = pytest.importorskip("d3rlpy")


@pytest.mark.parametrize("discrete", [True, False])
def test_to_d3rlpy_keeps_episodes_and_transitions(discrete: bool) -> None:
    ds = make_dataset(discrete=discrete)
    mdp = to_d3rlpy(ds)
    assert isinstance(mdp, d3rlpy.dataset.MDPDataset)
    assert len(mdp.episodes) == ds.n_episodes
    assert mdp.transition_count == ds.n_steps
    info = mdp.dataset_info
    if discrete:
        assert info.action_space == d3rlpy.constants.ActionSpace.DISCRETE and info.action_size == 3
    else:
        assert (
            info.action_space == d3rlpy.constants.ActionSpace.CONTINUOUS and info.action_size == 1
        )
    for episode, ours in zip(mdp.episodes, ds.iter_episodes(), strict=True):
        assert episode.terminated == ours.terminated  # terminals vs timeouts preserved
        assert episode.transition_count == len(ours)
        assert episode.compute_return() == pytest.approx(ours.episode_return)


def test_to_d3rlpy_final_observation_of_truncated_episode() -> None:
    ds = make_dataset()
    mdp = to_d3rlpy(ds)
    picker = d3rlpy.dataset.BasicTransitionPicker()
    truncated = ds.episode(1)  # 2 steps, truncated
    last = picker(mdp.episodes[1], len(truncated) - 1)
    np.testing.assert_array_equal(last.next_observation, truncated.observations[-1])
    assert last.terminal == 0.0
    terminated = ds.episode(0)
    last = picker(mdp.episodes[0], len(terminated) - 1)
    assert last.terminal == 1.0
    np.testing.assert_array_equal(last.observation, terminated.observations[-2])
    # without the extra row d3rlpy drops the last transition of each truncated episode
    plain = to_d3rlpy(ds, keep_final_observation=False)
    assert plain.transition_count == ds.n_steps - 2


def test_to_d3rlpy_step_terminated_and_truncated_counts_as_terminal() -> None:
    ds = make_dataset()
    truncations = ds.truncations.copy()
    truncations[3] = True  # episode 0 ends terminated *and* truncated
    both = TrajectoryDataset.from_arrays(
        ds.observations, ds.actions, ds.rewards, ds.terminations, truncations, ds.episode_lengths
    )
    mdp = to_d3rlpy(both)
    assert mdp.episodes[0].terminated and mdp.transition_count == ds.n_steps


@pytest.mark.parametrize("discrete", [True, False])
def test_d3rlpy_trains_a_few_steps(discrete: bool) -> None:
    ds = make_dataset(discrete=discrete)
    if discrete:
        algo = d3rlpy.algos.DiscreteBCConfig(batch_size=4).create(device="cpu:0")
    else:
        algo = d3rlpy.algos.BCConfig(batch_size=4).create(device="cpu:0")
    result = algo.fit(
        to_d3rlpy(ds),
        n_steps=10,
        n_steps_per_epoch=10,
        show_progress=False,
        save_interval=10**9,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
    )
    assert len(result) == 1 and np.isfinite(result[0][1]["loss"])
    actions = algo.predict(ds.observations[:4])
    if discrete:
        assert actions.shape == (4,) and set(actions.tolist()) <= {0, 1, 2}
    else:
        assert actions.shape == (4, 1)


@pytest.fixture()
def minari_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytest.importorskip("minari")
    path = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    return path


@pytest.mark.parametrize("discrete", [True, False])
def test_minari_round_trip(minari_path: Path, discrete: bool) -> None:
    import minari

    ds = make_dataset(discrete=discrete)
    created = to_minari(ds, "quantgym/unit-v0")
    assert created.total_episodes == ds.n_episodes
    loaded = minari.load_dataset("quantgym/unit-v0")
    assert (minari_path / "quantgym" / "unit-v0").is_dir()
    assert loaded.total_episodes == ds.n_episodes and loaded.total_steps == ds.n_steps
    assert loaded.action_space == gym_action_space(ds)
    for episode, ours in zip(loaded.iterate_episodes(), ds.iter_episodes(), strict=True):
        np.testing.assert_array_equal(episode.observations, ours.observations)
        np.testing.assert_array_equal(episode.actions, ours.actions)
        np.testing.assert_array_equal(episode.rewards, ours.rewards)
        np.testing.assert_array_equal(episode.terminations, ours.terminations)
        np.testing.assert_array_equal(episode.truncations, ours.truncations)
        np.testing.assert_array_equal(episode.infos["bar"], ours.infos["bar"])
        np.testing.assert_array_equal(
            episode.infos["timestamp"].astype("datetime64[ns]"), ours.infos["timestamp"]
        )
    assert json.loads(loaded.storage.metadata["quantgym_metadata"]) == ds.metadata


def test_minari_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "minari", None)  # makes `import minari` fail
    with pytest.raises(ValueError, match=r"pip install quantgym\[minari\]"):
        to_minari(make_dataset(), "quantgym/none-v0")
