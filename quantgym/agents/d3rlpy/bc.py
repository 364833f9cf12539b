"""``bc``: behaviour cloning on d3rlpy (``DiscreteBC`` / ``BC``)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before d3rlpy, which imports legacy gym and its stderr notice
import d3rlpy
import numpy as np
import torch

from quantgym.agents.d3rlpy.base import D3rlpyAgent
from quantgym.agents.observations import episode_start_mask
from quantgym.agents.smoothing import check_action_smoothing, smooth, smoothed_actions

__all__ = ["BCAgent"]


class BCAgent(D3rlpyAgent):
    """``bc``: behaviour cloning (d3rlpy ``DiscreteBC`` for discrete datasets, ``BC`` for
    continuous ones). It imitates the dataset's actions and ignores its rewards; it decides
    from a moving average of its action probabilities (``action_smoothing``,
    :mod:`quantgym.agents.smoothing`), so ``predict``'s ``state`` carries that average."""

    name: ClassVar[str] = "bc"

    @dataclasses.dataclass
    class Config(D3rlpyAgent.Config):
        """:class:`D3rlpyAgent.Config` plus ``beta`` (DiscreteBC's logit penalty) and
        ``action_smoothing`` (weight of the newest bar's action probabilities in their moving
        average; 1: none).

        ``hidden_units=[32]``: a [256, 256] network memorises the logged episodes, the more so
        the fewer they are (filtered BC); ``action_smoothing=0.1``: the per-bar argmax flips
        at every bar near its decision boundary and pays costs each time, where the logging
        policies switch rarely; measured: docs/offline.md."""

        hidden_units: list[int] = dataclasses.field(default_factory=lambda: [32])
        beta: float = 0.5
        action_smoothing: float = 0.1

    def _validate_config(self) -> None:
        super()._validate_config()
        check_action_smoothing(self.config.action_smoothing)

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

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Action(s) for ``(D,)`` or ``(N, D)`` observations from the moving average of the
        policy's outputs; ``state`` is that average (``None``: new episodes) and
        ``episode_start[i]`` restarts env ``i``'s."""
        weight = self.config.action_smoothing
        if weight == 1.0:
            return super().predict(observation, state, episode_start, deterministic)
        self._require_algo()
        obs, batched = self._check_observation(observation)
        starts = episode_start_mask(episode_start, obs.shape[0])
        if self.config.discrete:
            with torch.no_grad():
                logits = self.action_scores(torch.from_numpy(obs))
            actions, state = smoothed_actions(logits, state, starts, weight, deterministic)
        else:
            raw, _ = super().predict(obs, None, None, deterministic)
            state = smooth(raw, state, starts, weight)
            actions = state
        return self._finish(actions, batched), state
