"""Seeded synthetic markets with a known generating process, and the exact filters for them.

Three kinds (``SYNTHETIC_KINDS``):

``"regime"``
    A hidden Markov model with persistent bull / bear / sideways regimes. The close-to-close
    log return of bar t is ``drifts[regime_t] + vols[regime_t] * eps_t`` with ``eps_t ~ N(0, 1)``.
    Defaults: drifts ``(+0.002, -0.002, 0.0)`` per bar, vols ``0.01`` per bar, and a transition
    matrix whose self-transition is ``1 - 1 / mean_duration`` (``mean_duration=200`` bars)
    with the remainder split evenly between the other regimes. The regime of bar 0 is drawn
    from ``initial_distribution`` (the stationary distribution of the transition by default).
``"gbm"``
    Geometric Brownian motion: log return ``drift + vol * eps`` (``drift=0``, ``vol=0.01``).
    No strategy has an edge on it, which makes it the leakage sanity market.
``"mean_reversion"``
    An Ornstein-Uhlenbeck process in log price ``x``: ``dx = theta * (mu - x) dt + sigma dW``
    with one bar as the time unit, sampled exactly:
    ``x_t = mu + (x_{t-1} - mu) * exp(-theta) + sigma * sqrt((1 - exp(-2 theta)) / (2 theta)) * eps_t``.
    ``theta`` (default 0.02 per bar, half-life ``ln 2 / theta`` ~ 35 bars) is the reversion speed,
    ``mu`` (default ``log(100)``) the long-run mean of the log price, ``sigma`` (default 0.01)
    the per-bar diffusion volatility.

Bars (same construction for every kind, so close-to-close log returns are exactly the model's):
``open_t = close_{t-1} * exp(g_t)`` with an overnight gap ``g_t ~ N(0, gap_scale * vol_t)``
(``close_{-1} = initial_price``), ``close_t = close_{t-1} * exp(r_t)``, so the intraday part
``log(close_t / open_t) = r_t - g_t`` carries the rest of the return. ``high``/``low`` extend
``max``/``min(open, close)`` outward by ``exp(|N(0, range_scale * vol_t)|)``. Volume is lognormal
around ``base_volume`` and mildly correlated with ``|eps_t|``.

Timing subtlety (why the filter uses close-to-close returns). In ``TradingEnv`` the agent has seen
bar t closed, its order fills at ``open_{t+1}`` and it is marked at ``close_{t+1}``; the position it
held before rides the gap ``g_{t+1}``. What a decision at t earns in expectation is therefore
``E[log(close_{t+1} / open_{t+1}) | r_0..r_t] = E[r_{t+1} - g_{t+1} | ...] = E[r_{t+1} | ...]``
because the gap has mean zero and is independent of everything before it.
``hmm_forward_filter`` uses the close-to-close returns ``r_t`` with their true Gaussian emission
densities, which is the exact posterior given closes. With the default (equal) vols the gaps,
ranges and volumes carry no regime information, so it is also the Bayes posterior given the
full OHLCV history; with regime-dependent vols they carry a little volatility information that
this filter ignores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_BAYES_BAND",
    "SYNTHETIC_KINDS",
    "SyntheticMarket",
    "bayes_filter_positions",
    "generate_market",
    "hmm_forward_filter",
    "ou_expected_return",
    "regime_expected_return",
]

SYNTHETIC_KINDS: tuple[str, ...] = ("regime", "gbm", "mean_reversion")

#: No-trade band (in expected log return per bar) of ``bayes_filter_positions``; measured by
#: ``benchmarks/market_calibration.py`` on the default regime market with 15 bp costs.
DEFAULT_BAYES_BAND = 0.0002

_COMMON_DEFAULTS: dict[str, Any] = {
    "start": "1990-01-01",
    "freq": "B",
    "initial_price": 100.0,
    "gap_scale": 0.1,
    "range_scale": 0.5,
    "base_volume": 1_000_000.0,
}
_KIND_PARAMS: dict[str, tuple[str, ...]] = {
    "regime": (
        "mean_duration",
        "drifts",
        "vols",
        "transition",
        "regime_names",
        "initial_distribution",
    ),
    "gbm": ("drift", "vol"),
    "mean_reversion": ("theta", "mu", "sigma"),
}
_REGIME_DEFAULT_DRIFTS = (0.002, -0.002, 0.0)
_REGIME_DEFAULT_VOL = 0.01
_REGIME_DEFAULT_NAMES = ("bull", "bear", "sideways")
_REGIME_DEFAULT_DURATION = 200.0
# Volume: log(volume / base_volume) = _VOLUME_NOISE * z + _VOLUME_LOADING * (|eps| - E|eps|).
_VOLUME_NOISE = 0.3
_VOLUME_LOADING = 0.3
_MEAN_ABS_NORMAL = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class SyntheticMarket:
    """A generated market.

    Attributes:
        frame: float64 columns ``open, high, low, close, volume`` indexed by a ``DatetimeIndex``
            named ``"timestamp"``; ``0 < low <= min(open, close)`` and ``max(open, close) <= high``.
        regime: int array (n,) with the hidden regime of each bar's return (``regime`` kind),
            ``None`` for the other kinds.
        params: JSON-serialisable generating parameters (``kind``, ``seed``, ``n_bars`` and every
            model parameter), enough to regenerate the market and to run the exact filters.
    """

    frame: pd.DataFrame
    regime: np.ndarray | None
    params: dict


# ----------------------------------------------------------------------------- validation


def _as_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _as_float(value: Any, name: str, *, positive: bool = False, nonneg: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and out <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonneg and out < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return out


def _as_vector(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers, got {value!r}") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr


def _as_distribution(value: Any, name: str, k: int) -> np.ndarray:
    arr = _as_vector(value, name)
    if arr.size != k:
        raise ValueError(f"{name} must have {k} entries (one per regime), got {arr.size}")
    if np.any(arr < 0) or not math.isclose(float(arr.sum()), 1.0, abs_tol=1e-8):
        raise ValueError(f"{name} must be non-negative and sum to 1, got {value!r}")
    return arr / arr.sum()


def _as_transition(value: Any, k: int | None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"transition must be a K x K matrix of numbers, got {value!r}") from exc
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2:
        raise ValueError(f"transition must be a K x K matrix with K >= 2, got shape {arr.shape}")
    if k is not None and arr.shape[0] != k:
        raise ValueError(f"transition must be {k} x {k} (one row per regime), got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("transition must be finite and non-negative")
    bad = np.flatnonzero(np.abs(arr.sum(axis=1) - 1.0) > 1e-8)
    if bad.size:
        raise ValueError(f"transition row {int(bad[0])} must sum to 1, got {arr[bad[0]].sum()}")
    return arr / arr.sum(axis=1, keepdims=True)


def _stationary_distribution(transition: np.ndarray) -> np.ndarray:
    k = transition.shape[0]
    # Solve pi (T - I) = 0 with sum(pi) = 1 in the least-squares sense (handles reducible chains).
    a = np.vstack([(transition - np.eye(k)).T, np.ones(k)])
    b = np.zeros(k + 1)
    b[-1] = 1.0
    pi = np.linalg.lstsq(a, b, rcond=None)[0]
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def _check_kind(kind: Any) -> str:
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f"kind {kind!r} is not valid; valid kinds: {', '.join(SYNTHETIC_KINDS)}")
    return str(kind)


def _regime_params(user: dict[str, Any]) -> dict[str, Any]:
    sizes = {}
    drifts = vols = transition = None
    if user.get("drifts") is not None:
        drifts = _as_vector(user["drifts"], "drifts")
        sizes["drifts"] = drifts.size
    if user.get("vols") is not None and np.ndim(user["vols"]) != 0:
        vols = _as_vector(user["vols"], "vols")
        sizes["vols"] = vols.size
    if user.get("regime_names") is not None:
        names = user["regime_names"]
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"regime_names must be a sequence of strings, got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"regime_names must be unique, got {names!r}")
        sizes["regime_names"] = len(names)
    if user.get("transition") is not None:
        transition = _as_transition(user["transition"], None)
        sizes["transition"] = transition.shape[0]
    k_values = set(sizes.values())
    if len(k_values) > 1:
        raise ValueError(f"regime parameters disagree on the number of regimes: {sizes}")
    k = k_values.pop() if k_values else len(_REGIME_DEFAULT_DRIFTS)
    if k < 2:
        raise ValueError(f"a regime market needs at least 2 regimes, got {sizes}")

    if drifts is None:
        if k != len(_REGIME_DEFAULT_DRIFTS):
            raise ValueError(
                f"drifts must be given for a {k}-regime market (sizes given: {sizes}); "
                f"the default drifts have {len(_REGIME_DEFAULT_DRIFTS)} regimes"
            )
        drifts = np.asarray(_REGIME_DEFAULT_DRIFTS)
    if vols is None:
        vol = user.get("vols")
        vol = _REGIME_DEFAULT_VOL if vol is None else vol
        vols = np.full(k, _as_float(vol, "vols", positive=True))
    if np.any(vols <= 0):
        raise ValueError(f"vols must be > 0, got {vols.tolist()}")
    if user.get("regime_names") is not None:
        names = [str(n) for n in user["regime_names"]]
    elif k == len(_REGIME_DEFAULT_NAMES):
        names = list(_REGIME_DEFAULT_NAMES)
    else:
        names = [f"regime_{i}" for i in range(k)]

    mean_duration = user.get("mean_duration")
    if transition is not None:
        if mean_duration is not None:
            raise ValueError("give either mean_duration or transition, not both")
    else:
        mean_duration = _as_float(
            _REGIME_DEFAULT_DURATION if mean_duration is None else mean_duration,
            "mean_duration",
        )
        if mean_duration < 1.0:
            raise ValueError(f"mean_duration must be >= 1 bar, got {mean_duration}")
        stay = 1.0 - 1.0 / mean_duration
        transition = np.full((k, k), (1.0 - stay) / (k - 1))
        np.fill_diagonal(transition, stay)
    if user.get("initial_distribution") is not None:
        initial = _as_distribution(user["initial_distribution"], "initial_distribution", k)
    else:
        initial = _stationary_distribution(transition)
    return {
        "mean_duration": mean_duration,
        "drifts": drifts.tolist(),
        "vols": vols.tolist(),
        "transition": transition.tolist(),
        "regime_names": names,
        "initial_distribution": initial.tolist(),
    }


def _resolve_params(kind: str, n_bars: int, seed: int, user: dict[str, Any]) -> dict[str, Any]:
    valid = tuple(_COMMON_DEFAULTS) + _KIND_PARAMS[kind]
    for name in user:
        if name not in valid:
            raise ValueError(
                f"unknown parameter {name!r} for kind {kind!r}; valid parameters: {', '.join(valid)}"
            )
    params: dict[str, Any] = {"kind": kind, "seed": seed, "n_bars": n_bars}
    common = {**_COMMON_DEFAULTS, **{k: v for k, v in user.items() if k in _COMMON_DEFAULTS}}
    try:
        params["start"] = pd.Timestamp(common["start"]).isoformat()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"start must be a timestamp, got {common['start']!r}") from exc
    if not isinstance(common["freq"], str):
        raise ValueError(f"freq must be a pandas frequency string, got {common['freq']!r}")
    params["freq"] = common["freq"]
    if "start" not in user:
        params["start"] = _fitting_start(params["start"], params["freq"], n_bars)
    params["initial_price"] = _as_float(common["initial_price"], "initial_price", positive=True)
    params["gap_scale"] = _as_float(common["gap_scale"], "gap_scale", nonneg=True)
    params["range_scale"] = _as_float(common["range_scale"], "range_scale", nonneg=True)
    params["base_volume"] = _as_float(common["base_volume"], "base_volume", positive=True)

    if kind == "regime":
        params.update(_regime_params(user))
    elif kind == "gbm":
        params["drift"] = _as_float(user.get("drift", 0.0), "drift")
        params["vol"] = _as_float(user.get("vol", 0.01), "vol", positive=True)
    else:
        params["theta"] = _as_float(user.get("theta", 0.02), "theta", positive=True)
        params["mu"] = _as_float(user.get("mu", math.log(100.0)), "mu")
        params["sigma"] = _as_float(user.get("sigma", 0.01), "sigma", positive=True)
    return params


# ----------------------------------------------------------------------------- generation


#: Last bar timestamp a default-start series may reach (``datetime64[ns]`` ends 2262-04-11).
_LAST_NS_DAY = "2262-01-01"


def _last_timestamp(start: Any, freq: str, n_bars: int) -> pd.Timestamp:
    """Timestamp of bar ``n_bars - 1`` (second resolution, so it never overflows)."""
    return pd.date_range(start, periods=n_bars, freq=freq, unit="s")[-1]


def _fitting_start(start: str, freq: str, n_bars: int) -> str:
    """``start``, or, when ``n_bars`` bars of ``freq`` from it would pass the end of
    ``datetime64[ns]`` (business days from 1990 do after ~71,000 bars), the latest start whose
    series ends by 2262: long default-start series move back in time instead of failing."""
    try:
        if _last_timestamp(start, freq, n_bars) < pd.Timestamp(_LAST_NS_DAY):
            return start
        first = pd.date_range(end=_LAST_NS_DAY, periods=n_bars, freq=freq, unit="s")[0]
    except (TypeError, ValueError, OverflowError):
        return start  # a bad freq: _timestamps reports it
    return first.isoformat() if first > pd.Timestamp.min else start


def _timestamps(params: dict[str, Any], n_bars: int) -> pd.DatetimeIndex:
    try:
        return pd.date_range(params["start"], periods=n_bars, freq=params["freq"], name="timestamp")
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"freq {params['freq']!r} / start {params['start']!r} cannot index {n_bars} bars: {exc}"
        ) from exc


def _sample_regimes(
    rng: np.random.Generator, n: int, transition: np.ndarray, initial: np.ndarray
) -> np.ndarray:
    """Markov chain path sampled run by run: geometric sojourns, then an off-diagonal jump."""
    k = transition.shape[0]
    uniforms = rng.random((n, 2))
    first = rng.random()
    stay = np.diag(transition).tolist()
    jump_cdf = []
    for s in range(k):
        row = transition[s].copy()
        row[s] = 0.0
        total = row.sum()
        jump_cdf.append(np.cumsum(row) / total if total > 0 else None)
    state = min(int(np.searchsorted(np.cumsum(initial), first, side="right")), k - 1)
    regimes = np.empty(n, dtype=np.int64)
    t = 0
    run = 0
    while t < n:
        u_duration, u_jump = uniforms[run]
        run += 1
        p = stay[state]
        if p >= 1.0:
            duration = n - t
        elif p <= 0.0:
            duration = 1
        else:  # P(duration = d) = p**(d - 1) * (1 - p), d >= 1
            duration = 1 + int(math.log(1.0 - u_duration) / math.log(p))
        duration = min(duration, n - t)
        regimes[t : t + duration] = state
        t += duration
        cdf = jump_cdf[state]
        if cdf is not None:
            state = min(int(np.searchsorted(cdf, u_jump, side="right")), k - 1)
    return regimes


def _build_frame(
    rng: np.random.Generator,
    params: dict[str, Any],
    log_returns: np.ndarray,
    bar_vol: np.ndarray,
    eps: np.ndarray,
) -> pd.DataFrame:
    n = log_returns.size
    gap = params["gap_scale"] * bar_vol * rng.standard_normal(n)
    up = np.abs(params["range_scale"] * bar_vol * rng.standard_normal(n))
    down = np.abs(params["range_scale"] * bar_vol * rng.standard_normal(n))
    volume_noise = rng.standard_normal(n)

    log_close = math.log(params["initial_price"]) + np.cumsum(log_returns)
    log_prev = np.concatenate(([math.log(params["initial_price"])], log_close[:-1]))
    with np.errstate(over="ignore", under="ignore"):
        close = np.exp(log_close)
        open_ = np.exp(log_prev + gap)
        # Multiplying by exp(x) >= 1 (or <= 1) keeps the OHLC order exact in floating point.
        high = np.maximum(open_, close) * np.exp(up)
        low = np.minimum(open_, close) * np.exp(-down)
    volume = params["base_volume"] * np.exp(
        _VOLUME_NOISE * volume_noise + _VOLUME_LOADING * (np.abs(eps) - _MEAN_ABS_NORMAL)
    )
    for name, values in (("high", high), ("low", low), ("open", open_), ("close", close)):
        if not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError(
                f"parameters give non-finite or non-positive {name} prices "
                f"(drift/vol/initial_price too extreme for n_bars={n})"
            )
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=_timestamps(params, n),
        dtype=np.float64,
    )


def generate_market(
    kind: str = "regime", n_bars: int = 10_000, seed: int = 0, **params: Any
) -> SyntheticMarket:
    """Generate a reproducible synthetic market (same ``kind``, ``n_bars``, ``seed``, params -> same bars).

    Args:
        kind: one of ``SYNTHETIC_KINDS``.
        n_bars: number of bars (>= 1).
        seed: seed of ``np.random.default_rng``, the only source of randomness.
        **params: common ``start`` ("1990-01-01"), ``freq`` ("B" business days; e.g. "h"),
            (a long series with the default start begins earlier, so it ends by 2262),
            ``initial_price`` (100, the close before bar 0), ``gap_scale`` (0.1) and
            ``range_scale`` (0.5) as fractions of the bar volatility, ``base_volume`` (1e6);
            ``regime``: ``mean_duration`` (200) or ``transition`` (K x K), ``drifts``, ``vols``
            (a list or one number), ``regime_names``, ``initial_distribution``;
            ``gbm``: ``drift`` (0), ``vol`` (0.01); ``mean_reversion``: ``theta`` (0.02),
            ``mu`` (log 100), ``sigma`` (0.01). See the module docstring for the models.

    Raises:
        ValueError: unknown ``kind`` (lists the valid kinds), unknown parameter, or a bad value,
            naming it.
    """
    kind = _check_kind(kind)
    n_bars = _as_int(n_bars, "n_bars", 1)
    seed = _as_int(seed, "seed", 0)
    resolved = _resolve_params(kind, n_bars, seed, params)
    _timestamps(resolved, n_bars)  # fail on a bad freq before spending time on the paths
    rng = np.random.default_rng(seed)
    regime = None
    if kind == "regime":
        transition = np.asarray(resolved["transition"])
        regime = _sample_regimes(
            rng, n_bars, transition, np.asarray(resolved["initial_distribution"])
        )
        eps = rng.standard_normal(n_bars)
        bar_vol = np.asarray(resolved["vols"])[regime]
        log_returns = np.asarray(resolved["drifts"])[regime] + bar_vol * eps
    elif kind == "gbm":
        eps = rng.standard_normal(n_bars)
        bar_vol = np.full(n_bars, resolved["vol"])
        log_returns = resolved["drift"] + bar_vol * eps
    else:
        eps = rng.standard_normal(n_bars)
        log_price = _simulate_ou(eps, resolved)
        previous = np.concatenate(([math.log(resolved["initial_price"])], log_price[:-1]))
        log_returns = log_price - previous
        bar_vol = np.full(n_bars, resolved["sigma"])
    frame = _build_frame(rng, resolved, log_returns, bar_vol, eps)
    return SyntheticMarket(frame=frame, regime=regime, params=resolved)


def _simulate_ou(eps: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Exact discretisation of the OU log price, one bar per time unit."""
    theta, mu, sigma = params["theta"], params["mu"], params["sigma"]
    decay = math.exp(-theta)
    shock = sigma * math.sqrt(-math.expm1(-2.0 * theta) / (2.0 * theta))
    x = math.log(params["initial_price"]) - mu
    out: list[float] = []
    append = out.append
    for e in (eps * shock).tolist():  # plain floats: ~0.1 us per bar
        x = x * decay + e
        append(x)
    return np.asarray(out) + mu


