"""Statistics over benchmark records: paired bootstrap CIs, IQM, probability of improvement.

Small pure functions in the spirit of rliable's ``metrics.py``, with ``scipy.stats.bootstrap``
doing the resampling (rliable's ``arch`` dependency breaks under pandas 3). The unit of
resampling is the pairing key ``(seed, unit)``: every agent of a market trades the same test
windows (or walk-forward folds) for the same seeds, so agent and reference are resampled
together (a paired bootstrap) and their shared noise cancels.

:func:`summarize` turns records into one row per ``(market, agent)``; its columns are the
contract in ``records.md`` (score = 100 x a ratio of mean log growths, never a mean of ratios).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from quantgym.checks import check_positive_int

__all__ = [
    "SUMMARY_COLUMNS",
    "UNIT_METRICS",
    "NOTE_REFERENCE_NOT_POSITIVE",
    "bootstrap_ci",
    "iqm",
    "normalized_gain",
    "normalized_score",
    "probability_of_improvement",
    "records_by_market",
    "summarize",
    "unit_table",
]

#: Per-unit metrics averaged over keys, each with a bootstrap CI.
UNIT_METRICS = ("sharpe", "sortino", "max_drawdown", "turnover", "costs")

NOTE_REFERENCE_NOT_POSITIVE = "reference log growth ≤ 0: see excess_ann"

SUMMARY_COLUMNS = (
    "market",
    "agent",
    "kind",
    "role",
    "reference",
    "n_units",
    "n_seeds",
    "log_growth",
    "log_growth_lo",
    "log_growth_hi",
    "score",
    "score_lo",
    "score_hi",
    "score_iqm",
    "score_note",
    "excess_ann",
    "excess_ann_lo",
    "excess_ann_hi",
    "p_improve_ref",
    "p_improve_ref_lo",
    "p_improve_ref_hi",
    "p_improve_rule",
    "p_improve_rule_lo",
    "p_improve_rule_hi",
    "best_rule",
    "total_return",
    "sharpe",
    "sharpe_lo",
    "sharpe_hi",
    "sortino",
    "sortino_lo",
    "sortino_hi",
    "max_drawdown",
    "max_drawdown_lo",
    "max_drawdown_hi",
    "turnover",
    "turnover_lo",
    "turnover_hi",
    "costs",
    "costs_lo",
    "costs_hi",
    "train_s",
    "rank",
)

_NAN = float("nan")


def normalized_score(x: np.ndarray, reference: np.ndarray, axis: int = -1) -> Any:
    """``100 x mean(x) / mean(reference)`` along ``axis``: the score of per-key log growths
    (the reference = 100, cash = 0), shaped as a statistic for :func:`bootstrap_ci`."""
    return 100.0 * np.mean(x, axis=axis) / np.mean(reference, axis=axis)


def normalized_gain(x: np.ndarray, base: np.ndarray, reference: np.ndarray, axis: int = -1) -> Any:
    """``100 x mean(x - base) / mean(reference)``: the paired score difference of ``x`` over
    ``base`` on the same keys, shaped as a statistic for :func:`bootstrap_ci`."""
    return 100.0 * np.mean(x - base, axis=axis) / np.mean(reference, axis=axis)


def iqm(x: Sequence[float] | np.ndarray, axis: int = -1) -> Any:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end), as rliable."""
    return stats.trim_mean(np.asarray(x, dtype=float), 0.25, axis=axis)


def probability_of_improvement(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, axis: int = -1
) -> Any:
    """``P(X > Y) + ½ P(X = Y)`` over paired samples: the fraction of keys where ``x`` beats
    ``y``, ties counting one half (rliable's definition, applied to paired per-unit values)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"x and y must be paired (same shape), got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("x is empty: nothing to compare")
    return np.mean((a > b) + 0.5 * (a == b), axis=axis)


def bootstrap_ci(
    statistic: Callable[..., Any],
    *samples: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    paired: bool = True,
) -> tuple[Any, Any]:
    """Percentile bootstrap CI ``(low, high)`` of ``statistic(*samples, axis=-1)``.

    ``statistic`` must be vectorized (accept ``axis``) and may return a vector, giving one CI
    per element. ``paired=True`` resamples the same indices in every sample (samples must then
    have equal length). Fewer than two observations give NaN bounds.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n_resamples = check_positive_int("n_resamples", n_resamples)
    if not samples:
        raise ValueError("samples is empty: give at least one sample")
    data = tuple(np.asarray(s, dtype=float) for s in samples)
    if paired and len({d.shape[-1] for d in data}) > 1:
        raise ValueError(f"paired samples need equal lengths, got {[d.shape[-1] for d in data]}")
    if min(d.shape[-1] for d in data) < 2:
        point = np.asarray(statistic(*data, axis=-1), dtype=float)
        nan = np.full(point.shape, np.nan)
        return (nan[()], nan[()]) if nan.ndim else (_NAN, _NAN)
    with warnings.catch_warnings():
        # Constant data (e.g. all-tie comparisons) is a legitimate, degenerate CI.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            data,
            statistic,
            n_resamples=n_resamples,
            confidence_level=confidence,
            paired=paired,
            vectorized=True,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
    low, high = result.confidence_interval
    if np.ndim(low) == 0:
        return float(low), float(high)
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


