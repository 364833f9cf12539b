"""Observations by reference: bit-identical to a dense recording, detected never guessed."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from quantgym.datasets import TrajectoryDataset, collect, concatenate, to_d3rlpy, to_minari
from quantgym.datasets.sequence import SequenceDataset
from quantgym.datasets.storage import MarketReference, ObservationReferences, market_reference
from quantgym.policies import RandomAgent
from tests.datasets.factory import assert_same_data, make_env, recorded


def record(n_envs: int, mode: str, n_steps: int = 157, **overrides) -> TrajectoryDataset:
    return recorded(mode, n_steps, n_envs=n_envs, seed=7, policy_seed=4, **overrides)


@pytest.mark.parametrize("n_envs", [1, 3])
@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_reference_equals_dense_recording(n_envs: int, action_type: str) -> None:
    ref = record(n_envs, "auto", action_type=action_type)
    dense = record(n_envs, "dense", action_type=action_type)
    assert (ref.observation_storage, dense.observation_storage) == ("reference", "dense")
    assert ref.derived_infos == ("bar", "timestamp", "regime")
    assert_same_data(ref, dense)
    for i in (0, ref.n_episodes - 1):
        assert ref.episode(i).observations.tobytes() == dense.episode(i).observations.tobytes()
    np.testing.assert_array_equal(ref.step_observations(), dense.step_observations())
    np.testing.assert_array_equal(ref.next_observations(), dense.next_observations())
    rows = np.array([0, 5, ref.n_steps + ref.n_episodes - 1])
    np.testing.assert_array_equal(ref.observations_at(rows), dense.observations[rows])


def test_reference_is_smaller_per_transition() -> None:
    ref, dense = record(3, "auto", n_steps=3000), record(3, "dense", n_steps=3000)
    market = sum(a.nbytes for a in ref.observation_references.market.arrays().values())
    assert (ref.nbytes - market) / ref.n_steps < 64
    assert dense.nbytes / dense.n_steps > 4 * ref.observation_shape[0]  # float32 obs dominate


def test_run_shorter_than_the_probe_still_decides() -> None:
    ref, dense = record(3, "auto", n_steps=4), record(3, "dense", n_steps=4)
    assert ref.observation_storage == "reference"
    assert_same_data(ref, dense)


class Doubled(gym.ObservationWrapper):
    def observation(self, observation: np.ndarray) -> np.ndarray:
        return (observation * 2).astype(np.float32)


class ZeroAfter(gym.ObservationWrapper):
    """Changes observations only from the ``after``-th one on (the probe cannot see it)."""

    def __init__(self, env: gym.Env, after: int) -> None:
        super().__init__(env)
        self.after, self.count = after, 0

    def observation(self, observation: np.ndarray) -> np.ndarray:
        self.count += 1
        return observation * 0 if self.count > self.after else observation


def test_wrapped_env_falls_back_to_dense() -> None:
    env = Doubled(make_env(1))
    ds = collect(env, RandomAgent(env=env, seed=0), n_steps=50, seed=1, progress=False)
    assert ds.observation_storage == "dense" and ds.derived_infos == ()
    # Same rollout (actions do not depend on observations): the wrapper's values were kept.
    env2 = make_env(1)
    raw = collect(env2, RandomAgent(env=env2, seed=0), n_steps=50, seed=1, progress=False)
    np.testing.assert_array_equal(ds.observations, raw.observations * 2)
    with pytest.raises(ValueError, match="observations='dense'"):
        collect(
            env, RandomAgent(env=env, seed=0), n_steps=50, seed=1, progress=False,
            observations="reference",
        )  # fmt: skip


def test_a_wrapper_that_changes_later_is_caught() -> None:
    env = ZeroAfter(make_env(1), after=30)
    with pytest.raises(ValueError, match="differs from its market reference"):
        collect(env, RandomAgent(env=env, seed=0), n_steps=60, seed=1, progress=False)
    ok = collect(
        env, RandomAgent(env=env, seed=0), n_steps=60, seed=1, progress=False, observations="dense"
    )
    assert ok.observation_storage == "dense"


def test_bad_observations_mode() -> None:
    env = make_env(1)
    with pytest.raises(ValueError, match="observations must be one of"):
        collect(env, RandomAgent(env=env), n_steps=5, progress=False, observations="lazy")


def test_filter_concatenate_keep_references() -> None:
    ref, dense = record(3, "auto"), record(3, "dense")
    picked = [2, 0, 3]
    assert_same_data(ref.filter_episodes(picked), dense.filter_episodes(picked))
    assert ref.filter_episodes(picked).observation_storage == "reference"
    both = concatenate([ref, ref])
    assert both.observation_storage == "reference"
    assert_same_data(both, concatenate([dense, dense]))
    other = record(3, "auto", window_size=4)  # another window: no shared market -> dense
    mixed = concatenate([dense.filter_episodes([0]), dense.filter_episodes([1])])
    assert mixed.observation_storage == "dense"
    with pytest.raises(ValueError, match="observation shape"):
        concatenate([ref, other])


@pytest.mark.parametrize("compress", [False, True])
def test_npz_round_trip_by_reference(tmp_path, compress: bool) -> None:
    ref = record(3, "auto")
    loaded = TrajectoryDataset.load(ref.save(tmp_path / "ref", compress=compress))
    assert loaded.observation_storage == "reference"
    assert_same_data(loaded, ref)
    assert loaded.metadata == ref.metadata


def test_sequence_windows_equal_dense() -> None:
    ref, dense = record(3, "auto", n_steps=300), record(3, "dense", n_steps=300)
    a, b = SequenceDataset(ref, context_length=7), SequenceDataset(dense, context_length=7)
    for x, y in zip(a.sample_batch(32, rng=5), b.sample_batch(32, rng=5), strict=True):
        assert x.dtype == y.dtype and bool((x == y).all())
    for i in (0, 19, len(a) - 1):
        for x, y in zip(a[i], b[i], strict=True):
            assert bool((x == y).all())


def test_to_d3rlpy_equal_dense() -> None:
    ref, dense = record(3, "auto", n_steps=120), record(3, "dense", n_steps=120)
    a, b = to_d3rlpy(ref), to_d3rlpy(dense)
    assert a.transition_count == b.transition_count == ref.n_steps
    for ea, eb in zip(a.episodes, b.episodes, strict=True):
        np.testing.assert_array_equal(ea.observations, eb.observations)
        np.testing.assert_array_equal(ea.actions, eb.actions)
        np.testing.assert_array_equal(ea.rewards, eb.rewards)


def test_market_reference_validation() -> None:
    features = np.zeros((10, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="float32"):
        MarketReference(features.astype(np.float64), window_size=3, n_account_features=1)
    with pytest.raises(ValueError, match="window_size"):
        MarketReference(features, window_size=11, n_account_features=1)
    market = MarketReference(features, window_size=3, n_account_features=1)
    with pytest.raises(ValueError, match="bars must lie"):
        ObservationReferences(market, np.array([1]), np.zeros((1, 1), np.float32))
    with pytest.raises(ValueError, match="account must have shape"):
        ObservationReferences(market, np.array([2]), np.zeros((1, 2), np.float32))
    assert market_reference(gym.make("CartPole-v1")) is None


@pytest.mark.parametrize("seed", [0, 1])
def test_returns_to_go_fast_path_equals_the_recursion(seed: int) -> None:
    """gamma = 1 sums each episode with np.add.accumulate; same bits as G_t = r_t + G_(t+1)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 60, 40)
    n, e = int(lengths.sum()), lengths.size
    rewards = rng.normal(0, 0.01, n) * 10 ** rng.uniform(-5, 3, n)
    truncations = np.zeros(n, bool)
    truncations[np.cumsum(lengths) - 1] = True
    ds = TrajectoryDataset(
        np.zeros((n + e, 2), np.float32), np.zeros(n, np.int64), rewards,
        np.zeros(n, bool), truncations, lengths,
    )  # fmt: skip
    expected, running = np.empty(n), 0.0
    for t in range(n - 1, -1, -1):
        running = rewards[t] if truncations[t] else rewards[t] + running
        expected[t] = running
    assert ds.returns_to_go(1.0).tobytes() == expected.tobytes()


