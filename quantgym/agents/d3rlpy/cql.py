"""``cql``: conservative Q-learning on d3rlpy (``DiscreteCQL`` / ``CQL``)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before d3rlpy, which imports legacy gym and its stderr notice
import d3rlpy

from quantgym.agents.d3rlpy.base import D3rlpyAgent
from quantgym.checks import check_positive_int

__all__ = ["CQLAgent"]


class CQLAgent(D3rlpyAgent):
    """``cql``: conservative Q-learning (d3rlpy ``DiscreteCQL`` for discrete datasets, ``CQL``
    for continuous ones). Unlike ``bc`` it learns from the rewards, so it can do better than
    the behaviour policy (random data included)."""

    name: ClassVar[str] = "cql"

    @dataclasses.dataclass
    class Config(D3rlpyAgent.Config):
        """:class:`D3rlpyAgent.Config` plus the Q-learning fields.

        ``gamma=0.9`` (short effect horizon of a trading decision), ``alpha`` the
        conservative penalty weight, ``n_critics``, ``target_update_interval=500`` gradient
        steps (discrete), ``tau`` soft target updates (continuous).
        """

        learning_rate: float = 3e-4
        gamma: float = 0.9
        alpha: float = 1.0
        n_critics: int = 2
        target_update_interval: int = 500
        tau: float = 0.005

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        if not 0.0 <= c.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {c.gamma!r}")
        check_positive_int("n_critics", c.n_critics)
        check_positive_int("target_update_interval", c.target_update_interval)

    def _d3rlpy_config(self, discrete: bool) -> Any:
        c = self.config
        if discrete:
            return d3rlpy.algos.DiscreteCQLConfig(
                batch_size=c.batch_size,
                learning_rate=c.learning_rate,
                encoder_factory=self._encoder(),
                gamma=c.gamma,
                alpha=c.alpha,
                n_critics=c.n_critics,
                target_update_interval=c.target_update_interval,
            )
        return d3rlpy.algos.CQLConfig(
            batch_size=c.batch_size,
            actor_learning_rate=c.learning_rate,
            critic_learning_rate=c.learning_rate,
            actor_encoder_factory=self._encoder(),
            critic_encoder_factory=self._encoder(),
            gamma=c.gamma,
            conservative_weight=c.alpha,
            n_critics=c.n_critics,
            tau=c.tau,
        )
