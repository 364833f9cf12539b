"""Dataset metadata: the standard keys (:class:`DatasetMetadata`), their JSON normalisation,
and what a collection records about its env and behaviour policy."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from quantgym import ENV_ID, __version__
from quantgym.datasets.format import FORMAT_VERSION
from quantgym.files import jsonable
from quantgym.policies import describe_policy

__all__ = [
    "DatasetMetadata",
    "normalize_metadata",
    "merge_metadata",
    "utc_now_iso",
    "action_space_metadata",
    "env_metadata",
    "collection_metadata",
]


def utc_now_iso() -> str:
    """The current UTC time, ISO 8601 to the second (the ``created_at`` stamp)."""
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
    created_at: str = dataclasses.field(default_factory=utc_now_iso)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``None`` fields are kept so every key is always present)."""
        return normalize_metadata(dataclasses.asdict(self))

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


def _is_json_serialisable(value: Any) -> bool:
    try:
        json.dumps(value, default=_json_default)
    except (TypeError, ValueError):
        return False
    return True


def normalize_metadata(metadata: Mapping[str, Any] | DatasetMetadata | None) -> dict[str, Any]:
    """JSON round trip, so in-memory metadata equals what ``TrajectoryDataset.load`` returns.

    Unlike :func:`quantgym.files.jsonable` it converts nothing silently: an object JSON cannot
    hold (other than numpy values, dates, paths and sets) is a ``ValueError`` naming its key.
    """
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


def merge_metadata(components: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Metadata of datasets joined together: the keys on which every component agrees
    (``created_at`` dropped), and every component's metadata under ``"components"``."""
    first, rest = components[0], components[1:]
    merged = {k: v for k, v in first.items() if all(k in c and c[k] == v for c in rest)}
    merged.pop("created_at", None)
    merged["components"] = [dict(c) for c in components]
    return merged


# --------------------------------------------------------------------------------------------
# What a collection records
# --------------------------------------------------------------------------------------------


def action_space_metadata(space: gym.Space) -> dict[str, Any]:
    """``metadata['action_space']`` of a ``Discrete`` or ``Box`` action space."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "discrete", "n": int(space.n)}
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "continuous",
            "shape": [int(d) for d in space.shape],
            "low": float(np.min(space.low)),
            "high": float(np.max(space.high)),
        }
    raise ValueError(f"collect supports Discrete and Box action spaces, got {space}")


def env_metadata(env: Any) -> dict[str, Any]:
    """Env id, constructor kwargs and data description of ``env`` (single or vector).

    Kwargs come from ``env.unwrapped.config`` (``to_dict()`` or a dict) when the env exposes
    it, else from ``env.spec.kwargs``; data from ``env.unwrapped.market`` when present.
    """
    core = getattr(env, "unwrapped", env)
    spec = getattr(env, "spec", None) or getattr(core, "spec", None)
    env_id = getattr(spec, "id", None)
    config = getattr(core, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        kwargs = config.to_dict()
    elif isinstance(config, dict):
        kwargs = dict(config)
    else:
        kwargs = dict(getattr(spec, "kwargs", None) or {})
        kwargs.pop("num_envs", None)
        kwargs.pop("vectorization_mode", None)
    if env_id is None and type(core).__name__ in ("TradingEnv", "TradingVectorEnv"):
        env_id = ENV_ID
    out: dict[str, Any] = {"env_id": env_id, "env_kwargs": jsonable(kwargs)}
    market = getattr(core, "market", None)
    if market is not None:
        out["data_name"] = getattr(market, "name", None)
        out["data_fingerprint"] = getattr(market, "fingerprint", None)
        date_range = getattr(market, "date_range", None)
        if date_range is not None:
            out["market_date_range"] = [str(d) for d in date_range]
        params = getattr(market, "market_params", None)
        if params:
            out["market_params"] = jsonable(params)
    return out


def collection_metadata(
    env: Any,
    policy: Any,
    seed: int,
    infos: Mapping[str, np.ndarray],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """The metadata of a recorded rollout: :func:`env_metadata`, the date range of the
    ``timestamp`` info (int64 ns), the behaviour policy, seed, version and ``extra``."""
    policy_info = describe_policy(policy)
    meta = env_metadata(env)
    stamps = infos.get("timestamp")
    if stamps is not None and stamps.size:
        meta["date_range"] = [
            str(np.datetime64(int(stamps.min()), "ns")),
            str(np.datetime64(int(stamps.max()), "ns")),
        ]
    meta.update(
        behavior_policy=policy_info["name"],
        policy_params=jsonable(policy_info["params"]),
        uses_future=bool(getattr(policy, "uses_future", False)),
        seed=int(seed),
        quantgym_version=__version__,
        created_at=utc_now_iso(),
        **extra,
    )
    return meta
