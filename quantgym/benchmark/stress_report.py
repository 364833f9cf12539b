"""The stress report: Markdown tables, CSVs and plots of a stress run's records.

``benchmarks/compare.py --suite stress`` writes the ordinary report of the base condition and,
beside it, :func:`write_stress_report`'s ``stress.md`` (cost sweep as trained with break-even
costs, worst windows and crashes, regime shift, input perturbation), the tables as CSV
(``stress_conditions.csv``, ``break_even.csv``, ``worst_windows.csv``, ``shift.csv``) and
``costs_<market>.png`` and ``perturbation_<market>.png``. Every number comes with its 95% CI
(paired bootstrap over ``(seed, window)`` keys; :mod:`quantgym.benchmark.stress_tables`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantgym.benchmark.costs import cost_table, format_cost_table
from quantgym.benchmark.statistics import summarize
from quantgym.benchmark.stress_tables import (
    BASE_LABEL,
    break_even_table,
    condition_records,
    condition_table,
    conditions_of,
    shift_table,
    stress_records,
    worst_windows_table,
)
from quantgym.files import atomic_write

__all__ = ["stress_cost_table", "perturbation_table", "format_stress_report", "write_stress_report"]


def stress_cost_table(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The cost probe as a :func:`~quantgym.benchmark.costs.cost_table` (agents as trained)."""
    recs = stress_records(records)
    levels = [(lv, lb) for probe, lv, lb in conditions_of(recs) if probe == "cost"]
    if not levels:
        raise ValueError("the stress records hold no cost levels")
    return cost_table({lv: summarize(condition_records(recs, "cost", lb)) for lv, lb in levels})


def _bp(x: float) -> str:
    if x == math.inf:
        return "> max"
    if x == -math.inf:
        return "< 0"
    return "n/a" if not math.isfinite(x) else f"{x:.1f}"


def _fmt(x: Any, spec: str = ".1f") -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return format(value, spec) if math.isfinite(value) else "n/a"


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def _break_even_lines(table: pd.DataFrame) -> list[str]:
    lines = [
        "Break-even commission (bp per unit traded): the level at which the agent's mean log "
        "growth per window falls to the comparator's, linearly interpolated between levels, "
        "[95% bootstrap CI over windows]; *pred.*: gross edge at 0 bp / extra turnover "
        "(`1e4 x edge / turnover`); `> max`: still ahead at the highest level; `< 0`: behind "
        "already at 0 bp.",
        "",
    ]
    if table.empty:
        return [*lines, "(no cost levels)", ""]
    for market, part in table.groupby("market", sort=False):
        comps = list(dict.fromkeys(part["comparator"]))
        rows = []
        for agent, sub in part.groupby("agent", sort=False):
            cells = [agent]
            for comp in comps:
                hit = sub[sub["comparator"] == comp]
                if hit.empty:
                    cells.append("—")
                    continue
                r = hit.iloc[0]
                text = f"{_bp(r.break_even_bp)} [{_bp(r.break_even_lo)}, {_bp(r.break_even_hi)}]"
                if math.isfinite(r.predicted_bp):
                    text += (
                        f" (pred. {r.predicted_bp:.1f}{'' if r.predicted_in_ci else ', outside'})"
                    )
                cells.append(text)
            rows.append(cells)
        lines += [f"#### {market}", ""]
        lines += _md_table(["agent", *(f"vs {c}" for c in comps)], rows)
    return lines


def _worst_lines(table: pd.DataFrame) -> list[str]:
    lines = [
        "The worst windows of each market: the share of (seed, window) keys with the lowest log "
        "return of the traded asset itself (the same windows for every agent). Drawdown: "
        "mean and worst maximum drawdown there; recovery: median bars from the peak before the "
        "deepest trough back to it (recovered windows) and the share recovered by the window's "
        "end; ended early: windows stopped by bankruptcy or liquidation (there / over all).",
        "",
    ]
    for market, part in table.groupby("market", sort=False):
        first = part.iloc[0]
        lines += [
            f"#### {market}: worst {int(first.n_worst)} of {int(first.n_all)} windows "
            f"(asset log return {first.asset_log_return:+.3f} on average there)",
            "",
        ]
        part = part.assign(_bound=part["role"] != "causal").sort_values(
            ["_bound", "log_growth"], ascending=[True, False]
        )
        rows = [
            [
                r.agent + ("" if r.role == "causal" else f" ({r.role} bound)"),
                f"{r.log_growth:+.3f}",
                _fmt(r.score),
                f"{100 * r.max_drawdown_mean:.1f}% / {100 * r.max_drawdown_worst:.1f}%",
                f"{_fmt(r.recovery_bars_median, '.0f')} / {100 * r.recovered_share:.0f}%",
                f"{int(r.ended_early_worst)} / {int(r.ended_early_all)} of {int(r.n_all)}",
            ]
            for r in part.itertuples()
        ]
        lines += _md_table(
            [
                "agent",
                "log growth/window",
                f"score (ref. {first.reference})",
                "max DD mean / worst",
                "recovery bars / recovered",
                "ended early",
            ],
            rows,
        )
    return lines


