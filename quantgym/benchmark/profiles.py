"""Performance profiles and the probability-of-beating matrix of one market (rliable style).

The table of :func:`~quantgym.benchmark.statistics.summarize` gives one number per agent; these
show the whole distribution over the test units (windows or walk-forward folds, for every seed).

**Per-unit normalized score.** On the pairing key ``k = (seed, unit)``::

    score_k = 100 x g_k / mean(g_ref)

with ``g_k`` the agent's log growth on ``k`` and ``mean(g_ref)`` the reference agent's mean log
growth over the keys the agent shares with it (cash = 0, the reference's mean = 100). The mean of
an agent's ``score_k`` is therefore exactly the table's score (a ratio of means). Dividing by the
reference's *own* log growth on ``k`` is avoided on purpose: one window where the reference
happens to grow by ~0 would send that ratio to infinity. The score is undefined (NaN) where the
reference's mean log growth is ≤ 0, as in the table.

**Performance profile** (Agarwal et al. 2021, "Deep RL at the edge of the statistical
precipice"): for each ``tau`` the fraction of units with ``score_k > tau`` (strictly; a unit
exactly at ``tau`` does not count). Its 95% band is a percentile bootstrap over the keys: one
market is one stratum of rliable's stratified bootstrap, and the reference is resampled with the
agent (paired), so its mean is recomputed on every resample and the band includes the
normalizer's own uncertainty, as the table's score CI does.

**P(beat)**: ``P(g_x > g_y) + ½ P(g_x = g_y)`` over the keys that ``x`` and ``y`` share
(:func:`~quantgym.benchmark.statistics.probability_of_improvement`); so ``M[x, y] + M[y, x] = 1``
and the diagonal is 0.5. Bounds (role other than ``"causal"``) are left out unless asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from quantgym.benchmark.statistics import (
    bootstrap_ci,
    probability_of_improvement,
    records_by_market,
    unit_table,
)
from quantgym.checks import check_positive_int

__all__ = [
    "UNIT_SCORE_COLUMNS",
    "PROFILE_COLUMNS",
    "BEAT_COLUMNS",
    "unit_scores",
    "performance_profile",
    "beat_matrix",
    "beat_table",
]

UNIT_SCORE_COLUMNS = ("agent", "role", "seed", "unit", "log_growth", "score")
PROFILE_COLUMNS = ("agent", "role", "tau", "fraction", "lo", "hi", "n_units")
BEAT_COLUMNS = ("market", "agent", "opponent", "p_beat", "lo", "hi", "n_units")

_N_TAUS = 101


def _market(
    records: Iterable[Mapping[str, Any]], market: str
) -> dict[str, list[Mapping[str, Any]]]:
    by_market = records_by_market(records)
    if market not in by_market:
        known = ", ".join(repr(m) for m in by_market) or "none"
        raise ValueError(f"unknown market {market!r}: the ok records cover {known}")
    return by_market[market]


def _field(recs: Sequence[Mapping[str, Any]], key: str) -> str:
    """The first non-empty ``key`` of an agent's records (``""`` if none)."""
    return next((str(r[key]) for r in recs if r.get(key)), "")


def _growth(recs: Sequence[Mapping[str, Any]]) -> dict[tuple[int, int], float]:
    return {k: float(u["log_growth"]) for k, u in unit_table(recs).items()}


def _ordered(agents: Mapping[str, Sequence[Mapping[str, Any]]], include_bounds: bool) -> list[str]:
    """Causal agents by mean log growth (best first; the table's rank order), then bounds."""

    def mean(name: str) -> float:
        g = list(_growth(agents[name]).values())
        return float(np.mean(g)) if g else -np.inf

    causal = [a for a in agents if _field(agents[a], "role") == "causal"]
    bounds = [a for a in agents if a not in causal] if include_bounds else []
    return sorted(causal, key=mean, reverse=True) + sorted(bounds, key=mean, reverse=True)


