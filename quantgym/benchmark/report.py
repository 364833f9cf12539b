"""Benchmark report: per-market tables from :func:`quantgym.benchmark.statistics.summarize`.

Causal agents are ranked (the best in bold in markdown); bounds (privileged / future agents)
are listed under a rule with their log growth only, never ranked. Each market gets a line
naming the reference, the number of seeds x units and the confidence level; failed cells are
listed from the records. With the records, the markdown report adds per market the matrix of
P(row beats column) between causal agents (:func:`format_beat_matrix`), and :func:`write_report`
its long form with CIs as ``beat_<market>.csv``; the terminal text stays one table per market.

A suite with market variants (``synthetic:regime@hourly`` ...) gets a *family* table per base
kind (:func:`family_table`): each causal agent's mean score over the family's markets beside
its worst market, with that market's CI, in the report and as ``family_<kind>.csv``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from quantgym.benchmark.plots import safe_name
from quantgym.benchmark.profiles import BEAT_COLUMNS, beat_table
from quantgym.benchmark.statistics import (
    NOTE_REFERENCE_NOT_POSITIVE,
    SUMMARY_COLUMNS,
    records_by_market,
)
from quantgym.checks import check_choice
from quantgym.files import atomic_write
from quantgym.policies.references import market_base

__all__ = ["FORMATS", "family_table", "format_beat_matrix", "format_report", "write_report"]

FORMATS = ("text", "md", "csv", "json")
_EXT = {"text": "txt", "md": "md", "csv": "csv", "json": "json"}


def _ok(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _fmt(value: Any, spec: str) -> str:
    return spec.format(value) if _ok(value) else "n/a"


def _ci(row: Mapping[str, Any], col: str, spec: str) -> str:
    text = _fmt(row[col], spec)
    if _ok(row[col]) and _ok(row[f"{col}_lo"]) and _ok(row[f"{col}_hi"]):
        text += f" [{_fmt(row[f'{col}_lo'], spec)}, {_fmt(row[f'{col}_hi'], spec)}]"
    return text


_HEADERS = (
    "rank",
    "agent",
    "score [CI]",
    "IQM",
    "excess/yr [CI]",
    "P(>ref) [CI]",
    "P(>rule) [CI]",
    "return/unit",
    "Sharpe [CI]",
    "max DD",
    "turnover",
    "costs",
    "train s",
)


def _causal_cells(row: Mapping[str, Any]) -> list[str]:
    return [
        _fmt(row["rank"], "{:.0f}"),
        str(row["agent"]),
        _ci(row, "score", "{:.1f}"),
        _fmt(row["score_iqm"], "{:.1f}"),
        _ci(row, "excess_ann", "{:+.3f}"),
        _ci(row, "p_improve_ref", "{:.2f}"),
        _ci(row, "p_improve_rule", "{:.2f}"),
        _fmt(row["total_return"], "{:+.2%}"),
        _ci(row, "sharpe", "{:.2f}"),
        _fmt(row["max_drawdown"], "{:.1%}"),
        _fmt(row["turnover"], "{:.1f}"),
        _fmt(row["costs"], "{:.4f}"),
        _fmt(row["train_s"], "{:.1f}"),
    ]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], md: bool) -> list[str]:
    if md:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return lines
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return [line.rstrip() for line in lines]


def _failures(records: Iterable[Mapping[str, Any]] | None) -> list[tuple[str, str, Any, str]]:
    out = []
    for rec in records or ():
        if rec.get("status") == "ok":
            continue
        lines = str(rec.get("error") or "unknown error").strip().splitlines() or [""]
        # a Python traceback says what went wrong on its last line, not its first
        first = lines[-1] if lines[0].startswith("Traceback") else lines[0]
        out.append((str(rec.get("market")), str(rec.get("agent")), rec.get("seed"), first))
    return out


def _check(summary: pd.DataFrame) -> None:
    if not isinstance(summary, pd.DataFrame):
        raise ValueError(f"summary must be a pandas DataFrame, got {type(summary).__name__}")
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"summary lacks the columns {missing} (build it with summarize)")


def format_beat_matrix(table: pd.DataFrame, fmt: str = "md") -> str:
    """One market's :func:`~quantgym.benchmark.profiles.beat_table` as a matrix (``fmt`` ``"md"``
    or ``"text"``): the cell in row ``x``, column ``y`` is P(x beats y) on a shared unit; ``-`` on
    the diagonal; in markdown a cell is bold where its CI excludes 0.5."""
    check_choice("fmt", fmt, ("md", "text"))
    if not isinstance(table, pd.DataFrame) or list(table.columns) != list(BEAT_COLUMNS):
        raise ValueError("table must come from quantgym.benchmark.profiles.beat_table")
    if table["market"].nunique() > 1:
        raise ValueError(f"table must hold one market, got {sorted(table['market'].unique())}")
    names = list(dict.fromkeys([*table["agent"], *table["opponent"]]))
    cells = {(r["agent"], r["opponent"]): r for r in table.to_dict("records")}
    rows = []
    for x in names:
        row = [x]
        for y in names:
            cell = cells.get((x, y))
            text = "-" if cell is None else _fmt(cell["p_beat"], "{:.2f}")
            if fmt == "md" and cell is not None and (cell["lo"] > 0.5 or cell["hi"] < 0.5):
                text = f"**{text}**"
            row.append(text)
        rows.append(row)
    return "\n".join(_table(("P(row beats column)", *names), rows, fmt == "md")) + "\n"


def _beat_tables(
    records: Sequence[Mapping[str, Any]] | None, confidence: float
) -> dict[str, pd.DataFrame]:
    """``market -> beat_table`` for the markets with at least two causal agents."""
    out = {}
    for market in records_by_market(records or ()):
        table = beat_table(records or (), market, confidence=confidence)
        if len(table):
            out[market] = table
    return out


def _beat_section(market: str, table: pd.DataFrame, confidence: float) -> list[str]:
    return [
        "",
        f"### P(beat) on {market}",
        "",
        "P(row beats column): the fraction of shared (seed, unit) keys on which the row agent's "
        "log growth exceeds the column agent's (ties ½); causal agents only, best first; bold: "
        f"its {confidence:.0%} paired-bootstrap CI excludes 0.5 (CIs in "
        f"`beat_{safe_name(market)}.csv`).",
        "",
        format_beat_matrix(table, "md").rstrip("\n"),
    ]


#: Columns of :func:`family_table`.
FAMILY_COLUMNS = (
    "family",
    "agent",
    "n_markets",
    "mean_score",
    "worst_market",
    "worst_score",
    "worst_score_lo",
    "worst_score_hi",
    "markets_at_80",
)


def family_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per family (a base market and its variants, two or more markets with at least one
    variant) and causal agent scored on every market of the family: its mean score over the
    markets, its worst market with that score's CI, and on how many markets it scores >= 80.
    Sorted by family, then worst score (best first). Empty when the suite has no variants."""
    rows: list[dict[str, Any]] = []
    causal = summary[summary["role"] == "causal"]
    families: dict[str, list[str]] = {}
    for market in dict.fromkeys(summary["market"]):
        families.setdefault(market_base(str(market)), []).append(str(market))
    for family, markets in families.items():
        if len(markets) < 2 or all("@" not in m for m in markets):
            continue
        part = causal[causal["market"].isin(markets)]
        for agent, rows_of in part.groupby("agent", sort=False):
            if set(rows_of["market"]) != set(markets) or not rows_of["score"].notna().all():
                continue
            worst = rows_of.loc[rows_of["score"].idxmin()]
            rows.append(
                {
                    "family": family,
                    "agent": agent,
                    "n_markets": len(markets),
                    "mean_score": float(rows_of["score"].mean()),
                    "worst_market": worst["market"],
                    "worst_score": float(worst["score"]),
                    "worst_score_lo": float(worst["score_lo"]),
                    "worst_score_hi": float(worst["score_hi"]),
                    "markets_at_80": int((rows_of["score"] >= 80).sum()),
                }
            )
    table = pd.DataFrame(rows, columns=list(FAMILY_COLUMNS))
    return table.sort_values(["family", "worst_score"], ascending=[True, False], kind="stable")