def _shift_lines(table: pd.DataFrame) -> list[str]:
    lines = [
        "Each agent trained on the market's default parameters trades the same windows of a "
        "series drawn with the same seed and shifted parameters; score against the reference "
        "*on the shifted market* (exact experts read its parameters). Drop = shifted - base "
        "score, [95% paired bootstrap CI].",
        "",
    ]
    if table.empty:
        return [*lines, "(no shift variants, or the reference's log growth is not positive)", ""]
    for market, part in table.groupby("market", sort=False):
        shifts = list(dict.fromkeys(part["shift"]))
        rows = []
        for agent, sub in part[part["role"] == "causal"].groupby("agent", sort=False):
            cells = [agent, _fmt(sub["base_score"].iloc[0])]
            for name in shifts:
                hit = sub[sub["shift"] == name]
                if hit.empty:
                    cells.append("—")
                    continue
                r = hit.iloc[0]
                cells.append(
                    f"{_fmt(r.shifted_score)} (drop {_fmt(r.score_drop, '+.1f')} "
                    f"[{_fmt(r.score_drop_lo, '+.1f')}, {_fmt(r.score_drop_hi, '+.1f')}])"
                )
            rows.append(cells)
        lines += [f"#### {market}", ""]
        lines += _md_table(["agent", "base score", *shifts], rows)
    return lines


def _perturbation_frame(table: pd.DataFrame, probe: str) -> pd.DataFrame:
    base = table[table["probe"] == BASE_LABEL].assign(level=0.0, probe=probe)
    part = table[table["probe"] == probe]
    agents = set(part["agent"])
    return pd.concat([base[base["agent"].isin(agents)], part], ignore_index=True)


def perturbation_table(table: pd.DataFrame) -> pd.DataFrame:
    """The noise and adversarial rows of a :func:`condition_table`, each agent's clean score
    added as level 0 of each probe (what :func:`quantgym.benchmark.plots.plot_perturbation`
    draws)."""
    frames = [_perturbation_frame(table, p) for p in ("noise", "adversarial", "adversarial_worst")]
    return pd.concat([f for f in frames if not f.empty] or [table.iloc[:0]], ignore_index=True)


def _monotone(scores: np.ndarray) -> bool:
    finite = scores[np.isfinite(scores)]
    return bool(finite.size >= 2 and np.all(np.diff(finite) <= 1e-9))


def _perturbation_lines(table: pd.DataFrame) -> list[str]:
    lines = [
        "Score against the perturbation's size (0: clean inputs). *noise*: Gaussian noise on "
        "the observation's market features, in units of each feature's standard deviation on "
        "the train range; *adversarial*: a perturbation within an L-infinity ball of that "
        "radius found by PGD on the agent's differentiable action scores (agents that have "
        "them), steering each decision toward the action the agent scores lowest; it aims at "
        "the agent's actions, not at its returns, so an agent whose clean policy is off can "
        "even gain from it; *adversarial_worst*: per window the worst of the clean run and "
        "the attacks of radius up to this one (each lies in the ball: picking the worst per "
        "window is itself an attack of this radius), non-increasing by construction, so read "
        "it for how much is lost, not for whether. Agents that decide from prices (rules, "
        "experts) do not read the observation: their row is their clean score by "
        "construction, the flat reference. *monotone*: the point scores never rise with the "
        "size.",
        "",
    ]
    for probe in ("noise", "adversarial", "adversarial_worst"):
        frame = _perturbation_frame(table, probe)
        if frame.empty:
            continue
        for market, part in frame.groupby("market", sort=False):
            levels = sorted(set(part["level"]))
            rows = []
            for agent, sub in part[part["role"] == "causal"].groupby("agent", sort=False):
                sub = sub.sort_values("level")
                flat = bool(sub["by_construction"].any())
                cells = [agent + (" (reads prices)" if flat else "")]
                for lv in levels:
                    hit = sub[sub["level"] == lv]
                    cells.append(
                        "—"
                        if hit.empty
                        else f"{_fmt(hit.score.iloc[0])} [{_fmt(hit.score_lo.iloc[0])}, "
                        f"{_fmt(hit.score_hi.iloc[0])}]"
                    )
                cells.append(
                    "flat" if flat else ("yes" if _monotone(sub["score"].to_numpy()) else "no")
                )
                rows.append(cells)
            lines += [f"#### {market}: {probe}", ""]
            lines += _md_table(["agent", *(f"{lv:g}" for lv in levels), "monotone"], rows)
    return lines


