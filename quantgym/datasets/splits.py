"""Time-series splits that never leak the future: chronological, walk-forward, purged k-fold.

Every split is returned as inclusive :class:`DateRange` pairs that plug straight into the env
(``gym.make("TradingEnv-v0", start=r.start, end=r.end)``; bars after ``end`` are never loaded).
``data`` may be a ``MarketData`` (its tradable bars ``first_bar .. last_bar`` are split), a
DataFrame with a ``DatetimeIndex``, or a ``DatetimeIndex``.

Bar indices: :func:`bars_in` maps a range back to positions in the full timestamp array of
``data`` (for a ``MarketData``: the ``bar`` index the env reports in ``info``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from quantgym.checks import check_fraction, check_positive_int

__all__ = [
    "DateRange",
    "ChronologicalSplit",
    "Fold",
    "PurgedFold",
    "chronological_split",
    "walk_forward",
    "purged_kfold",
    "bars_in",
]


class DateRange(NamedTuple):
    """Inclusive ``[start, end]`` range of bar timestamps (the env's ``start=``/``end=``)."""

    start: pd.Timestamp
    end: pd.Timestamp


class ChronologicalSplit(NamedTuple):
    """Train, validation (``None`` when ``val=0``) and test ranges, in time order."""

    train: DateRange
    val: DateRange | None
    test: DateRange


class Fold(NamedTuple):
    """One walk-forward fold: train on ``train``, then evaluate on the later ``test``."""

    train: DateRange
    test: DateRange


class PurgedFold(NamedTuple):
    """One purged k-fold split: ``train`` is a list of contiguous ranges around ``test``."""

    train: list[DateRange]
    test: DateRange


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _timestamps(data: Any) -> tuple[pd.DatetimeIndex, int]:
    """The splittable timestamps and the bar index of their first element in ``data``."""
    if isinstance(data, pd.DatetimeIndex):
        index, offset = data, 0
    elif isinstance(data, (pd.DataFrame, pd.Series)):
        if not isinstance(data.index, pd.DatetimeIndex):
            raise ValueError(f"data must have a DatetimeIndex, got {type(data.index).__name__}")
        index, offset = data.index, 0
    elif hasattr(data, "timestamps"):  # MarketData: only bars an episode may occupy
        full = pd.DatetimeIndex(np.asarray(data.timestamps))
        first = int(getattr(data, "first_bar", 0))
        last = int(getattr(data, "last_bar", len(full) - 1))
        if not 0 <= first <= last < len(full):
            raise ValueError(f"data has first_bar={first}, last_bar={last} for {len(full)} bars")
        index, offset = full[first : last + 1], first
    else:
        raise ValueError(
            "data must be a MarketData, a DataFrame with a DatetimeIndex or a DatetimeIndex, "
            f"got {type(data).__name__}"
        )
    if index.hasnans:
        raise ValueError("data timestamps contain NaT")
    if not index.is_monotonic_increasing or not index.is_unique:
        raise ValueError("data timestamps must be sorted and unique")
    if len(index) == 0:
        raise ValueError("data has no bars to split")
    return index, offset


def _range(index: pd.DatetimeIndex, lo: int, hi: int) -> DateRange:
    """Inclusive DateRange of positions ``lo .. hi - 1``."""
    return DateRange(pd.Timestamp(index[lo]), pd.Timestamp(index[hi - 1]))


def _runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of sorted positions as half-open ``(lo, hi)`` pairs."""
    if positions.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [positions.size]))
    return [
        (int(positions[s]), int(positions[e - 1]) + 1) for s, e in zip(starts, ends, strict=True)
    ]


def _size(name: str, value: Any, n: int) -> int:
    """A bar count: an int >= 1, or a float fraction in (0, 1] of ``n`` bars."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int number of bars or a fraction, got {value!r}")
    if isinstance(value, (int, np.integer)):
        size = int(value)
    elif isinstance(value, (float, np.floating)) and 0.0 < value <= 1.0:
        size = int(math.floor(float(value) * n))
    else:
        raise ValueError(
            f"{name} must be an int number of bars or a fraction in (0, 1], got {value!r}"
        )
    if size < 1:
        raise ValueError(f"{name} = {value!r} gives {size} bars of {n}; need at least 1")
    return size


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def chronological_split(
    data: Any,
    train: float = 0.7,
    val: float = 0.15,
    test: float = 0.15,
    *,
    embargo: int = 0,
) -> ChronologicalSplit:
    """Split the bars in time order into train / val / test fractions (summing to 1).

    ``embargo`` bars are dropped after the train part and after the val part, so a model
    selected on val never sees bars right next to the data it is tested on. ``val=0`` gives
    ``val=None``.
    """
    index, _ = _timestamps(data)
    fractions = {
        "train": check_fraction("train", train),
        "val": check_fraction("val", val),
        "test": check_fraction("test", test),
    }
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"train + val + test must sum to 1, got {sum(fractions.values()):.6g}")
    for name in ("train", "test"):
        if fractions[name] == 0.0:
            raise ValueError(f"{name} must be > 0")
    embargo = check_positive_int("embargo", embargo, minimum=0)
    n = len(index)
    n_gaps = 2 if fractions["val"] > 0 else 1
    usable = n - n_gaps * embargo
    n_train = int(round(fractions["train"] * usable))
    n_val = int(round(fractions["val"] * usable)) if fractions["val"] > 0 else 0
    n_test = usable - n_train - n_val
    sizes = {"train": n_train, "test": n_test} | ({"val": n_val} if fractions["val"] > 0 else {})
    for name, size in sizes.items():
        if size < 1:
            raise ValueError(
                f"{name}={fractions[name]} leaves {size} bars of {n} (embargo={embargo}); need >= 1"
            )
    train_range = _range(index, 0, n_train)
    if fractions["val"] > 0:
        val_lo = n_train + embargo
        val_range: DateRange | None = _range(index, val_lo, val_lo + n_val)
        test_lo = val_lo + n_val + embargo
    else:
        val_range = None
        test_lo = n_train + embargo
    return ChronologicalSplit(train_range, val_range, _range(index, test_lo, n))


