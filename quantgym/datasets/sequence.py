"""Decision Transformer training windows over a :class:`TrajectoryDataset` (imports torch).

Each item is a window of ``context_length`` (``K``) consecutive steps of one episode:

==================  ==========  =========  ===============================================
field               shape       dtype      content
==================  ==========  =========  ===============================================
states              (K, D)      float32    flattened observation before each step
actions             (K,)        int64      discrete action index (``n_actions`` for one-hot)
                    (K, A)      float32    continuous action
returns_to_go       (K, 1)      float32    ``G_t / rtg_scale`` (``gamma``-discounted, no
                                           bootstrapping past the episode end)
timesteps           (K,)        int64      step index within the episode, clipped to
                                           ``max_timestep``
attention_mask      (K,)        int64      1 for real steps, 0 for padding
==================  ==========  =========  ===============================================

Windows start at a step ``s`` and run to ``min(s + K, L)``; a window cut by the end of
its episode is *left*-padded (zeros, mask 0) so the real steps always end at position
``K - 1``, exactly like the DT paper's loader. There is one window per step, so sampling
windows uniformly is sampling episode ``i`` with probability ``L_i / N`` and then a uniform
start — the DT paper's scheme (:meth:`SequenceDataset.sample_batch`, :meth:`sampler`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, RandomSampler

from quantgym.checks import check_optional_positive_int, check_positive, check_positive_int
from quantgym.datasets.trajectory import TrajectoryDataset

__all__ = ["SequenceBatch", "SequenceDataset"]


class SequenceBatch(NamedTuple):
    """One window ``(K, ...)`` or a batch of windows ``(B, K, ...)``."""

    states: torch.Tensor  # (K, D) float32
    actions: torch.Tensor  # (K,) int64 | (K, A) float32
    returns_to_go: torch.Tensor  # (K, 1) float32
    timesteps: torch.Tensor  # (K,) int64
    attention_mask: torch.Tensor  # (K,) int64


class SequenceDataset(Dataset):
    """Fixed-length, left-padded Decision Transformer windows (one per step of the dataset).

    Args:
        dataset: the trajectories.
        context_length: window length ``K`` (>= 1).
        rtg_scale: returns-to-go are divided by it (the DT paper uses 1000 for MuJoCo
            returns; per-bar log returns sum to O(1), so 1.0 is the default here).
        gamma: discount of the returns-to-go (1.0 in the DT paper).
        max_timestep: timesteps are clipped to it (size of a timestep embedding table minus
            one); defaults to the longest episode length minus one.
    """

    def __init__(
        self,
        dataset: TrajectoryDataset,
        context_length: int = 20,
        rtg_scale: float = 1.0,
        gamma: float = 1.0,
        max_timestep: int | None = None,
    ) -> None:
        if not isinstance(dataset, TrajectoryDataset):
            raise ValueError(f"dataset must be a TrajectoryDataset, got {type(dataset).__name__}")
        context_length = check_positive_int("context_length", context_length)
        rtg_scale = check_positive("rtg_scale", rtg_scale)
        max_timestep = check_optional_positive_int("max_timestep", max_timestep, minimum=0)
        if max_timestep is None:
            max_timestep = int(dataset.episode_lengths.max()) - 1

        self.context_length = int(context_length)
        self.rtg_scale = rtg_scale
        self.gamma = float(gamma)
        self.max_timestep = int(max_timestep)
        self.discrete = dataset.is_discrete
        self.n_actions: int | None = dataset.n_actions
        self.state_dim = int(np.prod(dataset.observation_shape, dtype=np.int64))

        n = dataset.n_steps
        # Nothing per step is copied but the returns-to-go: states are gathered per batch from
        # the dataset's references (or its dense observations), actions are read in place when
        # their dtype already fits, and a window's episode comes from a search over its start.
        self._references = dataset.observation_references
        self._observations: np.ndarray | None = None
        if self._references is None:
            self._observations = dataset.observations.reshape(-1, self.state_dim)
        self._n = n
        if self.discrete:
            self._actions = dataset.actions.astype(np.int64, copy=False)
            self.action_dim = 1
        else:
            self.action_dim = int(np.prod(dataset.actions.shape[1:], dtype=np.int64))
            self._actions = dataset.actions.reshape(n, self.action_dim).astype(
                np.float32, copy=False
            )
        rtg = dataset.returns_to_go(self.gamma) / rtg_scale
        self._rtg = rtg.astype(np.float32).reshape(n, 1)
        self._episode_lengths = dataset.episode_lengths.astype(np.int64)
        self._episode_starts = dataset.episode_starts.astype(np.int64)
        self._episode_ends = self._episode_starts + self._episode_lengths

    def __len__(self) -> int:
        return self._n

    @property
    def episode_probabilities(self) -> np.ndarray:
        """``(E,)`` probability of sampling each episode: ``L_i / N`` (the DT paper's scheme)."""
        return self._episode_lengths / self._episode_lengths.sum()

    def _gather(self, starts: np.ndarray) -> tuple[np.ndarray, ...]:
        """Windows starting at global steps ``starts`` ``(B,)``, left-padded: one gather per
        field into preallocated ``(B, K, ...)`` arrays; cost independent of the dataset size."""
        k = self.context_length
        b = int(starts.shape[0])
        episodes = np.searchsorted(self._episode_ends, starts, side="right")  # (B,)
        ends = np.minimum(starts + k, self._episode_ends[episodes])
        pad = k - (ends - starts)  # (B,)
        offsets = np.arange(k, dtype=np.int64)
        mask = offsets[None, :] >= pad[:, None]  # (B, K)
        steps = np.where(mask, starts[:, None] + offsets[None, :] - pad[:, None], starts[:, None])
        obs_rows = (steps + episodes[:, None]).reshape(-1)  # each episode keeps one extra row
        flat_states = np.empty((b * k, self.state_dim), dtype=np.float32)
        if self._references is not None:
            self._references.take(obs_rows, out=flat_states)
        else:
            assert self._observations is not None
            if self._observations.dtype == np.float32:
                np.take(self._observations, obs_rows, axis=0, out=flat_states)
            else:
                flat_states[:] = self._observations[obs_rows]
        states = flat_states.reshape(b, k, self.state_dim)  # (B, K, D)
        actions = self._actions[steps]  # (B, K) | (B, K, A)
        rtg = self._rtg[steps]  # (B, K, 1)
        timesteps = np.minimum(
            steps - self._episode_starts[episodes][:, None], self.max_timestep
        )  # (B, K)
        padding = ~mask
        states[padding] = 0.0
        actions[padding] = 0
        rtg[padding] = 0.0
        timesteps[padding] = 0
        return states, actions, rtg, timesteps, mask.astype(np.int64)

    def __getitem__(self, index: int) -> SequenceBatch:
        """The window starting at global step ``index`` (left-padded when the episode ends first)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"index must be an int, got {index!r}")
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        parts = self._gather(np.array([index], dtype=np.int64))
        return SequenceBatch(*(torch.from_numpy(a[0]) for a in parts))

    def window(self, episode: int, start: int) -> SequenceBatch:
        """The window of episode ``episode`` starting at its step ``start``."""
        if not 0 <= episode < self._episode_lengths.size:
            raise ValueError(
                f"episode {episode} out of range for {self._episode_lengths.size} episodes"
            )
        if not 0 <= start < self._episode_lengths[episode]:
            raise ValueError(
                f"start {start} out of range for episode {episode} of length {self._episode_lengths[episode]}"
            )
        return self[int(self._episode_starts[episode]) + int(start)]

    def sample_batch(
        self, batch_size: int, rng: np.random.Generator | int | None = None
    ) -> SequenceBatch:
        """``batch_size`` windows, stacked ``(B, K, ...)``: episode ``i`` with ``p ∝ L_i``, then a uniform start."""
        batch_size = check_positive_int("batch_size", batch_size)
        rng = np.random.default_rng(rng)
        episodes = rng.choice(
            self._episode_lengths.size, size=int(batch_size), p=self.episode_probabilities
        )
        starts = self._episode_starts[episodes] + rng.integers(0, self._episode_lengths[episodes])
        return SequenceBatch(*(torch.from_numpy(a) for a in self._gather(starts)))

    def sampler(
        self, num_samples: int | None = None, generator: torch.Generator | None = None
    ) -> RandomSampler:
        """A ``DataLoader`` sampler drawing windows uniformly with replacement.

        One window per step, so this is the same law as :meth:`sample_batch`: episode ``i``
        with ``p ∝ L_i``, then a uniform start. ``num_samples`` defaults to ``len(self)``.
        """
        return RandomSampler(
            self, replacement=True, num_samples=num_samples or len(self), generator=generator
        )

    def __repr__(self) -> str:
        kind: Any = f"Discrete({self.n_actions})" if self.discrete else f"Box({self.action_dim})"
        return (
            f"SequenceDataset(windows={len(self)}, context_length={self.context_length}, "
            f"state_dim={self.state_dim}, actions={kind}, max_timestep={self.max_timestep})"
        )
