"""quantstats tearsheets of per-bar returns: the HTML writer and one for evaluated episodes.

:func:`write_tearsheet` writes quantstats' HTML report (``pip install 'quantgym[tearsheet]'``)
of per-bar simple returns against a benchmark, atomically; :func:`evaluation_tearsheet` writes
one from two :func:`quantgym.evaluation.evaluate` results on the same episodes (CLI:
``quantgym evaluate RUN --tearsheet out.html``). Periods are joined in time order
(:func:`join_returns`: no return spans the gap between two, they must not overlap) and aligned
(:func:`align_returns`). The benchmark harness's tearsheet of held-out windows is
:mod:`quantgym.benchmark.tearsheet` (``benchmarks/compare.py --tearsheet AGENT MARKET``).

*Intraday bars.* quantstats treats every row as one day (its "Best Day", "Daily
Value-at-Risk", "Expected Daily" rows and its daily-to-monthly resampling). So that those rows
mean what they say, :func:`write_tearsheet` compounds intraday bars into one return per calendar
day (:func:`daily_returns`: ``prod(1 + r) - 1`` over the day's bars) and annualises with the
market's trading days per year (:func:`days_per_year`: ``bars_per_year`` x days / bars of the
series). A day is a calendar date of the timestamps as stored, so a session that opens the evening
before (``sample:eurusd`` opens Sunday 22:00 UTC) adds short days, and every date with bars is
counted (315 a year on ``sample:eurusd``): annual figures stay consistent, while the per-day rows
mix those short days in. Daily bars (at most one per date, the synthetic markets and ``sample:googl``) pass
through unchanged with ``round(bars_per_year)`` periods a year (252).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantgym.files import atomic_write

__all__ = [
    "INSTALL_HINT",
    "join_returns",
    "align_returns",
    "daily_returns",
    "days_per_year",
    "write_tearsheet",
    "evaluation_tearsheet",
]

#: What to install for :func:`write_tearsheet`.
INSTALL_HINT = "pip install 'quantgym[tearsheet]'"


def join_returns(pieces: Sequence[pd.Series]) -> pd.Series:
    """Concatenate return series of disjoint periods in time order (by first timestamp);
    ``ValueError`` when two share or interleave a timestamp."""
    pieces = [p for p in pieces if len(p)]
    if not pieces:
        raise ValueError("no returns to join")
    ordered = sorted(pieces, key=lambda p: p.index[0])
    joined = pd.concat(ordered)
    steps = np.diff(joined.index.asi8)
    if (steps <= 0).any():
        at = joined.index[1:][steps <= 0][0]
        raise ValueError(
            f"the returns overlap at {at}: a tearsheet joins disjoint windows or episodes "
            "(evaluate one pass over the range, or episodes that do not overlap)"
        )
    joined.name = "returns"
    return joined


def align_returns(returns: pd.Series, benchmark: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Both series on the union of their timestamps; a bar one of them lacks (the env ended
    its unit early) is a 0 return."""
    index = returns.index.union(benchmark.index)
    return returns.reindex(index, fill_value=0.0), benchmark.reindex(index, fill_value=0.0)


def daily_returns(returns: pd.Series) -> pd.Series:
    """One return per calendar day, ``prod(1 + r) - 1`` over the day's bars, indexed by the
    date; a series with at most one bar per date is returned unchanged (a copy)."""
    days = returns.index.normalize()
    if days.is_unique:
        return returns.copy()
    daily = (1.0 + returns).groupby(days).prod() - 1.0
    daily.index.name = "date"
    daily.name = returns.name
    return daily


def days_per_year(returns: pd.Series, bars_per_year: float) -> int:
    """Periods a year of :func:`daily_returns` of ``returns``: ``bars_per_year`` scaled by the
    series' days per bar (``round(bars_per_year)`` for daily bars)."""
    if not bars_per_year > 0:
        raise ValueError(f"bars_per_year must be positive, got {bars_per_year!r}")
    n_days = returns.index.normalize().nunique()
    return max(1, round(float(bars_per_year) * n_days / max(len(returns), 1)))


