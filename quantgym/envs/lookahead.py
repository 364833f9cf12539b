"""``check_lookahead``: test a feature set (built-in or a user's callable) for look-ahead.

Two checks, both on the user's own data:

1. **Future leak.** For a sample of cut-off bars ``t``, every bar after ``t`` is replaced by a
   different, valid continuation; a causal feature's values at bars ``<= t`` cannot change.
   Each column whose values changed is reported with the first bar where that happened (a
   ``shift(-1)`` changes bar ``t``; a centred window of width ``w`` changes ``t - w // 2 ..
   t``; a resample labelled by the bar start changes the whole bucket).
2. **Start dependence.** The features are recomputed from later first bars (the train and
   the test env load different starts); a feature computed over a finite trailing window is
   the same at every bar both runs define, a recursive one (an adjusted EMA, a cumulative
   sum) is not. Each column's largest difference, and how many bars after the later start's
   warm-up it takes to settle below ``tol``, are reported.

```python
from quantgym.envs import check_lookahead
report = check_lookahead("prices.csv", features=my_features)
print(report.summary())
assert report.passed
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from quantgym.checks import check_positive_int
from quantgym.envs.features import FeatureSpec, compute_features
from quantgym.envs.validation import validate_ohlcv

__all__ = ["LookaheadReport", "check_lookahead", "load_feature_function"]


@dataclasses.dataclass(frozen=True)
class LookaheadReport:
    """What :func:`check_lookahead` found (JSON-friendly through :meth:`to_dict`).

    Attributes:
        feature_names: the columns checked.
        cutoffs: the bars ``t`` after which the data was perturbed.
        leaks: column -> first bar whose value changed when only later bars changed.
        leak_cutoffs: column -> the cut-off ``t`` at which that bar changed (``<= t``).
        start_dependence: column -> largest ``|difference|`` between the full run and a run
            from a later first bar, over the bars both define.
        settle_bars: column -> bars after the later start's warm-up until the difference
            stays below ``tol`` (0 = independent of the start).
        starts: the later first bars tried.
        tol: the tolerance both checks used.
    """

    feature_names: tuple[str, ...]
    cutoffs: tuple[int, ...]
    leaks: dict[str, int]
    leak_cutoffs: dict[str, int]
    leak_timestamps: dict[str, str]
    start_dependence: dict[str, float]
    settle_bars: dict[str, int]
    starts: tuple[int, ...]
    tol: float

    @property
    def start_dependent(self) -> tuple[str, ...]:
        """Columns whose value at some bar depends on where the data starts."""
        return tuple(k for k, v in self.start_dependence.items() if v > self.tol)

    @property
    def passed(self) -> bool:
        """No future leak (start dependence is reported apart: see :attr:`strict_passed`)."""
        return not self.leaks

    @property
    def strict_passed(self) -> bool:
        """No future leak and no start dependence either."""
        return not self.leaks and not self.start_dependent

    def summary(self) -> str:
        """A human-readable report, one line per finding."""
        lines = [
            f"check_lookahead: {len(self.feature_names)} features, {len(self.cutoffs)} cut-offs, "
            f"starts {list(self.starts)}: {'PASSED' if self.passed else 'FAILED'} (look-ahead); "
            f"{len(self.start_dependent)} start-dependent"
        ]
        for name, bar in self.leaks.items():
            lines.append(
                f"  LEAK   {name}: value at bar {bar} ({self.leak_timestamps[name]}) changed when "
                f"only bars after {self.leak_cutoffs[name]} changed"
            )
        for name in self.start_dependent:
            lines.append(
                f"  START  {name}: differs by up to {self.start_dependence[name]:.3g} when the data "
                f"starts later; settles after {self.settle_bars[name]} bars"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["feature_names"] = list(self.feature_names)
        out["cutoffs"] = list(self.cutoffs)
        out["starts"] = list(self.starts)
        out["passed"] = self.passed
        out["strict_passed"] = self.strict_passed
        out["start_dependent"] = list(self.start_dependent)
        return out


def _load_frame(data: Any) -> pd.DataFrame:
    """The OHLCV frame (extra columns kept) of any source ``TradingEnv`` accepts."""
    from quantgym.envs.market_data import MarketData, load_source, normalise_frame

    if isinstance(data, MarketData):
        frame = data.frame
    else:
        frame = normalise_frame(load_source(data, None)[0])
    validate_ohlcv(frame)
    return frame


def _feature_matrix(frame: pd.DataFrame, features: FeatureSpec, normalize_window: int):
    """``(names, values (n, F))``; a user's callable is used raw so a leak that leaves NaN in
    the last rows (``shift(-1)``) is still checked instead of refused."""
    if callable(features) and not isinstance(features, (list, tuple)):
        from quantgym.envs.features import callable_columns

        names, columns = callable_columns(frame, features)
        return names, np.column_stack(columns)
    fs = compute_features(frame, features, normalize_window=normalize_window)
    return fs.names, fs.values


def _differs(a: np.ndarray, b: np.ndarray, tol: float) -> np.ndarray:
    """Elementwise: one NaN and not the other, or both finite and farther apart than ``tol``."""
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore"):
        far = np.abs(a - b) > tol * (1.0 + np.abs(a))
    return (nan_a != nan_b) | (far & ~nan_a & ~nan_b)


def perturb_after(frame: pd.DataFrame, t: int, rng: np.random.Generator) -> pd.DataFrame:
    """``frame`` with every bar after ``t`` replaced by a different valid random continuation
    (prices and volume); bars ``<= t`` and extra columns' past rows are untouched."""
    out = frame.copy()
    m = len(frame) - t - 1
    if m <= 0:
        return out
    close_t = float(frame["close"].iloc[t])
    close = close_t * np.exp(np.cumsum(rng.normal(0.0, 0.03, m)) + rng.choice([-0.3, 0.3]))
    prev = np.concatenate([[close_t], close[:-1]])
    open_ = prev * np.exp(rng.normal(0.0, 0.01, m))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, m)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, m)))
    volume = float(frame["volume"].iloc[: t + 1].mean() or 1.0) * rng.lognormal(0.5, 0.7, m)
    rows = slice(t + 1, None)
    for name, values in zip(("open", "high", "low", "close", "volume"),
                            (open_, high, low, close, volume), strict=True):  # fmt: skip
        out.iloc[rows, out.columns.get_loc(name)] = values
    for name in out.columns:
        if name not in ("open", "high", "low", "close", "volume") and pd.api.types.is_numeric_dtype(
            out[name]
        ):
            past = out[name].iloc[: t + 1]
            out.iloc[rows, out.columns.get_loc(name)] = rng.normal(
                float(past.mean()), float(past.std() or 1.0), m
            )
    return out


