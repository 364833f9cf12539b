"""Dataset validation, one rule per function (as gymnasium's ``env_checker``): done flags,
episode boundaries and lengths, infos, action space, metadata.

Each returns the checked (possibly converted) value or raises a ``ValueError`` that names
the array and the first offending step or episode. Argument checks shared by every package
(positive ints, fractions, choices) are :mod:`quantgym.checks`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from quantgym import __version__
from quantgym.datasets.format import FORMAT_VERSION
from quantgym.datasets.metadata import DatasetMetadata, normalize_metadata, utc_now_iso
from quantgym.datasets.storage import DERIVED_INFO_KEYS, ObservationReferences

__all__ = [
    "check_kind",
    "check_flags",
    "check_episode_lengths",
    "check_actions",
    "check_rewards",
    "check_observations",
    "check_boundaries",
    "check_info",
    "check_infos",
    "check_derived_infos",
    "infer_action_space",
    "check_action_space",
    "check_metadata",
    "check_episode_index",
    "check_episode_selection",
]

_INFO_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_kind(name: str, array: np.ndarray, kinds: str, what: str) -> None:
    """``array``'s dtype kind is one of ``kinds`` (numpy kind letters); ``what`` says which."""
    if array.dtype.kind not in kinds:
        raise ValueError(f"{name} must be {what}, got dtype {array.dtype}")


def check_flags(name: str, array: Any, n_steps: int) -> np.ndarray:
    """A ``(n_steps,)`` boolean array (0/1 numbers are converted)."""
    array = np.asarray(array)
    if array.shape != (n_steps,):
        raise ValueError(f"{name} must have shape ({n_steps},), got {array.shape}")
    if array.dtype != np.bool_:
        if array.dtype.kind not in "iuf" or not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got dtype {array.dtype}")
        array = array.astype(np.bool_)
    return array


def check_episode_lengths(episode_lengths: Any) -> np.ndarray:
    """A non-empty 1-D int64 array of lengths ``>= 1``."""
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
    if lengths.size == 0:
        raise ValueError("episode_lengths is empty; a dataset needs at least one episode")
    return lengths


def check_actions(actions: Any, n_steps: int) -> np.ndarray:
    """``(n_steps, ...)`` integer (discrete) or float (continuous) actions."""
    actions = np.asarray(actions)
    if actions.ndim == 0 or actions.shape[0] != n_steps:
        raise ValueError(
            f"actions must have {n_steps} rows (sum of episode_lengths), got {actions.shape}"
        )
    check_kind("actions", actions, "iuf", "integer (discrete) or float (continuous)")
    return actions


def check_rewards(rewards: Any, n_steps: int) -> np.ndarray:
    """``(n_steps,)`` floating-point rewards."""
    rewards = np.asarray(rewards)
    if rewards.shape != (n_steps,):
        raise ValueError(f"rewards must have shape ({n_steps},), got {rewards.shape}")
    check_kind("rewards", rewards, "f", "floating point")
    return rewards


def check_observations(
    observations: Any, n_steps: int, n_episodes: int
) -> np.ndarray | ObservationReferences:
    """Numeric observations (or references) with ``n_steps + n_episodes`` rows."""
    if not isinstance(observations, ObservationReferences):
        observations = np.asarray(observations)
        check_kind("observations", observations, "biuf", "numeric")
    if len(observations.shape) < 2 or observations.shape[0] != n_steps + n_episodes:
        raise ValueError(
            f"observations must have shape ({n_steps + n_episodes}, ...) = n_steps + n_episodes "
            f"rows (each episode keeps its final observation), got {observations.shape}"
        )
    return observations


def check_boundaries(terminations: np.ndarray, truncations: np.ndarray, ends: np.ndarray) -> None:
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


def check_info(name: Any, value: Any, n_steps: int) -> np.ndarray:
    """One per-step info array (``datetime64`` converted to ``datetime64[ns]``)."""
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
    check_kind(f"infos[{name!r}]", array, "biuf", "bool, integer, float or datetime64")
    return array