@contextlib.contextmanager
def _quantstats() -> Iterator[Any]:
    """quantstats, with matplotlib's global settings restored afterwards (quantstats sets its
    font at import) and its missing-font and plotting warnings silenced."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError(f"tearsheets need quantstats and matplotlib: {INSTALL_HINT}") from None
    fonts = logging.getLogger("matplotlib.font_manager")
    level = fonts.level
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"(quantstats|seaborn)\.")
        fonts.setLevel(logging.ERROR)
        try:
            import quantstats
        except ImportError:
            raise ValueError(f"tearsheets need quantstats: {INSTALL_HINT}") from None
        try:
            yield quantstats
        finally:
            fonts.setLevel(level)


def _check_returns(name: str, series: Any) -> None:
    if not isinstance(series, pd.Series) or not isinstance(series.index, pd.DatetimeIndex):
        raise ValueError(f"{name} must be a pandas Series with a DatetimeIndex")
    if len(series) < 2:
        raise ValueError(f"{name} needs at least 2 returns, got {len(series)}")
    if not series.index.is_monotonic_increasing or not series.index.is_unique:
        raise ValueError(f"{name}'s timestamps must be increasing and unique")
    values = series.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all() or (values < -1.0).any():
        raise ValueError(f"{name} must be finite simple returns >= -1")


def write_tearsheet(
    returns: pd.Series,
    benchmark: pd.Series | None,
    path: str | os.PathLike,
    title: str,
    *,
    bars_per_year: float = 252.0,
    strategy_title: str = "agent",
    benchmark_title: str = "reference",
) -> Path:
    """Write quantstats' HTML tearsheet of ``returns`` (per-bar simple returns) against
    ``benchmark`` (same index, e.g. from :func:`align_returns`; ``None``: no benchmark) to
    ``path`` atomically (parent folders created); intraday bars are compounded per day first
    (see the module docstring). ``bars_per_year``: the market's. Returns the path.
    ``ValueError`` when quantstats is missing (:data:`INSTALL_HINT`) or the series are not
    aligned returns."""
    _check_returns("returns", returns)
    if benchmark is not None:
        _check_returns("benchmark", benchmark)
        if not returns.index.equals(benchmark.index):
            raise ValueError("returns and benchmark must share their index (align_returns)")
    if benchmark_title == strategy_title:  # e.g. the reference against itself
        benchmark_title = f"{benchmark_title} (benchmark)"
    periods = days_per_year(returns, bars_per_year)
    daily = daily_returns(returns).rename(strategy_title)
    bench = None if benchmark is None else daily_returns(benchmark).rename(benchmark_title)
    with _quantstats() as qs:

        def write(tmp: str) -> None:
            qs.reports.html(
                daily,
                benchmark=bench,
                output=tmp,
                title=title,
                periods_per_year=periods,
                match_dates=False,  # keep every bar: the series are aligned already
                strategy_title=strategy_title,
                benchmark_title=benchmark_title,
            )

        return atomic_write(path, write)


def evaluation_tearsheet(
    result: Any,
    reference: Any,
    path: str | os.PathLike,
    title: str,
    *,
    bars_per_year: float = 252.0,
) -> Path:
    """Tearsheet of an :class:`~quantgym.evaluation.EvaluationResult`'s episodes (their
    :attr:`~quantgym.evaluation.EvaluationResult.step_returns` joined in time order,
    :func:`join_returns`) against ``reference``'s (another result on the same episodes, e.g.
    the market's reference policy; ``None``: no benchmark). ``ValueError`` when episodes
    overlap. Returns the path."""
    returns = join_returns(result.step_returns)
    benchmark = None
    names = {"strategy_title": result.agent}
    if reference is not None:
        returns, benchmark = align_returns(returns, join_returns(reference.step_returns))
        names["benchmark_title"] = reference.agent
    return write_tearsheet(returns, benchmark, path, title, bars_per_year=bars_per_year, **names)
