"""Decision Transformer windows: left padding, masks, dtypes, timesteps, length-proportional sampling."""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.datasets.trajectory import TrajectoryDataset

torch = pytest.importorskip("torch")
from quantgym.datasets.sequence import SequenceBatch, SequenceDataset  # noqa: E402


def make_dataset(lengths: tuple[int, ...] = (5, 2, 3), discrete: bool = True) -> TrajectoryDataset:
    """Observation row values encode (episode, step): obs[e, t] = 1000 * e + t in every column."""
    lengths_arr = np.asarray(lengths)
    n = int(lengths_arr.sum())
    obs = np.concatenate(
        [1000.0 * e + np.arange(length + 1, dtype=np.float32) for e, length in enumerate(lengths)]
    )
    truncations = np.zeros(n, bool)
    truncations[np.cumsum(lengths_arr) - 1] = True
    if discrete:
        actions = np.arange(n) % 3
        space = {"type": "discrete", "n": 3}
    else:
        actions = np.linspace(-1, 1, 2 * n, dtype=np.float32).reshape(n, 2)
        space = {"type": "continuous", "shape": [2], "low": -1.0, "high": 1.0}
    return TrajectoryDataset.from_arrays(
        observations=np.repeat(obs[:, None], 4, axis=1).astype(np.float32),
        actions=actions,
        rewards=np.ones(n),
        terminations=np.zeros(n, bool),
        truncations=truncations,
        episode_lengths=lengths_arr,
        metadata={"action_space": space},
    )


def test_full_window_values_and_dtypes() -> None:
    seq = SequenceDataset(make_dataset(), context_length=3)
    assert len(seq) == 10 and seq.state_dim == 4 and seq.n_actions == 3 and seq.max_timestep == 4
    item = seq[1]  # episode 0, steps 1..3
    assert isinstance(item, SequenceBatch)
    assert item.states.shape == (3, 4) and item.states.dtype == torch.float32
    assert item.states[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert item.actions.dtype == torch.int64 and item.actions.tolist() == [1, 2, 0]
    assert item.returns_to_go.shape == (3, 1) and item.returns_to_go[:, 0].tolist() == [
        4.0,
        3.0,
        2.0,
    ]
    assert item.timesteps.dtype == torch.int64 and item.timesteps.tolist() == [1, 2, 3]
    assert item.attention_mask.tolist() == [1, 1, 1]


def test_short_window_is_left_padded() -> None:
    seq = SequenceDataset(make_dataset(), context_length=4, rtg_scale=2.0)
    item = seq.window(episode=1, start=0)  # episode 1 has only 2 steps
    assert item.attention_mask.tolist() == [0, 0, 1, 1]
    assert item.states[:, 0].tolist() == [0.0, 0.0, 1000.0, 1001.0]
    assert item.timesteps.tolist() == [0, 0, 0, 1]
    assert item.returns_to_go[:, 0].tolist() == [0.0, 0.0, 1.0, 0.5]  # (2, 1) / rtg_scale
    assert item.actions.tolist() == [0, 0, *make_dataset().actions[5:7].tolist()]
    last = seq[4]  # the final step of episode 0: one real step
    assert last.attention_mask.tolist() == [0, 0, 0, 1] and last.timesteps.tolist() == [0, 0, 0, 4]


def test_continuous_actions_and_discounted_rtg() -> None:
    ds = make_dataset(discrete=False)
    seq = SequenceDataset(ds, context_length=2, gamma=0.5)
    item = seq[0]
    assert item.actions.dtype == torch.float32 and item.actions.shape == (2, 2)
    np.testing.assert_array_equal(item.actions.numpy(), ds.actions[:2])
    np.testing.assert_allclose(
        item.returns_to_go[:, 0].numpy(), [1 + 0.5 + 0.25 + 0.125 + 0.0625, 1 + 0.5 + 0.25 + 0.125]
    )
    assert seq.n_actions is None and seq.action_dim == 2


def test_timesteps_are_clipped_to_max_timestep() -> None:
    seq = SequenceDataset(make_dataset(), context_length=5, max_timestep=2)
    assert seq[0].timesteps.tolist() == [0, 1, 2, 2, 2]


def test_sample_batch_shapes_and_episode_frequencies() -> None:
    lengths = (50, 10, 140)
    seq = SequenceDataset(make_dataset(lengths), context_length=8)
    batch = seq.sample_batch(4000, rng=np.random.default_rng(0))
    assert batch.states.shape == (4000, 8, 4) and batch.actions.shape == (4000, 8)
    assert batch.attention_mask.shape == (4000, 8) and batch.timesteps.shape == (4000, 8)
    # the last real state encodes its episode: 1000 * episode + step
    episodes = (batch.states[:, -1, 0] // 1000).long().numpy()
    observed = np.bincount(episodes, minlength=3)
    expected = 4000 * np.asarray(lengths) / sum(lengths)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2 < 13.8  # chi-square, 2 dof, p = 0.001
    starts = batch.timesteps.numpy()[
        np.arange(4000), np.argmax(batch.attention_mask.numpy(), axis=1)
    ]
    ep2 = starts[episodes == 2]
    assert ep2.min() == 0 and ep2.max() == 139  # uniform starts cover the whole episode
    np.testing.assert_allclose(seq.episode_probabilities, np.asarray(lengths) / 200)


def test_sample_batch_is_reproducible_and_loader_works() -> None:
    seq = SequenceDataset(make_dataset(), context_length=3)
    a, b = seq.sample_batch(16, rng=3), seq.sample_batch(16, rng=3)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    loader = torch.utils.data.DataLoader(
        seq,
        batch_size=6,
        sampler=seq.sampler(num_samples=12, generator=torch.Generator().manual_seed(0)),
    )
    batches = list(loader)
    assert len(batches) == 2 and batches[0].states.shape == (6, 3, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"context_length": 0}, "context_length must be a positive int"),
        ({"rtg_scale": 0.0}, "rtg_scale must be a positive number"),
        ({"max_timestep": -1}, "max_timestep must be an integer >= 0"),
        ({"gamma": 2.0}, "gamma must be in"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SequenceDataset(make_dataset(), **kwargs)


def test_bad_index() -> None:
    seq = SequenceDataset(make_dataset(), context_length=2)
    with pytest.raises(IndexError):
        seq[10]
    with pytest.raises(ValueError, match="start 2 out of range for episode 1"):
        seq.window(1, 2)
    with pytest.raises(ValueError, match="batch_size"):
        seq.sample_batch(0)
