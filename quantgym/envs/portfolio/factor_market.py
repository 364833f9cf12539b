"""A seeded multi-asset market with a known generating process, and the exact regime filter.

``"factor_regime"`` (``FACTOR_KINDS``): a hidden Markov chain of regimes ``k_t`` drives a
market factor, sector factors and idiosyncratic noise. The close-to-close log return of asset
``i`` at bar ``t`` is

    r_it = beta_i * m_t + s_{sector(i), t} + e_it
    m_t ~ N(market_drift[k], market_vol[k]^2),  s_jt ~ N(sector_drifts[k][j], sector_vol[k]^2),
    e_it ~ N(0, idio_vol[k]^2),  all independent given k = k_t,

so ``r_t | k ~ N(means[k], covariances[k])`` with ``means[k] = beta * market_drift[k] +
sector_drifts[k][sector]`` and ``covariances[k] = market_vol^2 beta beta' + sector_vol^2 S S' +
idio_vol^2 I`` (``S``: the asset x sector indicator). Defaults (per bar, 8 assets in 2 sectors,
betas evenly from 0.8 to 1.2, mean regime duration 120 bars):

==========  ============  ==========  ===================  ==========  =========
regime      market_drift  market_vol  sector_drifts        sector_vol  idio_vol
==========  ============  ==========  ===================  ==========  =========
bull        +0.0010       0.007       (0, 0)               0.004       0.008
bear        -0.0008       0.016       (0, 0)               0.008       0.012
rotation_a  +0.0002       0.009       (+0.0008, -0.0008)   0.005       0.009
rotation_b  +0.0002       0.009       (-0.0008, +0.0008)   0.005       0.009
==========  ============  ==========  ===================  ==========  =========

The market drifts up in the long run (the regimes are equally likely), so holding everything
earns something; but in a bull market holding everything pays most, in a bear market cash does,
and in a rotation the leading sector does: a growth-optimal (Kelly) allocator that filters the
regime has a real edge, and everything it needs is in ``params`` (``means``, ``covariances``, ``transition``,
``initial_distribution``) plus :func:`regime_log_likelihoods`, :func:`regime_filter_update`,
:func:`regime_filter` and :func:`predictive_moments` here.

Bars: ``open_t = close_{t-1} exp(g_t)`` with a mean-zero overnight gap ``g_t ~ N(0, (gap_scale
* sigma_it)^2)``, ``close_t = close_{t-1} exp(r_t)``; high and low extend ``max``/``min(open,
close)`` by ``exp(|N(0, (range_scale * sigma_it)^2)|)``; volume is lognormal around
``base_volume``. As in :mod:`quantgym.envs.synthetic`, a decision at the close of t earns
``log(close_{t+1} / open_{t+1}) = r_{t+1} - g_{t+1}`` on what it buys, whose mean is that of
``r_{t+1}``: filtering the close-to-close returns is the exact Bayes posterior given closes.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantgym.checks import check_non_negative, check_positive, check_positive_int
from quantgym.envs.synthetic_base import (
    COMMON_DEFAULTS,
    forward_filter,
    forward_filter_step,
    synthetic_volume,
    windowed_forward_filter,
)

__all__ = [
    "FACTOR_KINDS",
    "FactorMarket",
    "generate_factor_market",
    "regime_log_likelihoods",
    "regime_filter_update",
    "regime_filter",
    "windowed_regime_filter",
    "predictive_moments",
]

FACTOR_KINDS: tuple[str, ...] = ("factor_regime",)

_DEFAULTS: dict[str, Any] = {
    "n_assets": 8,
    "n_sectors": 2,
    "betas": None,  # evenly 0.8 .. 1.2
    "regime_names": ("bull", "bear", "rotation_a", "rotation_b"),
    "mean_duration": 120.0,
    "transition": None,
    "market_drift": (0.0010, -0.0008, 0.0002, 0.0002),
    "market_vol": (0.007, 0.016, 0.009, 0.009),
    "sector_drifts": None,  # 0, except +-0.0008 by sector in regime 2 and the opposite in regime 3
    "sector_vol": (0.004, 0.008, 0.005, 0.005),
    "idio_vol": (0.008, 0.012, 0.009, 0.009),
    **COMMON_DEFAULTS,  # start, freq, initial_price, gap_scale, range_scale, base_volume
}
_ROTATION_DRIFT = 0.0008


@dataclass(frozen=True)
class FactorMarket:
    """A generated panel: ``(T, N)`` float64 OHLCV arrays, the hidden regime path ``(T,)`` and
    the JSON-serialisable ``params`` (enough to regenerate it and to run the exact filter)."""

    index: pd.DatetimeIndex
    assets: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    regime: np.ndarray
    params: dict


def _vector(value: Any, name: str, size: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {value!r}") from None
    if arr.size != size or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be {size} finite numbers, got {value!r}")
    return arr


def _transition(params: dict[str, Any], k: int) -> np.ndarray:
    if params["transition"] is None:
        duration = check_positive("mean_duration", params["mean_duration"])
        if duration < 1.0:
            raise ValueError(f"mean_duration must be >= 1 bar, got {duration}")
        stay = 1.0 - 1.0 / duration
        out = np.full((k, k), (1.0 - stay) / (k - 1))
        np.fill_diagonal(out, stay)
        return out
    try:
        out = np.asarray(params["transition"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("transition must be a K x K matrix of numbers") from None
    if out.shape != (k, k) or not np.all(np.isfinite(out)) or (out < 0).any():
        raise ValueError(f"transition must be a non-negative {k} x {k} matrix, got {out.shape}")
    if np.any(np.abs(out.sum(axis=1) - 1.0) > 1e-8):
        raise ValueError("transition rows must sum to 1")
    return out / out.sum(axis=1, keepdims=True)


def _stationary(transition: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eig(transition.T)
    v = np.abs(np.real(vectors[:, int(np.argmin(np.abs(values - 1.0)))]))
    return v / v.sum()


def _resolve(user: dict[str, Any], n_bars: int, seed: int) -> dict[str, Any]:
    unknown = sorted(set(user) - set(_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; valid: {sorted(_DEFAULTS)}")
    p = {**_DEFAULTS, **user}
    n = check_positive_int("n_assets", p["n_assets"])
    n_sectors = check_positive_int("n_sectors", p["n_sectors"])
    if n_sectors > n:
        raise ValueError(f"n_sectors ({n_sectors}) must be <= n_assets ({n})")
    names = [str(x) for x in p["regime_names"]]
    k = len(names)
    if k < 2 or len(set(names)) != k:
        raise ValueError(f"regime_names must be >= 2 distinct names, got {names}")
    betas = np.linspace(0.8, 1.2, n) if p["betas"] is None else _vector(p["betas"], "betas", n)
    if p["sector_drifts"] is None:
        sector_drifts = np.zeros((k, n_sectors))
        leads = _ROTATION_DRIFT * np.where(np.arange(n_sectors) % 2, -1.0, 1.0)
        for regime, sign in ((2, 1.0), (3, -1.0)):
            if regime < k:
                sector_drifts[regime] = sign * leads
    else:
        sector_drifts = _vector(p["sector_drifts"], "sector_drifts", k * n_sectors)
        sector_drifts = sector_drifts.reshape(k, n_sectors)
    market_drift = _vector(p["market_drift"], "market_drift", k)
    vols = {v: _vector(p[v], v, k) for v in ("market_vol", "sector_vol", "idio_vol")}
    for name, arr in vols.items():
        if (arr < 0).any() or (name == "idio_vol" and (arr <= 0).any()):
            raise ValueError(f"{name} must be >= 0 (idio_vol > 0), got {arr.tolist()}")
    transition = _transition(p, k)
    sector = (np.arange(n) * n_sectors) // n
    indicator = np.eye(n_sectors)[sector]  # (N, S)
    means = betas[None, :] * market_drift[:, None] + sector_drifts[:, sector]
    cov = (
        vols["market_vol"][:, None, None] ** 2 * np.outer(betas, betas)[None]
        + vols["sector_vol"][:, None, None] ** 2 * (indicator @ indicator.T)[None]
        + vols["idio_vol"][:, None, None] ** 2 * np.eye(n)[None]
    )
    width = len(str(n - 1))
    return {
        "kind": "factor_regime",
        "seed": seed,
        "n_bars": n_bars,
        "n_assets": n,
        "n_sectors": n_sectors,
        "assets": [f"asset_{i:0{width}d}" for i in range(n)],
        "sectors": sector.tolist(),
        "betas": betas.tolist(),
        "regime_names": names,
        "transition": transition.tolist(),
        "initial_distribution": _stationary(transition).tolist(),
        "market_drift": market_drift.tolist(),
        "sector_drifts": sector_drifts.tolist(),
        **{name: arr.tolist() for name, arr in vols.items()},
        "means": means.tolist(),
        "covariances": cov.tolist(),
        "start": str(pd.Timestamp(p["start"])),
        "freq": str(p["freq"]),
        "initial_price": check_positive("initial_price", p["initial_price"]),
        "gap_scale": check_non_negative("gap_scale", p["gap_scale"]),
        "range_scale": check_non_negative("range_scale", p["range_scale"]),
        "base_volume": check_positive("base_volume", p["base_volume"]),
    }


def _regime_path(
    rng: np.random.Generator, n: int, transition: np.ndarray, initial: np.ndarray
) -> np.ndarray:
    """A Markov chain path, one uniform per bar (inverse CDF of the current state's row)."""
    rows = [np.cumsum(r).tolist() for r in transition]
    last = len(rows) - 1
    u = rng.random(n).tolist()
    state = min(int(np.searchsorted(np.cumsum(initial), u[0], side="right")), last)
    path = [state]
    for x in u[1:]:
        state = min(bisect.bisect_right(rows[state], x), last)
        path.append(state)
    return np.asarray(path, dtype=np.int64)


def generate_factor_market(
    kind: str = "factor_regime", n_bars: int = 10_000, seed: int = 0, **params: Any
) -> FactorMarket:
    """Generate the market (same ``kind``, ``n_bars``, ``seed`` and params: same bars).

    ``params`` override the defaults of the module docstring: ``n_assets``, ``n_sectors``,
    ``betas``, ``regime_names``, ``mean_duration`` or ``transition``, ``market_drift``,
    ``market_vol``, ``sector_drifts`` (K x S), ``sector_vol``, ``idio_vol``, ``start``,
    ``freq``, ``initial_price``, ``gap_scale``, ``range_scale``, ``base_volume``. A bad value
    raises ``ValueError`` naming it.
    """
    if kind not in FACTOR_KINDS:
        raise ValueError(
            f"unknown multi-asset synthetic kind {kind!r}; valid: {list(FACTOR_KINDS)}"
        )
    n_bars = check_positive_int("n_bars", n_bars, minimum=3)
    seed = check_positive_int("seed", seed, minimum=0)
    p = _resolve(params, n_bars, seed)
    try:
        index = pd.date_range(p["start"], periods=n_bars, freq=p["freq"], name="timestamp")
    except (TypeError, ValueError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise ValueError(f"start/freq cannot index {n_bars} bars: {exc}") from None
    rng = np.random.default_rng(seed)
    transition = np.asarray(p["transition"])
    regime = _regime_path(rng, n_bars, transition, np.asarray(p["initial_distribution"]))
    n = p["n_assets"]
    chol = np.linalg.cholesky(np.asarray(p["covariances"]))  # (K, N, N)
    z = rng.standard_normal((n_bars, n))
    returns = np.asarray(p["means"])[regime] + np.einsum("tij,tj->ti", chol[regime], z)
    sigma = np.sqrt(np.diagonal(np.asarray(p["covariances"]), axis1=1, axis2=2))[regime]
    shock = (returns - np.asarray(p["means"])[regime]) / sigma  # standardised, for volume
    gap = p["gap_scale"] * sigma * rng.standard_normal((n_bars, n))
    up = np.abs(p["range_scale"] * sigma * rng.standard_normal((n_bars, n)))
    down = np.abs(p["range_scale"] * sigma * rng.standard_normal((n_bars, n)))
    noise = rng.standard_normal((n_bars, n))
    log_close = math.log(p["initial_price"]) + np.cumsum(returns, axis=0)
    log_prev = np.vstack([np.full((1, n), math.log(p["initial_price"])), log_close[:-1]])
    with np.errstate(over="ignore", under="ignore"):
        close = np.exp(log_close)
        open_ = np.exp(log_prev + gap)
        high = np.maximum(open_, close) * np.exp(up)  # x exp(>= 0): the OHLC order stays exact
        low = np.minimum(open_, close) * np.exp(-down)
    if not all(np.all(np.isfinite(x) & (x > 0)) for x in (open_, high, low, close)):
        raise ValueError(f"parameters give non-finite prices over n_bars={n_bars}")
    volume = synthetic_volume(p["base_volume"], noise, shock)
    return FactorMarket(
        index=index,
        assets=tuple(p["assets"]),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        regime=regime,
        params=p,
    )


# ----------------------------------------------------------------------------- the filter


def _moments(params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(params, dict) or params.get("kind") != "factor_regime":
        raise ValueError("params must be the params dict of a 'factor_regime' market")
    means = np.asarray(params["means"], dtype=np.float64)
    cov = np.asarray(params["covariances"], dtype=np.float64)
    return means, cov, np.asarray(params["transition"]), np.asarray(params["initial_distribution"])


def regime_log_likelihoods(log_returns: np.ndarray, params: dict) -> np.ndarray:
    """``log N(r_t; means[k], covariances[k])`` of each bar's close-to-close log returns
    ``(T, N)`` under each regime: ``(T, K)``. A row with any NaN (a bar before the first close)
    carries no information: 0 in every regime."""
    means, cov, _, _ = _moments(params)
    r = np.asarray(log_returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != means.shape[1]:
        raise ValueError(f"log_returns must have shape (T, {means.shape[1]}), got {r.shape}")
    missing = np.asarray(np.isnan(r).any(axis=1))
    r = np.where(missing[:, None], 0.0, r)
    chol = np.linalg.cholesky(cov)  # (K, N, N)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)  # (K,)
    out = np.empty((r.shape[0], means.shape[0]))
    for k in range(means.shape[0]):
        z = np.linalg.solve(chol[k], (r - means[k]).T)  # (N, T) whitened residuals
        out[:, k] = -0.5 * (np.sum(z * z, axis=0) + log_det[k] + r.shape[1] * math.log(2 * math.pi))
    out[missing] = 0.0
    return out


def regime_filter_update(
    prior: np.ndarray, log_likelihood: np.ndarray, transition: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One step of the forward filter, batched over leading axes.

    ``prior`` ``(..., K)`` is ``P(k_t | r_0..r_{t-1})`` and ``log_likelihood`` ``(..., K)`` is
    ``log p(r_t | k_t)``. Returns ``(posterior P(k_t | r_0..r_t), next prior P(k_{t+1} | r_0..r_t)
    = posterior @ transition)``; a bar impossible under every regime the prior allows keeps the
    prior (no NaN).
    """
    shifted = log_likelihood - np.max(log_likelihood, axis=-1, keepdims=True)
    return forward_filter_step(prior, np.exp(shifted), np.asarray(transition))


def regime_filter(log_returns: np.ndarray, params: dict) -> np.ndarray:
    """Causal posterior ``P(k_t | r_0..r_t)``, ``(T, K)``: row t uses ``log_returns[:t + 1]`` only
    (e.g. ``np.diff(np.log(close), axis=0, prepend=np.nan)``, close from the panel)."""
    _, _, transition, initial = _moments(params)
    return forward_filter(regime_log_likelihoods(log_returns, params), transition, initial)


def windowed_regime_filter(log_returns: np.ndarray, params: dict, window: int) -> np.ndarray:
    """Causal posterior given the newest ``window`` bars only, ``P(k_t | r_{t-window+1}..r_t)``,
    ``(T, K)``: the exact filter restarted at bar ``t - window + 1`` from the initial (stationary)
    distribution, the regime's marginal there; rows ``t < window`` equal :func:`regime_filter`'s.
    What a reader of a ``window``-bar history of closes can know at best."""
    _, _, transition, initial = _moments(params)
    ll = regime_log_likelihoods(log_returns, params)
    return windowed_forward_filter(ll, transition, initial, window)


def predictive_moments(posterior: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(..., N)`` and covariance ``(..., N, N)`` of the next bar's log returns
    ``r_{t+1}`` given ``posterior`` ``(..., K)`` = ``P(k_t | past)``: a Gaussian mixture over
    ``q = posterior @ transition`` (its exact first two moments)."""
    means, cov, transition, _ = _moments(params)
    q = np.asarray(posterior, dtype=np.float64) @ transition
    mean = q @ means
    second = np.einsum("...k,kij->...ij", q, cov + np.einsum("ki,kj->kij", means, means))
    return mean, second - np.einsum("...i,...j->...ij", mean, mean)