def _paired(
    agents: Mapping[str, Sequence[Mapping[str, Any]]], reference: str
) -> dict[str, tuple[list[tuple[int, int]], np.ndarray, np.ndarray]]:
    """``agent -> (keys shared with the reference, g, g_ref)`` for every agent with such keys."""
    if not reference:
        raise ValueError("the records name no reference agent (their 'reference' field is empty)")
    if reference not in agents:
        raise ValueError(
            f"the reference {reference!r} has no ok records on this market: the normalized "
            f"score needs its log growth (agents: {', '.join(agents)})"
        )
    ref = _growth(agents[reference])
    out = {}
    for name, recs in agents.items():
        own = _growth(recs)
        keys = sorted(k for k in own if k in ref)
        if keys:
            g = np.array([own[k] for k in keys], dtype=float)
            out[name] = (keys, g, np.array([ref[k] for k in keys], dtype=float))
    return out


def unit_scores(records: Iterable[Mapping[str, Any]], market: str) -> pd.DataFrame:
    """One row per ``(agent, seed, unit)`` of ``market`` with its log growth and normalized score
    ``100 x g / mean(g_ref)`` (see the module doc; NaN where the reference's mean is ≤ 0).

    Only the keys an agent shares with the reference appear. An unknown market or a reference
    without records raises ``ValueError``.
    """
    agents = _market(records, market)
    reference = _field([r for recs in agents.values() for r in recs], "reference")
    rows = []
    for name, (keys, g, g_ref) in _paired(agents, reference).items():
        ref_mean = float(np.mean(g_ref))
        scores = 100.0 * g / ref_mean if ref_mean > 0 else np.full(g.shape, np.nan)
        role = _field(agents[name], "role")
        rows += [
            (name, role, seed, unit, float(gk), float(sk))
            for (seed, unit), gk, sk in zip(keys, g, scores, strict=True)
        ]
    return pd.DataFrame(rows, columns=list(UNIT_SCORE_COLUMNS))


def _default_taus(scores: np.ndarray) -> np.ndarray:
    """101 points from a little below the lowest score to a little above the highest, so every
    curve starts at 1 and ends at 0."""
    lo, hi = float(np.min(scores)), float(np.max(scores))
    pad = 0.02 * (hi - lo) if hi > lo else max(1.0, 0.02 * abs(hi))
    return np.linspace(lo - pad, hi + pad, _N_TAUS)


