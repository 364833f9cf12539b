"""Benchmark plots: per market, score bars with CI whiskers, test-unit equity bands, drawdowns,
the performance profile (:func:`plot_performance_profile`); the cost sweep (mean log growth
against the cost level, :func:`plot_cost_sweep`) and the stress suite's input perturbation
(score against the perturbation's size, :func:`plot_perturbation`).

matplotlib (the ``plot`` extra) is imported inside :func:`plot_all`, and figures are drawn on
the Agg canvas directly (no pyplot state, no display needed).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantgym.benchmark.profiles import PROFILE_COLUMNS, performance_profile
from quantgym.files import atomic_write

__all__ = [
    "plot_all",
    "plot_cost_sweep",
    "plot_performance_profile",
    "plot_perturbation",
    "safe_name",
]

_COLORS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)


def safe_name(market: str) -> str:
    """``market`` made filename-safe: ``"synthetic:regime"`` -> ``"synthetic_regime"``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(market)).strip("._")
    return name or "market"


def _import_matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plots need matplotlib: pip install 'quantgym[plot]' (or pass --no-plots)"
        ) from exc
    return Figure, FigureCanvasAgg


def _save(fig: Any, canvas_cls: Any, path: Path) -> Path:
    canvas_cls(fig)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _score_axes(ax: Any, part: pd.DataFrame, market: str) -> None:
    """Causal agents on top (best first) with CI whiskers; bounds below a line, shaded grey
    and clipped to the causal agents' range (the oracle would dwarf everything else)."""
    undefined = not part["score"].notna().any()
    col, ref_x = ("excess_ann", 0.0) if undefined else ("score", 100.0)
    causal = part[part["role"] == "causal"].sort_values("rank", na_position="last")
    bounds = part[part["role"] != "causal"]
    rows = [*causal.to_dict("records"), *bounds.to_dict("records")]
    n = len(rows)
    y = np.arange(n)[::-1].astype(float)
    if len(bounds):
        y[len(causal) :] -= 0.6  # a gap between ranked agents and bounds
    vals = np.array([r[col] for r in rows], dtype=float)
    lo = np.array([r[f"{col}_lo"] for r in rows], dtype=float)
    hi = np.array([r[f"{col}_hi"] for r in rows], dtype=float)
    is_bound = np.array([r["role"] != "causal" for r in rows])
    fit = ~is_bound if (~is_bound & np.isfinite(vals)).any() else np.ones(n, bool)
    span_vals = np.concatenate([vals[fit], lo[fit], hi[fit], [0.0, ref_x]])
    span_vals = span_vals[np.isfinite(span_vals)]
    xmin, xmax = float(span_vals.min()), float(span_vals.max())
    pad = 0.1 * (xmax - xmin or 1.0)
    xmin, xmax = xmin - (pad if xmin < 0 else 0.0), xmax + pad
    shown = np.clip(np.nan_to_num(vals), xmin, xmax)
    colors = [
        "0.7" if b else ("#2ca02c" if v >= ref_x else "#1f77b4")
        for b, v in zip(is_bound, np.nan_to_num(vals), strict=True)
    ]
    ax.barh(y, shown, color=colors, alpha=0.9, hatch=None)
    for yi, b in zip(y, is_bound, strict=True):
        if b:
            ax.barh(yi, shown[y == yi], color="none", edgecolor="0.4", hatch="//", lw=0)
    whisk = np.isfinite(lo) & np.isfinite(hi) & (shown == vals)
    if whisk.any():
        err = np.vstack([vals[whisk] - lo[whisk], hi[whisk] - vals[whisk]])
        ax.errorbar(vals[whisk], y[whisk], xerr=np.abs(err), fmt="none", ecolor="0.2", capsize=3)
    step = 0.01 * (xmax - xmin)
    spec = "{:+,.3f}" if undefined else "{:,.1f}"
    for yi, v, s, h in zip(y, vals, shown, hi, strict=True):
        if not math.isfinite(v):
            ax.text(step, yi, "n/a", va="center", fontsize=8)
        elif s != v:  # clipped: the value inside the bar, at its clipped end
            text = spec.format(v) + " ▶" if v > s else "◀ " + spec.format(v)
            x, ha = (s - step, "right") if v > s else (s + step, "left")
            ax.text(x, yi, text, va="center", ha=ha, fontsize=8, color="0.1")
        else:
            right = max(h if math.isfinite(h) else v, v, 0.0) + step
            inside = right > xmax - 8 * step  # a long whisker: keep the label in the axes
            x, ha = (xmax - step, "right") if inside else (right, "left")
            ax.text(x, yi, spec.format(v), va="center", ha=ha, fontsize=8)
    labels = [r["agent"] + (f" ({r['role']})" if r["role"] != "causal" else "") for r in rows]
    ax.set_yticks(y, labels)
    ax.set_xlim(xmin, xmax)
    ax.axvline(0.0, color="0.2", lw=0.8)
    if len(bounds) and len(causal):
        ax.axhline(y[len(causal) - 1] - 0.8, color="0.5", lw=0.8, ls="--")
    ref = str(part["reference"].iloc[0])
    if undefined:
        ax.set_title(
            f"{market}: annualized excess log growth over {ref}, 95% CI\n"
            "(score undefined: the reference's log growth is ≤ 0)",
            loc="left",
            fontsize=10,
        )
    else:
        ax.axvline(ref_x, color="0.4", lw=0.8, ls=":")
        ax.set_title(f"{market}: score ({ref} = 100, cash = 0), 95% CI", loc="left", fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)