def check_infos(infos: Any, n_steps: int) -> dict[str, np.ndarray]:
    """A dict of per-step info arrays (``None``: no info)."""
    infos = {} if infos is None else infos
    if not isinstance(infos, Mapping):
        raise ValueError(f"infos must be a dict of arrays, got {type(infos).__name__}")
    return {name: check_info(name, value, n_steps) for name, value in infos.items()}


def check_derived_infos(
    derived_infos: Sequence[str],
    observations: np.ndarray | ObservationReferences,
    infos: Mapping[str, Any] | None,
) -> tuple[str, ...]:
    """Info names a by-reference dataset derives from its market (not also stored)."""
    derived = tuple(derived_infos)
    if not derived:
        return derived
    if not isinstance(observations, ObservationReferences):
        raise ValueError("derived_infos needs observations by reference")
    for name in derived:
        if name not in DERIVED_INFO_KEYS or (infos and name in infos):
            raise ValueError(
                f"derived_infos: {name!r} must be one of {DERIVED_INFO_KEYS} and not in infos"
            )
        observations.market.derived_info(name, np.zeros(0, dtype=np.int64))
    return derived


def infer_action_space(actions: np.ndarray) -> dict[str, Any]:
    """The action space the actions imply: ``Discrete(max + 1)`` or a ``[-1, 1]``-wide box."""
    if actions.dtype.kind in "iu":
        n = int(actions.max()) + 1 if actions.size else 1
        return {"type": "discrete", "n": max(n, 1)}
    shape = list(actions.shape[1:])
    finite = actions[np.isfinite(actions)] if actions.size else actions
    low = float(finite.min()) if finite.size else -1.0
    high = float(finite.max()) if finite.size else 1.0
    return {"type": "continuous", "shape": shape, "low": min(low, -1.0), "high": max(high, 1.0)}


def check_action_space(space: Any, actions: np.ndarray) -> dict[str, Any]:
    """``metadata['action_space']`` is well formed and holds every action."""
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
        check_kind("continuous actions", actions, "f", "floating point")
    return space


def check_metadata(
    metadata: Mapping[str, Any] | DatasetMetadata | None, actions: np.ndarray
) -> dict[str, Any]:
    """Normalised metadata with ``format_version``, ``quantgym_version``, ``created_at`` and
    ``action_space`` filled in when missing (the action space checked against ``actions``)."""
    meta = normalize_metadata(metadata)
    meta.setdefault("format_version", FORMAT_VERSION)
    if meta["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"metadata['format_version'] = {meta['format_version']!r}; this quantgym reads "
            f"format_version {FORMAT_VERSION}"
        )
    meta.setdefault("quantgym_version", __version__)
    meta.setdefault("created_at", utc_now_iso())
    if meta.get("action_space") is None:
        meta["action_space"] = infer_action_space(actions)
    check_action_space(meta["action_space"], actions)
    return meta


def check_episode_index(index: Any, n_episodes: int) -> int:
    """An episode number in ``[-n_episodes, n_episodes)``, returned non-negative."""
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
        raise ValueError(f"episode index must be an int, got {index!r}")
    i = int(index)
    if i < 0:
        i += n_episodes
    if not 0 <= i < n_episodes:
        raise ValueError(f"episode index {i} out of range for {n_episodes} episodes")
    return i


def check_episode_selection(mask: Any, n_episodes: int) -> np.ndarray:
    """The episode numbers a boolean mask of length ``n_episodes`` (or an index array, negative
    indices allowed) selects; at least one."""
    selector = np.asarray(mask)
    if selector.dtype == np.bool_:
        if selector.shape != (n_episodes,):
            raise ValueError(f"mask must have shape ({n_episodes},), got {selector.shape}")
        chosen = np.flatnonzero(selector)
    elif selector.dtype.kind in "iu" or selector.size == 0:
        chosen = selector.astype(np.int64).ravel()
        if chosen.size and (chosen.min() < -n_episodes or chosen.max() >= n_episodes):
            raise ValueError(f"mask indices out of range for {n_episodes} episodes")
        chosen = np.where(chosen < 0, chosen + n_episodes, chosen)
    else:
        raise ValueError(f"mask must be boolean or integer indices, got dtype {selector.dtype}")
    if chosen.size == 0:
        raise ValueError("mask selects no episode; a dataset needs at least one episode")
    return chosen
