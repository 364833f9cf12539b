"""The one agent API every quantgym agent satisfies (SB3's ``predict`` signature).

Every agent (rule-based baseline, SB3 model, d3rlpy algorithm, Decision Transformer or a
user's own class) exposes ``predict(observation, state=None, episode_start=None,
deterministic=True) -> (action, state)``, ``save(path)`` and ``load(path)``; learners add ``fit``.
An SB3 model already satisfies :class:`Agent`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from quantgym.files import atomic_write_json, read_json
from quantgym.policies.checkpoint import (
    MANIFEST_KEY,
    build_manifest,
    library_versions,
    save_folder_atomically,
    verify_manifest,
)

__all__ = [
    "Agent",
    "BaseAgent",
    "import_object",
    "MOVED_MODULES",
    "read_agent_meta",
    "agent_class_from_meta",
    "AGENT_FILE",
    "FORMAT_VERSION",
]

AGENT_FILE = "agent.json"
FORMAT_VERSION = 2  # 2: SHA-256 manifest, no pickled entries


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


#: Modules that moved: agent folders saved before the move name the old path in agent.json.
MOVED_MODULES = {
    "quantgym.agents.sb3_agents": "quantgym.agents.sb3",
    "quantgym.agents.d3rlpy_agents": "quantgym.agents.d3rlpy",
}


def import_object(spec: str) -> Any:
    """Import ``"package.module:Name"`` and return the object, with a clear error when it fails
    (a module in :data:`MOVED_MODULES` is imported from its new home)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'package.module:Name', got {spec!r}")
    module_name = MOVED_MODULES.get(module_name, module_name)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} from {spec!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None


def _owned_names(folder: Path) -> set[str]:
    """Top-level names a saved agent folder owns: its manifest's files plus agent.json; for a
    folder without a manifest (an older quantgym) every top-level file (folders are kept)."""
    if not (folder / AGENT_FILE).is_file():
        return set()
    try:
        files = read_json(folder / AGENT_FILE).get(MANIFEST_KEY)
    except (ValueError, AttributeError):
        files = None
    if not isinstance(files, dict):
        return {p.name for p in folder.iterdir() if p.is_file()}
    return {AGENT_FILE, *(str(rel).split("/", 1)[0] for rel in files)}


def read_agent_meta(path: str | os.PathLike, *, trusted: bool = False) -> dict[str, Any]:
    """Read ``path/agent.json`` and verify every file its manifest lists (``ValueError`` naming
    a missing, truncated or edited file). A folder without a manifest (an older quantgym) is
    refused unless ``trusted``."""
    path = Path(path)
    meta = read_json(path / AGENT_FILE)
    if not isinstance(meta, dict) or "class" not in meta:
        raise ValueError(f"{path / AGENT_FILE} is not a quantgym agent.json (no 'class')")
    if MANIFEST_KEY in meta:
        verify_manifest(path, meta[MANIFEST_KEY])
    elif not trusted:
        raise ValueError(
            f"{path / AGENT_FILE} has no '{MANIFEST_KEY}' manifest (written by an older quantgym "
            "or by hand): its files cannot be verified; pass trusted=True (or --trust) to load it"
        )
    return meta


def agent_class_from_meta(
    meta: dict[str, Any], path: str | os.PathLike, *, trusted: bool = False
) -> type[BaseAgent]:
    """The BaseAgent subclass ``meta["class"]`` names. Untrusted folders may only name a class
    of the quantgym package or of a module already imported (your own agent classes: import
    them first), so a folder cannot make the loader import a module it ships (e.g. ``evil.py``
    next to it on ``sys.path``)."""
    spec = str(meta.get("class", ""))
    module = spec.partition(":")[0]
    if not trusted and module != "quantgym" and not module.startswith("quantgym."):
        if module not in sys.modules:
            raise ValueError(
                f"{Path(path) / AGENT_FILE} names class {spec!r} from module {module!r}, which is "
                "neither part of quantgym nor imported: import it before loading, or pass "
                "trusted=True (--trust) to let the loader import it"
            )
    cls = import_object(spec)
    if not (isinstance(cls, type) and issubclass(cls, BaseAgent)):
        raise ValueError(f"{path} holds {spec!r}, not a quantgym BaseAgent")
    return cls


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
        """Save to the directory ``path``: the learned state (``_save_state``) plus ``agent.json``
        (class, config, library versions and the SHA-256 of every file the agent wrote).

        The folder is written next to ``path`` and swapped in, so a crash mid-save leaves a
        previous save at ``path`` intact; entries of ``path`` the previous save did not own
        (e.g. ``checkpoints/``) are kept.
        """
        cls = type(self)

        def write(tmp: Path) -> None:
            self._save_state(tmp)
            atomic_write_json(
                tmp / AGENT_FILE,
                {
                    "class": f"{cls.__module__}:{cls.__qualname__}",
                    "name": self.name,
                    "config": dataclasses.asdict(self.config),
                    "format": FORMAT_VERSION,
                    "versions": library_versions(),
                    MANIFEST_KEY: build_manifest(tmp, exclude=(AGENT_FILE,)),
                },
            )

        save_folder_atomically(path, write, owned=_owned_names)

    @classmethod
    def load(cls, path: str | os.PathLike, *, trusted: bool = False, **kwargs: Any) -> BaseAgent:
        """Load an agent saved with :meth:`save`. ``kwargs`` override config fields or pass
        run-time objects (an ``env`` for env-bound experts).

        Every file listed in ``agent.json`` is checked against its SHA-256 before any weights
        are read (``ValueError`` naming the file). Loading never unpickles: ``trusted=True``
        is only needed for folders written by plain SB3 or an older quantgym, and lets their
        pickled entries run code, so pass it only for files you trust.
        """
        path = Path(path)
        meta = read_agent_meta(path, trusted=trusted)
        target = agent_class_from_meta(meta, path, trusted=trusted) if cls is BaseAgent else cls
        defines_load = next(k for k in target.__mro__ if "load" in vars(k))
        if cls is BaseAgent and defines_load is not BaseAgent:
            return target.load(path, trusted=trusted, **kwargs)  # the subclass restores itself
        agent = target._from_config(meta.get("config", {}), **kwargs)
        if "trusted" in inspect.signature(agent._load_state).parameters:
            agent._load_state(path, trusted=trusted)  # type: ignore[call-arg]
        else:
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
