"""Seeded synthetic markets with a known generating process, and the exact filters for them.

Five kinds (``SYNTHETIC_KINDS``), all built by :func:`generate_market`; the first three are
defined here, the other two in their own modules:

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
``"lagged"``
    A shock at bar t - ``lag`` is partly reversed (``strength``) at bar t, and nothing else
    predicts anything: :mod:`quantgym.envs.synthetic_lagged`.
``"crash"``
    A drifting diffusion with compound-Poisson crashes in the gap at the open, whose rate
    follows hidden calm / stressed regimes: :mod:`quantgym.envs.synthetic_crash`.

Bars (same construction for every kind, so close-to-close log returns are exactly the model's;
see :mod:`quantgym.envs.synthetic_base`): ``open_t = close_{t-1} * exp(g_t)`` with an overnight
gap ``g_t ~ N(0, gap_scale * vol_t)`` (``close_{-1} = initial_price``; the crash market adds its
jumps to the gap), ``close_t = close_{t-1} * exp(r_t)``, so the intraday part
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
from typing import Any

import numpy as np

from quantgym.envs.synthetic_base import (
    COMMON_DEFAULTS,
    SyntheticMarket,
    as_distribution,
    as_float,
    as_int,
    as_transition,
    as_vector,
    bar_timestamps,
    build_frame,
    forward_filter,
    resolve_common_params,
    sample_markov_chain,
    stationary_distribution,
    windowed_forward_filter,
)
from quantgym.envs.synthetic_crash import (
    CRASH_DEFAULTS,
    resolve_crash_params,
    simulate_crash,
)
from quantgym.envs.synthetic_lagged import (
    LAGGED_DEFAULTS,
    resolve_lagged_params,
    simulate_lagged,
)

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

SYNTHETIC_KINDS: tuple[str, ...] = ("regime", "gbm", "mean_reversion", "lagged", "crash")

#: No-trade band (in expected log return per bar) of ``bayes_filter_positions``; measured by
#: ``benchmarks/market_calibration.py`` on the default regime market with 15 bp costs.
DEFAULT_BAYES_BAND = 0.0002

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
    "lagged": tuple(LAGGED_DEFAULTS),
    "crash": tuple(CRASH_DEFAULTS),
}
_REGIME_DEFAULT_DRIFTS = (0.002, -0.002, 0.0)
_REGIME_DEFAULT_VOL = 0.01
_REGIME_DEFAULT_NAMES = ("bull", "bear", "sideways")
_REGIME_DEFAULT_DURATION = 200.0


# ----------------------------------------------------------------------------- validation


def _check_kind(kind: Any) -> str:
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f"kind {kind!r} is not valid; valid kinds: {', '.join(SYNTHETIC_KINDS)}")
    return str(kind)


def _regime_params(user: dict[str, Any]) -> dict[str, Any]:
    sizes = {}
    drifts = vols = transition = None
    if user.get("drifts") is not None:
        drifts = as_vector(user["drifts"], "drifts")
        sizes["drifts"] = drifts.size
    if user.get("vols") is not None and np.ndim(user["vols"]) != 0:
        vols = as_vector(user["vols"], "vols")
        sizes["vols"] = vols.size
    if user.get("regime_names") is not None:
        names = user["regime_names"]
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"regime_names must be a sequence of strings, got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"regime_names must be unique, got {names!r}")
        sizes["regime_names"] = len(names)
    if user.get("transition") is not None:
        transition = as_transition(user["transition"], None)
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
        vols = np.full(k, as_float(vol, "vols", positive=True))
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
        mean_duration = as_float(
            _REGIME_DEFAULT_DURATION if mean_duration is None else mean_duration,
            "mean_duration",
        )
        if mean_duration < 1.0:
            raise ValueError(f"mean_duration must be >= 1 bar, got {mean_duration}")
        stay = 1.0 - 1.0 / mean_duration
        transition = np.full((k, k), (1.0 - stay) / (k - 1))
        np.fill_diagonal(transition, stay)
    if user.get("initial_distribution") is not None:
        initial = as_distribution(user["initial_distribution"], "initial_distribution", k)
    else:
        initial = stationary_distribution(transition)
    return {
        "mean_duration": mean_duration,
        "drifts": drifts.tolist(),
        "vols": vols.tolist(),
        "transition": transition.tolist(),
        "regime_names": names,
        "initial_distribution": initial.tolist(),
    }


def _resolve_params(kind: str, n_bars: int, seed: int, user: dict[str, Any]) -> dict[str, Any]:
    valid = tuple(COMMON_DEFAULTS) + _KIND_PARAMS[kind]
    for name in user:
        if name not in valid:
            raise ValueError(
                f"unknown parameter {name!r} for kind {kind!r}; valid parameters: {', '.join(valid)}"
            )
    params: dict[str, Any] = {"kind": kind, "seed": seed, "n_bars": n_bars}
    params.update(resolve_common_params(n_bars, user))

    if kind == "regime":
        params.update(_regime_params(user))
    elif kind == "gbm":
        params["drift"] = as_float(user.get("drift", 0.0), "drift")
        params["vol"] = as_float(user.get("vol", 0.01), "vol", positive=True)
    elif kind == "mean_reversion":
        params["theta"] = as_float(user.get("theta", 0.02), "theta", positive=True)
        params["mu"] = as_float(user.get("mu", math.log(100.0)), "mu")
        params["sigma"] = as_float(user.get("sigma", 0.01), "sigma", positive=True)
    elif kind == "lagged":
        params.update(resolve_lagged_params(user))
    else:
        params.update(resolve_crash_params(user, params["gap_scale"]))
    return params


# ----------------------------------------------------------------------------- generation


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
            ``mu`` (log 100), ``sigma`` (0.01); ``lagged``: ``lag`` (5), ``strength`` (0.5),
            ``threshold`` (0.025), ``drift`` (0), ``vol`` (0.01), ``shock_prob`` (0.05),
            ``shock_vol`` (0.03); ``crash``: ``drift`` (0.0004), ``vol`` (0.01),
            ``crash_rates`` ((0.002, 0.04) per bar, one per regime), ``mean_durations``
            ((400, 60)) or ``transition``, ``jump_mean`` (-0.04), ``jump_vol`` (0.02),
            ``regime_names``, ``initial_distribution``. See the module docstrings for the models.

    Raises:
        ValueError: unknown ``kind`` (lists the valid kinds), unknown parameter, or a bad value,
            naming it.
    """
    kind = _check_kind(kind)
    n_bars = as_int(n_bars, "n_bars", 1)
    seed = as_int(seed, "seed", 0)
    resolved = _resolve_params(kind, n_bars, seed, params)
    bar_timestamps(resolved, n_bars)  # fail on a bad freq before spending time on the paths
    rng = np.random.default_rng(seed)
    regime = None
    jumps = None
    if kind == "regime":
        transition = np.asarray(resolved["transition"])
        regime = sample_markov_chain(
            rng, n_bars, transition, np.asarray(resolved["initial_distribution"])
        )
        eps = rng.standard_normal(n_bars)
        bar_vol = np.asarray(resolved["vols"])[regime]
        log_returns = np.asarray(resolved["drifts"])[regime] + bar_vol * eps
    elif kind == "gbm":
        eps = rng.standard_normal(n_bars)
        bar_vol = np.full(n_bars, resolved["vol"])
        log_returns = resolved["drift"] + bar_vol * eps
    elif kind == "mean_reversion":
        eps = rng.standard_normal(n_bars)
        log_price = _simulate_ou(eps, resolved)
        previous = np.concatenate(([math.log(resolved["initial_price"])], log_price[:-1]))
        log_returns = log_price - previous
        bar_vol = np.full(n_bars, resolved["sigma"])
    elif kind == "lagged":
        log_returns, bar_vol, eps = simulate_lagged(rng, n_bars, resolved)
    else:
        path = simulate_crash(rng, n_bars, resolved)
        regime, jumps = path["regime"], path["jumps"]
        log_returns, bar_vol, eps = path["log_returns"], path["bar_vol"], path["eps"]
    frame = build_frame(rng, resolved, log_returns, bar_vol, eps, jumps)
    if kind == "crash":
        return SyntheticMarket(
            frame=frame,
            regime=regime,
            params=resolved,
            jump_counts=path["jump_counts"],
            jump_sizes=jumps,
        )
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
    transition = as_transition(params["transition"], None)
    k = transition.shape[0]
    drifts = as_vector(params["drifts"], "drifts")
    vols = as_vector(params["vols"], "vols")
    for name, arr in (("drifts", drifts), ("vols", vols)):
        if arr.size != k:
            raise ValueError(f"params[{name!r}] must have {k} entries, got {arr.size}")
    if np.any(vols <= 0):
        raise ValueError(f"params['vols'] must be > 0, got {vols.tolist()}")
    if params.get("initial_distribution") is not None:
        initial = as_distribution(params["initial_distribution"], "initial_distribution", k)
    else:
        initial = stationary_distribution(transition)
    return transition, drifts, vols, initial


