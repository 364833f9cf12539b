"""Rewards, all computed from the one portfolio ledger.

A reward is an object with ``reset(n)`` (``n=None``: one account with float state, else
``n`` accounts with array state), ``reset_where(mask)`` (vector env: re-initialise some
accounts) and ``__call__(ctx) -> float | array``. ``ctx`` is a :class:`RewardContext` whose
fields are floats (``TradingEnv``) or arrays (``TradingVectorEnv``); the same arithmetic
serves both. A user callable ``fn(ctx)`` is accepted too (stateless).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from quantgym.envs.accounting import positive_part

__all__ = [
    "RewardContext",
    "step_context",
    "LogReturn",
    "DifferentialSharpe",
    "RiskAdjusted",
    "CallableReward",
    "make_reward",
    "REWARDS",
    "EQUITY_FLOOR",
]

# Relative equity floor used inside logs: a bankrupt account (equity <= 0) gets a large
# finite negative reward instead of -inf.
EQUITY_FLOOR = 1e-9


class RewardContext(NamedTuple):
    """What a reward may look at for the step just taken (floats or ``(N,)`` arrays)."""

    equity_prev: Any  #: equity marked at the previous close
    equity: Any  #: equity marked at this close
    position: Any  #: target position held over the bar
    traded_notional: Any  #: signed notional traded at this open
    fees: Any  #: commission paid
    slippage_cost: Any
    borrow_cost: Any
    drawdown_prev: Any  #: 1 - equity_prev / peak before this step (>= 0)
    drawdown: Any  #: 1 - equity / peak (>= 0)
    initial_equity: float


def step_context(
    equity_prev: Any, equity: Any, peak_prev: Any, peak: Any, position: Any, traded_notional: Any,
    fees: Any, slippage_cost: Any, borrow_cost: Any, initial_equity: float,
) -> RewardContext:  # fmt: skip
    """The :class:`RewardContext` of one step, drawdowns derived from the peaks (floats or arrays)."""
    return RewardContext(
        equity_prev, equity, position, traded_notional, fees, slippage_cost, borrow_cost,
        1.0 - equity_prev / peak_prev, 1.0 - equity / peak, initial_equity,
    )  # fmt: skip


def _log(x: Any) -> Any:
    return np.log(x) if isinstance(x, np.ndarray) else math.log(x)


def _floored(equity: Any, initial: float) -> Any:
    floor = EQUITY_FLOOR * initial
    if isinstance(equity, np.ndarray):
        return np.maximum(equity, floor)
    return equity if equity > floor else floor


class LogReturn:
    """``log(equity_t+1 / equity_t)``: rewards sum to the log growth of the account."""

    name = "log_return"

    def reset(self, n: int | None = None) -> None:
        pass

    def reset_where(self, mask: np.ndarray) -> None:
        pass

    def __call__(self, ctx: RewardContext) -> Any:
        return _log(_floored(ctx.equity, ctx.initial_equity) / ctx.equity_prev)


class DifferentialSharpe:
    """Moody & Saffell's differential Sharpe ratio (1998): the first-order effect of this
    step's return on an exponentially weighted Sharpe ratio with adaptation rate ``eta``.

    ``D_t = (B dA - A dB / 2) / (B - A^2)^(3/2)`` with ``A``, ``B`` the EMAs of the simple
    return and its square before this step; 0 while the variance estimate is degenerate.
    """

    name = "differential_sharpe"

    def __init__(self, eta: float = 0.01, min_variance: float = 1e-12) -> None:
        if not 0 < eta <= 1:
            raise ValueError(f"differential_sharpe eta must be in (0, 1], got {eta}")
        self.eta = float(eta)
        self.min_variance = float(min_variance)
        self.A: Any = 0.0
        self.B: Any = 0.0

    def reset(self, n: int | None = None) -> None:
        self.A = 0.0 if n is None else np.zeros(n)
        self.B = 0.0 if n is None else np.zeros(n)

    def reset_where(self, mask: np.ndarray) -> None:
        # fresh arrays: the vector env may still hold references to the old ones
        self.A = np.where(mask, 0.0, self.A)
        self.B = np.where(mask, 0.0, self.B)

    def __call__(self, ctx: RewardContext) -> Any:
        ret = _floored(ctx.equity, ctx.initial_equity) / ctx.equity_prev - 1.0
        A, B = self.A, self.B
        dA, dB = ret - A, ret * ret - B
        var = B - A * A
        d: Any
        if isinstance(var, np.ndarray):
            ok = var > self.min_variance
            d = np.where(ok, (B * dA - 0.5 * A * dB) / np.where(ok, var, 1.0) ** 1.5, 0.0)
        else:
            d = (B * dA - 0.5 * A * dB) / var**1.5 if var > self.min_variance else 0.0
        self.A = A + self.eta * dA
        self.B = B + self.eta * dB
        return d


class RiskAdjusted:
    """Log return minus penalties: ``drawdown_penalty`` times the increase of the drawdown
    this step, and ``turnover_penalty`` times the traded notional as a fraction of equity."""

    name = "risk_adjusted"

    def __init__(self, drawdown_penalty: float = 0.5, turnover_penalty: float = 0.001) -> None:
        if drawdown_penalty < 0 or turnover_penalty < 0:
            raise ValueError("risk_adjusted penalties must be >= 0")
        self.drawdown_penalty = float(drawdown_penalty)
        self.turnover_penalty = float(turnover_penalty)

    def reset(self, n: int | None = None) -> None:
        pass

    def reset_where(self, mask: np.ndarray) -> None:
        pass

    def __call__(self, ctx: RewardContext) -> Any:
        log_ret = _log(_floored(ctx.equity, ctx.initial_equity) / ctx.equity_prev)
        dd_increase = positive_part(ctx.drawdown - ctx.drawdown_prev)
        turnover = abs(ctx.traded_notional) / ctx.equity_prev
        return log_ret - self.drawdown_penalty * dd_increase - self.turnover_penalty * turnover


class CallableReward:
    """Wrap a user function ``fn(ctx) -> float | array`` (stateless)."""

    name = "callable"

    def __init__(self, fn: Callable[[RewardContext], Any]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "callable")

    def reset(self, n: int | None = None) -> None:
        pass

    def reset_where(self, mask: np.ndarray) -> None:
        pass

    def __call__(self, ctx: RewardContext) -> Any:
        return self.fn(ctx)


REWARDS: dict[str, type] = {
    "log_return": LogReturn,
    "differential_sharpe": DifferentialSharpe,
    "risk_adjusted": RiskAdjusted,
}


def make_reward(spec: Any, kwargs: dict | None = None) -> Any:
    """A reward from its name (with ``kwargs``) or a user callable."""
    kwargs = kwargs or {}
    if isinstance(spec, str):
        if spec not in REWARDS:
            raise ValueError(
                f"unknown reward {spec!r}; choose from {sorted(REWARDS)} or pass a callable"
            )
        try:
            return REWARDS[spec](**kwargs)
        except TypeError as exc:
            raise ValueError(f"bad reward_kwargs for {spec!r}: {exc}") from None
    if callable(spec):
        if kwargs:
            raise ValueError("reward_kwargs are only for named rewards")
        return CallableReward(spec)
    raise ValueError(f"reward must be one of {sorted(REWARDS)} or a callable, got {spec!r}")
