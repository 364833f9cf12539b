"""The ``crash`` synthetic market: a drifting diffusion with compound-Poisson crashes at the open.

Model (one bar is the time unit). A hidden Markov chain of crash-intensity regimes ``s_t``
(default ``calm`` and ``stressed``, lasting ``mean_durations=(400, 60)`` bars on average)
sets the crash rate: ``N_t ~ Poisson(crash_rates[s_t])`` crashes arrive overnight before bar
t (``crash_rates=(0.002, 0.04)`` per bar), each a log jump ``Y ~ N(jump_mean, jump_vol**2)``
(``-0.04``, ``0.02``). The close-to-close log return is

    r_t = drift + vol * z_t + J_t,    J_t = Y_1 + ... + Y_{N_t}

(``drift=0.0004``, ``vol=0.01``) and the jump sits in the **gap**: ``open_t = close_{t-1} *
exp(g_t + J_t)`` with the usual small gap noise ``g_t ~ N(0, gap_scale * vol)``, so only a
position held overnight takes a crash; the intraday return ``drift + vol * z_t - g_t`` does
not depend on the regime. ``market.regime`` is the regime path, ``market.jump_counts`` and
``market.jump_sizes`` the crashes. Volume is independent noise (it carries no information).

The stationary crash rate is about 0.007 per bar (7 crashes per 1000 bars) and the expected
log return about ``0.0004 - 0.007 * 0.04 = 1.2e-4`` per bar; in the stressed regime it is
``0.0004 - 0.04 * 0.04 = -1.2e-3``: staying long through a stressed spell loses.

Best causal policy. The crashes seen so far reveal the regime: :func:`crash_forward_filter`
is the exact HMM forward filter on the bars' (gap, intraday) log returns, whose joint density
given the regime is a Poisson mixture of bivariate normals (the gap noise enters both with
opposite signs); highs, lows and volume carry no further information, so this is the Bayes
posterior given the full OHLCV history. In ``TradingEnv`` a target decided at the close of bar
t is held from ``open_{t+1}`` to ``open_{t+2}``: it earns the intraday return of bar t + 1 and
takes the gap (and any crash) at the open of bar t + 2, whose regime is predicted by
``posterior_t @ transition @ transition``. :func:`crash_expected_growth` gives the expected
log growth ``E[log(1 + p (e^x - 1))]`` of each position ``p`` over that holding period (exact
for ``p`` in {0, 1}; for other ``p`` the position is taken as a constant fraction of equity),
and ``quantgym.policies.CrashExpert`` holds the position that maximises it net of a no-trade
band (Kelly over the position grid): long in calm spells, flat (or short) once crashes say
the market is stressed.

The filter needs ``gap_scale > 0`` (with no gap noise the gap is exactly 0 on a crash-free
night and the density degenerates); the generator checks it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from quantgym.checks import check_non_negative, check_positive
from quantgym.envs.synthetic_base import (
    as_distribution,
    as_float,
    as_transition,
    as_vector,
    forward_filter,
    sample_markov_chain,
    stationary_distribution,
    transition_from_durations,
)

__all__ = [
    "CRASH_DEFAULTS",
    "DEFAULT_CRASH_BAND",
    "crash_expected_growth",
    "crash_expected_return",
    "crash_forward_filter",
    "crash_growth_table",
    "resolve_crash_params",
    "simulate_crash",
]

#: No-trade band (expected log growth per bar and unit of position change) of ``CrashExpert``
#: at 15 bp per unit traded; measured by ``benchmarks/market_calibration.py`` on tuning seeds.
DEFAULT_CRASH_BAND = 0.000075

#: Parameters of the ``crash`` kind and their defaults (``transition`` and
#: ``initial_distribution`` default to the ones ``mean_durations`` implies).
CRASH_DEFAULTS: dict[str, Any] = {
    "drift": 0.0004,
    "vol": 0.01,
    "crash_rates": (0.002, 0.04),
    "mean_durations": (400.0, 60.0),
    "transition": None,
    "jump_mean": -0.04,
    "jump_vol": 0.02,
    "regime_names": None,
    "initial_distribution": None,
}
_DEFAULT_NAMES = {1: ("steady",), 2: ("calm", "stressed")}
#: Largest crash rate per bar (a rate of 5 means five crashes a night on average).
_MAX_RATE = 5.0
#: Poisson tail mass left out of the mixtures (the count is truncated where it falls below).
_POISSON_TAIL = 1e-16
_HERMITE_NODES = 64


def resolve_crash_params(user: dict[str, Any], gap_scale: float) -> dict[str, Any]:
    """The checked ``crash`` parameters (defaults for the ones ``user`` does not give).

    Raises:
        ValueError: naming the parameter: ``crash_rates`` in [0, 5] (one per regime),
            ``mean_durations >= 1`` bar (one per regime, or one number) or a ``transition``
            matrix (not both), ``vol > 0``, ``jump_vol >= 0``, ``gap_scale > 0``, names and
            ``initial_distribution`` of the right size.
    """
    given = {**CRASH_DEFAULTS, **{k: v for k, v in user.items() if k in CRASH_DEFAULTS}}
    if gap_scale <= 0:
        raise ValueError(f"gap_scale must be > 0 on the crash market, got {gap_scale!r}")
    rates = as_vector(given["crash_rates"], "crash_rates")
    if np.any(rates < 0) or np.any(rates > _MAX_RATE):
        raise ValueError(f"crash_rates must be in [0, {_MAX_RATE:g}] per bar, got {rates.tolist()}")
    k = rates.size
    transition, durations = _regime_chain(given, "mean_durations" in user, k)
    names = given["regime_names"]
    if names is None:
        names = _DEFAULT_NAMES.get(k, tuple(f"regime_{i}" for i in range(k)))
    if (
        not isinstance(names, list | tuple)
        or len(names) != k
        or not all(isinstance(n, str) for n in names)
    ):
        raise ValueError(f"regime_names must be {k} strings (one per crash rate), got {names!r}")
    if len(set(names)) != k:
        raise ValueError(f"regime_names must be unique, got {names!r}")
    if given["initial_distribution"] is not None:
        initial = as_distribution(given["initial_distribution"], "initial_distribution", k)
    else:
        initial = stationary_distribution(transition)
    return {
        "drift": as_float(given["drift"], "drift"),
        "vol": check_positive("vol", given["vol"]),
        "crash_rates": rates.tolist(),
        "mean_durations": None if durations is None or k == 1 else durations.tolist(),
        "transition": transition.tolist(),
        "jump_mean": as_float(given["jump_mean"], "jump_mean"),
        "jump_vol": check_non_negative("jump_vol", given["jump_vol"]),
        "regime_names": [str(n) for n in names],
        "initial_distribution": initial.tolist(),
    }


def _regime_chain(
    given: dict[str, Any], durations_given: bool, k: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(transition, mean_durations)`` of the ``k`` crash regimes: a given ``transition``
    matrix, or the geometric chain of ``mean_durations`` (one number for all, or one each)."""
    if given["transition"] is not None:
        if durations_given and given["mean_durations"] is not None:
            raise ValueError("give either mean_durations or transition, not both")
        return as_transition(given["transition"], k, min_states=1), None
    raw = given["mean_durations"]
    if not durations_given and k != len(raw):
        if k > 1:
            raise ValueError(
                f"mean_durations (or transition) must be given for {k} crash rates; "
                f"the defaults are for {len(raw)}"
            )
        raw = 1.0  # one regime never ends: its duration is moot
    if np.ndim(raw) == 0:
        raw = [raw] * k
    durations = as_vector(raw, "mean_durations")
    if durations.size != k:
        raise ValueError(
            f"mean_durations must have {k} entries (one per crash rate), got {durations.size}"
        )
    if np.any(durations < 1.0):
        raise ValueError(f"mean_durations must be >= 1 bar, got {durations.tolist()}")
    return transition_from_durations(durations), durations


