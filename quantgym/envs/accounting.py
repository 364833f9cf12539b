"""The portfolio ledger: the one source of truth for fills, costs and marking.

Every function here is plain arithmetic that works unchanged on Python floats (the single
``TradingEnv``, where per-step numpy calls would dominate) and on numpy arrays of shape
``(num_envs,)`` (``TradingVectorEnv``). Both envs call these same functions, so their
accounting cannot drift apart.

State of an account: ``units`` held (negative = short) and ``cash``; equity = cash + units * price.

Timing: an order decided at the close of bar t fills at ``open[t+1]``; the account is then
marked at ``close[t+1]``.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

__all__ = ["rebalance", "mark", "positive_part", "account_features"]

X = TypeVar("X", float, np.ndarray)


def positive_part(x: X) -> X:
    """``max(x, 0)``, exact for floats and arrays (``(x + |x|) / 2`` is exact in IEEE-754)."""
    return (x + abs(x)) * 0.5


def rebalance(
    target: X,
    current_target: X,
    units: X,
    cash: X,
    open_price: X,
    slippage_rate: X,
    commission: float,
    fixed_fee: float,
) -> tuple[X, X, X, X, X]:
    """Fill the order that moves the account to ``target`` (fraction of equity at the open).

    An order is sent only when ``target != current_target``; otherwise the units held are kept
    (no cost). Commission is ``commission * |traded notional|`` (+ ``fixed_fee`` per order);
    slippage is ``slippage_rate * |traded notional|``; notional is valued at the open.

    Returns ``(units, cash, traded_notional_signed, fees, slippage_cost)``.
    """
    equity_open = cash + units * open_price
    changed = target != current_target
    trade_units = (target * equity_open / open_price - units) * changed
    notional = trade_units * open_price
    abs_notional = abs(notional)
    fees = abs_notional * commission + fixed_fee * (abs_notional > 0)
    slippage_cost = abs_notional * slippage_rate
    cash = cash - notional - fees - slippage_cost
    units = units + trade_units
    return units, cash, notional, fees, slippage_cost


def mark(units: X, cash: X, close_price: X, borrow_rate: float) -> tuple[X, X, X]:
    """Charge borrow on short notional at the close and mark to market.

    Returns ``(cash, equity, borrow_cost)``.
    """
    borrow_cost = (
        (abs(units) - units) * 0.5 * close_price * borrow_rate
    )  # short notional; inlined positive_part(-units)
    cash = cash - borrow_cost
    equity = cash + units * close_price
    return cash, equity, borrow_cost


def account_features(
    target: X, units: X, close_price: X, equity: X, entry_equity: X, peak: X, bars_in_position: X
) -> tuple[X, X, X, X, X]:
    """The account part of the observation, in ``ACCOUNT_FEATURES`` order:
    ``(position, exposure, unrealized_pnl, drawdown, time_in_position)``.

    A liquidated account (equity 0) divides by 1 instead of 0: exposure 0, drawdown -1.
    """
    denom = equity + (equity <= 0.0) * 1.0
    exposure = units * close_price / denom
    unrealized = (equity / entry_equity - 1.0) * (target != 0.0)
    drawdown = equity / peak - 1.0
    time_in_position = bars_in_position / (bars_in_position + 20.0)
    return target, exposure, unrealized, drawdown, time_in_position