# --------------------------------------------------------------------------------------------
# summarize
# --------------------------------------------------------------------------------------------


def unit_table(records: Sequence[Mapping[str, Any]]) -> dict[tuple[int, int], dict[str, float]]:
    """``(seed, unit) -> unit metrics`` for one agent of one market (later records win): the
    pairing keys every comparison between agents of a market is made on."""
    table: dict[tuple[int, int], dict[str, float]] = {}
    for rec in records:
        for unit in rec.get("units") or ():
            table[(int(rec["seed"]), int(unit["unit"]))] = unit
    return table


def _column(units: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    return np.array([_num(u.get(name)) for u in units], dtype=float)


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return _NAN
    return out


def _nanmean(x: np.ndarray, axis: int = -1) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _first(records: Sequence[Mapping[str, Any]], key: str, default: Any = "") -> Any:
    for rec in records:
        value = rec.get(key)
        if value is not None:
            return value
    return default


def _best_rule(agents: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The causal ``kind == "rule"`` agent with the highest mean log growth ("" if none)."""
    best, best_g = "", -math.inf
    for name, recs in agents.items():
        if _first(recs, "kind") != "rule" or _first(recs, "role") != "causal":
            continue
        g = _column(list(unit_table(recs).values()), "log_growth")
        mean = float(np.nanmean(g)) if g.size and np.isfinite(g).any() else _NAN
        if math.isfinite(mean) and mean > best_g:
            best, best_g = name, mean
    return best


def _agent_row(
    name: str,
    recs: Sequence[Mapping[str, Any]],
    ref_table: dict[tuple[int, int], dict[str, float]] | None,
    rule_table: dict[tuple[int, int], dict[str, float]] | None,
    *,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> dict[str, Any]:
    table = unit_table(recs)
    keys = sorted(table)
    if ref_table is not None:
        keys = [k for k in keys if k in ref_table]
    if rule_table is not None:
        # Only restrict to the rule's keys when it covers them all (it normally does).
        if not all(k in rule_table for k in keys):
            rule_table = None
    units = [table[k] for k in keys]
    g = _column(units, "log_growth")
    nan_keys = np.full(len(keys), np.nan)
    g_ref = _column([ref_table[k] for k in keys], "log_growth") if ref_table else nan_keys
    g_rule = _column([rule_table[k] for k in keys], "log_growth") if rule_table else nan_keys
    extras = [_column(units, m) for m in UNIT_METRICS]
    n_bars = _column(units, "n_bars")
    bars_per_year = _num(_first(recs, "bars_per_year", _NAN))
    mean_bars = float(np.nanmean(n_bars)) if np.isfinite(n_bars).any() else _NAN
    annualize = bars_per_year / mean_bars if mean_bars > 0 else _NAN
    ref_mean = float(np.mean(g_ref)) if ref_table and len(keys) else _NAN

    # Only resample what is defined: gathering resamples dominates the cost of summarize.
    has_ref, has_rule = ref_table is not None, rule_table is not None
    samples = [g, *([g_ref] if has_ref else []), *([g_rule] if has_rule else [])]
    extra_at = {}
    for name_, values in zip(UNIT_METRICS, extras, strict=True):
        if np.isfinite(values).any():
            extra_at[name_] = (len(samples), not np.isfinite(values).all())
            samples.append(values)

    def statistic(*xs: np.ndarray, axis: int = -1) -> np.ndarray:
        a = xs[0]
        mean_a = np.mean(a, axis=axis)
        nan = np.full(np.shape(mean_a), np.nan)
        out = [mean_a, nan, nan, nan, nan]
        if has_ref:
            r = xs[1]
            mean_r = np.mean(r, axis=axis)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[1] = 100.0 * mean_a / mean_r
            out[2] = (mean_a - mean_r) * annualize
            out[3] = np.mean((a > r) + 0.5 * (a == r), axis=axis)
        if has_rule:
            ru = xs[1 + has_ref]
            out[4] = np.mean((a > ru) + 0.5 * (a == ru), axis=axis)
        for name_ in UNIT_METRICS:
            if name_ not in extra_at:
                out.append(nan)
                continue
            i, with_nan = extra_at[name_]
            out.append(_nanmean(xs[i], axis=axis) if with_nan else np.mean(xs[i], axis=axis))
        return np.stack(out)

    row: dict[str, Any] = dict.fromkeys(SUMMARY_COLUMNS, _NAN)
    row.update(
        market=_first(recs, "market"),
        agent=name,
        kind=_first(recs, "kind"),
        role=_first(recs, "role"),
        reference=_first(recs, "reference"),
        n_units=len(keys),
        n_seeds=len({k[0] for k in keys}),
        score_note="",
        best_rule="",
    )
    train = [_num((r.get("timing") or {}).get("train_s")) for r in recs]
    row["train_s"] = float(np.nanmean(train)) if np.isfinite(train).any() else _NAN
    if not keys:
        row["score_note"] = "no units shared with the reference" if ref_table else "no units"
        return row
    point = statistic(*samples)
    low, high = bootstrap_ci(
        statistic,
        *samples,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )
    names = ["log_growth", "score", "excess_ann", "p_improve_ref", "p_improve_rule", *UNIT_METRICS]
    for i, col in enumerate(names):
        row[col] = float(point[i])
        row[f"{col}_lo"] = float(np.atleast_1d(low)[i])
        row[f"{col}_hi"] = float(np.atleast_1d(high)[i])
    row["total_return"] = math.expm1(row["log_growth"])
    if ref_table is None:
        row["score"] = row["score_lo"] = row["score_hi"] = _NAN
        row["score_note"] = f"reference {row['reference']!r} has no results on this market"
    elif not ref_mean > 0:
        row["score"] = row["score_lo"] = row["score_hi"] = _NAN
        row["score_note"] = NOTE_REFERENCE_NOT_POSITIVE
    else:
        row["score_iqm"] = float(100.0 * iqm(g) / ref_mean)
    if rule_table is None:
        for col in ("p_improve_rule", "p_improve_rule_lo", "p_improve_rule_hi"):
            row[col] = _NAN
    return row


def records_by_market(
    records: Iterable[Mapping[str, Any]],
) -> dict[str, dict[str, list[Mapping[str, Any]]]]:
    """``{market: {agent: [records]}}`` of the ``status == "ok"`` records, markets and agents in
    first-seen order; a record that is not a mapping or lacks ``market``, ``agent`` or ``seed``
    raises ``ValueError`` naming its index."""
    by_market: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise ValueError(f"records[{i}] is not a mapping: {type(rec).__name__}")
        if rec.get("status") != "ok":
            continue
        for key in ("market", "agent", "seed"):
            if key not in rec:
                raise ValueError(f"records[{i}] lacks the field {key!r}")
        by_market.setdefault(str(rec["market"]), {}).setdefault(str(rec["agent"]), []).append(rec)
    return by_market


def summarize(
    records: Iterable[Mapping[str, Any]],
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per ``(market, agent)`` with scores, CIs, IQM and P(improvement) (see module doc).

    Records with ``status != "ok"`` are ignored (the report lists them). Markets keep their
    first-seen order; within a market ranked causal agents come first (by ``rank``), then the
    bounds (privileged / future agents, ``rank`` NaN) by log growth.
    """
    rows: list[dict[str, Any]] = []
    for agents in records_by_market(records).values():
        reference = str(_first([r for recs in agents.values() for r in recs], "reference"))
        ref_table = unit_table(agents[reference]) if reference in agents else None
        best_rule = _best_rule(agents)
        rule_table = unit_table(agents[best_rule]) if best_rule else None
        part = []
        for name, recs in agents.items():
            row = _agent_row(
                name,
                recs,
                ref_table,
                rule_table,
                confidence=confidence,
                n_resamples=n_resamples,
                seed=seed,
            )
            row["best_rule"] = best_rule
            part.append(row)
        frame = pd.DataFrame(part, columns=list(SUMMARY_COLUMNS))
        causal = frame["role"] == "causal"
        score_defined = causal & frame["score"].notna()
        key = "score" if score_defined.any() else "excess_ann"
        frame.loc[causal, "rank"] = frame.loc[causal, key].rank(
            ascending=False, method="min", na_option="bottom"
        )
        frame["_bound"] = ~causal
        frame = frame.sort_values(
            ["_bound", "rank", "log_growth"], ascending=[True, True, False], na_position="last"
        ).drop(columns="_bound")
        rows.extend(frame.to_dict("records"))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).reset_index(drop=True)