def _mean_curves(
    records: Sequence[Mapping[str, Any]], what: str
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``agent -> (x, q25, q50, q75)``: each record's quantile curves averaged over seeds
    (truncated to the shortest)."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        curves = rec.get("curves") or {}
        if rec.get("status") == "ok" and curves.get("x") and curves.get(what):
            grouped.setdefault(str(rec["agent"]), []).append(curves)
    out = {}
    for agent, items in grouped.items():
        n = min(len(c["x"]) for c in items)
        x = np.asarray(items[0]["x"][:n], dtype=float)
        qs = [
            np.mean([np.asarray(c[what][q][:n], dtype=float) for c in items], axis=0)
            for q in ("q25", "q50", "q75")
        ]
        out[agent] = (x, *qs)
    return out


def _order(part: pd.DataFrame | None, agents: Iterable[str]) -> list[str]:
    agents = list(agents)
    ranked = [a for a in (part["agent"] if part is not None else []) if a in agents]
    return ranked + [a for a in agents if a not in ranked]


def _roles(part: pd.DataFrame | None) -> dict[str, str]:
    return {} if part is None else dict(zip(part["agent"], part["role"], strict=True))


def _band_axes(
    ax: Any,
    curves: Mapping[str, tuple[np.ndarray, ...]],
    order: Sequence[str],
    roles: Mapping[str, str],
    *,
    equity: bool,
) -> None:
    def transform(q: np.ndarray) -> np.ndarray:
        return np.exp(q) if equity else -q  # growth of 1; drawdowns plotted downwards

    def is_bound(agent: str) -> bool:
        return roles.get(agent, "causal") != "causal"

    # The y range fits the causal agents: a hindsight oracle would flatten everyone else.
    fit = [a for a in order if not is_bound(a)] or list(order)
    span = np.concatenate(
        [transform(np.asarray(curves[a][k])) for a in fit for k in (1, 3)]
        + [transform(np.zeros(1))]
    )
    span = span[np.isfinite(span)]
    ylo, yhi = float(span.min()), float(span.max())
    for i, agent in enumerate(order):
        x, q25, q50, q75 = curves[agent]
        q25, q50, q75 = transform(q25), transform(q50), transform(q75)
        bound = is_bound(agent)
        color = _COLORS[i % len(_COLORS)]
        style = {"ls": "--", "lw": 1.0} if bound else {"lw": 1.5}
        label = agent + (f" ({roles[agent]})" if bound else "")
        final = float(q50[-1])
        if math.isfinite(final) and not ylo <= final <= yhi:
            label += f": {final:.3g} at the end (off scale)"
        ax.plot(x, q50, color=color, label=label, **style)
        ax.fill_between(x, q25, q75, color=color, alpha=0.12 if bound else 0.2, lw=0)
    if equity:
        from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

        ax.set_yscale("log")
        pad = (yhi / ylo) ** 0.05 if ylo > 0 else 1.05
        ax.set_ylim(ylo / pad, yhi * pad)
        # A narrow range shows no decade ticks: use plain evenly spaced ones there.
        locator = LogLocator(base=10, subs=(1.0, 2.0, 5.0)) if yhi / ylo > 3 else MaxNLocator(6)
        ax.yaxis.set_major_locator(locator)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.axhline(1.0, color="0.2", lw=0.6)
        ax.set_ylabel("equity / initial (log scale)")
    else:
        pad = 0.05 * (yhi - ylo or 0.01)
        ax.set_ylim(ylo - pad, yhi + pad)
        from matplotlib.ticker import PercentFormatter

        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylabel("drawdown")
    ax.set_xlabel("bars from the start of the test unit")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def plot_performance_profile(
    profile: pd.DataFrame,
    path: str | os.PathLike,
    *,
    include_bounds: bool = False,
    title: str | None = None,
) -> Path:
    """Draw a :func:`~quantgym.benchmark.profiles.performance_profile` to the PNG ``path``: per
    agent a step curve of the fraction of units with normalized score > tau and its bootstrap
    band, with the cash (0) and reference (100) levels marked. Causal agents only unless
    ``include_bounds`` (bounds then dashed). Returns ``path``."""
    if not isinstance(profile, pd.DataFrame) or list(profile.columns) != list(PROFILE_COLUMNS):
        raise ValueError("profile must come from quantgym.benchmark.profiles.performance_profile")
    shown = profile if include_bounds else profile[profile["role"] == "causal"]
    if shown.empty:
        raise ValueError("profile has no agent to draw (no causal agent; try include_bounds)")
    Figure, Canvas = _import_matplotlib()
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    for i, (agent, part) in enumerate(shown.groupby("agent", sort=False)):
        bound = str(part["role"].iloc[0]) != "causal"
        color = _COLORS[i % len(_COLORS)]
        tau = part["tau"].to_numpy(dtype=float)
        label = f"{agent} ({part['role'].iloc[0]})" if bound else str(agent)
        ax.step(
            tau,
            part["fraction"].to_numpy(dtype=float),
            where="post",
            color=color,
            lw=1.0 if bound else 1.6,
            ls="--" if bound else "-",
            label=label,
        )
        lo, hi = part["lo"].to_numpy(dtype=float), part["hi"].to_numpy(dtype=float)
        if np.isfinite(lo).all() and np.isfinite(hi).all():
            ax.fill_between(tau, lo, hi, step="post", color=color, alpha=0.15, lw=0)
    lo_tau, hi_tau = float(shown["tau"].min()), float(shown["tau"].max())
    for level, name in ((0.0, "cash"), (100.0, "reference")):
        if lo_tau <= level <= hi_tau:
            ax.axvline(level, color="0.4", lw=0.8, ls=":")
            ax.text(level, 1.02, name, ha="center", va="bottom", fontsize=8, color="0.3")
    ax.set_xlim(lo_tau, hi_tau)
    ax.set_ylim(-0.02, 1.08)
    ax.set_xlabel("normalized score τ per unit (reference's mean = 100, cash = 0)")
    ax.set_ylabel("fraction of (seed, unit) keys with score > τ")
    n_units = int(shown["n_units"].max())
    ax.set_title(
        title or f"performance profile over {n_units} (seed, unit) keys, 95% bootstrap bands",
        loc="left",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _save(fig, Canvas, Path(path))


def _profile_png(
    records: Sequence[Mapping[str, Any]], part: pd.DataFrame, market: str, path: Path
) -> Path | None:
    """The market's profile, or None where it cannot be drawn: the score is undefined (the
    reference has no results or a mean log growth ≤ 0; the report says so) or no causal agent."""
    if not (part["score"].notna() & (part["role"] == "causal")).any():
        return None
    profile = performance_profile(records, market)
    n_units = int(profile["n_units"].max())
    title = f"{market}: performance profile, {n_units} (seed, unit) keys, 95% bootstrap bands"
    return plot_performance_profile(profile, path, title=title)


def plot_all(
    records: Iterable[Mapping[str, Any]], summary: pd.DataFrame, out_dir: str | os.PathLike
) -> dict[str, Path]:
    """Write ``scores_<market>.png``, ``equity_<market>.png``, ``drawdown_<market>.png`` and
    ``profile_<market>.png`` (where the normalized score is defined) per market into ``out_dir``;
    ``{"scores_<market>": path, ...}``."""
    Figure, Canvas = _import_matplotlib()
    if not isinstance(summary, pd.DataFrame):
        raise ValueError(f"summary must be a pandas DataFrame, got {type(summary).__name__}")
    records = [r for r in records if r.get("status") == "ok"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markets = list(dict.fromkeys([*summary["market"], *(str(r["market"]) for r in records)]))
    written: dict[str, Path] = {}
    for market in markets:
        safe = safe_name(market)
        part = summary[summary["market"] == market]
        part = part if len(part) else None
        if part is not None:
            fig = Figure(figsize=(9, 0.4 * len(part) + 1.6), layout="constrained")
            _score_axes(fig.subplots(), part, market)
            written[f"scores_{safe}"] = _save(fig, Canvas, out / f"scores_{safe}.png")
            profile = _profile_png(records, part, market, out / f"profile_{safe}.png")
            if profile is not None:
                written[f"profile_{safe}"] = profile
        mine = [r for r in records if str(r["market"]) == market]
        for what, stem, title in (
            ("log_equity", "equity", "test-unit equity, median and 25–75% band"),
            ("drawdown", "drawdown", "test-unit drawdown, median and 25–75% band"),
        ):
            curves = _mean_curves(mine, what)
            if not curves:
                continue
            fig = Figure(figsize=(10, 4.5), layout="constrained")
            ax = fig.subplots()
            _band_axes(ax, curves, _order(part, curves), _roles(part), equity=what == "log_equity")
            ax.set_title(f"{market}: {title} (quantiles averaged over seeds)", loc="left")
            written[f"{stem}_{safe}"] = _save(fig, Canvas, out / f"{stem}_{safe}.png")
    return written


def plot_cost_sweep(table: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``costs_<market>.png`` per market of a :func:`~quantgym.benchmark.costs.cost_table`:
    each agent's mean log growth per test unit (95% CI band) against the commission level; the
    reference thick, bounds dashed. ``{"costs_<market>": path}``."""
    from quantgym.benchmark.costs import COST_COLUMNS

    if not isinstance(table, pd.DataFrame) or list(table.columns) != list(COST_COLUMNS):
        raise ValueError("table must come from quantgym.benchmark.costs.cost_table")
    Figure, Canvas = _import_matplotlib()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for market, part in table.groupby("market", sort=False):
        reference = str(part["reference"].iloc[0])
        fig = Figure(figsize=(9, 5.5), layout="constrained")
        ax = fig.subplots()
        top = part[part["cost_bp"] == part["cost_bp"].min()].sort_values(
            "log_growth", ascending=False
        )
        for i, agent in enumerate(top["agent"]):
            rows = part[part["agent"] == agent].sort_values("cost_bp")
            bound = str(rows["role"].iloc[0]) != "causal"
            color = _COLORS[i % len(_COLORS)]
            second_round = i >= len(_COLORS)  # colours repeat: mark and dash them apart
            x = rows["cost_bp"].to_numpy(dtype=float)
            y = rows["log_growth"].to_numpy(dtype=float)
            ax.plot(
                x,
                y,
                marker="s" if second_round else "o",
                ms=3.5 if second_round else 3,
                color=color,
                lw=2.6 if agent == reference else 1.3,
                ls="--" if bound else "-." if second_round else "-",
                label=agent
                + (" (bound)" if bound else "")
                + (" (ref.)" if agent == reference else ""),
            )
            lo = rows["log_growth_lo"].to_numpy(dtype=float)
            hi = rows["log_growth_hi"].to_numpy(dtype=float)
            if np.isfinite(lo).all() and np.isfinite(hi).all():
                ax.fill_between(x, lo, hi, color=color, alpha=0.08, lw=0)
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.set_xlabel("commission, bp per unit traded (each side, no slippage)")
        ax.set_ylabel("mean log growth per test unit")
        ax.set_title(f"{market}: cost sensitivity (95% CI bands)", loc="left", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncols=2, loc="best")
        safe = safe_name(str(market))
        written[f"costs_{safe}"] = _save(fig, Canvas, out / f"costs_{safe}.png")
    return written


def plot_perturbation(table: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``perturbation_<market>.png`` per market of a
    :func:`~quantgym.benchmark.stress_report.perturbation_table`: score against the noise scale
    and against epsilon (one panel per probe, 95% CI bands), one line per causal agent; agents
    that read prices (flat by construction) dashed. ``{"perturbation_<market>": path}``."""
    needed = {
        "market",
        "probe",
        "agent",
        "role",
        "level",
        "score",
        "score_lo",
        "score_hi",
        "by_construction",
    }
    if not isinstance(table, pd.DataFrame) or not needed <= set(table.columns):
        raise ValueError(f"table must have the columns {sorted(needed)}")
    Figure, Canvas = _import_matplotlib()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for market, by_market in table.groupby("market", sort=False):
        probes = list(dict.fromkeys(by_market["probe"]))
        fig = Figure(figsize=(6 * len(probes), 5), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(probes)))
        for ax, probe in zip(axes, probes, strict=True):
            frame = by_market[(by_market["probe"] == probe) & (by_market["role"] == "causal")]
            for i, (agent, sub) in enumerate(frame.groupby("agent", sort=False)):
                sub = sub.sort_values("level")
                flat = bool(sub["by_construction"].any())
                color = _COLORS[i % len(_COLORS)]
                x = sub["level"].to_numpy(dtype=float)
                ax.plot(
                    x,
                    sub["score"].to_numpy(dtype=float),
                    marker="o",
                    ms=3,
                    color=color,
                    ls="--" if flat else "-",
                    lw=1.0 if flat else 1.6,
                    label=agent + (" (reads prices)" if flat else ""),
                )
                lo = sub["score_lo"].to_numpy(dtype=float)
                hi = sub["score_hi"].to_numpy(dtype=float)
                if not flat and np.isfinite(lo).all() and np.isfinite(hi).all():
                    ax.fill_between(x, lo, hi, color=color, alpha=0.1, lw=0)
            ax.axhline(0.0, color="0.3", lw=0.8)
            what = "noise std" if probe == "noise" else f"epsilon (L-inf radius; {probe})"
            ax.set_xlabel(f"{what}, in feature standard deviations")
            ax.set_ylabel("score (reference = 100, cash = 0)")
            ax.set_title(f"{market}: {probe}", loc="left", fontsize=10)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, loc="best")
        safe = safe_name(str(market))
        written[f"perturbation_{safe}"] = _save(fig, Canvas, out / f"perturbation_{safe}.png")
    return written
