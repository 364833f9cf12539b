"""``bc``: behaviour cloning on d3rlpy (``DiscreteBC`` / ``BC``)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before d3rlpy, which imports legacy gym and its stderr notice
import d3rlpy
import torch

from quantgym.agents.d3rlpy.base import D3rlpyAgent

__all__ = ["BCAgent"]


class BCAgent(D3rlpyAgent):
    """``bc``: behaviour cloning (d3rlpy ``DiscreteBC`` for discrete datasets, ``BC`` for
    continuous ones). It imitates the dataset's actions and ignores its rewards."""

    name: ClassVar[str] = "bc"

    @dataclasses.dataclass
    class Config(D3rlpyAgent.Config):
        """:class:`D3rlpyAgent.Config` plus ``beta`` (DiscreteBC's logit penalty).

        ``hidden_units=[32]``: a [256, 256] network memorises the logged episodes, the more so
        the fewer they are (filtered BC); measured: docs/offline.md."""

        hidden_units: list[int] = dataclasses.field(default_factory=lambda: [32])
        beta: float = 0.5

    def _d3rlpy_config(self, discrete: bool) -> Any:
        c = self.config
        common = {
            "batch_size": c.batch_size,
            "learning_rate": c.learning_rate,
            "encoder_factory": self._encoder(),
        }
        if discrete:
            return d3rlpy.algos.DiscreteBCConfig(beta=c.beta, **common)
        return d3rlpy.algos.BCConfig(**common)

    def _scores_kind(self, discrete: bool) -> str | None:
        return "logits" if discrete else "mean"

    def _network_scores(
        self, modules: Any, x: torch.Tensor, state: Any, episode_start: Any, raw: torch.Tensor
    ) -> torch.Tensor:
        out = modules.imitator(x)
        return out.logits if self.config.discrete else out.squashed_mu