def performance_profile(
    records: Iterable[Mapping[str, Any]],
    market: str,
    taus: Sequence[float] | np.ndarray | None = None,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """The score distribution of every agent of ``market``: per ``tau``, the fraction of its
    ``(seed, unit)`` keys whose normalized score is ``> tau``, with a paired percentile-bootstrap
    band (``n_boot`` resamples of the keys, the reference resampled with the agent; module doc).

    ``taus`` defaults to 101 points spanning the causal agents' scores (a hindsight oracle would
    stretch the grid past everything else); bounds are computed on the same grid. Columns
    :data:`PROFILE_COLUMNS`; causal agents first (best mean first), then bounds. Fewer than two
    keys give NaN bands. Raises ``ValueError`` for an unknown market, a missing reference or a
    reference whose mean log growth is ≤ 0 (the score is undefined there).
    """
    n_boot = check_positive_int("n_boot", n_boot)
    agents = _market(records, market)
    reference = _field([r for recs in agents.values() for r in recs], "reference")
    paired = _paired(agents, reference)
    defined = {a: p for a, p in paired.items() if np.mean(p[2]) > 0}
    if not defined:
        raise ValueError(
            f"normalized scores are undefined on {market!r}: the reference {reference!r} has a "
            "mean log growth ≤ 0 (compare agents by P(beat) or excess log growth instead)"
        )
    order = [a for a in _ordered(agents, include_bounds=True) if a in defined]
    if taus is None:
        causal = [a for a in order if _field(agents[a], "role") == "causal"] or order
        grid = _default_taus(
            np.concatenate([100.0 * defined[a][1] / np.mean(defined[a][2]) for a in causal])
        )
    else:
        grid = np.asarray(taus, dtype=float).ravel()
        if grid.size == 0 or not np.isfinite(grid).all():
            raise ValueError("taus must be a non-empty sequence of finite numbers")

    def fraction_above(g: np.ndarray, g_ref: np.ndarray, axis: int = -1) -> np.ndarray:
        score = 100.0 * g / np.mean(g_ref, axis=axis, keepdims=True)
        # One tau at a time: a (taus, resamples, keys) array would not fit for long grids.
        return np.stack([np.mean(score > tau, axis=axis) for tau in grid])

    parts = []
    for name in order:
        _, g, g_ref = defined[name]
        point = fraction_above(g, g_ref)
        lo, hi = bootstrap_ci(
            fraction_above, g, g_ref, confidence=confidence, n_resamples=n_boot, seed=seed
        )
        parts.append(
            pd.DataFrame(
                {
                    "agent": name,
                    "role": _field(agents[name], "role"),
                    "tau": grid,
                    "fraction": point,
                    "lo": np.broadcast_to(lo, grid.shape),
                    "hi": np.broadcast_to(hi, grid.shape),
                    "n_units": len(g),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)[list(PROFILE_COLUMNS)]


def _pairs(
    agents: Mapping[str, Sequence[Mapping[str, Any]]], names: Sequence[str]
) -> Iterable[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(x, y, g_x, g_y)`` on the keys ``x`` and ``y`` share, for every ``x`` before ``y``."""
    growth = {a: _growth(agents[a]) for a in names}
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            keys = sorted(k for k in growth[x] if k in growth[y])
            gx = np.array([growth[x][k] for k in keys], dtype=float)
            gy = np.array([growth[y][k] for k in keys], dtype=float)
            yield x, y, gx, gy


def beat_matrix(
    records: Iterable[Mapping[str, Any]], market: str, *, include_bounds: bool = False
) -> pd.DataFrame:
    """``M[x, y] = P(x's log growth > y's) + ½ P(equal)`` over the ``(seed, unit)`` keys they
    share on ``market``: a square frame (rows ``agent``, columns ``opponent``), causal agents
    best first; ``M + M.T = 1``, diagonal 0.5, NaN for a pair without shared keys. Bounds only
    with ``include_bounds``. CIs: :func:`beat_table`. Unknown market: ``ValueError``."""
    agents = _market(records, market)
    names = _ordered(agents, include_bounds)
    matrix = pd.DataFrame(np.nan, index=pd.Index(names, name="agent"), columns=names)
    matrix.columns.name = "opponent"
    for name in names:
        matrix.loc[name, name] = 0.5
    for x, y, gx, gy in _pairs(agents, names):
        if gx.size:
            p = float(probability_of_improvement(gx, gy))
            matrix.loc[x, y], matrix.loc[y, x] = p, 1.0 - p
    return matrix


def beat_table(
    records: Iterable[Mapping[str, Any]],
    market: str,
    *,
    include_bounds: bool = False,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`beat_matrix` in long form with paired percentile-bootstrap CIs: one row per
    ordered pair ``(agent, opponent)``, ``agent != opponent``, columns :data:`BEAT_COLUMNS`.
    The row ``(y, x)`` is the complement of ``(x, y)`` on the same resamples (``lo`` of one is
    ``1 - hi`` of the other). Fewer than two shared keys give NaN bounds."""
    n_boot = check_positive_int("n_boot", n_boot)
    agents = _market(records, market)
    names = _ordered(agents, include_bounds)
    found: dict[tuple[str, str], tuple[float, float, float, int]] = {}
    for x, y, gx, gy in _pairs(agents, names):
        if not gx.size:
            p = lo = hi = np.nan
        else:
            p = float(probability_of_improvement(gx, gy))
            lo, hi = bootstrap_ci(
                probability_of_improvement,
                gx,
                gy,
                confidence=confidence,
                n_resamples=n_boot,
                seed=seed,
            )
        found[(x, y)] = (p, lo, hi, gx.size)
        found[(y, x)] = (1.0 - p, 1.0 - hi, 1.0 - lo, gx.size)
    rows = [
        (market, x, y, *found[(x, y)]) for x in names for y in names if x != y and (x, y) in found
    ]
    return pd.DataFrame(rows, columns=list(BEAT_COLUMNS))
