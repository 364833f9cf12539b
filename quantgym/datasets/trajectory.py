"""Columnar offline-RL trajectories: :class:`TrajectoryDataset` (episodes: :class:`Episode`).

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
autoreset steps can never hide inside an episode (:mod:`quantgym.datasets.checks`).

Observations are stored densely, or by reference (:mod:`quantgym.datasets.storage`): per
row the bar index and the account features, the market's feature matrix once.
:attr:`TrajectoryDataset.observations` then materialises them in chunks, and
``bar``/``timestamp``/``regime`` infos are derived from the market.

Storage. :meth:`TrajectoryDataset.save` / :meth:`TrajectoryDataset.load` hand the dataset's
columns to :mod:`quantgym.datasets.format` (one ``.npz``) or
:mod:`quantgym.datasets.shard_format` (a directory of shards). Exports to d3rlpy and Minari
are :mod:`quantgym.datasets.export`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from quantgym.checks import check_fraction
from quantgym.datasets import format as fmt
from quantgym.datasets import shard_format
from quantgym.datasets.checks import (
    check_actions,
    check_boundaries,
    check_derived_infos,
    check_episode_index,
    check_episode_lengths,
    check_episode_selection,
    check_flags,
    check_infos,
    check_metadata,
    check_observations,
    check_rewards,
)
from quantgym.datasets.episode import Episode
from quantgym.datasets.metadata import DatasetMetadata, merge_metadata
from quantgym.datasets.storage import MarketReference, ObservationReferences
from quantgym.datasets.summary import (
    PROVENANCE_KEYS,
    action_histogram,
    flat_columns,
    metadata_date_range,
    value_stats,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["TrajectoryDataset", "concatenate"]


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


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
    (:func:`~quantgym.datasets.export.to_d3rlpy`), Minari
    (:func:`~quantgym.datasets.export.to_minari`) or a Decision Transformer
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
        lengths = check_episode_lengths(episode_lengths)
        n_steps, n_episodes = int(lengths.sum()), int(lengths.size)
        actions = check_actions(actions, n_steps)
        observations = check_observations(observations, n_steps, n_episodes)
        references = observations if isinstance(observations, ObservationReferences) else None
        derived = check_derived_infos(derived_infos, observations, infos)
        rewards = check_rewards(rewards, n_steps)
        terminations = check_flags("terminations", terminations, n_steps)
        truncations = check_flags("truncations", truncations, n_steps)
        ends = np.cumsum(lengths)
        check_boundaries(terminations, truncations, ends)
        checked_infos = check_infos(infos, n_steps)
        meta = check_metadata(metadata, actions)

        # One of: read-only dense observations, or references to read-only bars/account rows.
        self._references: ObservationReferences | None = None
        self._observations: np.ndarray | ObservationReferences
        if references is not None:
            self._references = ObservationReferences(
                references.market, _readonly(references.bars), _readonly(references.account)
            )
            self._observations = self._references
        else:
            self._observations = _readonly(np.asarray(observations))
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
        assert isinstance(self._observations, np.ndarray)
        return self._observations

    def observations_at(self, rows: np.ndarray | slice) -> np.ndarray:
        """Observation rows ``rows`` (indices into :attr:`observations`), without the rest."""
        if self._references is not None:
            return self._references.take(rows)
        assert isinstance(self._observations, np.ndarray)
        return self._observations[rows]

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
        stored = (*self.columns().values(), *self.shared_columns().values())
        return int(sum(a.nbytes for a in stored))

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
        return tuple(self._observations.shape[1:])

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

    def episode(self, i: int) -> Episode:
        """Episode ``i`` as views: obs ``(L+1, ...)``, actions ``(L, ...)``, rewards/flags/infos ``(L,)``
        (by reference, observations and derived infos are gathered copies)."""
        i = check_episode_index(i, self.n_episodes)
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
        gamma = check_fraction("gamma", gamma)
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
        chosen = check_episode_selection(mask, self.n_episodes)
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
        columns.update(flat_columns("action", self._actions))
        columns["reward"] = self._rewards
        columns["terminated"] = self._terminations
        columns["truncated"] = self._truncations
        for name, values in self.infos.items():
            columns.update(flat_columns(name, values))
        if include_observations:
            columns.update(flat_columns("obs", self.step_observations().reshape(self.n_steps, -1)))
        return pd.DataFrame(columns)

    def date_range(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """First and last ``timestamp`` info (else ``metadata['date_range']``, else ``None``)."""
        import pandas as pd

        stamps = self.infos.get("timestamp") if "timestamp" in self._infos else None
        if stamps is not None and stamps.dtype.kind == "M":
            return pd.Timestamp(stamps.min()), pd.Timestamp(stamps.max())
        return metadata_date_range(self._metadata)

    def describe(self, bins: int = 10) -> dict[str, Any]:
        """A summary dict: sizes, return stats, action histogram, date range, provenance."""
        positions = (self._metadata.get("env_kwargs") or {}).get("positions")
        dates = self.date_range()
        summary: dict[str, Any] = {
            "n_episodes": self.n_episodes,
            "n_steps": self.n_steps,
            "n_terminated": int(self._terminations.sum()),
            "n_truncated": int((self._truncations & ~self._terminations).sum()),
            "episode_length": value_stats(self._episode_lengths.astype(np.float64)),
            "episode_return": value_stats(self.episode_returns()),
            "observation_shape": list(self.observation_shape),
            "action_space": self.action_space,
            "action_histogram": action_histogram(self._actions, self.action_space, positions, bins),
            "date_range": None if dates is None else [str(d) for d in dates],
        }
        summary.update({key: self._metadata.get(key) for key in PROVENANCE_KEYS})
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
        :mod:`quantgym.datasets.shard_format`. ``compress`` is ignored.
        """
        if format == "sharded":
            return shard_format.write_shards(
                path,
                self.columns(),
                self.shared_columns(),
                self._metadata,
                self.storage_description(),
                shard_steps=shard_steps,
            )
        if format != "npz":
            raise ValueError(f"format must be 'npz' or 'sharded', got {format!r}")
        columns = {**self.columns(), **self.shared_columns()}
        return fmt.write_npz(
            path, columns, self._metadata, self.storage_description(), compress=compress
        )

    def storage_description(self) -> dict[str, Any]:
        """JSON description of the observation storage (what :meth:`from_columns` needs)."""
        return fmt.storage_description(self._observations, self._derived)

    def columns(self) -> dict[str, np.ndarray]:
        """The per-step and per-episode arrays, by storage name (observations, actions, ...,
        ``info.<name>``; by reference ``ref.bars``/``ref.account`` instead of observations)."""
        steps = {
            "actions": self._actions,
            "rewards": self._rewards,
            "terminations": self._terminations,
            "truncations": self._truncations,
            "episode_lengths": self._episode_lengths,
        }
        return fmt.encode_columns(self._observations, steps, self._infos)

    def shared_columns(self) -> dict[str, np.ndarray]:
        """Arrays stored once per dataset: the market of a by-reference dataset (``market.*``)."""
        return fmt.shared_columns(self._observations)

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
        return cls(**fmt.decode_columns(columns, storage, market), metadata=metadata)

    @classmethod
    def from_stored(cls, stored: fmt.StoredColumns) -> TrajectoryDataset:
        """The dataset of columns read from a file; ``ValueError`` naming the file when they
        are inconsistent."""
        try:
            return cls.from_columns(
                stored.columns, stored.metadata, stored.storage, market=stored.market
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{stored.source} is corrupted: {exc}") from None

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, mmap: bool = False, verify: bool = True
    ) -> TrajectoryDataset:
        """Read a dataset written by :meth:`save`: an ``.npz`` (with or without the suffix) or a
        sharded directory (``mmap=True`` maps the shard files instead of reading them,
        ``verify`` checks every SHA-256 first).

        Raises ``ValueError`` for a missing, truncated, corrupted, foreign or wrong-version
        file, naming the file. Never unpickles (``allow_pickle=False``).
        """
        if Path(path).is_dir():
            return cls.from_stored(shard_format.read_shards(path, mmap=mmap, verify=verify))
        return cls.from_stored(fmt.read_npz(path))


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
        metadata = merge_metadata([ds.metadata for ds in datasets])
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
