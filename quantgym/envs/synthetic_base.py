"""What every synthetic market shares: the ``SyntheticMarket`` record, parameter checks, the
bar calendar, the Markov regime sampler, the OHLCV bar builder and the HMM forward recursion.

The market kinds live beside this module (:mod:`quantgym.envs.synthetic` for ``regime``,
``gbm`` and ``mean_reversion`` and the dispatcher ``generate_market``;
:mod:`quantgym.envs.synthetic_lagged`; :mod:`quantgym.envs.synthetic_crash`); each turns a
seeded path of close-to-close log returns (and, for the crash market, jumps at the open) into
bars with :func:`build_frame`.

Bars (same construction for every kind, so close-to-close log returns are exactly the model's):
``open_t = close_{t-1} * exp(g_t + j_t)`` with an overnight gap ``g_t ~ N(0, gap_scale * vol_t)``
and a jump ``j_t`` (0 except on the crash market), ``close_t = close_{t-1} * exp(r_t)``, so the
intraday part ``log(close_t / open_t) = r_t - g_t - j_t`` carries the rest of the return.
``high``/``low`` extend ``max``/``min(open, close)`` outward by ``exp(|N(0, range_scale * vol_t)|)``.
Volume is lognormal around ``base_volume`` and mildly correlated with ``|eps_t|`` (the kind says
which standard normal ``eps_t`` is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantgym.checks import check_positive_int

__all__ = [
    "COMMON_DEFAULTS",
    "SyntheticMarket",
    "as_distribution",
    "as_float",
    "as_int",
    "as_transition",
    "as_vector",
    "bar_timestamps",
    "build_frame",
    "forward_filter",
    "forward_filter_step",
    "windowed_forward_filter",
    "resolve_common_params",
    "sample_markov_chain",
    "synthetic_volume",
    "stationary_distribution",
    "transition_from_durations",
]

#: Parameters every kind accepts, with their defaults.
COMMON_DEFAULTS: dict[str, Any] = {
    "start": "1990-01-01",
    "freq": "B",
    "initial_price": 100.0,
    "gap_scale": 0.1,
    "range_scale": 0.5,
    "base_volume": 1_000_000.0,
}
# Volume: log(volume / base_volume) = _VOLUME_NOISE * z + _VOLUME_LOADING * (|eps| - E|eps|).
_VOLUME_NOISE = 0.3
_VOLUME_LOADING = 0.3
_MEAN_ABS_NORMAL = math.sqrt(2.0 / math.pi)
#: Last bar timestamp a default-start series may reach (``datetime64[ns]`` ends 2262-04-11).
_LAST_NS_DAY = "2262-01-01"


@dataclass(frozen=True)
class SyntheticMarket:
    """A generated market.

    Attributes:
        frame: float64 columns ``open, high, low, close, volume`` indexed by a ``DatetimeIndex``
            named ``"timestamp"``; ``0 < low <= min(open, close)`` and ``max(open, close) <= high``.
        regime: int array (n,) with the hidden regime of each bar (``regime``: the drift regime;
            ``crash``: the crash-intensity regime), ``None`` for the other kinds.
        params: JSON-serialisable generating parameters (``kind``, ``seed``, ``n_bars`` and every
            model parameter), enough to regenerate the market and to run the exact filters.
        jump_counts: int array (n,) of crashes at the open of each bar (``crash`` kind only).
        jump_sizes: float array (n,): the summed log jump of those crashes, 0 where none
            (``crash`` kind only).
    """

    frame: pd.DataFrame
    regime: np.ndarray | None
    params: dict
    jump_counts: np.ndarray | None = None
    jump_sizes: np.ndarray | None = None


# ----------------------------------------------------------------------------- validation


def as_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an ``int >= minimum`` (bools refused), else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def as_float(value: Any, name: str, *, positive: bool = False, nonneg: bool = False) -> float:
    """``value`` as a finite float (optionally ``> 0`` or ``>= 0``), else ``ValueError``."""
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


def as_vector(value: Any, name: str) -> np.ndarray:
    """``value`` as a non-empty finite 1-D float64 array, else ``ValueError`` naming ``name``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers, got {value!r}") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr


def as_distribution(value: Any, name: str, k: int) -> np.ndarray:
    """A probability vector of ``k`` entries (non-negative, summing to 1), renormalised."""
    arr = as_vector(value, name)
    if arr.size != k:
        raise ValueError(f"{name} must have {k} entries (one per regime), got {arr.size}")
    if np.any(arr < 0) or not math.isclose(float(arr.sum()), 1.0, abs_tol=1e-8):
        raise ValueError(f"{name} must be non-negative and sum to 1, got {value!r}")
    return arr / arr.sum()