def _family_section(summary: pd.DataFrame, md: bool) -> list[str]:
    lines: list[str] = []
    for family, part in family_table(summary).groupby("family", sort=False):
        n = int(part["n_markets"].max())
        lines += [f"## Family {family} ({n} markets)" if md else f"Family {family}", ""]
        lines.append(
            "Each agent's mean score over the family's markets and its worst market (score "
            "[CI]); >= 80: on how many markets it scores at least 80."
        )
        lines.append("")
        rows = [
            [
                str(r["agent"]),
                _fmt(r["mean_score"], "{:.1f}"),
                str(r["worst_market"]),
                f"{_fmt(r['worst_score'], '{:.1f}')} [{_fmt(r['worst_score_lo'], '{:.1f}')}, "
                f"{_fmt(r['worst_score_hi'], '{:.1f}')}]",
                f"{int(r['markets_at_80'])}/{n}",
            ]
            for r in part.to_dict("records")
        ]
        headers = ("agent", "mean score", "worst market", "worst score [CI]", ">= 80")
        lines += _table(headers, rows, md)
        lines.append("")
    return lines


def _markdown_or_text(
    summary: pd.DataFrame,
    records: Iterable[Mapping[str, Any]] | None,
    md: bool,
    confidence: float,
    beat: Mapping[str, pd.DataFrame] | None = None,
) -> str:
    level = f"{confidence:.0%}"
    lines = [
        "score = 100 x mean log growth / the reference's over the same (seed, unit) keys (a ratio "
        "of means; cash = 0); IQM = interquartile mean of the agent's per-unit log growth / the "
        "reference's mean x 100; excess/yr = annualized mean excess log growth over the "
        "reference; P(>ref), P(>rule) = probability of beating the reference / the best rule "
        "baseline on a unit (ties 1/2); return/unit = exp(mean log growth) - 1; [lo, hi] = "
        f"{level} paired-bootstrap CI over (seed, unit) keys.",
        "",
    ]
    for market, part in summary.groupby("market", sort=False):
        causal = part[part["role"] == "causal"].sort_values("rank", na_position="last")
        bounds = part[part["role"] != "causal"]
        reference = str(part["reference"].iloc[0])
        seeds = int(part["n_seeds"].max())
        units = int(part["n_units"].max())
        lines.append(f"## {market}" if md else f"{market}")
        lines.append("")
        lines.append(
            f"Reference (score 100): {reference}; cash = 0; best rule: "
            f"{part['best_rule'].iloc[0] or 'none'}; {seeds} seed(s) x {units // max(seeds, 1)} "
            f"units = {units} paired keys; {level} paired-bootstrap CIs."
        )
        if (part["score_note"] == NOTE_REFERENCE_NOT_POSITIVE).any():
            lines.append(
                "Score undefined: the reference's mean log growth is ≤ 0, so causal agents are "
                "ranked by excess_ann (annualized excess log growth over the reference)."
            )
        lines.append("")
        rows = [_causal_cells(r) for r in causal.to_dict("records")]
        if md and rows:
            rows[0] = [f"**{c}**" if c else c for c in rows[0]]
        lines += _table(_HEADERS, rows, md) if rows else ["(no causal agent)"]
        if len(bounds):
            lines.append("")
            lines += ["Bounds (not ranked: privileged or future information):", ""]
            brow = [
                [
                    str(r["agent"]),
                    str(r["role"]),
                    _ci(r, "log_growth", "{:+.4f}"),
                    _fmt(r["total_return"], "{:+.2%}"),
                ]
                for r in bounds.to_dict("records")
            ]
            lines += _table(("bound", "role", "log growth/unit [CI]", "return/unit"), brow, md)
        notes = sorted(
            {str(n) for n in part["score_note"] if n and n != NOTE_REFERENCE_NOT_POSITIVE}
        )
        lines += [f"Note: {n}" for n in notes]
        if md and beat and market in beat:
            lines += _beat_section(str(market), beat[market], confidence)
        lines.append("")
    lines += _family_section(summary, md)
    failed = _failures(records)
    if failed:
        lines.append("## Failed cells" if md else "Failed cells")
        lines.append("")
        for market, agent, seed, first in failed:
            lines.append(f"- {agent} on {market}, seed {seed}: {first}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def format_report(
    summary: pd.DataFrame,
    fmt: str = "text",
    records: Iterable[Mapping[str, Any]] | None = None,
    *,
    confidence: float = 0.95,
) -> str:
    """The report as a string: ``fmt`` is ``"text"``, ``"md"``, ``"csv"`` or ``"json"``.

    ``records`` (optional) adds the failed cells (text/md, and a ``failed`` list in json) and,
    in markdown only, a P(beat) matrix per market (:func:`format_beat_matrix`).
    ``confidence`` is quoted and used for the P(beat) CIs: it must match the one ``summarize``
    used.
    """
    check_choice("fmt", fmt, FORMATS)
    _check(summary)
    records = list(records) if records is not None else None
    return _format(summary, fmt, records, confidence, None)


