"""The ``lagged`` synthetic market: a shock at bar t - lag is partly reversed at bar t.

Model (one bar is the time unit). The innovation of bar t is

    e_t = drift + vol * z_t + B_t * shock_vol * z'_t,    B_t ~ Bernoulli(shock_prob),

(``z, z'`` independent standard normals: mostly quiet bars, now and then a shock), and the
close-to-close log return is a threshold autoregression at the single lag ``lag``:

    r_t = e_t - strength * d_{t-lag} * 1{|d_{t-lag}| > threshold},    d_j = r_j - drift

(``d_j = 0`` before the first bar). A bar that moved more than ``threshold`` away from the
drift is a *shock*; ``lag`` bars later the price gives back ``strength`` of that move. Nothing
else in the history predicts anything: returns at lags other than multiples of ``lag`` are
uncorrelated, and a quiet bar predicts nothing at any lag. The signal therefore sits at one
place in an observation window: ``lag - 1`` bars before the newest (the decision at the close
of bar t trades bar t + 1, predicted by bar t + 1 - lag). A policy that reads only the newest
bar, or summaries such as momentum, RSI or volatility, has no edge (for ``lag >= 2``).

Best causal forecast. ``r_{t+1-lag}`` is observed at the close of bar t, so

    E[r_{t+1} | closes <= t] = drift - strength * d_{t+1-lag} * 1{|d_{t+1-lag}| > threshold}

exactly (:func:`lag_expected_return`). By the bar construction of
:mod:`quantgym.envs.synthetic_base` the overnight gap has mean zero and is independent of the
past, so this is also the expected intraday return ``log(close_{t+1} / open_{t+1})`` that an
env decision at the close of bar t earns. The exact expert is ``quantgym.policies.LagExpert``.

Defaults: ``lag=5``, ``strength=0.5``, ``threshold=0.025``, ``drift=0``, ``vol=0.01``,
``shock_prob=0.05``, ``shock_vol=0.03``: about 3% of bars are shocks and each is followed by
an expected reversal of about 2%, against 0.3% of costs for a one-bar round trip at the env's
default 15 bp per unit traded. The bar volatility of a shock bar, ``hypot(vol, shock_vol)``,
scales its gap and range; volume loads on the standardised innovation, so shocks come with
volume spikes (no information beyond the return itself).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from quantgym.checks import check_fraction, check_non_negative, check_positive, check_positive_int
from quantgym.envs.synthetic_base import as_float

__all__ = [
    "DEFAULT_LAG_BAND",
    "LAGGED_DEFAULTS",
    "lag_expected_return",
    "lagged_return_variance",
    "resolve_lagged_params",
    "simulate_lagged",
]

#: No-trade band (expected log return per bar) of ``LagExpert`` at 15 bp per unit traded;
#: measured by ``benchmarks/market_calibration.py`` on tuning seeds of the default market.
DEFAULT_LAG_BAND = 0.003

#: Parameters of the ``lagged`` kind and their defaults (see the module docstring).
LAGGED_DEFAULTS: dict[str, Any] = {
    "lag": 5,
    "strength": 0.5,
    "threshold": 0.025,
    "drift": 0.0,
    "vol": 0.01,
    "shock_prob": 0.05,
    "shock_vol": 0.03,
}


def resolve_lagged_params(user: dict[str, Any]) -> dict[str, Any]:
    """The checked ``lagged`` parameters (defaults for the ones ``user`` does not give).

    Raises:
        ValueError: naming the parameter (``lag`` a positive integer, ``|strength| < 1`` so the
            echoes of a shock die out, ``threshold >= 0``, ``vol > 0``, ``shock_prob`` in
            [0, 1], ``shock_vol >= 0``, ``drift`` finite).
    """
    given = {**LAGGED_DEFAULTS, **{k: v for k, v in user.items() if k in LAGGED_DEFAULTS}}
    strength = as_float(given["strength"], "strength")
    if not -1.0 < strength < 1.0:
        raise ValueError(f"strength must be in (-1, 1) (a stationary market), got {strength!r}")
    return {
        "lag": check_positive_int("lag", given["lag"]),
        "strength": strength,
        "threshold": check_non_negative("threshold", given["threshold"]),
        "drift": as_float(given["drift"], "drift"),
        "vol": check_positive("vol", given["vol"]),
        "shock_prob": check_fraction("shock_prob", given["shock_prob"]),
        "shock_vol": check_non_negative("shock_vol", given["shock_vol"]),
    }


def simulate_lagged(
    rng: np.random.Generator, n: int, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(log_returns, bar_vol, eps)`` of ``n`` bars: the returns of the module docstring, the
    volatility of each bar's innovation and the standardised innovation (drives volume)."""
    drift, vol, shock_vol = params["drift"], params["vol"], params["shock_vol"]
    z = rng.standard_normal(n)
    shock = rng.random(n) < params["shock_prob"]
    z_shock = rng.standard_normal(n)
    innovation = vol * z + np.where(shock, shock_vol * z_shock, 0.0)
    bar_vol = np.where(shock, math.hypot(vol, shock_vol), vol)
    lag, strength, threshold = params["lag"], params["strength"], params["threshold"]
    returns = (drift + innovation).tolist()
    for t in range(lag, n):  # plain floats: the recursion is sequential at lag `lag`
        d = returns[t - lag] - drift
        if abs(d) > threshold:
            returns[t] -= strength * d
    return np.asarray(returns), bar_vol, innovation / bar_vol


def lagged_return_variance(params: dict[str, Any]) -> float:
    """Variance of a bar's innovation, ``vol**2 + shock_prob * shock_vol**2``: the variance of
    the next return around its forecast."""
    p = resolve_lagged_params(params)
    return p["vol"] ** 2 + p["shock_prob"] * p["shock_vol"] ** 2


def lag_expected_return(log_close: np.ndarray, params: dict) -> np.ndarray:
    """``E[r_{t+1} | closes <= t]`` of a ``lagged`` market, shape (n,) (module docstring).

    ``log_close[t]`` is the log close of bar t of the generated series (bar 0 first: the return
    of bar 0 is taken from ``params["initial_price"]``, the close before it). Entry t depends
    on ``log_close[t + 1 - lag]`` and ``log_close[t - lag]`` only; ``drift`` before bar
    ``lag - 1`` (no shock before the series starts).
    """
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict, got {type(params).__name__}")
    if params.get("kind", "lagged") != "lagged":
        raise ValueError(f"params describe a {params['kind']!r} market, not a 'lagged' market")
    p = resolve_lagged_params(params)
    x = np.asarray(log_close, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"log_close must be 1-D, got shape {x.shape}")
    before = math.log(as_float(params.get("initial_price", 100.0), "initial_price", positive=True))
    deviation = np.diff(x, prepend=before) - p["drift"]
    reversal = np.where(np.abs(deviation) > p["threshold"], -p["strength"] * deviation, 0.0)
    expected = np.full(x.size, p["drift"])
    lag = p["lag"]
    if lag <= x.size:
        expected[lag - 1 :] += reversal[: x.size - lag + 1]
    return expected
