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
suite, exactly as ``benchmarks/compare.py`` does (same seeding, same units);
:func:`suite_tearsheet` writes their tearsheet with :func:`quantgym.tearsheet.write_tearsheet`
(quantstats' HTML, ``pip install 'quantgym[tearsheet]'``). CLI: ``benchmarks/compare.py
--tearsheet AGENT MARKET`` (``quantgym evaluate RUN --tearsheet out.html`` for one saved agent:
:func:`quantgym.tearsheet.evaluation_tearsheet`).

Intraday bars are compounded per day before quantstats sees them: :mod:`quantgym.tearsheet`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantgym.benchmark.cells import train_and_score
from quantgym.benchmark.listing import Cell, agent_learns, cells_for
from quantgym.benchmark.protocol import TestUnit, build_market, plan_for
from quantgym.benchmark.training import seed_everything
from quantgym.policies.references import reference_policy_name
from quantgym.tearsheet import align_returns, join_returns, write_tearsheet

__all__ = [
    "unit_returns",
    "concatenated_returns",
    "tearsheet_returns",
    "suite_tearsheet",
]


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


def concatenated_returns(
    equities: Sequence[Any], units: Sequence[TestUnit], market: Any
) -> pd.Series:
    """Per-bar returns of every unit (:func:`unit_returns`, ``equities[i]`` is ``units[i]``'s
    path) concatenated in time order (:func:`join_returns`)."""
    if len(equities) != len(units):
        raise ValueError(f"{len(equities)} equity paths for {len(units)} units")
    return join_returns([unit_returns(e, u, market) for e, u in zip(equities, units, strict=True)])


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
