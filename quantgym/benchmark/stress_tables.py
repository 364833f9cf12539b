"""Tables of a stress run (records of :mod:`quantgym.benchmark.stress`), each with 95% CIs.

Every statistic is paired over the keys ``(seed, unit)``: all agents of a market trade the same
windows under the same condition, so a bootstrap resamples keys and keeps agents together.

- :func:`condition_table`: one row per (market, agent, probe, level) — the ordinary
  :func:`~quantgym.benchmark.statistics.summarize` applied to each condition's units (score =
  100 x mean log growth / the reference's under the *same* condition).
- :func:`break_even_table`: per agent and comparator (cash, ``buy_and_hold``, the rule
  baseline), the commission at which the agent's mean log growth per window falls to the
  comparator's (linear interpolation between levels, CI by bootstrap over keys), beside the
  prediction ``gross edge / turnover``: the edge at 0 bp over the comparator divided by the
  extra units of equity the agent trades per window (each unit traded costs ``bp / 1e4``).
- :func:`worst_windows_table`: per market, the ``worst_fraction`` of keys with the lowest log
  return of the traded asset itself (the same windows for every agent); per agent its mean log
  growth there, drawdown, time to recover and how many windows ended early (bankrupt or
  liquidated), and over all windows whether any ended early.
- :func:`shift_table`: per shift variant, the score under the shift minus the base score, with a
  paired bootstrap CI.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from quantgym.benchmark.statistics import summarize
from quantgym.benchmark.stress_spec import PROBES, StressSpec

__all__ = [
    "BASE_LABEL",
    "RULE_BASELINE",
    "stress_records",
    "worst_case_conditions",
    "condition_records",
    "conditions_of",
    "condition_table",
    "break_even_table",
    "worst_windows_table",
    "shift_table",
]

#: Label of the base condition (the suite's own costs, unshifted, unperturbed inputs).
BASE_LABEL = "base"
#: The rule baseline of the break-even table (the README's rule of thumb to beat).
RULE_BASELINE = "sma_crossover"
_N_BOOT = 1000


def stress_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The ``ok`` records that carry stress conditions (``ValueError`` if there are none), each
    with the derived ``adversarial_worst`` conditions added (:func:`worst_case_conditions`)."""
    out = [r for r in records if r.get("status") == "ok" and r.get("stress")]
    if not out:
        raise ValueError("no ok stress records: run a suite with a `stress:` section first")
    return [_with_worst_case(r) for r in out]


