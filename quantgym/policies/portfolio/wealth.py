"""Wealth of a weight schedule over price relatives, with two-way proportional fees.

Each period ``t`` starts from value ``V`` held as asset values ``h`` (N,) plus cash. The
portfolio is rebalanced to the target weights ``b_t`` at a post-trade value ``V'`` that pays
``fee`` on every unit bought *and* sold, out of the value it reduces::

    V' = V - fee * sum_i |b_ti V' - h_i|          (cash is never charged)

solved exactly by the env's ledger (:func:`quantgym.envs.accounting.solve_rebalance_scale`:
the right side is piecewise linear in ``V'``). The period then earns
``V' (1 + b_t . (x_t - 1))`` (cash earns 1), and ``h`` becomes ``b_t V' x_t``. The first
period buys from all cash, so it pays ``fee * sum b_0``. With ``fee=0`` this is
universal-portfolios' wealth. With fees, universal-portfolios charges the same per-side rate on
the turnover ``sum |b_t - b~_t|`` (``b~`` the drifted weights), but approximately (out of the
pre-trade value, after the period's growth) and not on the first purchase: UCRP on DJIA at 0.1%
gives 0.80485 there and 0.80405 here, the first purchase's 0.1% being nearly all of the gap.
Papers that charge ``gamma / 2`` per unit of turnover (a round-trip rate ``gamma``, the subject
of universal-portfolios' issue #101) correspond to ``fee = gamma / 2``.
"""

from __future__ import annotations

import numpy as np

from quantgym.checks import check_fraction
from quantgym.envs.accounting import solve_rebalance_scale
from quantgym.policies.portfolio.olps import OLPSAlgorithm
from quantgym.policies.portfolio.simplex import check_relatives

__all__ = ["price_relatives", "wealth_path", "olps_wealth"]

#: Slack allowed on the simplex constraints of a weight schedule (solver round-off).
WEIGHT_TOLERANCE = 1e-9


def price_relatives(close: np.ndarray) -> np.ndarray:
    """Price relatives ``x_t = close_t / close_(t-1)`` (T, N) of closes (T, N) that may hold
    NaN where an asset has no bar. Row 0 is 1; a relative across missing bars divides by the
    last close before them (never a later one); a missing bar, or an asset's first, gives 1."""
    close = np.asarray(close, dtype=np.float64)
    if close.ndim != 2 or close.shape[0] < 1 or close.shape[1] < 1:
        raise ValueError(f"close must be a (T, N) array, got shape {close.shape}")
    present = ~np.isnan(close)
    if (np.isinf(close) | (present & (close <= 0))).any():
        t, i = np.argwhere(np.isinf(close) | (present & ~(close > 0)))[0]
        raise ValueError(
            f"close must be positive or NaN (no bar); close[{t}, {i}] = {close[t, i]!r}"
        )
    # last valid close at or before each bar (forward fill, causal)
    index = np.where(present, np.arange(close.shape[0])[:, None], -1)
    np.maximum.accumulate(index, axis=0, out=index)
    filled = np.where(index >= 0, close[np.maximum(index, 0), np.arange(close.shape[1])], np.nan)
    previous = np.vstack([np.full((1, close.shape[1]), np.nan), filled[:-1]])
    with np.errstate(invalid="ignore"):
        x = close / previous
    return np.where(np.isfinite(x), x, 1.0)


def wealth_path(weights: np.ndarray, x: np.ndarray, fee: float = 0.0) -> np.ndarray:
    """Wealth ``(T + 1,)`` from 1 of the weights ``b_t`` (T, N) held over the relatives ``x``
    (T, N), paying the two-way ``fee`` at every rebalance (module docstring)."""
    x = check_relatives(x)
    b = np.asarray(weights, dtype=np.float64)
    if b.shape != x.shape:
        raise ValueError(f"weights must have the shape of x {x.shape}, got {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError("weights must be finite")
    if (b < -WEIGHT_TOLERANCE).any() or (b.sum(axis=1) > 1.0 + WEIGHT_TOLERANCE).any():
        raise ValueError("weights must be non-negative and sum to at most 1 in every period")
    fee = check_fraction("fee", fee)
    if fee >= 1.0:
        raise ValueError(f"fee must be < 1, got {fee!r}")
    growth = 1.0 + np.einsum("tn,tn->t", x - 1.0, b)  # cash earns 1
    wealth = np.empty(x.shape[0] + 1)
    wealth[0] = 1.0
    if fee == 0.0:
        wealth[1:] = np.cumprod(growth)
        return wealth
    holdings = np.zeros(x.shape[1])
    rates = np.full(x.shape[1], fee)
    value = 1.0
    for t in range(x.shape[0]):
        traded = max(float(solve_rebalance_scale(1.0, b[t], holdings, rates, value)), 0.0)
        holdings = b[t] * traded * x[t]
        value = traded * growth[t]
        wealth[t + 1] = value
    return wealth


def olps_wealth(algorithm: OLPSAlgorithm, x: np.ndarray, fee: float = 0.0) -> float:
    """Final wealth (from 1) of ``algorithm`` run over the relatives ``x`` (T, N), paying the
    two-way proportional ``fee`` on every trade (:func:`wealth_path`)."""
    if not isinstance(algorithm, OLPSAlgorithm):
        raise ValueError(f"algorithm must be an OLPSAlgorithm, got {type(algorithm).__name__}")
    return float(wealth_path(algorithm.weights(x), x, fee)[-1])
