"""Summaries of a dataset's arrays: statistics, the action histogram, per-step table columns
and the recorded date range (what ``TrajectoryDataset.describe``/``to_pandas`` show)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "PROVENANCE_KEYS",
    "value_stats",
    "action_histogram",
    "flat_columns",
    "metadata_date_range",
]

PROVENANCE_KEYS = (
    "env_id",
    "data_name",
    "data_fingerprint",
    "behavior_policy",
    "seed",
    "quantgym_version",
    "created_at",
)
"""Metadata keys a summary repeats (where the data came from)."""


def value_stats(values: np.ndarray) -> dict[str, float]:
    """Mean, std, min, median and max of ``values`` (NaN for an empty array)."""
    if values.size == 0:
        return dict.fromkeys(("mean", "std", "min", "median", "max"), math.nan)
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "min": float(np.min(values)),
        "median": float(np.median(values)),
        "max": float(np.max(values)),
    }


def action_histogram(
    actions: np.ndarray, action_space: Mapping[str, Any], positions: Any, bins: int
) -> dict[str, list]:
    """``{"labels", "counts"}``: per discrete action (labelled with its target position when
    ``positions`` lists one per action), else ``bins`` bins of the finite continuous values."""
    if action_space["type"] == "discrete":
        counts = np.bincount(actions.astype(np.int64), minlength=int(action_space["n"]))
        labels = [str(i) for i in range(counts.size)]
        if isinstance(positions, list) and len(positions) == counts.size:
            labels = [f"{i} (target {p:+g})" for i, p in enumerate(positions)]
        return {"labels": labels, "counts": counts.tolist()}
    values = actions.astype(np.float64).ravel()
    counts, edges = np.histogram(values[np.isfinite(values)], bins=bins)
    labels = [f"[{edges[i]:.3g}, {edges[i + 1]:.3g})" for i in range(counts.size)]
    return {"labels": labels, "counts": counts.tolist()}


def flat_columns(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """Table columns of per-step ``values``: ``name`` when 1-D, else ``name_0``, ``name_1`` .."""
    if values.ndim == 1:
        return {name: values}
    flat = values.reshape(values.shape[0], -1)
    return {f"{name}_{j}": flat[:, j] for j in range(flat.shape[1])}


def metadata_date_range(
    metadata: Mapping[str, Any],
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """``metadata['date_range']`` as timestamps, or ``None`` when absent or unreadable."""
    import pandas as pd

    dates = metadata.get("date_range")
    if isinstance(dates, list) and len(dates) == 2:
        try:
            return pd.Timestamp(dates[0]), pd.Timestamp(dates[1])
        except (TypeError, ValueError):
            return None
    return None