def as_transition(value: Any, k: int | None, *, min_states: int = 2) -> np.ndarray:
    """A row-stochastic ``K x K`` matrix (``K == k`` when given, ``K >= min_states``)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"transition must be a K x K matrix of numbers, got {value!r}") from exc
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < min_states:
        raise ValueError(
            f"transition must be a K x K matrix with K >= {min_states}, got shape {arr.shape}"
        )
    if k is not None and arr.shape[0] != k:
        raise ValueError(f"transition must be {k} x {k} (one row per regime), got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("transition must be finite and non-negative")
    bad = np.flatnonzero(np.abs(arr.sum(axis=1) - 1.0) > 1e-8)
    if bad.size:
        raise ValueError(f"transition row {int(bad[0])} must sum to 1, got {arr[bad[0]].sum()}")
    return arr / arr.sum(axis=1, keepdims=True)


def stationary_distribution(transition: np.ndarray) -> np.ndarray:
    """The stationary distribution ``pi = pi @ transition`` (least squares: reducible chains too)."""
    k = transition.shape[0]
    a = np.vstack([(transition - np.eye(k)).T, np.ones(k)])
    b = np.zeros(k + 1)
    b[-1] = 1.0
    pi = np.linalg.lstsq(a, b, rcond=None)[0]
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def transition_from_durations(durations: np.ndarray) -> np.ndarray:
    """Transition matrix whose regime k lasts ``durations[k]`` bars on average (geometric), the
    leaving probability split evenly between the other regimes; ``[[1.0]]`` for one regime."""
    k = durations.size
    if k == 1:
        return np.ones((1, 1))
    leave = 1.0 / durations
    transition = np.repeat((leave / (k - 1))[:, None], k, axis=1)
    np.fill_diagonal(transition, 1.0 - leave)
    return transition


def resolve_common_params(n_bars: int, user: dict[str, Any]) -> dict[str, Any]:
    """The checked common parameters (``COMMON_DEFAULTS`` overridden by ``user``'s)."""
    params: dict[str, Any] = {}
    common = {**COMMON_DEFAULTS, **{k: v for k, v in user.items() if k in COMMON_DEFAULTS}}
    try:
        params["start"] = pd.Timestamp(common["start"]).isoformat()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"start must be a timestamp, got {common['start']!r}") from exc
    if not isinstance(common["freq"], str):
        raise ValueError(f"freq must be a pandas frequency string, got {common['freq']!r}")
    params["freq"] = common["freq"]
    if "start" not in user:
        params["start"] = _fitting_start(params["start"], params["freq"], n_bars)
    params["initial_price"] = as_float(common["initial_price"], "initial_price", positive=True)
    params["gap_scale"] = as_float(common["gap_scale"], "gap_scale", nonneg=True)
    params["range_scale"] = as_float(common["range_scale"], "range_scale", nonneg=True)
    params["base_volume"] = as_float(common["base_volume"], "base_volume", positive=True)
    return params


# ----------------------------------------------------------------------------- calendar


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
        return start  # a bad freq: bar_timestamps reports it
    return first.isoformat() if first > pd.Timestamp.min else start


def bar_timestamps(params: dict[str, Any], n_bars: int) -> pd.DatetimeIndex:
    """The ``n_bars`` timestamps from ``params["start"]`` every ``params["freq"]``."""
    try:
        return pd.date_range(params["start"], periods=n_bars, freq=params["freq"], name="timestamp")
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"freq {params['freq']!r} / start {params['start']!r} cannot index {n_bars} bars: {exc}"
        ) from exc


# ----------------------------------------------------------------------------- paths


def sample_markov_chain(
    rng: np.random.Generator, n: int, transition: np.ndarray, initial: np.ndarray
) -> np.ndarray:
    """Markov chain path (n,) sampled run by run: geometric sojourns, then an off-diagonal jump."""
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


def synthetic_volume(base_volume: float, noise: np.ndarray, shocks: np.ndarray) -> np.ndarray:
    """Lognormal volume around ``base_volume`` that rises with the size of the bar's standard
    normal return shock: ``log(volume / base_volume) = 0.3 z + 0.3 (|shock| - E|shock|)`` with
    ``z = noise`` standard normal (same shapes; every synthetic market uses this model)."""
    return base_volume * np.exp(
        _VOLUME_NOISE * noise + _VOLUME_LOADING * (np.abs(shocks) - _MEAN_ABS_NORMAL)
    )