def _format(
    summary: pd.DataFrame,
    fmt: str,
    records: Sequence[Mapping[str, Any]] | None,
    confidence: float,
    beat: Mapping[str, pd.DataFrame] | None,
) -> str:
    if fmt == "csv":
        return summary.to_csv(index=False)
    if fmt == "json":
        rows = json.loads(summary.to_json(orient="records", force_ascii=False))
        failed = [
            {"market": m, "agent": a, "seed": s, "error": e} for m, a, s, e in _failures(records)
        ]
        return json.dumps({"rows": rows, "failed": failed, "confidence": confidence}, indent=1)
    md = fmt == "md"
    if md and beat is None:
        beat = _beat_tables(records, confidence)
    return _markdown_or_text(summary, records, md, confidence, beat)


def _atomic_write(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(path, write)


def write_report(
    summary: pd.DataFrame,
    out_dir: str | os.PathLike,
    formats: Sequence[str] = ("md", "csv", "json"),
    records: Iterable[Mapping[str, Any]] | None = None,
    *,
    confidence: float = 0.95,
) -> dict[str, Path]:
    """Write ``report.<ext>`` per format into ``out_dir`` atomically; ``{fmt: path}``. With
    ``records`` and ``"csv"`` among the formats, also ``beat_<market>.csv`` per market with two
    or more causal agents (:func:`~quantgym.benchmark.profiles.beat_table`: P(beat) with CIs),
    keyed ``"beat_<market>"``."""
    if isinstance(formats, str):
        formats = (formats,)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"formats must be among {FORMATS}, got {bad}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check(summary)
    records = list(records) if records is not None else None
    beat = _beat_tables(records, confidence) if {"md", "csv"} & set(formats) else {}
    written = {}
    for fmt in formats:
        path = out / f"report.{_EXT[fmt]}"
        _atomic_write(path, _format(summary, fmt, records, confidence, beat))
        written[fmt] = path
    if "csv" in formats:
        for market, table in beat.items():
            key = f"beat_{safe_name(market)}"
            _atomic_write(out / f"{key}.csv", table.to_csv(index=False))
            written[key] = out / f"{key}.csv"
        for family, table in family_table(summary).groupby("family", sort=False):
            key = f"family_{safe_name(family)}"
            _atomic_write(out / f"{key}.csv", table.to_csv(index=False))
            written[key] = out / f"{key}.csv"
    return written