# ----------------------------------------------------------------------------- filters


def _regime_arrays(params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict of regime parameters, got {type(params).__name__}")
    if params.get("kind", "regime") != "regime":
        raise ValueError(f"params describe a {params['kind']!r} market, not a 'regime' market")
    for key in ("transition", "drifts", "vols"):
        if key not in params:
            raise ValueError(f"params is missing {key!r}")
    transition = _as_transition(params["transition"], None)
    k = transition.shape[0]
    drifts = _as_vector(params["drifts"], "drifts")
    vols = _as_vector(params["vols"], "vols")
    for name, arr in (("drifts", drifts), ("vols", vols)):
        if arr.size != k:
            raise ValueError(f"params[{name!r}] must have {k} entries, got {arr.size}")
    if np.any(vols <= 0):
        raise ValueError(f"params['vols'] must be > 0, got {vols.tolist()}")
    if params.get("initial_distribution") is not None:
        initial = _as_distribution(params["initial_distribution"], "initial_distribution", k)
    else:
        initial = _stationary_distribution(transition)
    return transition, drifts, vols, initial


def hmm_forward_filter(log_returns: np.ndarray, params: dict) -> np.ndarray:
    """Causal posterior ``P(regime_t | r_0..r_t)`` of a ``regime`` market, shape (n, K).

    ``log_returns[t]`` is the close-to-close log return of bar t (``log close_t - log close_{t-1}``);
    NaN marks a missing observation (e.g. ``np.diff(np.log(close), prepend=np.nan)``), which
    only propagates the prior. Row t depends on ``log_returns[:t + 1]`` only. The model is the
    generating one: regime 0 ~ ``initial_distribution`` (stationary if absent), Markov
    ``transition``, Gaussian emissions ``N(drifts[k], vols[k]**2)`` evaluated in log space and
    normalised every step. ~0.2 s per 100k bars for K = 3.
    """
    transition, drifts, vols, initial = _regime_arrays(params)
    r = np.asarray(log_returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"log_returns must be 1-D, got shape {r.shape}")
    if np.any(np.isinf(r)):
        raise ValueError(
            f"log_returns has an infinite value at row {int(np.flatnonzero(np.isinf(r))[0])}"
        )
    k = transition.shape[0]
    n = r.size
    # Log emission densities, shifted so each row's max is 0 (the shift cancels on normalising).
    z = (r[:, None] - drifts[None, :]) / vols[None, :]
    log_emission = -0.5 * z * z - np.log(vols)[None, :]
    log_emission -= log_emission.max(axis=1, keepdims=True)
    emission = np.exp(log_emission)
    emission[np.isnan(r)] = 1.0

    posterior = np.empty((n, k))
    prior = initial
    for t in range(n):
        joint = prior * emission[t]
        total = joint.sum()
        # A zero total means the return is impossible under every regime the prior allows
        # (floating-point underflow); keep the prior rather than produce NaN.
        belief = joint / total if total > 0 else prior
        posterior[t] = belief
        prior = belief @ transition
    return posterior


def regime_expected_return(posterior: np.ndarray, params: dict) -> np.ndarray:
    """``E[r_{t+1} | r_0..r_t] = posterior[t] @ transition @ drifts``, shape (n,).

    By the gap construction this is also the expected intraday log return
    ``log(close_{t+1} / open_{t+1})`` that an env decision at the close of bar t earns.
    Pass one-hot rows of the true regime to get the oracle's forecast.
    """
    transition, drifts, _, _ = _regime_arrays(params)
    post = np.asarray(posterior, dtype=np.float64)
    if post.ndim != 2 or post.shape[1] != transition.shape[0]:
        raise ValueError(
            f"posterior must have shape (n, {transition.shape[0]}), got shape {post.shape}"
        )
    # Elementwise product + sum rather than a BLAS matvec: no fused multiply-add, so a regime
    # with symmetric neighbours (sideways) forecasts exactly 0 instead of a ~1e-21 residual.
    forecast = (transition * drifts[None, :]).sum(axis=1)
    return post @ forecast


def ou_expected_return(log_close: np.ndarray, params: dict) -> np.ndarray:
    """``E[log close_{t+1} - log close_t | past] = (mu - log close_t) * (1 - exp(-theta))``, shape (n,).

    Positive when the log price is below ``mu`` and negative above it. Like the regime case it is
    also the expected intraday return of the next bar (the overnight gap has mean zero).
    """
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict, got {type(params).__name__}")
    if params.get("kind", "mean_reversion") != "mean_reversion":
        raise ValueError(f"params describe a {params['kind']!r} market, not 'mean_reversion'")
    for key in ("theta", "mu"):
        if key not in params:
            raise ValueError(f"params is missing {key!r}")
    theta = _as_float(params["theta"], "theta", positive=True)
    mu = _as_float(params["mu"], "mu")
    x = np.asarray(log_close, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"log_close must be 1-D, got shape {x.shape}")
    return (mu - x) * -math.expm1(-theta)


def _hysteresis_positions(expected: np.ndarray, band: float) -> np.ndarray:
    """+1 above ``band``, -1 below ``-band``, otherwise keep the previous position (start flat)."""
    signal = np.where(expected > band, 1.0, np.where(expected < -band, -1.0, np.nan))
    decided = ~np.isnan(signal)
    last = np.maximum.accumulate(np.where(decided, np.arange(signal.size), -1))
    return np.where(last >= 0, signal[np.maximum(last, 0)], 0.0)


def bayes_filter_positions(
    market: SyntheticMarket | tuple[np.ndarray, dict] | Sequence,
    band: float = DEFAULT_BAYES_BAND,
) -> np.ndarray:
    """Target positions (n,) in {-1, 0, 1} of the Bayes-filter policy on a ``regime`` market.

    ``market`` is a ``SyntheticMarket`` or ``(log_close, params)``. Entry t is the target decided
    at the close of bar t (the env fills it at ``open_{t+1}``): long when
    ``regime_expected_return > band``, short when ``< -band``, otherwise the previous target
    (flat before the first signal). The no-trade band avoids paying costs on filter noise.
    """
    if isinstance(market, SyntheticMarket):
        log_close, params = np.log(market.frame["close"].to_numpy()), market.params
    else:
        try:
            log_close, params = market
        except (TypeError, ValueError) as exc:
            raise ValueError("market must be a SyntheticMarket or (log_close, params)") from exc
        log_close = np.asarray(log_close, dtype=np.float64)
    band = _as_float(band, "band", nonneg=True)
    returns = np.diff(log_close, prepend=np.nan)
    expected = regime_expected_return(hmm_forward_filter(returns, params), params)
    return _hysteresis_positions(expected, band)
