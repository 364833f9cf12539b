"""Columnar offline-RL trajectories: :class:`TrajectoryDataset` and its ``.npz`` storage.

Layout. Episodes are concatenated. With ``E`` episodes of lengths ``L_0 .. L_{E-1}`` and
``N = sum(L_i)`` steps:

================  ===================  ==========================================================
array             shape                meaning
================  ===================  ==========================================================
observations      (N + E, *obs_shape)  every episode keeps ``L_i + 1`` rows: o_0 .. o_L (the final
                                       observation of truncated *and* terminated episodes is kept)
actions           (N, *act_shape)      a_t (discrete: integer index; continuous: float)
rewards           (N,)                 r_t
terminations      (N,) bool            only ever True on an episode's last step
truncations       (N,) bool            only ever True on an episode's last step
episode_lengths   (E,) int64           L_i >= 1
infos[name]       (N, ...)             per-step info of ``env.step`` (equity, position, bar, ...)
================  ===================  ==========================================================

Every episode's last step is terminated or truncated (a collector that stops mid-episode
marks the cut as a truncation) and no earlier step is, so boundaries are exact and vector-env
autoreset steps can never hide inside an episode.

Observations are stored densely, or by reference (:mod:`quantgym.datasets.storage`): per
row the bar index and the account features, the market's feature matrix once. ``collect``
chooses by reference for a raw ``TradingEnv`` after checking bit for bit that the recorded
observations are the env's own; :attr:`TrajectoryDataset.observations` then materialises
them in chunks, and ``bar``/``timestamp``/``regime`` infos are derived from the market.

Storage. :meth:`TrajectoryDataset.save` writes a single ``.npz`` (``np.savez``/
``np.savez_compressed``) atomically, or with ``format="sharded"`` a directory of
memory-mappable shards plus a JSON manifest (:mod:`quantgym.datasets.shards`); metadata JSON
lives in a ``uint8`` array or the manifest, so :meth:`TrajectoryDataset.load` never
unpickles anything (``allow_pickle=False``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import re
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from quantgym import __version__
from quantgym._io import atomic_write
from quantgym.datasets.storage import (
    DERIVED_INFO_KEYS,
    MarketReference,
    ObservationReferences,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "FORMAT_VERSION",
    "STANDARD_INFO_KEYS",
    "Episode",
    "DatasetMetadata",
    "TrajectoryDataset",
    "concatenate",
]

FORMAT_VERSION = 1
"""Version of the on-disk layout written by :meth:`TrajectoryDataset.save`."""

STANDARD_INFO_KEYS = ("equity", "position", "bar", "timestamp", "regime")
"""Per-step info arrays a quantgym collector records (``regime`` on synthetic markets only)."""

_INFO_PREFIX = "info."
_CORE_KEYS = (
    "observations",
    "actions",
    "rewards",
    "terminations",
    "truncations",
    "episode_lengths",
)
_HEADER_KEYS = ("format_version", "metadata")
_MARKET_PREFIX = "market."
_INFO_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------------------------
# Episode and metadata
# --------------------------------------------------------------------------------------------


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


def _utc_now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@dataclasses.dataclass
class DatasetMetadata:
    """The standard metadata keys of a :class:`TrajectoryDataset` (``to_dict`` gives its dict).

    ``TrajectoryDataset.metadata`` is a plain JSON-serialisable dict; any extra key is kept.
    ``action_space`` is ``{"type": "discrete", "n": 3}`` or
    ``{"type": "continuous", "shape": [1], "low": -1.0, "high": 1.0}``; it is inferred from
    the actions when missing.
    """

    env_id: str | None = None
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    data_name: str | None = None
    data_fingerprint: str | None = None
    date_range: list[str] | None = None  # [first, last] ISO timestamps of the collected bars
    behavior_policy: str | None = None
    policy_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int | None = None
    action_space: dict[str, Any] | None = None
    quantgym_version: str = __version__
    format_version: int = FORMAT_VERSION
    created_at: str = dataclasses.field(default_factory=_utc_now_iso)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``None`` fields are kept so every key is always present)."""
        return _normalize_metadata(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, metadata: Mapping[str, Any]) -> DatasetMetadata:
        """The standard fields of ``metadata`` (extra keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in metadata.items() if k in names})


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _normalize_metadata(metadata: Mapping[str, Any] | DatasetMetadata | None) -> dict[str, Any]:
    """JSON round trip, so in-memory metadata equals what :meth:`TrajectoryDataset.load` returns."""
    if metadata is None:
        return {}
    if isinstance(metadata, DatasetMetadata):
        metadata = dataclasses.asdict(metadata)
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    for key in metadata:
        if not isinstance(key, str):
            raise ValueError(f"metadata keys must be strings, got {key!r}")
    try:
        text = json.dumps(dict(metadata), default=_json_default)
    except (TypeError, ValueError) as exc:
        bad = [k for k, v in metadata.items() if not _is_json_serialisable(v)]
        raise ValueError(f"metadata is not JSON-serialisable (keys {bad}): {exc}") from None
    return json.loads(text)


def _is_json_serialisable(value: Any) -> bool:
    try:
        json.dumps(value, default=_json_default)
    except (TypeError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------------------------
# Validation helpers (one rule each)
# --------------------------------------------------------------------------------------------


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _check_kind(name: str, array: np.ndarray, kinds: str, what: str) -> None:
    if array.dtype.kind not in kinds:
        raise ValueError(f"{name} must be {what}, got dtype {array.dtype}")


def _check_flags(name: str, array: np.ndarray, n_steps: int) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != (n_steps,):
        raise ValueError(f"{name} must have shape ({n_steps},), got {array.shape}")
    if array.dtype != np.bool_:
        if array.dtype.kind not in "iuf" or not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got dtype {array.dtype}")
        array = array.astype(np.bool_)
    return array


def _check_episode_lengths(episode_lengths: Any) -> np.ndarray:
    lengths = np.asarray(episode_lengths)
    if lengths.ndim != 1:
        raise ValueError(f"episode_lengths must be 1-D, got shape {lengths.shape}")
    if lengths.size and lengths.dtype.kind not in "iu":
        raise ValueError(f"episode_lengths must be integers, got dtype {lengths.dtype}")
    lengths = lengths.astype(np.int64, copy=False)
    if lengths.size and lengths.min() < 1:
        bad = int(np.flatnonzero(lengths < 1)[0])
        raise ValueError(
            f"episode_lengths[{bad}] = {int(lengths[bad])}; every episode needs >= 1 step"
        )
    return lengths


def _check_boundaries(terminations: np.ndarray, truncations: np.ndarray, ends: np.ndarray) -> None:
    """Done flags exactly on the last step of each episode (never before it)."""
    done = terminations | truncations
    last = np.zeros(done.shape, dtype=np.bool_)
    last[ends - 1] = True
    early = np.flatnonzero(done & ~last)
    if early.size:
        step = int(early[0])
        episode = int(np.searchsorted(ends, step, side="right"))
        raise ValueError(
            f"step {step} (episode {episode}) is terminated/truncated but is not the last step "
            "of its episode; episode_lengths do not match the done flags"
        )
    open_ends = np.flatnonzero(~done[ends - 1])
    if open_ends.size:
        episode = int(open_ends[0])
        raise ValueError(
            f"episode {episode} ends at step {int(ends[episode]) - 1} without terminated or "
            "truncated; mark episodes cut by the collector as truncated"
        )


def _check_info(name: Any, value: Any, n_steps: int) -> np.ndarray:
    if not isinstance(name, str) or not _INFO_NAME_RE.match(name):
        raise ValueError(f"info name {name!r} must be an identifier (letters, digits, '_')")
    array = np.asarray(value)
    if array.ndim == 0 or array.shape[0] != n_steps:
        raise ValueError(
            f"infos[{name!r}] must have {n_steps} rows (one per step), got {array.shape}"
        )
    if array.dtype.kind == "M":
        if array.dtype != np.dtype("datetime64[ns]"):
            array = array.astype("datetime64[ns]")
        return array
    _check_kind(f"infos[{name!r}]", array, "biuf", "bool, integer, float or datetime64")
    return array


def _infer_action_space(actions: np.ndarray) -> dict[str, Any]:
    if actions.dtype.kind in "iu":
        n = int(actions.max()) + 1 if actions.size else 1
        return {"type": "discrete", "n": max(n, 1)}
    shape = list(actions.shape[1:])
    finite = actions[np.isfinite(actions)] if actions.size else actions
    low = float(finite.min()) if finite.size else -1.0
    high = float(finite.max()) if finite.size else 1.0
    return {"type": "continuous", "shape": shape, "low": min(low, -1.0), "high": max(high, 1.0)}


def _check_action_space(space: Any, actions: np.ndarray) -> dict[str, Any]:
    if not isinstance(space, dict) or space.get("type") not in ("discrete", "continuous"):
        raise ValueError(
            "metadata['action_space'] must be {'type': 'discrete', 'n': N} or "
            f"{{'type': 'continuous', 'shape': [...]}}, got {space!r}"
        )
    if space["type"] == "discrete":
        n = space.get("n")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"metadata['action_space']['n'] must be a positive int, got {n!r}")
        if actions.dtype.kind not in "iu" or actions.ndim != 1:
            raise ValueError(
                f"discrete actions must be a 1-D integer array, got {actions.dtype} {actions.shape}"
            )
        if actions.size and (actions.min() < 0 or actions.max() >= n):
            bad = int(np.flatnonzero((actions < 0) | (actions >= n))[0])
            raise ValueError(f"actions[{bad}] = {int(actions[bad])} is outside Discrete({n})")
    else:
        shape = space.get("shape")
        if not isinstance(shape, list) or list(actions.shape[1:]) != shape:
            raise ValueError(
                f"metadata['action_space']['shape'] = {shape!r} does not match actions "
                f"shape {actions.shape[1:]}"
            )
        _check_kind("continuous actions", actions, "f", "floating point")
    return space


def _episode_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for each pair, vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# TrajectoryDataset
# --------------------------------------------------------------------------------------------


class TrajectoryDataset:
    """Columnar episodes of ``(observations, actions, rewards, terminations, truncations)``.

    Build one with :meth:`from_arrays` (flat arrays, no per-step Python) or
    :meth:`from_episodes`; persist it with :meth:`save` / :meth:`load`; feed it to d3rlpy
    (:meth:`to_d3rlpy`), Minari (:meth:`to_minari`) or a Decision Transformer
    (:class:`quantgym.datasets.sequence.SequenceDataset`). The arrays are read-only views.

    Args:
        observations: ``(N + E, *obs_shape)``, ``L_i + 1`` rows per episode (final obs kept),
            or :class:`~quantgym.datasets.storage.ObservationReferences` of that many rows
            (by-reference storage: bar + account features per row, the market once).
        actions: ``(N,)`` integer indices (discrete) or ``(N, *shape)`` floats (continuous).
        rewards: ``(N,)`` floats.
        terminations: ``(N,)`` bool (or 0/1), True only on an episode's last step.
        truncations: ``(N,)`` bool (or 0/1), True only on an episode's last step.
        episode_lengths: ``(E,)`` positive ints summing to ``N``.
        infos: per-step arrays ``name -> (N, ...)`` (bool/int/float/datetime64; datetimes are
            stored as ``datetime64[ns]``).
        metadata: JSON-serialisable dict or :class:`DatasetMetadata`; ``format_version``,
            ``quantgym_version``, ``created_at`` and ``action_space`` are filled in when missing.
    """

    def __init__(
        self,
        observations: np.ndarray | ObservationReferences,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminations: np.ndarray,
        truncations: np.ndarray,
        episode_lengths: np.ndarray | Sequence[int],
        infos: Mapping[str, np.ndarray] | None = None,
        metadata: Mapping[str, Any] | DatasetMetadata | None = None,
        *,
        derived_infos: Sequence[str] = (),
    ) -> None:
        lengths = _check_episode_lengths(episode_lengths)
        n_steps, n_episodes = int(lengths.sum()), int(lengths.size)
        if n_episodes == 0:
            raise ValueError("episode_lengths is empty; a dataset needs at least one episode")

        actions = np.asarray(actions)
        if actions.ndim == 0 or actions.shape[0] != n_steps:
            raise ValueError(
                f"actions must have {n_steps} rows (sum of episode_lengths), got {actions.shape}"
            )
        _check_kind("actions", actions, "iuf", "integer (discrete) or float (continuous)")

        references = observations if isinstance(observations, ObservationReferences) else None
        if references is None:
            observations = np.asarray(observations)
            _check_kind("observations", observations, "biuf", "numeric")
        if len(observations.shape) < 2 or observations.shape[0] != n_steps + n_episodes:
            raise ValueError(
                f"observations must have shape ({n_steps + n_episodes}, ...) = n_steps + n_episodes "
                f"rows (each episode keeps its final observation), got {observations.shape}"
            )
        derived = tuple(derived_infos)
        if derived and references is None:
            raise ValueError("derived_infos needs observations by reference")
        for name in derived:
            if name not in DERIVED_INFO_KEYS or (infos and name in infos):
                raise ValueError(
                    f"derived_infos: {name!r} must be one of {DERIVED_INFO_KEYS} and not in infos"
                )
            if references is not None:
                references.market.derived_info(name, np.zeros(0, dtype=np.int64))

        rewards = np.asarray(rewards)
        if rewards.shape != (n_steps,):
            raise ValueError(f"rewards must have shape ({n_steps},), got {rewards.shape}")
        _check_kind("rewards", rewards, "f", "floating point")

        terminations = _check_flags("terminations", terminations, n_steps)
        truncations = _check_flags("truncations", truncations, n_steps)
        ends = np.cumsum(lengths)
        _check_boundaries(terminations, truncations, ends)

        infos = {} if infos is None else infos
        if not isinstance(infos, Mapping):
            raise ValueError(f"infos must be a dict of arrays, got {type(infos).__name__}")
        checked_infos = {name: _check_info(name, value, n_steps) for name, value in infos.items()}

        meta = _normalize_metadata(metadata)
        meta.setdefault("format_version", FORMAT_VERSION)
        if meta["format_version"] != FORMAT_VERSION:
            raise ValueError(
                f"metadata['format_version'] = {meta['format_version']!r}; this quantgym reads "
                f"format_version {FORMAT_VERSION}"
            )
        meta.setdefault("quantgym_version", __version__)
        meta.setdefault("created_at", _utc_now_iso())
        if meta.get("action_space") is None:
            meta["action_space"] = _infer_action_space(actions)
        _check_action_space(meta["action_space"], actions)

        self._references: ObservationReferences | None = None
        self._dense_observations: np.ndarray | None = None
        if references is not None:
            self._references = ObservationReferences(
                references.market, _readonly(references.bars), _readonly(references.account)
            )
        else:
            assert isinstance(observations, np.ndarray)
            self._dense_observations = _readonly(observations)
        self._derived = derived
        self._actions = _readonly(actions)
        self._rewards = _readonly(rewards)
        self._terminations = _readonly(terminations)
        self._truncations = _readonly(truncations)
        self._episode_lengths = _readonly(lengths)
        self._infos = {k: _readonly(v) for k, v in checked_infos.items()}
        self._metadata = meta
        self._step_starts = _readonly(ends - lengths)

    # ---- constructors ----------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminations: np.ndarray,
        truncations: np.ndarray,
        episode_lengths: np.ndarray | Sequence[int],
        infos: Mapping[str, np.ndarray] | None = None,
        metadata: Mapping[str, Any] | DatasetMetadata | None = None,
    ) -> TrajectoryDataset:
        """Build from flat arrays in the columnar layout (no copy when dtypes already fit)."""
        return cls(
            observations,
            actions,
            rewards,
            terminations,
            truncations,
            episode_lengths,
            infos,
            metadata,
        )

    @classmethod
    def from_episodes(
        cls,
        episodes: Sequence[Episode],
        metadata: Mapping[str, Any] | DatasetMetadata | None = None,
    ) -> TrajectoryDataset:
        """Concatenate :class:`Episode` objects (all with the same info keys)."""
        episodes = list(episodes)
        if not episodes:
            raise ValueError("episodes is empty; a dataset needs at least one episode")
        keys = list(episodes[0].infos)
        for i, episode in enumerate(episodes):
            if not isinstance(episode, Episode):
                raise ValueError(f"episodes[{i}] is a {type(episode).__name__}, not an Episode")
            if list(episode.infos) != keys:
                raise ValueError(
                    f"episodes[{i}] has info keys {list(episode.infos)}, expected {keys}"
                )
            n_obs = np.shape(episode.observations)[0] if np.ndim(episode.observations) else 0
            if n_obs != len(episode) + 1:
                raise ValueError(
                    f"episodes[{i}] has {n_obs} observations for {len(episode)} actions; "
                    "expected one more (the final observation)"
                )
        return cls(
            observations=np.concatenate([e.observations for e in episodes]),
            actions=np.concatenate([e.actions for e in episodes]),
            rewards=np.concatenate([e.rewards for e in episodes]),
            terminations=np.concatenate([e.terminations for e in episodes]),
            truncations=np.concatenate([e.truncations for e in episodes]),
            episode_lengths=np.array([len(e) for e in episodes], dtype=np.int64),
            infos={k: np.concatenate([e.infos[k] for e in episodes]) for k in keys},
            metadata=metadata,
        )

    @classmethod
    def from_vector_rollout(
        cls,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminations: np.ndarray,
        truncations: np.ndarray,
        infos: Mapping[str, np.ndarray] | None = None,
        metadata: Mapping[str, Any] | DatasetMetadata | None = None,
    ) -> TrajectoryDataset:
        """Build from a NEXT_STEP-autoreset vector-env rollout of ``T`` steps and ``N`` envs.

        Args:
            observations: ``(T + 1, N, *obs_shape)``: the reset observation, then the
                observation returned by each ``step``.
            actions, rewards, terminations, truncations: ``(T, N, ...)`` per step.
            infos: per-step arrays ``name -> (T, N, ...)`` (the ``_name`` masks are not needed).

        The step after a done is the vector env's autoreset step (action ignored, reward 0,
        reset observation): it is dropped, and the observation it returns starts the env's
        next episode; the observation returned *at* the done step is the final observation.
        An episode still running at step ``T`` is kept as truncated (final observation
        ``observations[T]``). Episodes are ordered env by env, then in time.
        """
        obs = np.asarray(observations)
        acts = np.asarray(actions)
        if acts.ndim < 2:
            raise ValueError(f"actions must have shape (T, N, ...), got {acts.shape}")
        n_t, n_env = acts.shape[:2]
        if obs.shape[:2] != (n_t + 1, n_env):
            raise ValueError(
                f"observations must have shape ({n_t + 1}, {n_env}, ...), got {obs.shape}"
            )
        rews = np.asarray(rewards)
        terms = _check_flags(
            "terminations", np.asarray(terminations).reshape(-1), n_t * n_env
        ).reshape(n_t, n_env)
        truncs = _check_flags(
            "truncations", np.asarray(truncations).reshape(-1), n_t * n_env
        ).reshape(n_t, n_env)
        if rews.shape != (n_t, n_env):
            raise ValueError(f"rewards must have shape ({n_t}, {n_env}), got {rews.shape}")
        infos = dict(infos or {})
        for name, values in infos.items():
            if np.shape(values)[:2] != (n_t, n_env):
                raise ValueError(
                    f"infos[{name!r}] must have shape ({n_t}, {n_env}, ...), got {np.shape(values)}"
                )
        done = terms | truncs
        autoreset = np.zeros_like(done)
        autoreset[1:] = done[:-1]

        step_rows: list[np.ndarray] = []  # (t, env) of each kept transition, flattened t * N + env
        obs_rows: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        cut = np.zeros(n_t * n_env, dtype=np.bool_)  # episodes cut by the end of the rollout
        for env in range(n_env):
            ts = np.flatnonzero(~autoreset[:, env])
            if ts.size == 0:
                continue
            ends = np.flatnonzero(done[ts, env])  # positions in ts of each episode's last step
            if ends.size == 0 or ends[-1] != ts.size - 1:
                ends = np.append(ends, ts.size - 1)
                cut[ts[-1] * n_env + env] = True
            episode_lengths = np.diff(np.concatenate(([-1], ends)))
            # Observations: each kept step's t, plus t_last + 1 (final obs) after each episode.
            obs_t = np.insert(ts, ends + 1, ts[ends] + 1)
            step_rows.append(ts * n_env + env)
            obs_rows.append(obs_t * n_env + env)
            lengths.append(episode_lengths)
        if not step_rows:
            raise ValueError("the rollout holds no transition")
        steps = np.concatenate(step_rows)
        flat_obs = obs.reshape((n_t + 1) * n_env, *obs.shape[2:])
        return cls(
            observations=flat_obs[np.concatenate(obs_rows)],
            actions=acts.reshape(n_t * n_env, *acts.shape[2:])[steps],
            rewards=rews.reshape(-1)[steps],
            terminations=terms.reshape(-1)[steps],
            truncations=(truncs.reshape(-1) | cut)[steps],
            episode_lengths=np.concatenate(lengths),
            infos={
                k: np.asarray(v).reshape(n_t * n_env, *np.shape(v)[2:])[steps]
                for k, v in infos.items()
            },
            metadata=metadata,
        )

    # ---- arrays and sizes ------------------------------------------------------------------

    @property
    def observations(self) -> np.ndarray:
        """``(N + E, *obs_shape)``: each episode's ``L + 1`` observations, episodes concatenated.

        By-reference datasets (:attr:`observation_storage` ``"reference"``) materialise a new
        array on every access, gathered in chunks; use :meth:`observations_at`,
        :meth:`step_observations` or :class:`~quantgym.datasets.sequence.SequenceDataset` to
        avoid holding all of them.
        """
        if self._references is not None:
            return _readonly(self._references.materialize())
        assert self._dense_observations is not None
        return self._dense_observations

    def observations_at(self, rows: np.ndarray | slice) -> np.ndarray:
        """Observation rows ``rows`` (indices into :attr:`observations`), without the rest."""
        if self._references is not None:
            return self._references.take(rows)
        assert self._dense_observations is not None
        return self._dense_observations[rows]

    @property
    def observation_storage(self) -> str:
        """``"reference"`` (bar + account features, market stored once) or ``"dense"``."""
        return "dense" if self._references is None else "reference"

    @property
    def observation_references(self) -> ObservationReferences | None:
        """The references of a by-reference dataset (``None`` when dense)."""
        return self._references

    @property
    def derived_infos(self) -> tuple[str, ...]:
        """Info names derived from the bar of each step's next observation (not stored)."""
        return self._derived

    @property
    def nbytes(self) -> int:
        """Bytes held by the dataset's arrays (a by-reference market counted once)."""
        total = sum(
            a.nbytes
            for a in (
                self._actions,
                self._rewards,
                self._terminations,
                self._truncations,
                self._episode_lengths,
                *self._infos.values(),
            )
        )
        if self._references is not None:
            market = sum(a.nbytes for a in self._references.market.arrays().values())
            return int(total + self._references.nbytes + market)
        assert self._dense_observations is not None
        return int(total + self._dense_observations.nbytes)

    @property
    def actions(self) -> np.ndarray:
        """``(N, ...)`` actions."""
        return self._actions

    @property
    def rewards(self) -> np.ndarray:
        """``(N,)`` rewards."""
        return self._rewards

    @property
    def terminations(self) -> np.ndarray:
        """``(N,)`` bool: the env terminated (bankruptcy) after this step."""
        return self._terminations

    @property
    def truncations(self) -> np.ndarray:
        """``(N,)`` bool: the episode was cut after this step (time limit, end of data)."""
        return self._truncations

    @property
    def episode_lengths(self) -> np.ndarray:
        """``(E,)`` int64 number of steps of each episode."""
        return self._episode_lengths

    @property
    def episode_starts(self) -> np.ndarray:
        """``(E,)`` int64 index of each episode's first step in the step arrays."""
        return self._step_starts

    @property
    def infos(self) -> dict[str, np.ndarray]:
        """Per-step info arrays ``name -> (N, ...)``."""
        return self._infos_at(slice(None))

    def _infos_at(self, steps: slice | np.ndarray) -> dict[str, np.ndarray]:
        """Infos of ``steps`` (stored ones sliced, derived ones computed), in recording order."""
        out = {k: v[steps] for k, v in self._infos.items()}
        if self._derived:
            assert self._references is not None
            next_rows = (self.observation_index() + 1)[steps]
            bars = self._references.bars[next_rows]
            for name in self._derived:
                out[name] = _readonly(self._references.market.derived_info(name, bars))
        return out

    @property
    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable metadata (see :class:`DatasetMetadata` for the standard keys)."""
        return self._metadata

    @property
    def n_episodes(self) -> int:
        """Number of episodes ``E``."""
        return int(self._episode_lengths.size)

    @property
    def n_steps(self) -> int:
        """Number of transitions ``N``."""
        return int(self._actions.shape[0])

    def __len__(self) -> int:
        return self.n_steps

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """Shape of one observation."""
        if self._references is not None:
            return (self._references.market.observation_dim,)
        assert self._dense_observations is not None
        return tuple(self._dense_observations.shape[1:])

    @property
    def action_space(self) -> dict[str, Any]:
        """``{"type": "discrete", "n": ...}`` or ``{"type": "continuous", "shape": [...], ...}``."""
        return self._metadata["action_space"]

    @property
    def is_discrete(self) -> bool:
        """True for a ``Discrete`` action space."""
        return self.action_space["type"] == "discrete"

    @property
    def n_actions(self) -> int | None:
        """Number of discrete actions (``None`` for continuous actions)."""
        return int(self.action_space["n"]) if self.is_discrete else None

    def episode_index(self) -> np.ndarray:
        """``(N,)`` int64 episode number of every step."""
        return np.repeat(np.arange(self.n_episodes, dtype=np.int64), self._episode_lengths)

    def step_index(self) -> np.ndarray:
        """``(N,)`` int64 step number within its episode (0 at each episode start)."""
        return np.arange(self.n_steps, dtype=np.int64) - np.repeat(
            self._step_starts, self._episode_lengths
        )

    def observation_index(self) -> np.ndarray:
        """``(N,)`` row in :attr:`observations` of the observation each action was taken from."""
        return np.arange(self.n_steps, dtype=np.int64) + self.episode_index()

    def step_observations(self) -> np.ndarray:
        """``(N, *obs_shape)`` observation before each step (a copy)."""
        return self.observations_at(self.observation_index())

    def next_observations(self) -> np.ndarray:
        """``(N, *obs_shape)`` observation after each step (a copy)."""
        return self.observations_at(self.observation_index() + 1)

    # ---- episodes --------------------------------------------------------------------------

    def _check_episode(self, i: int) -> int:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise ValueError(f"episode index must be an int, got {i!r}")
        i = int(i)
        if i < 0:
            i += self.n_episodes
        if not 0 <= i < self.n_episodes:
            raise ValueError(f"episode index {i} out of range for {self.n_episodes} episodes")
        return i

    def episode(self, i: int) -> Episode:
        """Episode ``i`` as views: obs ``(L+1, ...)``, actions ``(L, ...)``, rewards/flags/infos ``(L,)``
        (by reference, observations and derived infos are gathered copies)."""
        i = self._check_episode(i)
        start, length = int(self._step_starts[i]), int(self._episode_lengths[i])
        steps = slice(start, start + length)
        obs = slice(start + i, start + i + length + 1)
        return Episode(
            observations=self.observations_at(obs),
            actions=self._actions[steps],
            rewards=self._rewards[steps],
            terminations=self._terminations[steps],
            truncations=self._truncations[steps],
            infos=self._infos_at(steps),
        )

    def iter_episodes(self) -> Iterator[Episode]:
        """Yield every episode in order."""
        for i in range(self.n_episodes):
            yield self.episode(i)

    def episode_returns(self) -> np.ndarray:
        """``(E,)`` float64 undiscounted return of each episode."""
        return np.add.reduceat(self._rewards.astype(np.float64), self._step_starts)

    def returns_to_go(self, gamma: float = 1.0) -> np.ndarray:
        """``(N,)`` float64 ``G_t = r_t + gamma * G_{t+1}``, restarting at every episode end.

        No bootstrapping past a truncation: the return-to-go of an episode's last step is its
        reward (the Decision Transformer convention).
        """
        gamma = float(gamma)
        if not 0.0 <= gamma <= 1.0 or math.isnan(gamma):
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if gamma == 1.0:
            # Per episode a reversed running sum: np.add.accumulate adds sequentially, in the
            # recursion's order, so the result equals the loop below bit for bit.
            values = self._rewards.astype(np.float64)
            returns = np.empty(self.n_steps, dtype=np.float64)
            for start, length in zip(
                self._step_starts.tolist(), self._episode_lengths.tolist(), strict=True
            ):
                returns[start : start + length] = np.add.accumulate(
                    values[start : start + length][::-1]
                )[::-1]
            return returns
        rewards = self._rewards.astype(np.float64).tolist()
        last = np.zeros(self.n_steps, dtype=np.bool_)
        last[np.cumsum(self._episode_lengths) - 1] = True
        is_last = last.tolist()
        out = [0.0] * self.n_steps
        running = 0.0
        # A plain reverse loop over Python floats: O(N), exact recursion, ~50 ns per step.
        for t in range(self.n_steps - 1, -1, -1):
            running = rewards[t] if is_last[t] else rewards[t] + gamma * running
            out[t] = running
        return np.asarray(out, dtype=np.float64)

    def filter_episodes(
        self, mask: np.ndarray | Sequence[bool] | Sequence[int]
    ) -> TrajectoryDataset:
        """A new dataset with the selected episodes (boolean mask of length E, or indices).

        Metadata is copied and gains ``"parent_episodes"``: the kept episode numbers.
        """
        selector = np.asarray(mask)
        if selector.dtype == np.bool_:
            if selector.shape != (self.n_episodes,):
                raise ValueError(f"mask must have shape ({self.n_episodes},), got {selector.shape}")
            chosen = np.flatnonzero(selector)
        elif selector.dtype.kind in "iu" or selector.size == 0:
            chosen = selector.astype(np.int64).ravel()
            if chosen.size and (chosen.min() < -self.n_episodes or chosen.max() >= self.n_episodes):
                raise ValueError(f"mask indices out of range for {self.n_episodes} episodes")
            chosen = np.where(chosen < 0, chosen + self.n_episodes, chosen)
        else:
            raise ValueError(f"mask must be boolean or integer indices, got dtype {selector.dtype}")
        if chosen.size == 0:
            raise ValueError("mask selects no episode; a dataset needs at least one episode")
        lengths = self._episode_lengths[chosen]
        step_rows = _episode_ranges(self._step_starts[chosen], lengths)
        obs_rows = _episode_ranges(self._step_starts[chosen] + chosen, lengths + 1)
        metadata = dict(self._metadata)
        metadata["parent_episodes"] = chosen.tolist()
        observations: np.ndarray | ObservationReferences = (
            self._references.subset(obs_rows)
            if self._references is not None
            else self.observations_at(obs_rows)
        )
        return TrajectoryDataset(
            observations=observations,
            actions=self._actions[step_rows],
            rewards=self._rewards[step_rows],
            terminations=self._terminations[step_rows],
            truncations=self._truncations[step_rows],
            episode_lengths=lengths.copy(),
            infos={k: v[step_rows] for k, v in self._infos.items()},
            metadata=metadata,
            derived_infos=self._derived,
        )

    @classmethod
    def concatenate(
        cls,
        datasets: Sequence[TrajectoryDataset],
        metadata: Mapping[str, Any] | DatasetMetadata | None = None,
    ) -> TrajectoryDataset:
        """See :func:`concatenate`."""
        return concatenate(datasets, metadata)

    # ---- summaries -------------------------------------------------------------------------

    def to_pandas(self, include_observations: bool = False) -> pd.DataFrame:
        """One row per step: episode, step, action(s), reward, terminated, truncated, infos.

        ``include_observations=True`` adds ``obs_0 ..`` columns (the observation before the step).
        """
        import pandas as pd

        columns: dict[str, Any] = {"episode": self.episode_index(), "step": self.step_index()}
        actions = self._actions.reshape(self.n_steps, -1)
        if self._actions.ndim == 1:
            columns["action"] = self._actions
        else:
            for j in range(actions.shape[1]):
                columns[f"action_{j}"] = actions[:, j]
        columns["reward"] = self._rewards
        columns["terminated"] = self._terminations
        columns["truncated"] = self._truncations
        for name, values in self.infos.items():
            flat = values.reshape(self.n_steps, -1)
            if values.ndim == 1:
                columns[name] = values
            else:
                for j in range(flat.shape[1]):
                    columns[f"{name}_{j}"] = flat[:, j]
        if include_observations:
            obs = self.step_observations().reshape(self.n_steps, -1)
            for j in range(obs.shape[1]):
                columns[f"obs_{j}"] = obs[:, j]
        return pd.DataFrame(columns)

    def date_range(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """First and last ``timestamp`` info (else ``metadata['date_range']``, else ``None``)."""
        import pandas as pd

        stamps = self.infos.get("timestamp") if "timestamp" in self._infos else None
        if stamps is not None and stamps.dtype.kind == "M":
            return pd.Timestamp(stamps.min()), pd.Timestamp(stamps.max())
        meta = self._metadata.get("date_range")
        if isinstance(meta, list) and len(meta) == 2:
            try:
                return pd.Timestamp(meta[0]), pd.Timestamp(meta[1])
            except (TypeError, ValueError):
                return None
        return None

    def describe(self, bins: int = 10) -> dict[str, Any]:
        """A summary dict: sizes, return stats, action histogram, date range, provenance."""
        returns = self.episode_returns()
        summary: dict[str, Any] = {
            "n_episodes": self.n_episodes,
            "n_steps": self.n_steps,
            "n_terminated": int(self._terminations.sum()),
            "n_truncated": int((self._truncations & ~self._terminations).sum()),
            "episode_length": _stats(self._episode_lengths.astype(np.float64)),
            "episode_return": _stats(returns),
            "observation_shape": list(self.observation_shape),
            "action_space": self.action_space,
        }
        if self.is_discrete:
            counts = np.bincount(self._actions.astype(np.int64), minlength=self.n_actions or 0)
            labels = [str(i) for i in range(counts.size)]
            positions = (self._metadata.get("env_kwargs") or {}).get("positions")
            if isinstance(positions, list) and len(positions) == counts.size:
                labels = [f"{i} (target {p:+g})" for i, p in enumerate(positions)]
            summary["action_histogram"] = {"labels": labels, "counts": counts.tolist()}
        else:
            values = self._actions.astype(np.float64).ravel()
            counts, edges = np.histogram(values[np.isfinite(values)], bins=bins)
            labels = [f"[{edges[i]:.3g}, {edges[i + 1]:.3g})" for i in range(counts.size)]
            summary["action_histogram"] = {"labels": labels, "counts": counts.tolist()}
        dates = self.date_range()
        summary["date_range"] = None if dates is None else [str(d) for d in dates]
        for key in (
            "env_id",
            "data_name",
            "data_fingerprint",
            "behavior_policy",
            "seed",
            "quantgym_version",
            "created_at",
        ):
            summary[key] = self._metadata.get(key)
        return summary

    def __repr__(self) -> str:
        policy = self._metadata.get("behavior_policy")
        return (
            f"TrajectoryDataset(n_episodes={self.n_episodes}, n_steps={self.n_steps}, "
            f"observation_shape={self.observation_shape}, action_space={self.action_space}, "
            f"behavior_policy={policy!r})"
        )

    # ---- storage ---------------------------------------------------------------------------

    def save(
        self,
        path: str | os.PathLike,
        *,
        compress: bool = True,
        format: str = "npz",
        shard_steps: int = 1_000_000,
    ) -> Path:
        """Write the dataset atomically and return its path.

        ``format="npz"`` (default): one ``.npz``; ``.npz`` is appended when ``path`` does not
        already end with it (as ``np.savez`` does). ``compress=True`` uses
        ``np.savez_compressed`` (windowed observations compress well). The previous file at
        ``path``, if any, stays intact when writing fails.

        ``format="sharded"``: a directory of shards of whole episodes (about ``shard_steps``
        transitions each, one ``.npy`` per column, memory-mappable) plus ``manifest.json``
        (format version, every file's size and SHA-256, metadata); see
        :mod:`quantgym.datasets.shards`. ``compress`` is ignored.
        """
        if format == "sharded":
            from quantgym.datasets.shards import save_sharded

            return save_sharded(self, path, shard_steps=shard_steps)
        if format != "npz":
            raise ValueError(f"format must be 'npz' or 'sharded', got {format!r}")
        target = _npz_path(path)
        metadata = _normalize_metadata(self._metadata)
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "metadata": _json_bytes(metadata),
        }
        storage = self.storage_description()
        if storage["observations"] == "reference":
            arrays["storage"] = _json_bytes(storage)
        arrays.update(self.columns())
        arrays.update(self.shared_columns())

        def _write(tmp: str) -> None:
            # Looked up at call time (not bound at import) so tests can make it fail.
            saver: Any = np.savez_compressed if compress else np.savez
            with open(tmp, "wb") as f:
                saver(f, **arrays)

        return atomic_write(target, _write)

    def storage_description(self) -> dict[str, Any]:
        """JSON description of the observation storage (what :meth:`from_columns` needs)."""
        if self._references is None:
            return {"observations": "dense"}
        return {
            "observations": "reference",
            "market": self._references.market.describe(),
            "derived_infos": list(self._derived),
        }

    def columns(self) -> dict[str, np.ndarray]:
        """The per-step and per-episode arrays, by storage name (observations, actions, ...,
        ``info.<name>``; by reference ``ref.bars``/``ref.account`` instead of observations)."""
        out: dict[str, np.ndarray] = {}
        if self._references is not None:
            out["ref.bars"] = self._references.bars
            out["ref.account"] = self._references.account
        else:
            assert self._dense_observations is not None
            out["observations"] = self._dense_observations
        out.update(
            actions=self._actions,
            rewards=self._rewards,
            terminations=self._terminations,
            truncations=self._truncations,
            episode_lengths=self._episode_lengths,
        )
        for name, values in self._infos.items():
            out[_INFO_PREFIX + name] = values
        return out

    def shared_columns(self) -> dict[str, np.ndarray]:
        """Arrays stored once per dataset: the market of a by-reference dataset (``market.*``)."""
        if self._references is None:
            return {}
        return {_MARKET_PREFIX + k: v for k, v in self._references.market.arrays().items()}

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, np.ndarray],
        metadata: Mapping[str, Any],
        storage: Mapping[str, Any] | None = None,
        *,
        market: MarketReference | None = None,
    ) -> TrajectoryDataset:
        """Inverse of :meth:`columns` + :meth:`shared_columns` + :meth:`storage_description`.

        ``market`` reuses an already built market reference (the ``market.*`` columns are then
        not needed). Raises ``ValueError`` for inconsistent columns.
        """
        storage = dict(storage or {"observations": "dense"})
        infos = {
            k[len(_INFO_PREFIX) :]: v for k, v in columns.items() if k.startswith(_INFO_PREFIX)
        }
        observations: np.ndarray | ObservationReferences
        if storage.get("observations") == "reference":
            if market is None:
                shared = {
                    k[len(_MARKET_PREFIX) :]: v
                    for k, v in columns.items()
                    if k.startswith(_MARKET_PREFIX)
                }
                if "features" not in shared:
                    raise ValueError("by-reference storage without market.features")
                market = MarketReference.from_arrays(dict(storage.get("market") or {}), shared)
            observations = ObservationReferences(
                market, columns["ref.bars"], columns["ref.account"]
            )
        elif storage.get("observations") == "dense":
            observations = columns["observations"]
        else:
            raise ValueError(f"unknown observation storage {storage.get('observations')!r}")
        return cls(
            observations=observations,
            actions=columns["actions"],
            rewards=columns["rewards"],
            terminations=columns["terminations"],
            truncations=columns["truncations"],
            episode_lengths=columns["episode_lengths"],
            infos=infos,
            metadata=metadata,
            derived_infos=tuple(storage.get("derived_infos") or ()),
        )

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, mmap: bool = False, verify: bool = True
    ) -> TrajectoryDataset:
        """Read a dataset written by :meth:`save`: an ``.npz`` (with or without the suffix) or a
        sharded directory (:func:`quantgym.datasets.shards.load_sharded`: ``mmap=True`` maps
        the shard files instead of reading them, ``verify`` checks every SHA-256 first).

        Raises ``ValueError`` for a missing, truncated, corrupted, foreign or wrong-version
        file, naming the file. Never unpickles (``allow_pickle=False``).
        """
        if Path(path).is_dir():
            from quantgym.datasets.shards import load_sharded

            return load_sharded(path, mmap=mmap, verify=verify)
        source = _existing_path(path)
        arrays = _read_npz(source)
        if "format_version" not in arrays or "metadata" not in arrays:
            raise ValueError(
                f"{source} is not a quantgym dataset (no format_version/metadata entries)"
            )
        version_array = arrays["format_version"]
        if version_array.shape != () or version_array.dtype.kind not in "iu":
            raise ValueError(f"{source} is not a quantgym dataset (bad format_version entry)")
        version = int(version_array)
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{source} has dataset format_version {version}; this quantgym "
                f"({__version__}) reads format_version {FORMAT_VERSION}"
            )
        storage = {"observations": "dense"}
        if "storage" in arrays:
            storage = _json_entry(arrays["storage"], "storage", source)
        by_reference = storage.get("observations") == "reference"
        core = tuple(k for k in _CORE_KEYS if not (by_reference and k == "observations"))
        if by_reference:
            core += ("ref.bars", "ref.account", _MARKET_PREFIX + "features")
        missing = [k for k in (*_HEADER_KEYS, *core) if k not in arrays]
        if missing:
            raise ValueError(f"{source} is not a complete quantgym dataset: missing {missing}")
        unknown = [
            k
            for k in arrays
            if k not in (*_HEADER_KEYS, *core, "storage")
            and not k.startswith(_INFO_PREFIX)
            and not (by_reference and k.startswith(_MARKET_PREFIX))
        ]
        if unknown:
            raise ValueError(f"{source} is not a quantgym dataset: unexpected entries {unknown}")
        metadata = _json_entry(arrays["metadata"], "metadata", source)
        if metadata.get("format_version") != version:
            raise ValueError(
                f"{source} is corrupted: metadata format_version does not match the file"
            )
        for key, kinds in (("terminations", "b"), ("truncations", "b"), ("episode_lengths", "i")):
            if arrays[key].dtype.kind not in kinds:
                raise ValueError(f"{source} is corrupted: {key} has dtype {arrays[key].dtype}")
        try:
            return cls.from_columns(arrays, metadata, storage)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{source} is corrupted: {exc}") from None

    # ---- exports (lazy: d3rlpy/minari import torch/h5py) -------------------------------------

    def to_d3rlpy(
        self, *, keep_final_observation: bool = True, progress: bool | None = None
    ) -> Any:
        """``d3rlpy.dataset.MDPDataset``; see :func:`quantgym.datasets.export.to_d3rlpy`."""
        from quantgym.datasets.export import to_d3rlpy

        return to_d3rlpy(self, keep_final_observation=keep_final_observation, progress=progress)

    def to_minari(self, dataset_id: str, **kwargs: Any) -> Any:
        """A Minari dataset; see :func:`quantgym.datasets.export.to_minari`."""
        from quantgym.datasets.export import to_minari

        return to_minari(self, dataset_id, **kwargs)


def _stats(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {
            "mean": math.nan,
            "std": math.nan,
            "min": math.nan,
            "median": math.nan,
            "max": math.nan,
        }
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "min": float(np.min(values)),
        "median": float(np.median(values)),
        "max": float(np.max(values)),
    }


def concatenate(
    datasets: Sequence[TrajectoryDataset],
    metadata: Mapping[str, Any] | DatasetMetadata | None = None,
) -> TrajectoryDataset:
    """Episodes of all ``datasets`` in order (e.g. a "mixed" quality dataset).

    All must share observation shape, action space and info keys. Without ``metadata`` the
    result keeps the keys on which every input agrees and records each input's metadata
    under ``"components"``.
    """
    datasets = list(datasets)
    if not datasets:
        raise ValueError("datasets is empty")
    for i, ds in enumerate(datasets):
        if not isinstance(ds, TrajectoryDataset):
            raise ValueError(f"datasets[{i}] is a {type(ds).__name__}, not a TrajectoryDataset")
    first = datasets[0]
    for i, ds in enumerate(datasets[1:], start=1):
        if ds.observation_shape != first.observation_shape:
            raise ValueError(
                f"datasets[{i}] observation shape {ds.observation_shape} != {first.observation_shape}"
            )
        if ds.action_space != first.action_space:
            raise ValueError(
                f"datasets[{i}] action_space {ds.action_space} != {first.action_space}"
            )
        if list(ds.infos) != list(first.infos):
            raise ValueError(f"datasets[{i}] info keys {list(ds.infos)} != {list(first.infos)}")
    if metadata is None:
        merged = {
            k: v
            for k, v in first.metadata.items()
            if all(k in ds.metadata and ds.metadata[k] == v for ds in datasets[1:])
        }
        merged.pop("created_at", None)
        merged["components"] = [ds.metadata for ds in datasets]
        metadata = merged
    # By reference when every input references the same market and derives the same infos.
    refs = [ds.observation_references for ds in datasets]
    first_ref = refs[0]
    observations: np.ndarray | ObservationReferences
    if (
        first_ref is not None
        and all(r is not None and r.market.same_as(first_ref.market) for r in refs)
        and all(ds.derived_infos == first.derived_infos for ds in datasets)
    ):
        observations = ObservationReferences(
            first_ref.market,
            np.concatenate([r.bars for r in refs if r is not None]),
            np.concatenate([r.account for r in refs if r is not None]),
        )
        derived = first.derived_infos
    else:
        observations = np.concatenate([ds.observations for ds in datasets])
        derived = ()
    stored = [k for k in first.infos if k not in derived]
    return TrajectoryDataset(
        observations=observations,
        actions=np.concatenate([ds.actions for ds in datasets]),
        rewards=np.concatenate([ds.rewards for ds in datasets]),
        terminations=np.concatenate([ds.terminations for ds in datasets]),
        truncations=np.concatenate([ds.truncations for ds in datasets]),
        episode_lengths=np.concatenate([ds.episode_lengths for ds in datasets]),
        infos={k: np.concatenate([ds.infos[k] for ds in datasets]) for k in stored},
        metadata=metadata,
        derived_infos=derived,
    )


# --------------------------------------------------------------------------------------------
# File helpers
# --------------------------------------------------------------------------------------------


def _json_bytes(obj: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def _json_entry(raw: np.ndarray, name: str, source: Path) -> dict[str, Any]:
    """A JSON dict stored as a ``uint8`` entry, or ``ValueError`` naming ``source``."""
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{source} is corrupted: {name} entry is not a uint8 byte string")
    try:
        value = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source} is corrupted: {name} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{source} is corrupted: {name} is not a JSON object")
    return value


def _npz_path(path: str | os.PathLike) -> Path:
    target = Path(path)
    if target.suffix != ".npz":
        target = target.with_name(target.name + ".npz")
    return target


def _existing_path(path: str | os.PathLike) -> Path:
    source = Path(path)
    if source.is_file():
        return source
    with_suffix = _npz_path(source)
    if with_suffix.is_file():
        return with_suffix
    raise ValueError(
        f"{source} is not a quantgym dataset: no such file (also tried {with_suffix.name})"
    )


def _read_npz(source: Path) -> dict[str, np.ndarray]:
    """Every entry of the archive, or ``ValueError`` for anything that is not a readable npz."""
    errors = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)
    try:
        loaded = np.load(source, allow_pickle=False)
    except errors as exc:
        raise ValueError(
            f"{source} is not a quantgym dataset or is corrupted/truncated: {exc}"
        ) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
        raise ValueError(f"{source} is not a quantgym dataset (an .npy array, not an .npz archive)")
    try:
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except errors as exc:
        raise ValueError(
            f"{source} is not a quantgym dataset or is corrupted/truncated: {exc}"
        ) from None