def walk_forward(
    data: Any,
    n_folds: int,
    train_size: int | float,
    test_size: int | float,
    *,
    step: int | float | None = None,
    embargo: int = 0,
    expanding: bool = False,
) -> list[Fold]:
    """Rolling (or ``expanding``) train windows, each followed by its test window.

    Sizes are bar counts (int) or fractions of the bars (float). Fold ``k``'s window is
    shifted by ``k * step`` bars (default ``step = test_size``, so test windows tile without
    overlap); ``embargo`` bars separate each train window from its test window. The layout
    is anchored at the end, so the last test window ends on the last bar.
    """
    index, _ = _timestamps(data)
    n = len(index)
    n_folds = check_positive_int("n_folds", n_folds)
    n_train = _size("train_size", train_size, n)
    n_test = _size("test_size", test_size, n)
    n_step = n_test if step is None else _size("step", step, n)
    embargo = check_positive_int("embargo", embargo, minimum=0)
    total = n_train + embargo + n_test + (int(n_folds) - 1) * n_step
    if total > n:
        raise ValueError(
            f"n_folds={n_folds} with train_size={n_train}, test_size={n_test}, step={n_step}, "
            f"embargo={embargo} needs {total} bars; data has {n}"
        )
    origin = n - total
    folds = []
    for k in range(int(n_folds)):
        train_lo = origin + k * n_step
        train_hi = train_lo + n_train
        test_lo = train_hi + embargo
        folds.append(
            Fold(
                train=_range(index, origin if expanding else train_lo, train_hi),
                test=_range(index, test_lo, test_lo + n_test),
            )
        )
    return folds


def purged_kfold(
    data: Any,
    n_folds: int,
    embargo: int = 0,
    *,
    label_horizon: int = 1,
) -> list[PurgedFold]:
    """K contiguous test folds; training = all other bars minus purged and embargoed ones.

    As in Lopez de Prado, *Advances in Financial Machine Learning*, ch. 7: a training bar
    ``t`` whose label uses bars ``t .. t + label_horizon`` overlapping the test fold is
    purged (in ``TradingEnv`` the reward of the step taken at bar ``t`` is marked at bar
    ``t + 1``: ``label_horizon=1``), and the ``embargo`` bars right after each test fold are
    dropped from training. Use ``embargo >= window_size - 1`` so no training observation
    window contains a test bar (more if rolling features look further back).
    Training sets can be non-contiguous: a list of DateRanges.
    """
    index, _ = _timestamps(data)
    n = len(index)
    n_folds = check_positive_int("n_folds", n_folds, minimum=2)
    if n_folds > n:
        raise ValueError(f"n_folds={n_folds} exceeds the {n} bars of data")
    embargo = check_positive_int("embargo", embargo, minimum=0)
    label_horizon = check_positive_int("label_horizon", label_horizon, minimum=0)
    folds = []
    positions = np.arange(n)
    for test_positions in np.array_split(positions, int(n_folds)):
        test_lo, test_hi = int(test_positions[0]), int(test_positions[-1]) + 1
        keep = np.ones(n, dtype=np.bool_)
        keep[max(0, test_lo - label_horizon) : min(n, test_hi + embargo)] = False
        train_runs = _runs(positions[keep])
        folds.append(
            PurgedFold(
                train=[_range(index, lo, hi) for lo, hi in train_runs],
                test=_range(index, test_lo, test_hi),
            )
        )
    return folds


def bars_in(data: Any, date_range: DateRange | Sequence[DateRange]) -> np.ndarray:
    """Bar indices of ``data`` inside ``date_range`` (or a list of ranges), sorted int64.

    For a ``MarketData`` they index its full arrays (what the env reports as ``info["bar"]``).
    """
    if isinstance(data, (pd.DatetimeIndex, pd.DataFrame, pd.Series)):
        index, _ = _timestamps(data)
        full = index if isinstance(data, pd.DatetimeIndex) else data.index
    else:
        _timestamps(data)  # validates
        full = pd.DatetimeIndex(np.asarray(data.timestamps))
    ranges = [date_range] if isinstance(date_range, DateRange) else list(date_range)
    chunks = []
    for r in ranges:
        if not isinstance(r, tuple) or len(r) != 2:
            raise ValueError(f"date_range must be a DateRange or a list of them, got {r!r}")
        lo = int(full.searchsorted(pd.Timestamp(r[0]), side="left"))
        hi = int(full.searchsorted(pd.Timestamp(r[1]), side="right"))
        chunks.append(np.arange(lo, hi, dtype=np.int64))
    return np.unique(np.concatenate(chunks)) if chunks else np.zeros(0, dtype=np.int64)
