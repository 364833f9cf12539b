"""Episode performance metrics computed from an equity curve, in pure numpy.

``performance_metrics`` is called once at the end of every episode, so it is written to be
cheap (a 10k-step episode takes well under a millisecond) and to never raise or warn on
degenerate but legitimate episodes: zero or one step, a flat equity curve, or a bankruptcy
that drives equity to zero. Invalid *input* (wrong shapes or lengths, a non-positive
initial equity, NaN positions/trades/fees) raises ``ValueError`` naming the argument.

Conventions follow empyrical (``empyrical-reloaded``) on the simple returns
``r = equity[1:] / equity[:-1] - 1``; the tests check Sharpe, Sortino, max drawdown and
annualised return against it. The one deliberate difference: a ratio whose denominator is
zero (constant returns for Sharpe, no losing bar for Sortino, no drawdown for Calmar) is
``nan``, never ``inf``, so metrics can be averaged across episodes without special cases.
"Zero" means at most ``ZERO_TOLERANCE`` (1e-12 per bar): an equity curve recomputed each
step jitters by ~1e-16 even when flat, and a ratio over that noise would be garbage.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["METRIC_NAMES", "ZERO_TOLERANCE", "performance_metrics", "drawdown_durations"]

METRIC_NAMES: tuple[str, ...] = (
    "total_return",
    "annualized_return",
    "annualized_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "turnover",
    "n_trades",
    "win_rate",
    "fees_paid",
    "exposure",
    "final_equity",
    "n_steps",
)

_NAN = float("nan")
# Dispersions (per-bar std, downside deviation, drawdown) at or below this are rounding noise
# in an equity curve that is really flat or steadily growing: a ratio over them is nan.
ZERO_TOLERANCE = 1e-12


def _as_series(values: object, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D array of numbers ({exc})") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    return array


def _per_step(values: object, name: str, n_steps: int) -> np.ndarray | None:
    """An optional per-step series: ``n_steps`` finite values (one per equity mark)."""
    if values is None:
        return None
    array = _as_series(values, name)
    if array.size != n_steps:
        raise ValueError(
            f"{name} has length {array.size} but equity has {n_steps + 1} points; "
            f"expected one value per step ({n_steps})"
        )
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array))[:3].tolist()
        raise ValueError(f"{name} has NaN/inf values at steps {bad}")
    return array


def _win_rate(equity: np.ndarray, positions: np.ndarray) -> float:
    """Share of holding periods (maximal runs of one constant nonzero position) that made money.

    A run over steps ``i..j`` is held through the bars marked at ``equity[i+1..j+1]``, so its
    PnL is ``equity[j + 1] / equity[i] - 1``.
    """
    n_steps = positions.size
    if n_steps == 0:
        return _NAN
    changes = np.flatnonzero(positions[1:] != positions[:-1]) + 1
    starts = np.concatenate(([0], changes))
    ends = np.concatenate((changes, [n_steps]))  # exclusive end step == index of the last mark
    held = positions[starts] != 0.0
    if not held.any():
        return _NAN
    pnl = equity[ends[held]] / equity[starts[held]] - 1.0  # nan (not a win) after a bankruptcy
    return float(np.count_nonzero(pnl > 0.0) / pnl.size)


def performance_metrics(
    equity: object,
    *,
    bars_per_year: float,
    positions: object = None,
    trade_notional: object = None,
    fees: object = None,
) -> dict[str, float]:
    """Summarise one episode.

    Args:
        equity: 1-D array of length ``T + 1``: the initial equity, then the equity marked at
            each of the ``T`` steps. Zero, negative or non-finite values after the first
            (a bankruptcy) are tolerated: returns that are undefined are left out of the
            return statistics, as empyrical's nan-aware functions do.
        bars_per_year: annualisation factor (252 for daily bars, ~6240 for hourly ones).
        positions: optional, length ``T``: the position held during each step (the bar
            marked at ``equity[t + 1]``), as a signed fraction of equity.
        trade_notional: optional, length ``T``: signed currency value traded at each step.
        fees: optional, length ``T``: costs paid at each step (commission, slippage, ...).

    Returns:
        A dict with the keys of ``METRIC_NAMES`` (Python floats; ``n_trades`` and ``n_steps``
        are ints):

        - ``total_return``: ``equity[-1] / equity[0] - 1``.
        - ``annualized_return``: CAGR, ``(equity[-1] / equity[0]) ** (bars_per_year / T) - 1``
          (empyrical ``annual_return``).
        - ``annualized_volatility``: ``std(r, ddof=1) * sqrt(bars_per_year)``.
        - ``sharpe``: ``mean(r) / std(r, ddof=1) * sqrt(bars_per_year)`` (risk-free 0).
        - ``sortino``: empyrical ``sortino_ratio`` with required return 0.
        - ``max_drawdown``: most negative ``equity / running_peak - 1`` (<= 0).
        - ``calmar``: ``annualized_return / |max_drawdown|``; nan without a drawdown.
        - ``turnover``: ``sum |trade_notional| / mean(equity)`` (0 if not given).
        - ``n_trades``: number of steps with a nonzero trade (0 if not given).
        - ``win_rate``: share of holding periods with a positive PnL (nan if none / not given).
        - ``fees_paid``: ``sum(fees)`` (0 if not given).
        - ``exposure``: ``mean |positions|`` (nan if not given).
        - ``final_equity`` and ``n_steps`` (``T``).

        Statistics that need more data than there is are nan: return statistics need one
        return (two for volatility, Sharpe and Sortino). A ratio whose denominator is at
        most ``ZERO_TOLERANCE`` (Sharpe, Sortino, Calmar) is nan.

    Raises:
        ValueError: naming the argument, on wrong shapes or lengths, a non-finite or
            non-positive initial equity, a non-positive ``bars_per_year``, or non-finite
            positions, trades or fees.
    """
    eq = _as_series(equity, "equity")
    if eq.size == 0:
        raise ValueError("equity must contain at least the initial equity")
    if not (math.isfinite(eq[0]) and eq[0] > 0.0):
        raise ValueError(f"equity[0] (the initial equity) must be finite and > 0, got {eq[0]}")
    try:
        ann = float(bars_per_year)
    except (TypeError, ValueError):
        raise ValueError(f"bars_per_year must be a number, got {bars_per_year!r}") from None
    if not (math.isfinite(ann) and ann > 0.0):
        raise ValueError(f"bars_per_year must be finite and > 0, got {bars_per_year!r}")

    n_steps = eq.size - 1
    pos = _per_step(positions, "positions", n_steps)
    trades = _per_step(trade_notional, "trade_notional", n_steps)
    fee = _per_step(fees, "fees", n_steps)

    with np.errstate(all="ignore"):
        clean = bool(np.isfinite(eq).all() and (eq[:-1] > 0.0).all())
        returns = eq[1:] / eq[:-1] - 1.0
        if not clean:
            # A return is undefined once equity is gone (or missing): drop it, like nanmean.
            returns = returns[np.isfinite(returns) & (eq[:-1] > 0.0)]
        n_returns = returns.size

        final = float(eq[-1])
        growth = np.float64(final) / eq[0]  # numpy scalar: overflow/negative -> inf/nan, no raise
        total_return = float(growth - 1.0)
        if n_steps == 0:
            annualized_return = _NAN
        else:
            annualized_return = float(np.power(growth, ann / n_steps) - 1.0)

        volatility = sharpe = sortino = _NAN
        if n_returns >= 2:
            mean = returns.mean()
            std = returns.std(ddof=1)
            volatility = float(std * math.sqrt(ann))
            if std > ZERO_TOLERANCE:
                sharpe = float(mean / std * math.sqrt(ann))
            downside = np.minimum(returns, 0.0)
            downside_deviation = math.sqrt(float(np.dot(downside, downside)) / n_returns)
            if downside_deviation > ZERO_TOLERANCE:
                sortino = float(mean * ann / (downside_deviation * math.sqrt(ann)))

        if n_steps == 0:
            max_drawdown = _NAN
        else:
            if clean:
                peak = np.maximum.accumulate(eq)
                max_drawdown = float((eq / peak).min() - 1.0)
            else:
                peak = np.fmax.accumulate(eq)
                max_drawdown = float(np.nanmin(eq / peak) - 1.0)
        calmar = _NAN
        if max_drawdown < -ZERO_TOLERANCE:
            ratio = annualized_return / abs(max_drawdown)
            if math.isfinite(ratio):
                calmar = ratio

        turnover = 0.0
        n_trades = 0
        if trades is not None:
            mean_equity = float(eq.mean() if clean else eq[np.isfinite(eq)].mean())
            traded = float(np.abs(trades).sum())
            turnover = traded / mean_equity if mean_equity > 0.0 else _NAN
            n_trades = int(np.count_nonzero(trades))
        win_rate = _NAN if pos is None else _win_rate(eq, pos)

    return {
        "total_return": total_return,
        "annualized_return": annualized_return,
        "annualized_volatility": volatility,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": max_drawdown,
        "calmar": calmar,
        "turnover": turnover,
        "n_trades": n_trades,
        "win_rate": win_rate,
        "fees_paid": 0.0 if fee is None else float(fee.sum()),
        "exposure": _NAN if pos is None or n_steps == 0 else float(np.abs(pos).mean()),
        "final_equity": final,
        "n_steps": n_steps,
    }


def drawdown_durations(equity: object) -> dict[str, float]:
    """How long an equity path stays below its running peak (time-to-recover statistics).

    Args:
        equity: 1-D array, the initial equity then the equity at each step (as
            :func:`performance_metrics`).

    Returns:
        ``max_underwater_bars``: the longest run of steps strictly below the running peak (a run
        still open at the end counts up to the end, so it is a lower bound there);
        ``recovery_bars``: steps from the peak before the deepest trough until the equity is
        back at that peak, ``nan`` when it is not back by the end (or there was no drawdown:
        then 0); ``recovered``: 1.0 when the deepest drawdown was recovered (or there was
        none), else 0.0.
    """
    eq = _as_series(equity, "equity")
    peak = np.maximum.accumulate(eq)
    under = eq < peak * (1.0 - ZERO_TOLERANCE)
    longest = run = 0
    for flag in under:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    drawdown = np.where(peak > 0, 1.0 - eq / np.where(peak > 0, peak, 1.0), 0.0)
    if not under.any():
        return {"max_underwater_bars": 0.0, "recovery_bars": 0.0, "recovered": 1.0}
    trough = int(np.argmax(drawdown))
    peak_at = int(np.argmax(eq[: trough + 1]))
    back = np.flatnonzero(eq[trough:] >= eq[peak_at])
    if back.size == 0:
        return {"max_underwater_bars": float(longest), "recovery_bars": _NAN, "recovered": 0.0}
    return {
        "max_underwater_bars": float(longest),
        "recovery_bars": float(trough + int(back[0]) - peak_at),
        "recovered": 1.0,
    }
