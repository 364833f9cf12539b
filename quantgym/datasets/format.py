"""On-disk format of a dataset: named columns, JSON entries and the single ``.npz`` file.

A dataset is stored as named arrays (its *columns*) plus two JSON objects, its metadata and
its observation storage:

=====================  =====================================================================
column                 meaning
=====================  =====================================================================
observations           dense observations ``(N + E, *obs_shape)``
ref.bars, ref.account  by-reference observations: bar index and account features per row
actions, rewards,      the per-step arrays ``(N, ...)``
terminations,
truncations
episode_lengths        ``(E,)`` int64
info.<name>            per-step info arrays ``(N, ...)``
market.<name>          the market of a by-reference dataset, stored once (shared columns)
=====================  =====================================================================

The storage description is ``{"observations": "dense"}`` or ``{"observations":
"reference", "market": ..., "derived_infos": [...]}``. :func:`encode_columns` and
:func:`decode_columns` translate between these columns and a dataset's parts;
:func:`write_npz` / :func:`read_npz` store them in one ``.npz`` (``np.savez``, written
atomically; JSON in ``uint8`` entries, so reading never unpickles anything). The sharded
directory layout is :mod:`quantgym.datasets.shard_format`.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from quantgym import __version__
from quantgym.datasets.storage import MarketReference, ObservationReferences
from quantgym.files import atomic_write

__all__ = [
    "FORMAT_VERSION",
    "INFO_PREFIX",
    "MARKET_PREFIX",
    "OBSERVATION_ROW_COLUMNS",
    "DENSE_STORAGE",
    "StoredColumns",
    "encode_columns",
    "shared_columns",
    "storage_description",
    "decode_columns",
    "json_bytes",
    "read_json_entry",
    "npz_path",
    "write_npz",
    "read_npz",
]

FORMAT_VERSION = 1
"""Version of the on-disk layout written by :meth:`TrajectoryDataset.save`."""

INFO_PREFIX = "info."
MARKET_PREFIX = "market."
OBSERVATION_ROW_COLUMNS = ("observations", "ref.bars", "ref.account")
"""Columns with one row per observation (``L + 1`` per episode) instead of one per step."""
DENSE_STORAGE: dict[str, Any] = {"observations": "dense"}

_CORE_KEYS = (
    "observations",
    "actions",
    "rewards",
    "terminations",
    "truncations",
    "episode_lengths",
)
_HEADER_KEYS = ("format_version", "metadata")
_NPZ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


class StoredColumns(NamedTuple):
    """What a file holds: columns, metadata, storage description and, when already built, the
    market of a by-reference dataset (``None``: built from the ``market.*`` columns)."""

    source: Path
    columns: dict[str, np.ndarray]
    metadata: dict[str, Any]
    storage: dict[str, Any]
    market: MarketReference | None = None


# --------------------------------------------------------------------------------------------
# Columns <-> a dataset's parts
# --------------------------------------------------------------------------------------------


def encode_columns(
    observations: np.ndarray | ObservationReferences,
    steps: Mapping[str, np.ndarray],
    infos: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """The per-step and per-episode columns: observations (or ``ref.bars``/``ref.account``),
    then ``steps`` (actions ... episode_lengths) in order, then ``info.<name>``."""
    out: dict[str, np.ndarray] = {}
    if isinstance(observations, ObservationReferences):
        out["ref.bars"] = observations.bars
        out["ref.account"] = observations.account
    else:
        out["observations"] = observations
    out.update(steps)
    for name, values in infos.items():
        out[INFO_PREFIX + name] = values
    return out


def shared_columns(observations: np.ndarray | ObservationReferences) -> dict[str, np.ndarray]:
    """Columns stored once per dataset: the market of by-reference observations (``market.*``)."""
    if not isinstance(observations, ObservationReferences):
        return {}
    return {MARKET_PREFIX + k: v for k, v in observations.market.arrays().items()}


def storage_description(
    observations: np.ndarray | ObservationReferences, derived_infos: tuple[str, ...]
) -> dict[str, Any]:
    """JSON description of the observation storage (what :func:`decode_columns` needs)."""
    if not isinstance(observations, ObservationReferences):
        return dict(DENSE_STORAGE)
    return {
        "observations": "reference",
        "market": observations.market.describe(),
        "derived_infos": list(derived_infos),
    }


def decode_columns(
    columns: Mapping[str, np.ndarray],
    storage: Mapping[str, Any] | None = None,
    market: MarketReference | None = None,
) -> dict[str, Any]:
    """Inverse of :func:`encode_columns` + :func:`shared_columns` + :func:`storage_description`:
    the keyword arguments of ``TrajectoryDataset(...)``.

    ``market`` reuses an already built market reference (the ``market.*`` columns are then
    not needed). Raises ``ValueError`` (or ``KeyError`` for a missing column).
    """
    storage = dict(storage or DENSE_STORAGE)
    infos = {k[len(INFO_PREFIX) :]: v for k, v in columns.items() if k.startswith(INFO_PREFIX)}
    observations: np.ndarray | ObservationReferences
    if storage.get("observations") == "reference":
        if market is None:
            shared = {
                k[len(MARKET_PREFIX) :]: v
                for k, v in columns.items()
                if k.startswith(MARKET_PREFIX)
            }
            if "features" not in shared:
                raise ValueError("by-reference storage without market.features")
            market = MarketReference.from_arrays(dict(storage.get("market") or {}), shared)
        observations = ObservationReferences(market, columns["ref.bars"], columns["ref.account"])
    elif storage.get("observations") == "dense":
        observations = columns["observations"]
    else:
        raise ValueError(f"unknown observation storage {storage.get('observations')!r}")
    return {
        "observations": observations,
        "actions": columns["actions"],
        "rewards": columns["rewards"],
        "terminations": columns["terminations"],
        "truncations": columns["truncations"],
        "episode_lengths": columns["episode_lengths"],
        "infos": infos,
        "derived_infos": tuple(storage.get("derived_infos") or ()),
    }


# --------------------------------------------------------------------------------------------
# JSON entries
# --------------------------------------------------------------------------------------------


def json_bytes(obj: Any) -> np.ndarray:
    """``obj`` as a JSON ``uint8`` array (an ``.npz`` entry that needs no pickle)."""
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def read_json_entry(raw: np.ndarray, name: str, source: Path) -> dict[str, Any]:
    """A JSON dict stored by :func:`json_bytes`, or ``ValueError`` naming ``source``."""
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{source} is corrupted: {name} entry is not a uint8 byte string")
    try:
        value = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source} is corrupted: {name} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{source} is corrupted: {name} is not a JSON object")
    return value


# --------------------------------------------------------------------------------------------
# The single .npz file
# --------------------------------------------------------------------------------------------


def npz_path(path: str | os.PathLike) -> Path:
    """``path`` with ``.npz`` appended when it does not end with it (as ``np.savez`` does)."""
    target = Path(path)
    if target.suffix != ".npz":
        target = target.with_name(target.name + ".npz")
    return target


def write_npz(
    path: str | os.PathLike,
    columns: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any],
    storage: Mapping[str, Any],
    *,
    compress: bool = True,
) -> Path:
    """Write ``columns`` with their metadata and storage as one ``.npz``, atomically.

    ``compress=True`` uses ``np.savez_compressed``. The previous file at the path stays
    intact when writing fails. Returns the path written (``.npz`` appended when missing).
    """
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "metadata": json_bytes(dict(metadata)),
    }
    if storage.get("observations") == "reference":
        arrays["storage"] = json_bytes(dict(storage))
    arrays.update(columns)

    def _write(tmp: str) -> None:
        # Looked up at call time (not bound at import) so tests can make it fail.
        saver: Any = np.savez_compressed if compress else np.savez
        with open(tmp, "wb") as f:
            saver(f, **arrays)

    return atomic_write(npz_path(path), _write)


def _existing_path(path: str | os.PathLike) -> Path:
    source = Path(path)
    if source.is_file():
        return source
    with_suffix = npz_path(source)
    if with_suffix.is_file():
        return with_suffix
    raise ValueError(
        f"{source} is not a quantgym dataset: no such file (also tried {with_suffix.name})"
    )


def _read_entries(source: Path) -> dict[str, np.ndarray]:
    """Every entry of the archive, or ``ValueError`` for anything that is not a readable npz."""
    try:
        loaded = np.load(source, allow_pickle=False)
    except _NPZ_ERRORS as exc:
        raise ValueError(
            f"{source} is not a quantgym dataset or is corrupted/truncated: {exc}"
        ) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
        raise ValueError(f"{source} is not a quantgym dataset (an .npy array, not an .npz archive)")
    try:
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except _NPZ_ERRORS as exc:
        raise ValueError(
            f"{source} is not a quantgym dataset or is corrupted/truncated: {exc}"
        ) from None


def _check_version(arrays: Mapping[str, np.ndarray], source: Path) -> int:
    if "format_version" not in arrays or "metadata" not in arrays:
        raise ValueError(f"{source} is not a quantgym dataset (no format_version/metadata entries)")
    version_array = arrays["format_version"]
    if version_array.shape != () or version_array.dtype.kind not in "iu":
        raise ValueError(f"{source} is not a quantgym dataset (bad format_version entry)")
    version = int(version_array)
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{source} has dataset format_version {version}; this quantgym "
            f"({__version__}) reads format_version {FORMAT_VERSION}"
        )
    return version


def read_npz(path: str | os.PathLike) -> StoredColumns:
    """Read an ``.npz`` written by :func:`write_npz` (with or without the suffix).

    Raises ``ValueError`` for a missing, truncated, corrupted, foreign or wrong-version
    file, naming the file. Never unpickles (``allow_pickle=False``).
    """
    source = _existing_path(path)
    arrays = _read_entries(source)
    version = _check_version(arrays, source)
    storage = dict(DENSE_STORAGE)
    if "storage" in arrays:
        storage = read_json_entry(arrays["storage"], "storage", source)
    by_reference = storage.get("observations") == "reference"
    core = tuple(k for k in _CORE_KEYS if not (by_reference and k == "observations"))
    if by_reference:
        core += ("ref.bars", "ref.account", MARKET_PREFIX + "features")
    missing = [k for k in (*_HEADER_KEYS, *core) if k not in arrays]
    if missing:
        raise ValueError(f"{source} is not a complete quantgym dataset: missing {missing}")
    unknown = [
        k
        for k in arrays
        if k not in (*_HEADER_KEYS, *core, "storage")
        and not k.startswith(INFO_PREFIX)
        and not (by_reference and k.startswith(MARKET_PREFIX))
    ]
    if unknown:
        raise ValueError(f"{source} is not a quantgym dataset: unexpected entries {unknown}")
    metadata = read_json_entry(arrays["metadata"], "metadata", source)
    if metadata.get("format_version") != version:
        raise ValueError(f"{source} is corrupted: metadata format_version does not match the file")
    for key, kinds in (("terminations", "b"), ("truncations", "b"), ("episode_lengths", "i")):
        if arrays[key].dtype.kind not in kinds:
            raise ValueError(f"{source} is corrupted: {key} has dtype {arrays[key].dtype}")
    columns = {k: v for k, v in arrays.items() if k not in (*_HEADER_KEYS, "storage")}
    return StoredColumns(source, columns, metadata, storage)
