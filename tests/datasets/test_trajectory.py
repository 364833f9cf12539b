"""TrajectoryDataset: columnar layout, exact episode boundaries, selection, summaries."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import quantgym
from quantgym import ENV_ID
from quantgym.datasets import (
    FORMAT_VERSION,
    DatasetMetadata,
    Episode,
    TrajectoryDataset,
    concatenate,
)
from tests.datasets.factory import assert_same_data
from tests.datasets.factory import hand_made_dataset as make_dataset

assert_same = functools.partial(assert_same_data, metadata=True)


# ---- layout --------------------------------------------------------------------------------


def test_sizes_and_episode_views() -> None:
    ds = make_dataset()
    assert (ds.n_episodes, ds.n_steps, len(ds)) == (3, 9, 9)
    assert ds.observations.shape == (12, 5)
    np.testing.assert_array_equal(ds.episode_starts, [0, 4, 6])
    ep = ds.episode(1)
    assert ep.observations.shape == (3, 5) and ep.actions.shape == (2,) and ep.rewards.shape == (2,)
    np.testing.assert_array_equal(ep.observations, ds.observations[5:8])  # final obs kept
    np.testing.assert_array_equal(ep.rewards, [5.0, 6.0])
    assert ep.truncated and not ep.terminated and ds.episode(0).terminated
    np.testing.assert_array_equal(ep.infos["bar"], [104, 105])
    assert ds.episode(-1).infos["bar"][-1] == 108


def test_step_aligned_observations() -> None:
    ds = make_dataset()
    np.testing.assert_array_equal(ds.episode_index(), [0, 0, 0, 0, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(ds.step_index(), [0, 1, 2, 3, 0, 1, 0, 1, 2])
    obs, nxt = ds.step_observations(), ds.next_observations()
    for i, ep in enumerate(ds.iter_episodes()):
        rows = ds.episode_index() == i
        np.testing.assert_array_equal(obs[rows], ep.observations[:-1])
        np.testing.assert_array_equal(nxt[rows], ep.observations[1:])


def test_from_episodes_equals_from_arrays() -> None:
    ds = make_dataset()
    rebuilt = TrajectoryDataset.from_episodes(list(ds.iter_episodes()), ds.metadata)
    assert_same(ds, rebuilt)


def test_arrays_are_read_only() -> None:
    ds = make_dataset()
    with pytest.raises(ValueError, match="read-only"):
        ds.rewards[0] = 99.0
    with pytest.raises(ValueError, match="read-only"):
        ds.episode(0).observations[0, 0] = 1.0


def test_returns() -> None:
    ds = make_dataset()
    np.testing.assert_array_equal(ds.episode_returns(), [1 + 2 + 3 + 4, 5 + 6, 7 + 8 + 9])


def test_returns_to_go_by_hand() -> None:
    ds = make_dataset()
    np.testing.assert_allclose(ds.returns_to_go(), [10, 9, 7, 4, 11, 6, 24, 17, 9])
    g = 0.9
    expected = [
        1 + g * 2 + g**2 * 3 + g**3 * 4,
        2 + g * 3 + g**2 * 4,
        3 + g * 4,
        4,  # episode boundary: restart
        5 + g * 6,
        6,
        7 + g * 8 + g**2 * 9,
        8 + g * 9,
        9,
    ]
    np.testing.assert_allclose(ds.returns_to_go(gamma=0.9), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="gamma"):
        ds.returns_to_go(gamma=1.5)


# ---- validation ----------------------------------------------------------------------------


def _arrays(**overrides: object) -> dict[str, object]:
    ds = make_dataset()
    kwargs: dict[str, object] = {
        "observations": ds.observations,
        "actions": ds.actions,
        "rewards": ds.rewards,
        "terminations": ds.terminations.copy(),
        "truncations": ds.truncations.copy(),
        "episode_lengths": ds.episode_lengths,
        "infos": ds.infos,
        "metadata": ds.metadata,
    }
    kwargs.update(overrides)
    return kwargs


def test_done_flag_inside_an_episode_is_rejected() -> None:
    truncations = make_dataset().truncations.copy()
    truncations[1] = True  # an autoreset boundary hidden inside episode 0
    with pytest.raises(ValueError, match="step 1 .*episode 0.*not the last step"):
        TrajectoryDataset.from_arrays(**_arrays(truncations=truncations))


def test_episode_without_done_flag_is_rejected() -> None:
    truncations = make_dataset().truncations.copy()
    truncations[5] = False
    with pytest.raises(ValueError, match="episode 1 ends .*without terminated or truncated"):
        TrajectoryDataset.from_arrays(**_arrays(truncations=truncations))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"observations": np.zeros((9, 5), np.float32)}, "observations must have shape \\(12"),
        ({"actions": np.zeros(8, np.int64)}, "actions must have 9 rows"),
        ({"rewards": np.zeros(9, np.int64)}, "rewards must be floating"),
        ({"episode_lengths": [4, 2, 2]}, "actions must have 8 rows"),
        ({"episode_lengths": [4, 0, 2, 3]}, "episode_lengths\\[1\\] = 0"),
        ({"episode_lengths": []}, "at least one episode"),
        ({"infos": {"bar": np.zeros(3)}}, "infos\\['bar'\\] must have 9 rows"),
        ({"infos": {"note": np.array(["a"] * 9, dtype=object)}}, "infos\\['note'\\] must be"),
        ({"infos": {"bad name": np.zeros(9)}}, "info name 'bad name'"),
        ({"actions": np.full(9, 3)}, "actions\\[0\\] = 3 is outside Discrete\\(3\\)"),
        ({"terminations": np.full(9, 2)}, "terminations must be boolean"),
        (
            {"metadata": {"seed": object()}},
            "metadata is not JSON-serialisable \\(keys \\['seed'\\]",
        ),
        ({"metadata": {"format_version": 99}}, "format_version"),
    ],
)
def test_bad_input_raises_value_error(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrajectoryDataset.from_arrays(**_arrays(**overrides))


def test_from_episodes_needs_final_observation() -> None:
    ep = make_dataset().episode(0)
    short = Episode(
        ep.observations[:-1], ep.actions, ep.rewards, ep.terminations, ep.truncations, ep.infos
    )
    with pytest.raises(ValueError, match="episodes\\[0\\] has 4 observations for 4 actions"):
        TrajectoryDataset.from_episodes([short])
    with pytest.raises(ValueError, match="episodes is empty"):
        TrajectoryDataset.from_episodes([])


# ---- metadata ------------------------------------------------------------------------------


def test_metadata_defaults_and_normalisation() -> None:
    ds = make_dataset()
    meta = ds.metadata
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["quantgym_version"] == quantgym.__version__
    assert dt.datetime.fromisoformat(meta["created_at"]).tzinfo is not None
    assert meta["seed"] == 7 and type(meta["seed"]) is int  # numpy scalar -> int
    assert meta["env_kwargs"]["positions"] == [-1.0, 0.0, 1.0]  # tuple -> JSON list
    json.dumps(meta)


def test_dataset_metadata_dataclass() -> None:
    base = make_dataset()
    meta = DatasetMetadata(env_id=ENV_ID, behavior_policy="flat", seed=3)
    ds = TrajectoryDataset.from_episodes(list(base.iter_episodes()), meta)
    assert ds.metadata["behavior_policy"] == "flat" and ds.metadata["data_fingerprint"] is None
    assert DatasetMetadata.from_dict(ds.metadata).seed == 3


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        (np.array([0, 2, 1, 0, 0, 1, 2, 2, 0]), {"type": "discrete", "n": 3}),
        (
            np.full((9, 1), 0.5, np.float32),
            {"type": "continuous", "shape": [1], "low": -1.0, "high": 1.0},
        ),
    ],
)
def test_action_space_inferred_when_missing(actions: np.ndarray, expected: dict) -> None:
    meta = {k: v for k, v in make_dataset().metadata.items() if k != "action_space"}
    ds = TrajectoryDataset.from_arrays(**_arrays(actions=actions, metadata=meta))
    assert ds.action_space == expected
    assert ds.is_discrete == (expected["type"] == "discrete")


# ---- selection and merging -----------------------------------------------------------------


def test_filter_episodes_by_mask_and_indices() -> None:
    ds = make_dataset()
    kept = ds.filter_episodes(np.array([True, False, True]))
    assert kept.n_episodes == 2 and kept.n_steps == 7
    np.testing.assert_array_equal(kept.episode(1).observations, ds.episode(2).observations)
    np.testing.assert_array_equal(kept.infos["bar"], [100, 101, 102, 103, 106, 107, 108])
    assert kept.metadata["parent_episodes"] == [0, 2]
    reordered = ds.filter_episodes([2, 1])
    np.testing.assert_array_equal(reordered.episode(0).observations, ds.episode(2).observations)
    np.testing.assert_array_equal(reordered.episode_returns(), [24.0, 11.0])
    with pytest.raises(ValueError, match="no episode"):
        ds.filter_episodes(np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="mask must have shape \\(3,\\)"):
        ds.filter_episodes(np.ones(2, dtype=bool))


def test_concatenate() -> None:
    a, b = make_dataset(seed=0), make_dataset(seed=1, lengths=(2, 5, 1))
    both = concatenate([a, b])
    assert both.n_episodes == 6 and both.n_steps == a.n_steps + b.n_steps
    np.testing.assert_array_equal(both.episode(3).observations, b.episode(0).observations)
    assert both.metadata["behavior_policy"] == "random"
    assert [c["seed"] for c in both.metadata["components"]] == [7, 7]
    assert (
        TrajectoryDataset.concatenate([a, b], {"behavior_policy": "mixed"}).metadata[
            "behavior_policy"
        ]
        == "mixed"
    )
    with pytest.raises(ValueError, match="action_space"):
        concatenate([a, make_dataset(discrete=False)])


# ---- inspection ----------------------------------------------------------------------------


def test_to_pandas() -> None:
    ds = make_dataset()
    frame = ds.to_pandas()
    assert len(frame) == ds.n_steps
    assert {
        "episode",
        "step",
        "action",
        "reward",
        "terminated",
        "truncated",
        "equity",
        "timestamp",
    } <= set(frame)
    assert frame["timestamp"].dtype == np.dtype("datetime64[ns]")
    assert frame.groupby("episode")["reward"].sum().tolist() == ds.episode_returns().tolist()
    wide = make_dataset(discrete=False).to_pandas(include_observations=True)
    assert {"action_0", "obs_0", "obs_4"} <= set(wide)


def test_describe() -> None:
    ds = make_dataset()
    summary = ds.describe()
    assert summary["n_episodes"] == 3 and summary["n_steps"] == 9
    assert sum(summary["action_histogram"]["counts"]) == 9
    assert summary["action_histogram"]["labels"] == [
        "0 (target -1)",
        "1 (target +0)",
        "2 (target +1)",
    ]
    assert summary["n_terminated"] == 1 and summary["n_truncated"] == 2
    assert summary["episode_return"]["max"] == 24.0
    assert summary["date_range"] == ["2020-01-01 00:00:00", "2020-01-09 00:00:00"]
    assert sum(make_dataset(discrete=False).describe()["action_histogram"]["counts"]) == 9


# ---- env round trip ------------------------------------------------------------------------


def collect_random(env: gym.Env, n_episodes: int, seed: int) -> TrajectoryDataset:
    """A minimal per-step collector (the real one lives in quantgym.datasets.collect)."""
    episodes = []
    env.action_space.seed(seed)
    for k in range(n_episodes):
        obs, _ = env.reset(seed=seed + k)
        observations, actions, rewards, terms, truncs = [obs], [], [], [], []
        infos: dict[str, list] = {}
        done = False
        while not done:
            action = env.action_space.sample()
            obs, reward, terminated, truncated, info = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            terms.append(terminated)
            truncs.append(truncated)
            for key in ("equity", "position", "bar", "timestamp", "regime"):
                if key in info:
                    infos.setdefault(key, []).append(info[key])
            done = terminated or truncated
        episodes.append(
            Episode(
                observations=np.asarray(observations),
                actions=np.asarray(actions),
                rewards=np.asarray(rewards, dtype=np.float64),
                terminations=np.asarray(terms),
                truncations=np.asarray(truncs),
                infos={k: np.asarray(v) for k, v in infos.items()},
            )
        )
    market = env.unwrapped.market
    return TrajectoryDataset.from_episodes(
        episodes,
        DatasetMetadata(
            env_id=ENV_ID,
            env_kwargs=dict(env.spec.kwargs),
            data_name=market.name,
            data_fingerprint=market.fingerprint,
            date_range=[str(t) for t in market.date_range],
            behavior_policy="random",
            seed=seed,
            action_space={"type": "discrete", "n": int(env.action_space.n)},
        ),
    )


def test_env_round_trip(tmp_path: Path) -> None:
    env = gym.make(ENV_ID, episode_length=25, window_size=8)
    ds = collect_random(env, n_episodes=3, seed=0)
    assert ds.n_episodes == 3 and ds.n_steps == 75
    assert ds.observations.shape == (78, *env.observation_space.shape)
    assert ds.infos["timestamp"].dtype == np.dtype("datetime64[ns]")
    assert set(ds.infos) == {"equity", "position", "bar", "timestamp", "regime"}
    # consecutive bars inside an episode, and the final observation is the env's last obs
    bars = ds.episode(0).infos["bar"]
    np.testing.assert_array_equal(np.diff(bars), 1)
    assert ds.episode(2).truncated
    loaded = TrajectoryDataset.load(ds.save(tmp_path / "env_ds"))
    assert_same(ds, loaded)
    assert loaded.metadata["data_fingerprint"] == env.unwrapped.market.fingerprint
    assert pd.Timestamp(loaded.describe()["date_range"][0]) == pd.Timestamp(
        ds.infos["timestamp"].min()
    )
    env.close()
