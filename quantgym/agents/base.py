"""The agent API (``Agent`` protocol, ``BaseAgent``), defined in :mod:`quantgym.policies.base`
because the behaviour policies below ``datasets`` are agents too; re-exported here.

:class:`TrainableAgent` is the base of every agent that learns (SB3, d3rlpy, Decision
Transformer, supervised): one budget keyword, ``train_steps``, in ``fit(..., train_steps=...)``
and in the config, so the benchmark harness calls every learner the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from quantgym.checks import check_positive_int
from quantgym.policies.base import AGENT_FILE, Agent, BaseAgent, import_object

__all__ = [
    "Agent",
    "BaseAgent",
    "TrainableAgent",
    "import_object",
    "rename_config_keys",
    "AGENT_FILE",
]


def rename_config_keys(config: Mapping[str, Any], renamed: Mapping[str, str]) -> dict[str, Any]:
    """A copy of a saved config with the keys an older quantgym wrote renamed (``renamed`` maps
    old -> new, e.g. ``{"total_timesteps": "train_steps"}``); a key present under its new name
    wins over the old one."""
    out = dict(config)
    for old, new in renamed.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
    return out


class TrainableAgent(BaseAgent):
    """A :class:`BaseAgent` that learns with ``fit(data, train_steps=None, ...)``.

    ``train_steps`` is the budget of one ``fit`` call: env steps for online agents (SB3's
    ``total_timesteps``), gradient steps for offline ones; ``None`` uses
    ``config.train_steps``. Subclasses list in ``renamed_config_keys`` the config keys older
    quantgym versions saved under another name; ``load`` maps them, and passing one to the
    constructor is a ``ValueError`` that names the new key.
    """

    renamed_config_keys: ClassVar[Mapping[str, str]] = {}

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        for old, new in self.renamed_config_keys.items():
            if old in kwargs:
                raise ValueError(f"{type(self).__name__}: {old!r} is now called {new!r}")
        super().__init__(config, **kwargs)

    @classmethod
    def _from_config(cls, config: dict, **kwargs: Any) -> BaseAgent:
        return super()._from_config(rename_config_keys(config, cls.renamed_config_keys), **kwargs)

    def _train_steps(self, train_steps: Any, *, minimum: int = 1) -> int:
        """``train_steps`` (``config.train_steps`` when ``None``) checked to be an integer
        ``>= minimum``."""
        value = self.config.train_steps if train_steps is None else train_steps
        return check_positive_int("train_steps", value, minimum=minimum)