def test_sequence_and_export_never_materialise_everything(monkeypatch, caplog) -> None:
    ref = record(3, "auto", n_steps=200)

    def boom(self, progress=False):
        raise AssertionError("materialised the whole dataset")

    monkeypatch.setattr(ObservationReferences, "materialize", boom)
    batch = SequenceDataset(ref, context_length=5).sample_batch(8, rng=0)
    assert tuple(batch.states.shape) == (8, 5, ref.observation_shape[0])
    with caplog.at_level("INFO", logger="quantgym.datasets.export"):
        mdp = to_d3rlpy(ref, progress=False)
    assert mdp.transition_count == ref.n_steps
    from quantgym.datasets.export import export_memory_bytes

    needed = export_memory_bytes(ref, "d3rlpy")
    assert f"{needed / 2**30:.2f} GiB" in caplog.text
    rows = ref.n_steps + int(ref.truncations[np.cumsum(ref.episode_lengths) - 1].sum())
    assert needed == rows * (4 * ref.observation_shape[0] + 8 + 12)


@pytest.mark.parametrize("precomputed", [True, False])
def test_both_gather_paths_equal_the_env(monkeypatch, precomputed: bool) -> None:
    import quantgym.datasets.storage as storage

    if not precomputed:
        monkeypatch.setattr(storage, "_MAX_PRECOMPUTED_BYTES", 0)
    ref, dense = record(3, "auto", n_steps=90), record(3, "dense", n_steps=90)
    refs = ref.observation_references
    assert (refs.market.observation_rows() is not None) is precomputed
    assert ref.observations.tobytes() == dense.observations.tobytes()
    strided = np.empty((5, ref.observation_shape[0] + 1), np.float32)[:, :-1]  # not contiguous
    refs.take(np.arange(5), out=strided)
    np.testing.assert_array_equal(strided, dense.observations[:5])


def test_to_minari_by_reference_equals_dense(tmp_path, monkeypatch) -> None:
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    ref, dense = record(3, "auto", n_steps=80), record(3, "dense", n_steps=80)
    to_minari(ref, "quantgym/ref-v0", progress=False)
    to_minari(dense, "quantgym/dense-v0", progress=False)
    a = list(minari.load_dataset("quantgym/ref-v0").iterate_episodes())
    b = list(minari.load_dataset("quantgym/dense-v0").iterate_episodes())
    assert len(a) == len(b) == ref.n_episodes
    for ea, eb in zip(a, b, strict=True):
        assert np.asarray(ea.observations).tobytes() == np.asarray(eb.observations).tobytes()
        np.testing.assert_array_equal(ea.actions, eb.actions)
        np.testing.assert_array_equal(ea.infos["bar"], eb.infos["bar"])
