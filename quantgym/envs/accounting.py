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

Portfolios of N assets (``PortfolioEnv`` and ``PortfolioVectorEnv``) use the functions from
:func:`solve_rebalance_scale` on: arrays ``(..., N)`` of per-asset values with any leading batch
shape (``()`` for one account, ``(num_envs,)`` for many) and ``(...)`` per-account scalars.
The post-trade value ``V'`` of a rebalance to target weights ``w`` solves
``V' = V - sum_i cost_i(|w_i V' - h_i|)`` (``h_i``: value held at the open); costs are charged
on the asset legs only, never on the cash leg.
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
    "solve_rebalance_scale",
    "rebalance_weights",
    "close_positions",
    "mark_portfolio",
    "portfolio_weights",
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


# -- portfolios of N assets ---------------------------------------------------------------------

#: Newton iterations of the square-root impact solve (it converges in < 10 from its bracket).
_MAX_NEWTON = 100
_NEGLIGIBLE_WEIGHT = 1e-200


def _segment_solution(
    k: np.ndarray, targets: np.ndarray, holdings: np.ndarray, cost_rate: np.ndarray, rhs: np.ndarray
) -> np.ndarray:
    """The root of ``k y + sum_i c_i |a_i y - h_i| = rhs`` for strictly increasing left sides.

    ``|a_i y - h_i| = |a_i| |y - h_i / a_i|``, so the left side is ``k y`` plus a weighted sum of
    distances to the breakpoints ``b_i = h_i / a_i`` (weights ``c_i |a_i|``) plus the constant
    ``sum c_i |h_i|`` of the assets with ``a_i = 0``: convex, piecewise linear, linear between
    sorted breakpoints. Its value at every breakpoint comes from prefix sums; being increasing,
    it is ``<= rhs`` on a prefix of the sorted breakpoints, and the root lies on the segment
    right after that prefix, where it is solved in closed form.
    """
    lead, n = targets.shape[:-1], targets.shape[-1]
    # |a_i| <= _NEGLIGIBLE_WEIGHT counts as 0 (its term is c_i |h_i| to within c_i 1e-200 V'):
    # h_i / a_i would overflow to inf and turn the prefix sums into NaN.
    nonzero = np.abs(targets) > _NEGLIGIBLE_WEIGHT
    weight = np.abs(targets) * cost_rate * nonzero
    breaks = np.where(nonzero, holdings, 0.0) / np.where(nonzero, targets, 1.0)
    rhs = rhs - (np.abs(holdings) * cost_rate * ~nonzero).sum(axis=-1)
    order = breaks.reshape(-1, n).argsort(axis=-1, kind="stable")
    order += (np.arange(order.shape[0]) * n)[:, None]  # flat indices: one gather per array
    b = breaks.reshape(-1)[order].reshape(targets.shape)
    w = weight.reshape(-1)[order].reshape(targets.shape)
    wb = w * b
    w_lo = w.cumsum(axis=-1)  # weight of the breakpoints <= b_(m)
    wb_lo = wb.cumsum(axis=-1)
    w_all, wb_all = w_lo[..., -1], wb_lo[..., -1]
    k_ = np.broadcast_to(k, lead)
    # left side at b_(m) minus rhs: slope (k + W_lo - W_hi), offset (W_hi b_hi - W_lo b_lo)
    at_breaks = (
        (k_[..., None] + 2.0 * w_lo - w_all[..., None]) * b
        + (wb_all[..., None] - 2.0 * wb_lo)
        - rhs[..., None]
    )
    left = at_breaks <= 0.0  # the breakpoints left of the root (a prefix)
    w_m = (w * left).sum(axis=-1)
    wb_m = (wb * left).sum(axis=-1)
    return (rhs + 2.0 * wb_m - wb_all) / (k_ + 2.0 * w_m - w_all)