def hmm_forward_filter(
    log_returns: np.ndarray, params: dict, window: int | None = None
) -> np.ndarray:
    """Causal posterior ``P(regime_t | r_0..r_t)`` of a ``regime`` market, shape (n, K).

    ``log_returns[t]`` is the close-to-close log return of bar t (``log close_t - log close_{t-1}``);
    NaN marks a missing observation (e.g. ``np.diff(np.log(close), prepend=np.nan)``), which
    only propagates the prior. Row t depends on ``log_returns[:t + 1]`` only. The model is the
    generating one: regime 0 ~ ``initial_distribution`` (stationary if absent), Markov
    ``transition``, Gaussian emissions ``N(drifts[k], vols[k]**2)`` evaluated in log space and
    normalised every step. ~0.2 s per 100k bars for K = 3.

    ``window``: read the newest ``window`` returns only, ``P(regime_t | r_{t-window+1}..r_t)``
    (:func:`~quantgym.envs.synthetic_base.windowed_forward_filter`, restarted from the
    stationary distribution, the regime's marginal there): what a perfect reader of a
    ``window``-bar history can know. ``None`` (default): every return so far.
    """
    transition, drifts, vols, initial = _regime_arrays(params)
    r = np.asarray(log_returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"log_returns must be 1-D, got shape {r.shape}")
    if np.any(np.isinf(r)):
        raise ValueError(
            f"log_returns has an infinite value at row {int(np.flatnonzero(np.isinf(r))[0])}"
        )
    # Log emission densities (the filter shifts each row's max to 0, which cancels on normalising).
    z = (r[:, None] - drifts[None, :]) / vols[None, :]
    log_emission = -0.5 * z * z - np.log(vols)[None, :]
    if window is None:
        return forward_filter(log_emission, transition, initial)
    return windowed_forward_filter(
        log_emission, transition, stationary_distribution(transition), window
    )


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
    theta = as_float(params["theta"], "theta", positive=True)
    mu = as_float(params["mu"], "mu")
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
    band = as_float(band, "band", nonneg=True)
    returns = np.diff(log_close, prepend=np.nan)
    expected = regime_expected_return(hmm_forward_filter(returns, params), params)
    return _hysteresis_positions(expected, band)
