"""The hindsight oracle: the best path in hindsight by an exact dynamic programme (uses the future)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from quantgym.envs.accounting import mark, rebalance
from quantgym.policies.binding import (
    EnvBoundAgent,
    check_choice,
)

__all__ = ["OraclePlan", "hindsight_plan", "HindsightOracle"]

# --------------------------------------------------------------------------------------------
# Hindsight oracle
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OraclePlan:
    """The optimal path from bar ``start`` to bar ``end``.

    ``actions[k]``/``targets[k]``: action and target decided at bar ``start + k``;
    ``held[k]``: target held at bar ``start + k`` before deciding; ``equity[k]``: equity at the
    close of bar ``start + k`` along the plan (``equity[0]`` is the starting equity).
    ``max_labels``: the largest non-dominated label set met (the DP's width).
    """

    start: int
    end: int
    actions: np.ndarray
    targets: np.ndarray
    held: np.ndarray
    equity: np.ndarray
    max_labels: int

    @property
    def log_growth(self) -> float:
        """``log(equity_end / equity_start)``: the sum of ``log_return`` rewards along the plan."""
        return float(np.log(self.equity[-1] / self.equity[0]))


# The ledger functions broadcast arrays of labels against scalar prices (their TypeVar
# signature says "all floats or all arrays"; numpy mixes them exactly the same way).
_ledger_rebalance: Any = rebalance
_ledger_mark: Any = mark


def _prune_dominated(cash: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Indices of the labels not dominated by another (see ``hindsight_plan``).

    Label i dominates j when ``lambda * (cash_j, units_j) <= (cash_i, units_i)`` for some
    ``lambda >= 1``; among mutually dominating (equal) labels the first is kept.
    """
    if cash.size <= 1:
        return np.arange(cash.size)
    # lambda = 1 first (a sort-based skyline, O(m log m)): keep a label only if its units
    # exceed those of every label with at least as much cash.
    order = np.lexsort((-units, -cash))
    u_sorted = units[order]
    keep = np.ones(order.size, dtype=bool)
    keep[1:] = u_sorted[1:] > np.maximum.accumulate(u_sorted)[:-1]
    survivors = np.sort(order[keep])
    return survivors[_prune_scaled(cash[survivors], units[survivors])]


def _prune_scaled(cash: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Pairwise test of the general (``lambda >= 1``) dominance, ``O(m^2)``."""
    m = cash.size
    if m <= 1:
        return np.arange(m)
    lo = np.ones((m, m))
    hi = np.full((m, m), np.inf)
    feasible = np.ones((m, m), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for x in (cash, units):
            a = x[None, :]  # candidate dominated label j (columns)
            b = x[:, None]  # dominating label i (rows)
            ratio = b / a
            hi = np.where(a > 0, np.minimum(hi, ratio), hi)
            lo = np.where(a < 0, np.maximum(lo, ratio), lo)
            feasible &= (a != 0) | (b >= 0)
    dom = feasible & (lo <= hi)
    np.fill_diagonal(dom, False)
    index = np.arange(m)
    strict = dom & (~dom.T | (index[:, None] < index[None, :]))
    return np.flatnonzero(~strict.any(axis=0))


def hindsight_plan(
    open_: np.ndarray,
    close: np.ndarray,
    slippage_rates: np.ndarray,
    targets: np.ndarray,
    *,
    start: int,
    end: int,
    units: float,
    cash: float,
    current_target: float,
    commission: float,
    fixed_fee: float = 0.0,
    borrow_rate: float = 0.0,
) -> OraclePlan:
    """Exact best path in hindsight over the target grid ``targets`` from bar ``start`` to ``end``.

    The env's ledger (:mod:`quantgym.envs.accounting`) is replayed exactly: the decision at bar
    t fills at ``open[t+1]`` (``rebalance``: ``units = target * equity_open / open`` and cost
    ``(commission + slippage_rate[t]) * |traded notional|`` + ``fixed_fee``, only when the
    target changes) and is marked at ``close[t+1]`` (``mark``: borrow on shorts). The objective
    is the final equity, i.e. the sum of the ``log_return`` rewards.

    Why not a DP over (bar, position) alone. Between trades the *units* are constant, not the
    fraction of equity, so the exposure drifts with the price. After a rebalance to target p at
    the open of bar s with equity ``E`` and cost fraction f, the equity at price P is
    ``E * (1 - p - f + p * P / open_s)`` (minus borrow): linear in the price, so the growth of a
    held stretch depends on its start s, not only on the last bar. Worse, the cost of the *next*
    rebalance, ``k * |p' * E_open - units * open|``, depends on the exposure at that open, which
    depends on f, which depends on the exposure at the previous rebalance, and so on back to the
    last time the account was flat. Log growth therefore does not decompose per bar given
    (previous target, target), nor given (target, bar of last rebalance): a state must carry the
    account itself.

    Exact algorithm. Labels are the account states ``(target, cash, units)`` reachable at each
    bar; each bar every label is extended by every target with the env's own ``rebalance`` and
    ``mark`` (so the arithmetic is bit-identical to the env's), and labels with equity <= 0
    (bankrupt) are dropped. Within one target, label X1 *dominates* X2 when
    ``X1 = lambda * X2 + Y`` with ``lambda >= 1`` and ``Y = (cash >= 0, units >= 0)``. The
    best final equity F from a state is then ordered: (i) positive homogeneity with a fixed fee
    that is paid once, not lambda times, gives ``F(lambda X) >= lambda F(X) >= F(X)``;
    (ii) every step map is superadditive, ``M(X + Y) >= M(X) + M0(Y)`` componentwise with
    ``M0`` the fee-free map (``-|.|`` of the traded notional and the borrow charge on
    ``max(-units, 0)`` are concave and positively homogeneous, the fee is paid once), and a
    long-only remainder Y keeps a non-negative equity under every action sequence (as long as
    no short loses 100 % within a held stretch), so ``F(X1) >= F(lambda X2) + F0(Y) >= F(X2)``.
    Dropping dominated labels therefore never drops the optimum. Cost: ``O(T * P^2 * L^2)``
    for T bars, P targets and at most L labels per target (flat labels collapse to one: L=1);
    L stays small in practice (``OraclePlan.max_labels`` reports it) but has no polynomial
    bound in general. The brute-force test over every action sequence is the judge.
    """
    targets = np.asarray(targets, dtype=np.float64)
    n_targets = targets.size
    if end <= start:
        raise ValueError(f"end ({end}) must be > start ({start})")
    if start < 0 or end >= len(close):
        raise ValueError(f"bars [{start}, {end}] are outside the market (0 .. {len(close) - 1})")
    lab_units = np.array([float(units)])
    lab_cash = np.array([float(cash)])
    lab_target = np.array([float(current_target)])
    lab_equity = np.array([float(cash) + float(units) * float(close[start])])
    parents: list[np.ndarray] = []
    choices: list[np.ndarray] = []
    max_labels = 1
    for t in range(start, end):
        o, c, s = float(open_[t + 1]), float(close[t + 1]), float(slippage_rates[t])
        new_u, new_c, new_e, new_t, par, act = [], [], [], [], [], []
        for a in range(n_targets):
            target = np.full(lab_units.shape, targets[a])
            u2, c2, _, _, _ = _ledger_rebalance(
                target, lab_target, lab_units, lab_cash, o, s, commission, fixed_fee
            )
            c2, eq, _ = _ledger_mark(u2, c2, c, borrow_rate)
            alive = np.flatnonzero(eq > 0.0)
            keep = alive[_prune_dominated(c2[alive], u2[alive])]
            max_labels = max(max_labels, keep.size)
            new_u.append(u2[keep])
            new_c.append(c2[keep])
            new_e.append(eq[keep])
            new_t.append(target[keep])
            par.append(keep)
            act.append(np.full(keep.size, a, dtype=np.int64))
        lab_units = np.concatenate(new_u)
        lab_cash = np.concatenate(new_c)
        lab_equity = np.concatenate(new_e)
        lab_target = np.concatenate(new_t)
        parents.append(np.concatenate(par))
        choices.append(np.concatenate(act))
        if lab_units.size == 0:
            raise ValueError(f"every path is bankrupt by bar {t + 1}")
    n = end - start
    actions = np.empty(n, dtype=np.int64)
    equity = np.empty(n + 1)
    label = int(np.argmax(lab_equity))
    # Walk back: recompute the equity path of the chosen label with the same ledger.
    for k in range(n - 1, -1, -1):
        actions[k] = choices[k][label]
        label = int(parents[k][label])
    chosen = targets[actions]
    held = np.concatenate(([float(current_target)], chosen))
    u, cs, tg = float(units), float(cash), float(current_target)
    equity[0] = cs + u * float(close[start])
    for k in range(n):
        t = start + k
        u, cs, _, _, _ = rebalance(
            chosen[k],
            tg,
            u,
            cs,
            float(open_[t + 1]),
            float(slippage_rates[t]),
            commission,
            fixed_fee,
        )
        cs, equity[k + 1], _ = mark(u, cs, float(close[t + 1]), borrow_rate)
        tg = chosen[k]
    return OraclePlan(
        start=int(start),
        end=int(end),
        actions=actions,
        targets=chosen,
        held=held,
        equity=equity,
        max_labels=int(max_labels),
    )


class HindsightOracle(EnvBoundAgent):
    """The physical upper bound: the best achievable path in hindsight (``uses_future = True``).

    At the first decision of an episode (and whenever the account is not where the plan
    expects it, with ``on_deviation="replan"``) it solves :func:`hindsight_plan` from the
    env's exact account state at the current bar to the episode's last bar, over the env's
    position grid (for continuous actions: ``grid``, default ``positions``, as fractions of
    equity), and then plays the plan. With ``on_deviation="follow"`` a deviation (e.g. an
    ``EpsilonMix`` exploration step) does not trigger a new plan: the oracle steers back to
    the planned target (cheap; used by the dataset presets). Its realised ``log_return``
    total equals ``plan.log_growth`` exactly.
    """

    name: ClassVar[str] = "hindsight_oracle"
    uses_future: ClassVar[bool] = True

    @dataclasses.dataclass
    class Config:
        on_deviation: str = "replan"
        grid: tuple[float, ...] | None = None

    def _validate(self) -> None:
        check_choice("on_deviation", self.config.on_deviation, ("replan", "follow"))
        if self.config.grid is not None:
            if not self.binding.continuous:
                raise ValueError(
                    "grid is only used with action_type='continuous' (discrete envs use positions)"
                )
            grid = np.asarray(self.config.grid, dtype=np.float64)
            if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
                raise ValueError(
                    f"grid must be a non-empty sequence of finite numbers, got {self.config.grid!r}"
                )

    def _precompute(self) -> None:
        b = self.binding
        if b.continuous:
            grid = (
                b.positions
                if self.config.grid is None
                else np.asarray(self.config.grid, dtype=np.float64)
            )
            self._actions = b.to_actions(grid)
            self._targets = self._actions.reshape(-1).astype(np.float64) * b.max_leverage
        else:
            self._actions = np.arange(b.positions.size, dtype=np.int64)
            self._targets = b.positions.copy()
        self.plans: dict[int, OraclePlan] = {}
        self.n_plans = 0

    def plan(self, i: int = 0) -> OraclePlan:
        """Solve the hindsight DP for env ``i`` from its current bar and account state."""
        b = self.binding
        units, cash, target, _, end = b.account(i)
        start = int(b.bars(b.num_envs)[i])
        plan = hindsight_plan(
            b.market.open, b.market.close, b.slippage_rates, self._targets,
            start=start, end=end, units=units, cash=cash, current_target=target,
            commission=b.commission, fixed_fee=b.fixed_fee, borrow_rate=b.borrow_rate,
        )  # fmt: skip
        self.plans[i] = plan
        self.n_plans += 1
        return plan

    def _action_index(self, i: int, bar: int, new_episode: bool) -> int | None:
        b = self.binding
        units, cash, target, equity, end = b.account(i)
        if bar >= end:
            return None  # episode over: the action is ignored by the env
        plan = self.plans.get(i)
        if plan is not None and plan.end == end and plan.start <= bar < plan.end:
            k = bar - plan.start
            on_plan = plan.held[k] == target and equity == plan.equity[k]
            if on_plan or (self.config.on_deviation == "follow" and not new_episode):
                return int(plan.actions[k])
        plan = self.plan(i)
        return int(plan.actions[0])

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        b = self.binding
        obs, batched = b.check_observation(observation)
        bars = b.bars(obs.shape[0])
        starts = (
            np.zeros(bars.size, dtype=bool)
            if episode_start is None
            else np.asarray(episode_start, dtype=bool).reshape(-1)
        )
        if starts.size != bars.size:
            starts = np.broadcast_to(starts, bars.shape)
        current = obs[:, b.position_index].astype(np.float64)
        actions = b.to_actions(current)  # default for finished episodes: hold
        for i, bar in enumerate(bars.tolist()):
            a = self._action_index(i, bar, bool(starts[i]))
            if a is not None:
                actions[i] = self._actions[a]
        return b.unbatch(actions, batched), state
