"""The portfolio ledger: the one source of truth for fills, costs and marking.

Every function here is plain arithmetic that works unchanged on Python floats (the single
``TradingEnv``, where per-step numpy calls would dominate) and on numpy arrays of shape
``(num_envs,)`` (``TradingVectorEnv``). Both envs call these same functions, so their
accounting cannot drift apart.

State of an account: ``units`` held (negative = short) and ``cash``; equity = cash + units * price.

Timing: an order decided at the close of bar t fills at ``open[t+1]``; the account is then
checked for liquidation at bar t+1's adverse extreme (when a maintenance margin is set) and
marked at ``close[t+1]``, where borrow on short notional and financing on borrowed cash are
charged.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

__all__ = [
    "rebalance",
    "impact_fill",
    "liquidate",
    "mark",
    "finance",
    "positive_part",
    "account_features",
]

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

    An order is sent only when ``target != current_target``; otherwise the units held are
    kept (no cost). ``rebalance="every_bar"`` passes ``current_target=nan``, which compares
    unequal to every target, so an order is always sent. Commission is ``commission * |traded notional|`` (+ ``fixed_fee`` per
    order); slippage is ``slippage_rate * |traded notional|``; notional is valued at the open.

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


def impact_fill(
    target: X,
    current_target: X,
    units: X,
    cash: X,
    open_price: X,
    spread_rate: X,
    impact_coef: X,
    average_volume: X,
    max_units: X,
    commission: float,
    fixed_fee: float,
    resend: X | bool = False,
) -> tuple[X, X, X, X, X, X, X]:
    """:func:`rebalance` with a size-dependent cost (the square-root law) and a fill cap.

    The order for ``q`` units pays the rate ``spread_rate + impact_coef * sqrt(q)`` on its
    notional, where ``impact_coef = impact * sigma / sqrt(average_volume)``, so the impact part
    is ``impact * sigma * sqrt(q / average_volume)``. At most ``max_units`` units fill (the largest
    float for no cap: ``inf`` would turn the exact selection into NaN); the rest of the order is reported as ``unfilled_units`` (signed).

    Returns ``(units, cash, traded_notional_signed, fees, slippage_cost, participation,
    unfilled_units)`` with ``participation = q / average_volume`` of the filled order.
    """
    equity_open = cash + units * open_price
    changed = (target != current_target) | resend
    wanted = (target * equity_open / open_price - units) * changed
    size = abs(wanted)
    below = size < max_units
    cap = size * below + max_units * (1 - below)  # min(|wanted|, max_units), exact
    trade_units = cap * ((wanted > 0) * 1.0 - (wanted < 0) * 1.0)
    quantity = abs(trade_units)
    notional = trade_units * open_price
    abs_notional = abs(notional)
    fees = abs_notional * commission + fixed_fee * (abs_notional > 0)
    slippage_cost = abs_notional * (spread_rate + impact_coef * quantity**0.5)
    cash = cash - notional - fees - slippage_cost
    return (
        units + trade_units,
        cash,
        notional,
        fees,
        slippage_cost,
        quantity / average_volume,
        wanted - trade_units,
    )


def liquidate(
    units: X,
    cash: X,
    open_price: X,
    low: X,
    high: X,
    maintenance_margin: float,
    fee_rate: float,
    slippage_rate: X,
    fixed_fee: float,
) -> tuple[X, X, X, X, X, X]:
    """Check the account at the bar's adverse extreme and close it if margin is breached.

    After the fill at the open, a long is checked at the bar's ``low`` and a short at its
    ``high``: if equity there is below ``maintenance_margin * |units| * price``, the position
    is closed at the liquidation level (where equity equals the requirement) or at the open
    when the bar opened beyond it (a gap books the open, never the better level). The close
    pays ``fee_rate`` (commission + liquidation fee) and ``slippage_rate`` on its notional, and
    ``fixed_fee``.

    Returns ``(units, cash, liquidated, liquidation_price, fees, slippage_cost)``;
    ``liquidation_price`` and the costs are 0 where nothing was liquidated.
    """
    is_long = units > 0
    extreme = low * is_long + high * (units <= 0)
    size = abs(units)
    hit = (cash + units * extreme < maintenance_margin * size * extreme) & (units != 0)
    # Level p where cash + units * p == maintenance_margin * |units| * p.
    denom = units - maintenance_margin * size
    level = -cash / (denom + (denom == 0))
    long_price = open_price - positive_part(open_price - level)  # min(open, level)
    short_price = open_price + positive_part(level - open_price)  # max(open, level)
    price = (long_price * is_long + short_price * (units < 0)) * hit
    abs_notional = size * price
    fees = abs_notional * fee_rate + fixed_fee * hit
    slippage_cost = abs_notional * slippage_rate
    cash = cash + units * price - fees - slippage_cost  # sold (long) or bought back (short)
    units = units * (1 - hit)
    return units, cash, hit, price, fees, slippage_cost


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


def finance(cash: X, financing_rate: float) -> tuple[X, X]:
    """Charge ``financing_rate`` per bar on borrowed cash (negative cash: a levered long, or
    costs paid beyond the cash held), before marking at the close.

    Returns ``(cash, financing_cost)``.
    """
    financing_cost = (abs(cash) - cash) * 0.5 * financing_rate  # inlined positive_part(-cash)
    return cash - financing_cost, financing_cost


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