def check_lookahead(
    data: Any,
    features: FeatureSpec = None,
    *,
    n_cutoffs: int = 16,
    starts: Sequence[int] | None = None,
    normalize_window: int = 250,
    tol: float = 1e-9,
    seed: int = 0,
) -> LookaheadReport:
    """Check a feature set for look-ahead and start dependence on ``data``.

    Args:
        data: anything ``TradingEnv`` accepts (DataFrame, CSV path, ``"sample:googl"``,
            ``"synthetic:gbm"``, MarketData).
        features: ``None`` (the built-in set), a list of names, or a callable
            ``fn(frame) -> DataFrame`` (the user's own features).
        n_cutoffs: cut-off bars sampled evenly between the warm-up and the second-last bar.
        starts: later first bars for the start-dependence check (default: 1/8 and 1/4 of the
            data).
        normalize_window: as in ``TradingEnv``.
        tol: relative tolerance of both checks (floating-point noise is not a leak).
        seed: seeds the perturbations.

    Returns:
        A :class:`LookaheadReport`; ``report.passed`` is True when no column leaks the future,
        ``report.strict_passed`` when no column depends on the data's first bar either.
    """
    check_positive_int("n_cutoffs", n_cutoffs)
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol}")
    frame = _load_frame(data)
    n = len(frame)
    names, base = _feature_matrix(frame, features, normalize_window)
    defined = ~np.isnan(base).any(axis=1)
    first = int(np.argmax(defined)) if defined.any() else 0
    if n - 2 <= first:
        raise ValueError(f"data has {n} rows, too few after the features' {first} warm-up rows")
    cutoffs = tuple(sorted({int(x) for x in np.linspace(first, n - 2, n_cutoffs)}))
    rng = np.random.default_rng(seed)
    leaks: dict[str, int] = {}
    leak_cutoffs: dict[str, int] = {}
    for t in cutoffs:
        _, perturbed = _feature_matrix(perturb_after(frame, t, rng), features, normalize_window)
        changed = _differs(base[: t + 1], perturbed[: t + 1], tol)
        for j in np.flatnonzero(changed.any(axis=0)):
            bar = int(np.argmax(changed[:, j]))
            if names[j] not in leaks or bar < leaks[names[j]]:
                leaks[names[j]], leak_cutoffs[names[j]] = bar, t
    if starts is None:
        starts = (n // 8, n // 4)
    starts = tuple(int(s) for s in starts)
    for s in starts:
        if not 0 < s < n - 2:
            raise ValueError(f"starts must be bars in (0, {n - 2}), got {s}")
    dependence = dict.fromkeys(names, 0.0)
    settle = dict.fromkeys(names, 0)
    for s in starts:
        _, later = _feature_matrix(frame.iloc[s:], features, normalize_window)
        full = base[s:]
        both = ~np.isnan(later) & ~np.isnan(full)
        for j, name in enumerate(names):
            rows = np.flatnonzero(both[:, j])
            if rows.size == 0:
                continue
            diff = np.abs(later[rows, j] - full[rows, j])
            worst = float(diff.max())
            dependence[name] = max(dependence[name], worst)
            off = np.flatnonzero(diff > tol * (1.0 + np.abs(full[rows, j])))
            if off.size:
                settle[name] = max(settle[name], int(rows[off[-1]] - rows[0] + 1))
    dependence = {k: (v if settle[k] else 0.0) for k, v in dependence.items()}
    return LookaheadReport(
        feature_names=tuple(names),
        cutoffs=cutoffs,
        leaks=leaks,
        leak_cutoffs=leak_cutoffs,
        leak_timestamps={k: str(frame.index[v]) for k, v in leaks.items()},
        start_dependence=dependence,
        settle_bars=settle,
        starts=starts,
        tol=float(tol),
    )


def load_feature_function(spec: str) -> Callable[[pd.DataFrame], Any] | None:
    """``"module:function"`` -> the callable (``"default"`` -> None, the built-in set)."""
    if spec == "default":
        return None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"features must be 'module:function' or 'default', got {spec!r}")
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{spec!r}: module {module_name!r} has no callable {attr!r}")
    return fn
