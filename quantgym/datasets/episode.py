"""One episode's arrays: :class:`Episode` (what ``TrajectoryDataset.episode(i)`` returns and
``TrajectoryDataset.from_episodes`` joins)."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Episode"]


@dataclasses.dataclass(frozen=True, eq=False)
class Episode:
    """One episode: ``L`` steps and ``L + 1`` observations.

    ``observations[t]`` is the observation the action ``actions[t]`` was chosen from;
    ``observations[L]`` is the final observation (after the last step).
    """

    observations: np.ndarray  # (L + 1, *obs_shape)
    actions: np.ndarray  # (L, *act_shape)
    rewards: np.ndarray  # (L,)
    terminations: np.ndarray  # (L,) bool
    truncations: np.ndarray  # (L,) bool
    infos: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # name -> (L, ...)

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def terminated(self) -> bool:
        """True when the episode ended in a terminal state (bankruptcy)."""
        return bool(self.terminations[-1]) if len(self) else False

    @property
    def truncated(self) -> bool:
        """True when the episode was cut (end of data, episode length, collection budget)."""
        return bool(self.truncations[-1]) if len(self) else False

    @property
    def episode_return(self) -> float:
        """Undiscounted sum of rewards."""
        return float(np.sum(self.rewards, dtype=np.float64))