def _tables(recs: list[Mapping[str, Any]]) -> dict[str, pd.DataFrame]:
    """Every table of the report, computed once (each bootstraps its CIs)."""
    return {
        "conditions": condition_table(recs),
        "costs": stress_cost_table(recs),
        "break_even": break_even_table(recs),
        "worst_windows": worst_windows_table(recs),
        "shift": shift_table(recs),
    }


def format_stress_report(records: Iterable[Mapping[str, Any]]) -> str:
    """The Markdown stress report of a stress run's records."""
    recs = stress_records(records)
    return _format(recs, _tables(recs))


def _format(recs: list[Mapping[str, Any]], tables: Mapping[str, pd.DataFrame]) -> str:
    lines = [
        "# Stress report",
        "",
        "Every agent trained once per (market, seed) at the suite's costs and budgets, then "
        "scored on the same held-out windows under each probe. Scores: 100 x mean log growth "
        "/ the reference's under the same condition (cash = 0); 95% paired-bootstrap CIs over "
        "(seed, window) keys.",
        "",
        "## Cost sweep (agents as trained)",
        "",
        format_cost_table(tables["costs"], headline_bp=_base_level(recs)),
        "### Break-even costs",
        "",
        *_break_even_lines(tables["break_even"]),
        "## Worst windows and crashes",
        "",
        *_worst_lines(tables["worst_windows"]),
        "## Regime shift",
        "",
        *_shift_lines(tables["shift"]),
        "## Input perturbation",
        "",
        *_perturbation_lines(tables["conditions"]),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _base_level(recs: list[Mapping[str, Any]]) -> float | None:
    """The cost level closest to the suite's own commission + slippage (the table's headline
    column)."""
    levels = sorted(
        {float(c["level"]) for r in recs for c in r["stress"]["conditions"] if c["probe"] == "cost"}
    )
    if not levels:
        return None
    from quantgym.envs.config import EnvConfig

    env_kwargs = recs[0]["cell"].get("env_kwargs") or {}
    default = EnvConfig()
    commission = env_kwargs.get("commission", default.commission)
    slippage = env_kwargs.get("slippage", default.slippage)
    cost = float(commission) + (float(slippage) if isinstance(slippage, int | float) else 0.0)
    return min(levels, key=lambda lv: abs(lv - 1e4 * cost))


def write_stress_report(
    records: Iterable[Mapping[str, Any]], out_dir: str | os.PathLike, *, plots: bool = True
) -> dict[str, Path]:
    """Write ``stress.md``, the tables as CSV and (``plots``) the PNGs into ``out_dir``
    (atomically, file by file); returns ``{name: path}``."""
    recs = stress_records(records)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = _tables(recs)
    texts = {
        "stress.md": _format(recs, tables),
        "stress_conditions.csv": tables["conditions"].to_csv(index=False),
        "break_even.csv": tables["break_even"].to_csv(index=False),
        "worst_windows.csv": tables["worst_windows"].to_csv(index=False),
        "shift.csv": tables["shift"].to_csv(index=False),
    }
    written: dict[str, Path] = {}
    for name, text in texts.items():
        path = out / name
        atomic_write(path, lambda tmp, t=text: Path(tmp).write_text(t, encoding="utf-8"))
        written[name] = path
    if plots:
        from quantgym.benchmark.plots import plot_cost_sweep, plot_perturbation

        written.update(plot_cost_sweep(tables["costs"], out))
        written.update(plot_perturbation(perturbation_table(tables["conditions"]), out))
    return written