def _impact_residual(
    y: np.ndarray, k: np.ndarray, a: np.ndarray, h: np.ndarray, c: np.ndarray, d: np.ndarray,
    rhs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``f(y) = k y + sum(c |a y - h| + d |a y - h|^1.5) - rhs`` and its derivative in ``y``."""
    gap = a * y[..., None] - h
    size = np.abs(gap)
    root = np.sqrt(size)
    f = k * y + (size * (c + d * root)).sum(axis=-1) - rhs
    slope = k + (np.sign(gap) * a * (c + 1.5 * d * root)).sum(axis=-1)
    return f, slope


def solve_rebalance_scale(
    k: X, targets: np.ndarray, holdings: np.ndarray, cost_rate: np.ndarray, rhs: X,
    impact: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """The scale ``y`` with ``k y + sum_i cost_i(|targets_i y - holdings_i|) = rhs``, exactly.

    ``cost_i(v) = cost_rate_i v + impact_i v^1.5`` (``impact=None``: linear costs). With
    ``k = 1`` and ``rhs`` the value at the open (less fixed fees), ``y`` is the post-trade value
    ``V'`` of a rebalance to target weights ``targets`` from holding values ``holdings``. The
    left side is convex in ``y`` and strictly increasing where ``sum_i cost_rate_i |targets_i|
    < k`` (the env checks its cost rates and gross exposure keep it so).

    Linear costs: the piecewise-linear equation is solved exactly on its segment (breakpoints
    ``holdings_i / targets_i`` sorted, vectorised over the leading axes). Square-root impact:
    safeguarded Newton from the linear solution (an upper bound, since impact only adds cost),
    bisecting whenever a step leaves the bracket, to machine precision. Where even liquidating
    everything costs more than ``rhs`` the result is 0 (bankrupt).

    Shapes: ``targets``, ``holdings``, ``cost_rate``, ``impact`` ``(..., N)``; ``k``, ``rhs``
    ``(...)``; returns ``(...)``.
    """
    k_ = np.asarray(k, dtype=np.float64)
    rhs_ = np.asarray(rhs, dtype=np.float64)
    y = _segment_solution(k_, targets, holdings, cost_rate, rhs_)
    if impact is None or not np.any(impact):
        return y
    hi = np.maximum(y, 0.0)
    lo = np.zeros_like(hi)
    f_lo, _ = _impact_residual(lo, k_, targets, holdings, cost_rate, impact, rhs_)
    solvable = f_lo < 0.0  # else even the best y = 0 leaves nothing: bankrupt
    y = hi.copy()
    for _ in range(_MAX_NEWTON):
        f, slope = _impact_residual(y, k_, targets, holdings, cost_rate, impact, rhs_)
        hi = np.where(f >= 0.0, y, hi)
        lo = np.where(f < 0.0, y, lo)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = y - f / slope
        inside = (slope > 0.0) & (step > lo) & (step < hi)
        new = np.where(inside, step, 0.5 * (lo + hi))
        new = np.where(f == 0.0, y, new)
        if np.all(np.abs(new - y) <= 4.0 * np.finfo(np.float64).eps * np.abs(y)):
            y = new
            break
        y = new
    return np.where(solvable, y, 0.0)


def rebalance_weights(
    units: np.ndarray, cash: X, price: np.ndarray, targets: np.ndarray, trading: np.ndarray,
    commission: np.ndarray, slippage_rate: np.ndarray, fixed_fee: float,
    impact: np.ndarray | None = None, budget_cap: bool = False,
) -> tuple[np.ndarray, X, np.ndarray, X, X]:  # fmt: skip
    """Rebalance at ``price`` (the open; finite everywhere, > 0 where ``trading``) to
    ``targets`` (fractions of the post-trade value).

    Only the assets where ``trading`` is True get an order (each order pays ``fixed_fee``); the
    others keep their units (a missing bar, a no-trade band). The post-trade value ``V'`` solves
    ``V' = V - fixed_fees - sum_i c_i |t_i V' - h_i| - impact_i |t_i V' - h_i|^1.5 / sqrt(p_i)``
    with ``c_i = commission_i + slippage_rate_i`` and ``h_i = units_i * p_i``: costs are paid out
    of the value they reduce and never on the cash leg (``impact_i``: the square-root law's
    coefficient per ``sqrt(unit)``, as in :func:`impact_fill`). With ``budget_cap`` (long-only),
    where kept holdings ``F > 0`` leave too little room (``sum t V' + F > V'``), the targets
    scale to ``t (V' - F) / sum t`` so that no cash is borrowed: the scale ``y`` then solves
    ``A y + F = V - fixed_fees - costs`` with ``A = sum t``.

    Returns ``(units, cash, traded_value (..., N), fees, slippage_cost)``; ``traded_value`` is
    signed (bought > 0) at ``price``.
    """
    held = units * price
    holdings = held * trading
    kept = held.sum(axis=-1) - holdings.sum(axis=-1)
    a = targets * trading
    rate = (commission + slippage_rate) * trading
    safe_price = np.where(trading, price, 1.0)
    d = None if impact is None else impact * trading / np.sqrt(safe_price)
    n_orders = (trading & ((a != 0.0) | (holdings != 0.0))).sum(axis=-1)
    budget = cash + held.sum(axis=-1) - fixed_fee * n_orders
    one = np.ones(np.shape(budget))
    scale = solve_rebalance_scale(one, a, holdings, rate, budget, d)
    if budget_cap and np.any(kept > 0.0):
        total = a.sum(axis=-1)
        capped = (kept > 0.0) & (total * scale + kept > scale)
        if np.any(capped):
            capped_scale = solve_rebalance_scale(
                np.where(total > 0.0, total, 1.0), a, holdings, rate, budget - kept, d
            )
            scale = np.where(capped, capped_scale, scale)
    trade = a * np.asarray(scale)[..., None] - holdings
    size = np.abs(trade)
    fees = (commission * size).sum(axis=-1) + fixed_fee * n_orders
    slip = (slippage_rate * size).sum(axis=-1)
    if d is not None:
        slip = slip + (d * size * np.sqrt(size)).sum(axis=-1)
    new_units = np.where(trading, units + trade / safe_price, units)
    return new_units, cash - trade.sum(axis=-1) - fees - slip, trade, fees, slip


def close_positions(
    units: np.ndarray, cash: X, price: np.ndarray, closing: np.ndarray, commission: np.ndarray,
    slippage_rate: np.ndarray, fixed_fee: float,
) -> tuple[np.ndarray, X, np.ndarray, X, X]:  # fmt: skip
    """Sell (or buy back) every position where ``closing`` at ``price``, paying commission,
    slippage and ``fixed_fee`` per closed position (a delisted asset at its last close).

    Returns ``(units, cash, traded_value (..., N), fees, slippage_cost)``.
    """
    shut = closing & (units != 0.0)
    trade = np.where(shut, -units * np.where(shut, price, 0.0), 0.0)
    size = np.abs(trade)
    fees = (commission * size).sum(axis=-1) + fixed_fee * shut.sum(axis=-1)
    slip = (slippage_rate * size).sum(axis=-1)
    return (
        np.where(shut, 0.0, units),
        cash - trade.sum(axis=-1) - fees - slip,
        trade,
        fees,
        slip,
    )


def mark_portfolio(
    units: np.ndarray, cash: X, price: np.ndarray, borrow_rate: np.ndarray, financing_rate: float
) -> tuple[X, X, X, X]:
    """Charge financing on borrowed cash (:func:`finance`), borrow on short notional at the close
    (``borrow_rate_i`` per asset and bar), and mark to market at ``price``.

    Returns ``(cash, equity, borrow_cost, financing_cost)``.
    """
    cash, financing_cost = finance(cash, financing_rate)
    short_value = (np.abs(units) - units) * 0.5 * price  # positive_part(-units) * price
    borrow_cost = (short_value * borrow_rate).sum(axis=-1)
    cash = cash - borrow_cost
    return cash, cash + (units * price).sum(axis=-1), borrow_cost, financing_cost


def portfolio_weights(
    units: np.ndarray, cash: X, price: np.ndarray, equity: X
) -> tuple[np.ndarray, X]:
    """``(asset weights (..., N), cash weight)`` at ``price``; an account with no equity left
    divides by 1 instead of 0 (all zero weights)."""
    denom = equity + (equity <= 0.0) * 1.0
    return units * price / np.asarray(denom)[..., None], cash / denom
