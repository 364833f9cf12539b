"""quantstats tearsheets of an agent's held-out returns against its market's reference.

The returns are simple per-bar returns ``equity[t] / equity[t - 1] - 1`` indexed by the
timestamp of the bar each step is marked at (``unit.start + 1 .. unit.end``: the env observes
``unit.start`` first and marks its first step at the close of the next bar). Test windows or
walk-forward folds are concatenated in time order (:func:`concatenated_returns`); no return
spans the gap between two units: each unit's first return is relative to its own starting
equity, so compounding the concatenated series is what one account would have made trading
every unit in turn. Units must not overlap (a ``ValueError`` names the first shared bar).
A unit the env ended early (bankruptcy) contributes its bars up to the end; once aligned with
the reference (:func:`align_returns`) its missing bars count as 0 return.

:func:`tearsheet_returns` trains and scores an agent's cell and its reference's cell of a
suite, exactly as ``benchmarks/compare.py`` does (same seeding, same units); :func:`write_tearsheet`
writes quantstats' HTML report (``pip install 'quantgym[tearsheet]'``) atomically;
:func:`suite_tearsheet` does both; :func:`evaluation_tearsheet` writes one from two
:func:`quantgym.evaluation.evaluate` results on the same episodes. CLI: ``benchmarks/compare.py --tearsheet AGENT MARKET`` and
``quantgym evaluate RUN --tearsheet out.html``.

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

from quantgym.benchmark.cells import train_and_score
from quantgym.benchmark.listing import Cell, agent_learns, cells_for
from quantgym.benchmark.protocol import TestUnit, build_market, plan_for
from quantgym.benchmark.training import seed_everything
from quantgym.files import atomic_write
from quantgym.policies.references import reference_policy_name

__all__ = [
    "INSTALL_HINT",
    "unit_returns",
    "join_returns",
    "concatenated_returns",
    "align_returns",
    "daily_returns",
    "days_per_year",
    "tearsheet_returns",
    "write_tearsheet",
    "suite_tearsheet",
    "evaluation_tearsheet",
]

#: What to install for :func:`write_tearsheet`.
INSTALL_HINT = "pip install 'quantgym[tearsheet]'"


def unit_returns(equity: Any, unit: TestUnit, market: Any) -> pd.Series:
    """Simple returns of one unit's equity path (``n_steps + 1`` values, fewer when the env ended
    the unit early), indexed by the timestamps of bars ``unit.start + 1 ..``."""
    eq = np.asarray(equity, dtype=np.float64)
    if eq.ndim != 1 or not 2 <= len(eq) <= unit.n_steps + 1:
        raise ValueError(
            f"unit {unit.unit}: equity must be a 1-d path of 2..{unit.n_steps + 1} values, "
            f"got shape {eq.shape}"
        )
    if not np.isfinite(eq).all() or (eq[:-1] <= 0).any() or eq[-1] < 0:
        raise ValueError(f"unit {unit.unit}: equity must be finite and positive before its end")
    bars = np.arange(unit.start + 1, unit.start + len(eq))
    index = pd.DatetimeIndex(np.asarray(market.timestamps)[bars], name="timestamp")
    return pd.Series(eq[1:] / eq[:-1] - 1.0, index=index, name="returns")


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


def concatenated_returns(
    equities: Sequence[Any], units: Sequence[TestUnit], market: Any
) -> pd.Series:
    """Per-bar returns of every unit (:func:`unit_returns`, ``equities[i]`` is ``units[i]``'s
    path) concatenated in time order (:func:`join_returns`)."""
    if len(equities) != len(units):
        raise ValueError(f"{len(equities)} equity paths for {len(units)} units")
    return join_returns([unit_returns(e, u, market) for e, u in zip(equities, units, strict=True)])


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


# --------------------------------------------------------------------------------------------
# A suite's cells
# --------------------------------------------------------------------------------------------


def _tearsheet_cells(suite: Any, agent: str, market: str, seed: int | None) -> tuple[Cell, Cell]:
    """The agent's and the reference's cell of ``suite`` on ``market`` (clear ``ValueError``
    for an unknown name or a pair that does not apply)."""
    from quantgym.benchmark.suite import normalize_market

    if not isinstance(agent, str) or not agent or agent == "all":
        raise ValueError(f"a tearsheet is of one agent (a registered name), got {agent!r}")
    market = normalize_market(market)
    reference = reference_policy_name(market)
    seeds = [suite.seeds[0] if seed is None else seed]
    names = list(dict.fromkeys([agent, reference]))
    sub = suite.with_overrides(markets=[market], agents=names, seeds=seeds)
    cells, skipped = cells_for(sub)
    if skipped:
        item = skipped[0]
        raise ValueError(f"{item['agent']} does not run on {market}: {item['reason']}")
    by_agent = {c.agent: c for c in cells}
    for name in names:
        if name not in by_agent:
            raise ValueError(
                f"suite {suite.name!r} runs {name} only on other markets than {market}"
            )
    return by_agent[agent], by_agent[reference]


def _cell_returns(
    cell: Cell, market: Any, units: Sequence[TestUnit], cache_dir: str | os.PathLike | None
) -> pd.Series:
    """Train (per train range) and score ``cell`` on ``units``, seeded as ``run_cell`` does."""
    from quantgym.agents import agent_class

    seed_everything(cell.seed, torch_needed=agent_learns(agent_class(cell.agent)) is not None)
    equities: dict[int, np.ndarray] = {}
    for train in dict.fromkeys(u.train for u in units):
        group = [u for u in units if u.train == train]
        result = train_and_score(cell, market, train, group, cache_dir)
        equities.update((u.unit, eq) for u, eq in zip(group, result.equities, strict=True))
    return concatenated_returns([equities[u.unit] for u in units], units, market)


def _suite_returns(
    suite: Any,
    agent: str,
    market: str,
    seed: int | None,
    cache_dir: str | os.PathLike | None,
) -> tuple[pd.Series, pd.Series, float, str]:
    cell, ref_cell = _tearsheet_cells(suite, agent, market, seed)
    data, first_bar = build_market(cell)
    units = plan_for(cell, data, first_bar).units
    returns = _cell_returns(cell, data, units, cache_dir)
    reference = returns if ref_cell is cell else _cell_returns(ref_cell, data, units, cache_dir)
    returns, reference = align_returns(returns, reference)
    return returns, reference, float(data.bars_per_year), ref_cell.agent


def tearsheet_returns(
    suite: Any,
    agent: str,
    market: str,
    seed: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[pd.Series, pd.Series]:
    """``(agent_returns, reference_returns)``: per-bar returns of ``agent`` and of the market's
    reference (:func:`~quantgym.policies.references.reference_policy_name`) on the held-out
    windows or walk-forward folds of ``suite`` (a validated ``Suite``; its protocol, env kwargs
    and the agent's kwargs and budget) on ``market``, with ``seed`` (default: the suite's
    first), concatenated (:func:`concatenated_returns`) and aligned (:func:`align_returns`).
    Learners are trained first, as in ``benchmarks/compare.py``. ``ValueError`` for an unknown
    agent or market, or an agent that does not run on the market."""
    returns, reference, _, _ = _suite_returns(suite, agent, market, seed, cache_dir)
    return returns, reference


# --------------------------------------------------------------------------------------------
# The HTML report
# --------------------------------------------------------------------------------------------


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


def suite_tearsheet(
    suite: Any,
    agent: str,
    market: str,
    path: str | os.PathLike,
    *,
    seed: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """:func:`tearsheet_returns` then :func:`write_tearsheet` (the agent against the market's
    reference, titled with the suite, market and seed). Returns the path."""
    from quantgym.benchmark.suite import normalize_market

    market = normalize_market(market)
    returns, reference, bars_per_year, ref_name = _suite_returns(
        suite, agent, market, seed, cache_dir
    )
    seed = suite.seeds[0] if seed is None else seed
    return write_tearsheet(
        returns,
        reference,
        path,
        f"{agent} vs {ref_name} on {market} (suite {suite.name}, seed {seed}, held-out bars)",
        bars_per_year=bars_per_year,
        strategy_title=agent,
        benchmark_title=ref_name,
    )


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
