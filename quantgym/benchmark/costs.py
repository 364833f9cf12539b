"""Cost sensitivity: one suite run at several cost levels, summarised as one table.

:func:`suite_at_cost` copies a suite with every env charging ``bp`` basis points of commission
per unit of value traded (each side, no slippage), for both envs. Each level is an ordinary
suite run (its own ``results.jsonl``; the cells differ by their ``env_kwargs``, so their ids
differ); :func:`cost_table` stacks the levels' :func:`~quantgym.benchmark.statistics.summarize`
tables into one long table, and :func:`format_cost_table` prints it per market, one row per
agent and one column per level: the mean log growth per test unit with its paired-bootstrap CI,
and the score against the market's reference at that level. ``benchmarks/cost_sweep.py``
runs it; :func:`quantgym.benchmark.plots.plot_cost_sweep` draws it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = [
    "COST_LEVELS_BP",
    "COST_COLUMNS",
    "suite_at_cost",
    "cost_table",
    "format_cost_table",
]

#: The levels of the issue: 0, 5, 10 and 25 basis points per unit traded.
COST_LEVELS_BP: tuple[float, ...] = (0.0, 5.0, 10.0, 25.0)
#: Columns of :func:`cost_table` (one row per market, agent and level).
COST_COLUMNS = (
    "market",
    "agent",
    "role",
    "reference",
    "cost_bp",
    "n_units",
    "log_growth",
    "log_growth_lo",
    "log_growth_hi",
    "score",
    "score_lo",
    "score_hi",
    "turnover",
)


def _check_bp(bp: Any) -> float:
    if isinstance(bp, bool) or not isinstance(bp, (int, float)) or not math.isfinite(bp):
        raise ValueError(f"cost level must be a number of basis points, got {bp!r}")
    if not 0.0 <= bp <= 500.0:
        raise ValueError(f"cost level must be in [0, 500] bp, got {bp!r}")
    return float(bp)


def suite_at_cost(suite: Any, bp: float) -> Any:
    """A validated copy of ``suite`` whose envs (both kinds) charge ``bp`` basis points of
    commission per unit traded and no slippage; other env kwargs are kept."""
    rate = _check_bp(bp) / 1e4
    costs = {"commission": rate, "slippage": 0.0}
    return dataclasses.replace(
        suite,
        env_kwargs={**suite.env_kwargs, **costs},
        portfolio_env_kwargs={**suite.portfolio_env_kwargs, **costs},
    ).validate()


def cost_table(summaries: Mapping[float, pd.DataFrame]) -> pd.DataFrame:
    """Stack ``{bp: summarize(records at bp)}`` into the long table of :data:`COST_COLUMNS`
    (levels in increasing order)."""
    if not summaries:
        raise ValueError("summaries must hold at least one cost level")
    parts = []
    for bp in sorted(summaries, key=_check_bp):
        summary = summaries[bp]
        if not isinstance(summary, pd.DataFrame):
            raise ValueError(f"summaries[{bp}] must be a DataFrame from summarize")
        missing = [c for c in COST_COLUMNS if c not in summary.columns and c != "cost_bp"]
        if missing:
            raise ValueError(f"summaries[{bp}] lacks the columns {missing}")
        part = summary.assign(cost_bp=float(bp))
        parts.append(part[list(COST_COLUMNS)])
    return pd.concat(parts, ignore_index=True)


def _cell(row: Mapping[str, Any], with_score: bool) -> str:
    g, lo, hi = row["log_growth"], row["log_growth_lo"], row["log_growth_hi"]
    if not math.isfinite(g):
        return "n/a"
    text = f"{g:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    if with_score and math.isfinite(row["score"]):
        text += f" ({row['score']:.0f})"
    return text


def format_cost_table(table: pd.DataFrame, *, headline_bp: float | None = None) -> str:
    """Markdown: per market, one row per agent (causal agents by their log growth at
    ``headline_bp``, default the highest level, then the bounds) and one column per level,
    ``mean log growth per unit [95% CI] (score)``; the last column is the agent's turnover at
    the headline level."""
    if not isinstance(table, pd.DataFrame) or list(table.columns) != list(COST_COLUMNS):
        raise ValueError("table must come from cost_table")
    levels: Sequence[float] = sorted(set(table["cost_bp"]))
    headline = levels[-1] if headline_bp is None else _check_bp(headline_bp)
    if headline not in levels:
        raise ValueError(f"headline_bp={headline_bp} is not one of the levels {list(levels)}")
    lines = [
        "mean log growth per test unit [95% paired-bootstrap CI] (score: 100 x mean log growth "
        "/ the reference's at the same cost) at each commission level (bp per unit traded, "
        "each side, no slippage); bounds use future or hidden information and are not ranked.",
        "",
    ]
    for market, part in table.groupby("market", sort=False):
        at = part[part["cost_bp"] == headline].set_index("agent")
        order = sorted(
            at.index,
            key=lambda a: (at.loc[a, "role"] != "causal", -at.loc[a, "log_growth"]),
        )
        lines += [f"### {market}", "", f"Reference: {part['reference'].iloc[0]}.", ""]
        header = ["agent", *(f"{bp:g} bp" for bp in levels), f"turnover/unit at {headline:g} bp"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for agent in order:
            rows = part[part["agent"] == agent].set_index("cost_bp")
            role = str(at.loc[agent, "role"])
            name = agent if role == "causal" else f"{agent} ({role} bound)"
            cells = [
                _cell(rows.loc[bp], role == "causal") if bp in rows.index else "n/a"
                for bp in levels
            ]
            turnover = at.loc[agent, "turnover"]
            cells.append(f"{turnover:.1f}" if math.isfinite(turnover) else "n/a")
            lines.append("| " + " | ".join([name, *cells]) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