def build_frame(
    rng: np.random.Generator,
    params: dict[str, Any],
    log_returns: np.ndarray,
    bar_vol: np.ndarray,
    eps: np.ndarray,
    jumps: np.ndarray | None = None,
) -> pd.DataFrame:
    """OHLCV bars whose close-to-close log returns are ``log_returns`` (module docstring).

    ``jumps`` (n,), already part of ``log_returns``, is placed in the gap at the open.
    """
    n = log_returns.size
    gap = params["gap_scale"] * bar_vol * rng.standard_normal(n)
    up = np.abs(params["range_scale"] * bar_vol * rng.standard_normal(n))
    down = np.abs(params["range_scale"] * bar_vol * rng.standard_normal(n))
    volume_noise = rng.standard_normal(n)

    log_close = math.log(params["initial_price"]) + np.cumsum(log_returns)
    log_prev = np.concatenate(([math.log(params["initial_price"])], log_close[:-1]))
    with np.errstate(over="ignore", under="ignore"):
        close = np.exp(log_close)
        open_ = np.exp(log_prev + gap if jumps is None else log_prev + gap + jumps)
        # Multiplying by exp(x) >= 1 (or <= 1) keeps the OHLC order exact in floating point.
        high = np.maximum(open_, close) * np.exp(up)
        low = np.minimum(open_, close) * np.exp(-down)
    volume = synthetic_volume(params["base_volume"], volume_noise, eps)
    for name, values in (("high", high), ("low", low), ("open", open_), ("close", close)):
        if not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError(
                f"parameters give non-finite or non-positive {name} prices "
                f"(drift/vol/initial_price too extreme for n_bars={n})"
            )
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=bar_timestamps(params, n),
        dtype=np.float64,
    )


# ----------------------------------------------------------------------------- filtering


def forward_filter(
    log_emission: np.ndarray, transition: np.ndarray, initial: np.ndarray
) -> np.ndarray:
    """Causal posterior ``P(state_t | obs_0..obs_t)`` of a hidden Markov chain, shape (n, K).

    ``log_emission[t, k]`` is ``log p(obs_t | state_t = k)`` up to a per-row constant (NaN rows
    hold NaN for a missing observation: the prior propagates). Row t depends on rows ``<= t`` only.
    """
    log_emission = log_emission - log_emission.max(axis=1, keepdims=True)
    emission = np.exp(log_emission)
    emission[np.isnan(emission).any(axis=1)] = 1.0
    n, k = emission.shape
    posterior = np.empty((n, k))
    prior = initial
    for t in range(n):
        joint = prior * emission[t]
        total = joint.sum()
        # A zero total means the observation is impossible under every state the prior allows
        # (floating-point underflow); keep the prior rather than produce NaN.
        belief = joint / total if total > 0 else prior
        posterior[t] = belief
        prior = belief @ transition
    return posterior


def forward_filter_step(
    prior: np.ndarray, emission: np.ndarray, transition: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One step of the forward filter, batched over leading axes: ``prior`` ``(..., K)`` =
    ``P(state_t | obs_<t)`` and ``emission`` ``(..., K)`` proportional to ``p(obs_t | state_t)``
    give ``(posterior P(state_t | obs_<=t), next prior posterior @ transition)``; an
    observation impossible under every state the prior allows keeps the prior (no NaN)."""
    joint = prior * emission
    total = joint.sum(axis=-1, keepdims=True)
    posterior = np.where(total > 0, joint / np.where(total > 0, total, 1.0), prior)
    return posterior, posterior @ transition


def windowed_forward_filter(
    log_emission: np.ndarray, transition: np.ndarray, initial: np.ndarray, window: int
) -> np.ndarray:
    """Posterior given the newest ``window`` observations only, ``P(state_t | obs_{t-window+1}..
    obs_t)``, shape (n, K): :func:`forward_filter` restarted at row ``t - window + 1`` from
    ``initial`` (pass the chain's stationary distribution: its marginal there). Rows
    ``t < window`` reach row 0 and equal :func:`forward_filter`'s; ``window >= n`` is
    :func:`forward_filter`. What a perfect reader of a ``window``-row history can know.
    """
    window = check_positive_int("window", window)
    out = np.empty(np.shape(log_emission))
    out[:window] = forward_filter(log_emission[:window], transition, initial)
    rows = np.arange(window, out.shape[0])
    if rows.size:
        emission = np.exp(log_emission - log_emission.max(axis=1, keepdims=True))
        emission[np.isnan(emission).any(axis=1)] = 1.0
        prior = np.broadcast_to(initial, (rows.size, out.shape[1]))
        for lag in range(window - 1, -1, -1):  # the oldest row of every window first
            belief, prior = forward_filter_step(prior, emission[rows - lag], transition)
        out[rows] = belief
    return out
