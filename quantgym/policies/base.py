"""The one agent API every quantgym agent satisfies (SB3's ``predict`` signature).

Every agent (rule-based baseline, SB3 model, d3rlpy algorithm, Decision Transformer or a
user's own class) exposes ``predict(observation, state=None, episode_start=None,
deterministic=True) -> (action, state)``, ``save(path)`` and ``load(path)``; learners add ``fit``.
An SB3 model already satisfies :class:`Agent`.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from quantgym._io import atomic_write_json, read_json

__all__ = ["Agent", "BaseAgent", "import_object", "AGENT_FILE"]

AGENT_FILE = "agent.json"


@runtime_checkable
class Agent(Protocol):
    """Structural type of an agent: anything with SB3's ``predict`` plus ``save``/``load``."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]: ...

    def save(self, path: str | os.PathLike) -> None: ...

    @classmethod
    def load(cls, path: str | os.PathLike) -> Agent: ...


def import_object(spec: str) -> Any:
    """Import ``"package.module:Name"`` and return the object, with a clear error when it fails."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'package.module:Name', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} from {spec!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None


class BaseAgent:
    """Convenience base class for quantgym agents.

    Subclasses set ``name`` and a ``Config`` dataclass; ``self.config`` holds the instance's
    config. ``save(path)`` writes ``path/agent.json`` (class path + config) atomically and then
    calls ``_save_state(path)`` for learned weights; ``load(path)`` rebuilds the agent from the
    JSON and calls ``_load_state``. Rule-based agents have no state and need nothing more.
    """

    name: ClassVar[str] = "base"

    @dataclasses.dataclass
    class Config:
        pass

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        if config is None:
            try:
                config = self.Config(**kwargs)
            except TypeError as exc:
                raise ValueError(f"{type(self).__name__}: {exc}") from None
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        self.config = config

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Save to the directory ``path``: ``agent.json`` (class + config) plus any learned state."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save_state(path)
        cls = type(self)
        atomic_write_json(
            path / AGENT_FILE,
            {
                "class": f"{cls.__module__}:{cls.__qualname__}",
                "name": self.name,
                "config": dataclasses.asdict(self.config),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> BaseAgent:
        """Load an agent saved with :meth:`save`. ``kwargs`` override config fields or pass
        run-time objects (an ``env`` for env-bound experts)."""
        path = Path(path)
        meta = read_json(path / AGENT_FILE)
        target = import_object(meta["class"]) if cls is BaseAgent else cls
        if not (isinstance(target, type) and issubclass(target, BaseAgent)):
            raise ValueError(f"{path} holds {meta['class']}, not a quantgym BaseAgent")
        defines_load = next(k for k in target.__mro__ if "load" in vars(k))
        if cls is BaseAgent and defines_load is not BaseAgent:
            return target.load(path, **kwargs)  # the subclass knows how to restore itself
        agent = target._from_config(meta.get("config", {}), **kwargs)
        agent._load_state(path)
        return agent

    @classmethod
    def _from_config(cls, config: dict, **kwargs: Any) -> BaseAgent:
        return cls(**{**config, **kwargs})

    def _save_state(self, path: Path) -> None:
        """Write learned weights into ``path`` (no-op for rule-based agents)."""

    def _load_state(self, path: Path) -> None:
        """Read learned weights from ``path`` (no-op for rule-based agents)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