def worst_case_conditions(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The worst case within each adversarial radius: for radius ``eps``, each unit's row is
    the one with the lowest log growth among the clean run and the attacks of radius
    ``<= eps`` (each of them lies inside the ball of radius ``eps``, so picking the worst per
    window is itself an attack of that radius, as AutoAttack picks per example). Its score is
    non-increasing in ``eps`` by construction; the ``adversarial`` rows are the single attack
    at each radius, which need not be (it aims at the agent's actions, not at the returns)."""
    attacks = sorted(
        (c for c in record["stress"]["conditions"] if c["probe"] == "adversarial"),
        key=lambda c: float(c["level"]),
    )
    worst = {int(u["unit"]): u for u in record.get("units") or ()}
    out = []
    for attack in attacks:
        for unit in attack["units"]:
            key = int(unit["unit"])
            if key not in worst or unit["log_growth"] < worst[key]["log_growth"]:
                worst[key] = unit
        out.append(
            {
                "probe": "adversarial_worst",
                "level": attack["level"],
                "label": attack["label"],
                "by_construction": bool(attack.get("by_construction")),
                "units": [worst[int(u["unit"])] for u in record.get("units") or ()],
            }
        )
    return out


def _with_worst_case(record: Mapping[str, Any]) -> Mapping[str, Any]:
    conditions = [c for c in record["stress"]["conditions"] if c["probe"] != "adversarial_worst"]
    derived = worst_case_conditions(record)
    if not derived:
        return record
    return {**record, "stress": {**record["stress"], "conditions": conditions + derived}}


def conditions_of(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, float, str]]:
    """Every ``(probe, level, label)`` present, in probe order, then level, then label (shift
    variants of different markets share levels)."""
    seen = {
        (c["probe"], float(c["level"]), str(c["label"]))
        for r in records
        for c in r["stress"]["conditions"]
    }
    return sorted(seen, key=lambda c: (PROBES.index(c[0]), c[1], c[2]))


def condition_records(
    records: Sequence[Mapping[str, Any]], probe: str, label: str
) -> list[dict[str, Any]]:
    """Copies of the records whose ``units`` are those of one condition (``probe="base"``:
    the records' own units); records without that condition are left out."""
    if probe == BASE_LABEL:
        return [dict(r) for r in records]
    out = []
    for rec in records:
        for cond in rec["stress"]["conditions"]:
            if cond["probe"] == probe and cond["label"] == label:
                out.append({**rec, "units": cond["units"]})
    return out


def condition_table(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """:func:`summarize` of the base condition and of every condition, stacked, with the
    columns ``probe``, ``level``, ``label`` and ``by_construction`` in front."""
    recs = stress_records(records)
    parts = []
    by_construction = {
        (r["market"], r["agent"], c["probe"], c["label"]): bool(c.get("by_construction"))
        for r in recs
        for c in r["stress"]["conditions"]
    }
    for probe, level, label in [(BASE_LABEL, math.nan, BASE_LABEL), *conditions_of(recs)]:
        summary = summarize(condition_records(recs, probe, label))
        summary.insert(0, "label", label)
        summary.insert(0, "level", level)
        summary.insert(0, "probe", probe)
        summary["by_construction"] = [
            by_construction.get((m, a, probe, label), False)
            for m, a in zip(summary["market"], summary["agent"], strict=True)
        ]
        parts.append(summary)
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------
# per-key arrays
# --------------------------------------------------------------------------------------------


def _keyed(records: Sequence[Mapping[str, Any]], field: str) -> dict[str, dict[tuple, float]]:
    """``agent -> {(seed, unit): units[field]}`` of one market's records."""
    out: dict[str, dict[tuple, float]] = {}
    for rec in records:
        table = out.setdefault(str(rec["agent"]), {})
        for unit in rec.get("units") or ():
            value = unit.get(field)
            table[(int(rec["seed"]), int(unit["unit"]))] = (
                math.nan if value is None else float(value)
            )
    return out


def _by_market(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        out.setdefault(str(rec["market"]), []).append(rec)
    return out


def _boot_index(n: int, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def _ci(values: np.ndarray) -> tuple[float, float]:
    """95% percentile interval; resamples with no crossing (+-inf) stay at their end."""
    if values.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(values, [2.5, 97.5], method="nearest")
    return float(lo), float(hi)


# --------------------------------------------------------------------------------------------
# break-even costs
# --------------------------------------------------------------------------------------------


def _crossing(levels: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """First level at which ``diff`` (levels on the last axis) falls to 0, linearly
    interpolated; ``-inf`` when already <= 0 at the first level, ``+inf`` when never."""
    diff = np.atleast_2d(diff)
    out = np.full(diff.shape[0], np.inf)
    below0 = diff[:, 0] <= 0
    out[below0] = -np.inf
    for i in np.flatnonzero(~below0):
        d = diff[i]
        j = np.flatnonzero(d <= 0)
        if j.size:
            k = int(j[0])
            x0, x1, y0, y1 = levels[k - 1], levels[k], d[k - 1], d[k]
            out[i] = x0 + (x1 - x0) * y0 / (y0 - y1)
    return out


def break_even_table(
    records: Iterable[Mapping[str, Any]],
    *,
    comparators: Sequence[str] = ("cash", "buy_and_hold", RULE_BASELINE),
    n_boot: int = _N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """Per market, causal agent and comparator: the break-even commission (bp per unit traded)
    with its bootstrap CI, the predicted break-even ``1e4 x edge_0bp / extra turnover`` and
    whether the prediction lies in the CI. ``-inf``: below the comparator already at the first
    level; ``+inf``: still above it at the last level."""
    recs = stress_records(records)
    rows = []
    for market, part in _by_market(recs).items():
        cost_labels = sorted(
            {
                (float(c["level"]), c["label"])
                for r in part
                for c in r["stress"]["conditions"]
                if c["probe"] == "cost"
            }
        )
        if len(cost_labels) < 2:
            continue
        levels = np.array([lv for lv, _ in cost_labels])
        growth = [
            _keyed(condition_records(part, "cost", lb), "log_growth") for _, lb in cost_labels
        ]
        turnover0 = _keyed(condition_records(part, "cost", cost_labels[0][1]), "turnover")
        roles = {str(r["agent"]): r.get("role", "causal") for r in part}
        for agent in sorted(growth[0]):
            if roles.get(agent) != "causal":
                continue
            for comp in comparators:
                if comp != "cash" and (comp == agent or comp not in growth[0]):
                    continue
                keys = sorted(
                    k
                    for k in growth[0][agent]
                    if all(k in g.get(agent, {}) for g in growth)
                    and (comp == "cash" or all(k in g.get(comp, {}) for g in growth))
                )
                if len(keys) < 2:
                    continue
                diff = np.array(
                    [
                        [g[agent][k] - (0.0 if comp == "cash" else g[comp][k]) for g in growth]
                        for k in keys
                    ]
                )  # (keys, levels)
                point = float(_crossing(levels, diff.mean(axis=0))[0])
                idx = _boot_index(len(keys), n_boot, seed)
                lo, hi = _ci(_crossing(levels, diff[idx].mean(axis=1)))
                t_agent = np.array([turnover0[agent][k] for k in keys])
                t_comp = (
                    np.zeros(len(keys))
                    if comp == "cash"
                    else np.array([turnover0[comp][k] for k in keys])
                )
                extra = float(np.mean(t_agent - t_comp))
                edge0 = float(diff[:, 0].mean())
                predicted = 1e4 * edge0 / extra if extra > 0 else math.nan
                # An open end of the CI (no crossing within the levels) covers everything
                # beyond the last level (or before the first).
                above = lo <= predicted or (lo == math.inf and predicted >= levels[-1])
                below = predicted <= hi or (hi == -math.inf and predicted <= levels[0])
                rows.append(
                    {
                        "market": market,
                        "agent": agent,
                        "comparator": comp,
                        "n_units": len(keys),
                        "edge_0bp": edge0,
                        "extra_turnover": extra,
                        "break_even_bp": point,
                        "break_even_lo": lo,
                        "break_even_hi": hi,
                        "predicted_bp": predicted,
                        "predicted_in_ci": bool(math.isfinite(predicted) and above and below),
                    }
                )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# worst windows, crashes
# --------------------------------------------------------------------------------------------


def worst_windows_table(
    records: Iterable[Mapping[str, Any]], *, worst_fraction: float | None = None
) -> pd.DataFrame:
    """Per market and agent, over the worst ``worst_fraction`` of keys (lowest log return of the
    traded asset over the window; default: the suite's ``stress.worst_fraction``): mean log
    growth, score against the reference on those windows, mean and worst max drawdown, median
    bars to recover (recovered windows), the share recovered, windows ended early there and
    over all windows."""
    recs = stress_records(records)
    rows = []
    for market, part in _by_market(recs).items():
        spec = StressSpec.from_mapping(part[0]["cell"]["stress"])
        fraction = spec.worst_fraction if worst_fraction is None else float(worst_fraction)
        asset = _keyed(part, "market_log_return")
        any_agent = next(iter(asset.values()))
        keys_all = sorted(any_agent)
        n_worst = max(1, math.ceil(fraction * len(keys_all) - 1e-9))
        worst = sorted(keys_all, key=lambda k: any_agent[k])[:n_worst]
        growth = _keyed(part, "log_growth")
        fields = {
            f: _keyed(part, f)
            for f in ("max_drawdown", "recovery_bars", "recovered", "ended_early")
        }
        reference = str(part[0].get("reference", ""))
        ref_mean = (
            float(np.mean([growth[reference][k] for k in worst]))
            if reference in growth and all(k in growth[reference] for k in worst)
            else math.nan
        )
        roles = {str(r["agent"]): r.get("role", "causal") for r in part}
        for agent in growth:
            keys = [k for k in worst if k in growth[agent]]
            if not keys:
                continue
            g = np.array([growth[agent][k] for k in keys])
            dd = np.array([fields["max_drawdown"][agent][k] for k in keys])
            rec_bars = np.array([fields["recovery_bars"][agent][k] for k in keys])
            recovered = np.array([fields["recovered"][agent][k] for k in keys])
            ended_all = np.array(list(fields["ended_early"][agent].values()))
            ended = np.array([fields["ended_early"][agent][k] for k in keys])
            rows.append(
                {
                    "market": market,
                    "agent": agent,
                    "role": roles.get(agent, "causal"),
                    "reference": reference,
                    "n_worst": len(keys),
                    "asset_log_return": float(np.mean([any_agent[k] for k in keys])),
                    "log_growth": float(g.mean()),
                    "score": 100.0 * float(g.mean()) / ref_mean if ref_mean > 0 else math.nan,
                    "max_drawdown_mean": float(np.mean(dd)),
                    "max_drawdown_worst": float(np.max(dd)),
                    "recovery_bars_median": float(np.median(rec_bars[recovered > 0]))
                    if (recovered > 0).any()
                    else math.nan,
                    "recovered_share": float(recovered.mean()),
                    "ended_early_worst": int(ended.sum()),
                    "ended_early_all": int(ended_all.sum()),
                    "n_all": int(ended_all.size),
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# regime shift
# --------------------------------------------------------------------------------------------


def shift_table(
    records: Iterable[Mapping[str, Any]], *, n_boot: int = _N_BOOT, seed: int = 0
) -> pd.DataFrame:
    """Per market, shift variant and agent: the base score, the shifted score (each against the
    reference under the same condition) and the drop ``shifted - base`` with a paired bootstrap
    CI over keys (base and shifted resampled together); NaN where the reference's mean log
    growth is not positive (no score is defined there)."""
    recs = stress_records(records)
    rows = []
    for market, part in _by_market(recs).items():
        reference = str(part[0].get("reference", ""))
        base = _keyed(part, "log_growth")
        variants = [c for c in conditions_of(part) if c[0] == "shift"]
        for _, _, label in variants:
            shifted = _keyed(condition_records(part, "shift", label), "log_growth")
            if reference not in shifted or reference not in base:
                continue
            roles = {str(r["agent"]): r.get("role", "causal") for r in part}
            for agent in shifted:
                keys = sorted(
                    k
                    for k in shifted[agent]
                    if k in base.get(agent, {}) and k in base[reference] and k in shifted[reference]
                )
                if len(keys) < 2:
                    continue
                arr = np.array(
                    [
                        [
                            base[agent][k],
                            base[reference][k],
                            shifted[agent][k],
                            shifted[reference][k],
                        ]
                        for k in keys
                    ]
                )
                idx = _boot_index(len(keys), n_boot, seed)

                def scores(x: np.ndarray) -> np.ndarray:
                    m = x.mean(axis=-2)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        b = np.where(m[..., 1] > 0, 100.0 * m[..., 0] / m[..., 1], np.nan)
                        s = np.where(m[..., 3] > 0, 100.0 * m[..., 2] / m[..., 3], np.nan)
                    return np.stack([b, s, s - b], axis=-1)

                point = scores(arr)
                boot = scores(arr[idx])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                    lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0)
                lo[~np.isfinite(point)] = hi[~np.isfinite(point)] = math.nan
                rows.append(
                    {
                        "market": market,
                        "shift": label,
                        "agent": agent,
                        "role": roles.get(agent, "causal"),
                        "n_units": len(keys),
                        "base_score": float(point[0]),
                        "shifted_score": float(point[1]),
                        "shifted_lo": float(lo[1]),
                        "shifted_hi": float(hi[1]),
                        "score_drop": float(point[2]),
                        "score_drop_lo": float(lo[2]),
                        "score_drop_hi": float(hi[2]),
                    }
                )
    return pd.DataFrame(rows)
