"""``filtered_bc``: behaviour cloning on the best episodes of the logs (d3rlpy ``DiscreteBC`` /
``BC`` on the top ``top_fraction`` of episodes by return).

The baseline a return-conditioned agent must beat (Chen et al., 2021, "%BC"): if a Decision
Transformer only helps because it can be told to imitate the good episodes, filtered BC gets
the same help without conditioning.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from quantgym.agents.d3rlpy.bc import BCAgent

__all__ = ["FilteredBCAgent"]


class FilteredBCAgent(BCAgent):
    """``filtered_bc``: :class:`~quantgym.agents.d3rlpy.bc.BCAgent` trained only on the
    ``top_fraction`` of the dataset's episodes with the highest return (at least one)."""

    name: ClassVar[str] = "filtered_bc"

    @dataclasses.dataclass
    class Config(BCAgent.Config):
        """:class:`BCAgent.Config` plus ``top_fraction`` (share of episodes kept, by return)."""

        top_fraction: float = 0.1

    def _validate_config(self) -> None:
        super()._validate_config()
        f = self.config.top_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 < f <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {f!r}")

    def best_episodes(self, dataset: Any) -> np.ndarray:
        """Indices of the kept episodes: the ``ceil(top_fraction * E)`` highest returns."""
        returns = np.asarray(dataset.episode_returns(), dtype=np.float64)
        keep = max(1, math.ceil(self.config.top_fraction * returns.size))
        return np.sort(np.argsort(-returns, kind="stable")[:keep])

    def _export(self, dataset: Any) -> Any:
        return super()._export(dataset.filter_episodes(self.best_episodes(dataset)))