def simulate_crash(
    rng: np.random.Generator, n: int, params: dict[str, Any]
) -> dict[str, np.ndarray]:
    """One path of ``n`` bars: ``regime``, ``jump_counts``, ``jumps`` (summed log jump per bar),
    ``log_returns`` (jumps included), ``bar_vol`` and ``eps`` (an independent normal that
    drives volume)."""
    transition = np.asarray(params["transition"])
    regime = sample_markov_chain(rng, n, transition, np.asarray(params["initial_distribution"]))
    counts = rng.poisson(np.asarray(params["crash_rates"])[regime])
    z_jump = rng.standard_normal(n)
    z = rng.standard_normal(n)
    jumps = counts * params["jump_mean"] + np.sqrt(counts) * params["jump_vol"] * z_jump
    return {
        "regime": regime,
        "jump_counts": counts.astype(np.int64),
        "jumps": jumps,
        "log_returns": params["drift"] + params["vol"] * z + jumps,
        "bar_vol": np.full(n, params["vol"]),
        "eps": rng.standard_normal(n),
    }


# ----------------------------------------------------------------------------- exact filter


def _checked(params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict of crash parameters, got {type(params).__name__}")
    if params.get("kind", "crash") != "crash":
        raise ValueError(f"params describe a {params['kind']!r} market, not a 'crash' market")
    gap_scale = as_float(params.get("gap_scale", 0.1), "gap_scale", nonneg=True)
    user = {k: v for k, v in params.items() if k in CRASH_DEFAULTS}
    if user.get("transition") is not None:
        user.pop("mean_durations", None)  # resolved params carry both; the matrix wins
    out = resolve_crash_params(user, gap_scale)
    out["gap_scale"] = gap_scale
    return out


def _max_count(rates: np.ndarray) -> int:
    """Largest crash count per bar kept in the mixtures: the Poisson tail beyond it has mass
    below 1e-16 (past the mean each term shrinks by ``rate / m < 1``, so the tail is at most
    ``pmf(m) * rate / (m + 1 - rate)``)."""
    lam = float(rates.max())
    m, pmf = 0, math.exp(-lam)
    while m < lam or pmf * lam / (m + 1.0 - lam) > _POISSON_TAIL:
        m += 1
        pmf *= lam / m
    return max(m, 1)


def _log_poisson(rates: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``log P(N = m)`` for each rate (rows) and count (columns); ``-inf`` for m > 0 at rate 0."""
    log_factorial = np.array([math.lgamma(m + 1.0) for m in counts])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rate = np.log(rates)[:, None]
        out = counts[None, :] * log_rate - rates[:, None] - log_factorial[None, :]
    out[:, 0] = -rates  # 0 * log(0) is 0 here
    return out


def crash_forward_filter(open_: np.ndarray, close: np.ndarray, params: dict) -> np.ndarray:
    """Causal posterior ``P(regime_t | bars <= t)`` of a ``crash`` market, shape (n, K).

    Bar t is seen through its gap ``log(open_t / close_{t-1})`` (``close_{-1}`` is
    ``params["initial_price"]``) and intraday return ``log(close_t / open_t)``; given the regime
    and m crashes they are jointly normal with means ``(m * jump_mean, drift)``, variances
    ``(s_g**2 + m * jump_vol**2, vol**2 + s_g**2)`` and covariance ``-s_g**2``
    (``s_g = gap_scale * vol``), and m is Poisson. Row t depends on bars ``<= t`` only.
    """
    p = _checked(params)
    open_ = np.asarray(open_, dtype=np.float64)
    close = np.asarray(close, dtype=np.float64)
    if open_.ndim != 1 or open_.shape != close.shape:
        raise ValueError(
            f"open_ and close must be 1-D of one length, got {open_.shape}, {close.shape}"
        )
    before = math.log(as_float(params.get("initial_price", 100.0), "initial_price", positive=True))
    log_open, log_close = np.log(open_), np.log(close)
    gap = log_open - np.concatenate(([before], log_close[:-1]))
    intraday = log_close - log_open - p["drift"]
    rates = np.asarray(p["crash_rates"])
    counts = np.arange(_max_count(rates) + 1, dtype=np.float64)
    s2_gap = (p["gap_scale"] * p["vol"]) ** 2
    var_gap = s2_gap + counts * p["jump_vol"] ** 2  # (M,)
    var_intraday = p["vol"] ** 2 + s2_gap
    det = var_gap * var_intraday - s2_gap**2
    x = gap[:, None] - counts[None, :] * p["jump_mean"]  # (n, M)
    y = intraday[:, None]
    quadratic = (var_intraday * x * x + 2.0 * s2_gap * x * y + var_gap * y * y) / det
    log_density = -0.5 * (quadratic + np.log(det))  # (n, M), up to a constant
    log_joint = log_density[:, None, :] + _log_poisson(rates, counts)[None, :, :]  # (n, K, M)
    top = log_joint.max(axis=2, keepdims=True)
    log_emission = (top + np.log(np.exp(log_joint - top).sum(axis=2, keepdims=True)))[:, :, 0]
    return forward_filter(
        log_emission, np.asarray(p["transition"]), np.asarray(p["initial_distribution"])
    )


def _holding_regime(posterior: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """``P(regime at bar t + 2 | bars <= t)``: the regime of the gap a decision at t takes."""
    post = np.asarray(posterior, dtype=np.float64)
    if post.ndim != 2 or post.shape[1] != transition.shape[0]:
        raise ValueError(
            f"posterior must have shape (n, {transition.shape[0]}), got shape {post.shape}"
        )
    return post @ (transition @ transition)


def crash_expected_return(posterior: np.ndarray, params: dict) -> np.ndarray:
    """``E[x_t]`` (n,): the expected log return of holding from ``open_{t+1}`` to ``open_{t+2}``
    given bars ``<= t``, ``drift + P(regime_{t+2}) @ crash_rates * jump_mean``. Pass one-hot rows
    of the true regime to get the oracle's forecast."""
    p = _checked(params)
    holding = _holding_regime(posterior, np.asarray(p["transition"]))
    return p["drift"] + holding @ (np.asarray(p["crash_rates"]) * p["jump_mean"])


def crash_growth_table(params: dict, positions: np.ndarray) -> np.ndarray:
    """``G[k, j] = E[log(1 + positions[j] * (e^x - 1)) | regime of the gap = k]``, shape (K, P).

    ``x = drift + vol * z - g + g' + J`` is the log return from one open to the next (the
    intraday move, the next gap noise and the crashes at that open), a Poisson mixture of
    normals; each normal is integrated by 64-point Gauss-Hermite quadrature (exact for
    positions 0 and 1, where the growth is 0 and ``E[x]``). A ruinous outcome (``1 + p (e^x -
    1) <= 0``) counts as ``log(1e-300)``.
    """
    p = _checked(params)
    grid = np.asarray(positions, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError(
            f"positions must be a non-empty sequence of finite numbers, got {positions!r}"
        )
    rates = np.asarray(p["crash_rates"])
    counts = np.arange(_max_count(rates) + 1, dtype=np.float64)
    nodes, weights = np.polynomial.hermite_e.hermegauss(_HERMITE_NODES)
    weights = weights / weights.sum()
    s2_gap = (p["gap_scale"] * p["vol"]) ** 2
    mean = p["drift"] + counts * p["jump_mean"]  # (M,)
    std = np.sqrt(p["vol"] ** 2 + 2.0 * s2_gap + counts * p["jump_vol"] ** 2)
    x = mean[:, None] + std[:, None] * nodes[None, :]  # (M, Q)
    with np.errstate(over="ignore"):
        wealth = 1.0 + grid[:, None, None] * np.expm1(x)[None, :, :]  # (P, M, Q)
    growth = np.log(np.maximum(wealth, 1e-300)) @ weights  # (P, M)
    growth[grid == 1.0] = mean  # exact: the quadrature of a linear function, without rounding
    growth[grid == 0.0] = 0.0
    return np.exp(_log_poisson(rates, counts)) @ growth.T  # (K, P)


def crash_expected_growth(posterior: np.ndarray, params: dict, positions: np.ndarray) -> np.ndarray:
    """Expected log growth (n, P) of holding each of ``positions`` from ``open_{t+1}`` to
    ``open_{t+2}``, given the posterior of bar t: ``P(regime_{t+2}) @ crash_growth_table``."""
    p = _checked(params)
    holding = _holding_regime(posterior, np.asarray(p["transition"]))
    return holding @ crash_growth_table(params, positions)
