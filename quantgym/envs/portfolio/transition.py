"""``portfolio_step``: one bar of a portfolio account, the one transition both envs run.

It composes the ledger (:mod:`quantgym.envs.accounting`) with a layout's arrays and works on one
account (``t`` an int, ``units`` ``(N,)``) or many (``t`` ``(num_envs,)``, ``units``
``(num_envs, N)``) with the same code, so ``PortfolioEnv`` and ``PortfolioVectorEnv`` agree by
construction (and are tested to, within 1e-12).

Order of events for a decision at the close of bar t (targets already mapped by the layout):

1. at ``open[t+1]``: assets tradable at t that have a bar at t+1 get an order, unless within
   ``rebalance_band`` of their target (weight at the open vs target); the others keep their
   units (valued at the last known close when they have no bar). The post-trade value is solved
   exactly (:func:`~quantgym.envs.accounting.rebalance_weights`);
2. at ``close[t+1]``: financing on borrowed cash, borrow on shorts, mark to market;
3. an asset whose data ends at t+1 (delisted) is closed at that close, paying commission,
   slippage (bar t+1's rate) and the fixed fee.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from quantgym.envs.accounting import close_positions, mark_portfolio, rebalance_weights
from quantgym.envs.portfolio.layout import PortfolioLayout

__all__ = ["StepOutcome", "portfolio_step"]


class StepOutcome(NamedTuple):
    """The account after one bar and what the bar cost (``(...)`` per account, ``(..., N)``
    per asset)."""

    units: np.ndarray
    cash: Any
    equity: Any
    trades: np.ndarray  #: signed traded value per asset (bought > 0), delisting sales included
    traded_value: Any  #: total absolute traded value (the rebalance and any delisting sale)
    fees: Any
    slippage_cost: Any
    borrow_cost: Any
    financing_cost: Any


def portfolio_step(
    layout: PortfolioLayout, t: Any, units: np.ndarray, cash: Any, targets: np.ndarray
) -> StepOutcome:
    """Move the account(s) from the close of ``t`` to the close of ``t + 1`` (module docstring)."""
    panel, cfg = layout.panel, layout.config
    nxt = t + 1
    price = panel.open_mark[nxt]
    trading = panel.tradable[t] & panel.present[nxt]
    if cfg.rebalance_band > 0.0:
        held = units * price
        value = cash + np.sum(held, axis=-1)
        current = held / np.asarray(np.where(value > 0.0, value, 1.0))[..., None]
        trading = trading & (np.abs(targets - current) > cfg.rebalance_band)
    impact = None if layout.impact_coef is None else layout.impact_coef[t]
    units, cash, trades, fees, slip = rebalance_weights(
        units, cash, price, targets, trading, layout.commission, layout.slippage_rates[t],
        cfg.fixed_fee, impact, layout.long_only,
    )  # fmt: skip
    mark = panel.mark_close[nxt]
    cash, equity, borrow, financing = mark_portfolio(
        units, cash, mark, layout.borrow_rate, cfg.financing_rate
    )
    traded = np.abs(trades).sum(axis=-1)
    closing = layout.delisting[nxt]
    if closing.any():
        units, cash, sold, close_fees, close_slip = close_positions(
            units, cash, mark, closing, layout.commission, layout.slippage_rates[nxt], cfg.fixed_fee
        )
        trades = trades + sold
        traded = traded + np.abs(sold).sum(axis=-1)
        fees = fees + close_fees
        slip = slip + close_slip
        equity = cash + np.sum(units * mark, axis=-1)
    return StepOutcome(units, cash, equity, trades, traded, fees, slip, borrow, financing)
