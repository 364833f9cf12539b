"""Score an agent on test units: equity paths, per-unit metrics, curve quantiles.

Evaluation is batched (:func:`evaluate_units`): all units that share a length run at once in one
vector env of the market's env id (``TradingVectorEnv`` or ``PortfolioVectorEnv``,
``gym.make_vec(env_id, num_envs=n_units)``, each account reset to its unit's start), so 64
windows cost about one. ``make(env)`` builds the agent for that env:
env-bound agents (rules, experts, the oracle) bind to the vector env, a trained agent
(:func:`fixed_agent`) gets the ``(n_units, obs_dim)`` batch. An agent whose ``predict`` rejects
a batch is run unit by unit on a single env instead (same trajectories: the vector env equals N
single envs with the same seeds).

Per unit (:func:`unit_row`): :func:`log_growth` ``= log(final / initial equity)`` (a bankrupt
unit is floored at :data:`LOG_GROWTH_FLOOR`), the env's metrics and costs; :func:`curve_quantiles`
summarises the equity paths for the plots; :func:`scored_fields` is the scored part of a record.
On a portfolio market a step's ``position`` is the gross exposure ``sum |weights|`` and its
``trade`` the turnover (traded value / previous equity), so the metrics mean the same thing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from quantgym.benchmark.listing import Cell
from quantgym.benchmark.protocol import TestUnit, bar_timestamp
from quantgym.policies.references import env_id_for, market_env

__all__ = [
    "LOG_GROWTH_FLOOR",
    "log_growth",
    "fixed_agent",
    "evaluate_units",
    "unit_row",
    "step_fields",
    "curve_quantiles",
    "scored_fields",
]

#: log growth of a unit whose equity reached 0 (log(1e-9)): finite, so means stay defined.
LOG_GROWTH_FLOOR = math.log(1e-9)
_COST_KEYS = ("fees", "slippage_cost", "borrow_cost", "financing_cost")


def log_growth(equity: Sequence[float] | np.ndarray) -> float:
    """``log(final / initial)`` of an equity path, floored at :data:`LOG_GROWTH_FLOOR` (an
    equity that reached 0 or below, or lost more than all but 1e-9 of itself)."""
    final = float(equity[-1])
    growth = math.log(final / equity[0]) if final > 0 else LOG_GROWTH_FLOOR
    return max(growth, LOG_GROWTH_FLOOR)


def fixed_agent(agent: Any) -> Callable[[Any], Any]:
    """``make(env) -> agent`` that returns the given (trained) agent whatever the env."""
    return lambda env: agent


def step_fields(info: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``equity``, ``position``, ``trade`` and ``fees`` of a step's ``info`` (single or vector
    env; a portfolio env's position is its gross exposure and its trade its turnover)."""
    if "weights" in info:
        position = np.abs(np.asarray(info["weights"], dtype=np.float64)).sum(axis=-1)
        trade = np.asarray(info["turnover"], dtype=np.float64)
    else:
        position = np.asarray(info["position"], dtype=np.float64)
        trade = np.asarray(info["trade"], dtype=np.float64)
    return {
        "equity": np.asarray(info["equity"], dtype=np.float64),
        "position": position,
        "trade": trade,
        "fees": np.asarray(info["fees"], dtype=np.float64),
    }


@dataclasses.dataclass
class _Paths:
    """Per-step arrays of a set of units, shape (T, n) (equity: (T + 1, n)); ``steps[i]`` is
    how many steps unit i actually ran (fewer after a bankruptcy)."""

    equity: np.ndarray
    position: np.ndarray
    trade: np.ndarray
    fees: np.ndarray
    costs: np.ndarray
    steps: np.ndarray


def _rollout(
    agent: Any, env: Any, starts: list[int], length: int, seed: int, batched: bool
) -> _Paths:
    """Run ``agent`` for ``length`` steps from each start (vector env when ``batched``)."""
    n = len(starts)
    options = {"start": starts if batched else starts[0]}
    obs, _ = env.reset(seed=seed, options=options)
    initial = float(env.unwrapped.config.initial_equity) if not batched else None
    if initial is None:
        initial = float(np.asarray(env.unwrapped.equity)[0])
    equity = np.full((length + 1, n), initial)
    position = np.zeros((length, n))
    trade = np.zeros((length, n))
    fees = np.zeros((length, n))
    costs = np.zeros((length, n))
    steps = np.full(n, length)
    alive = np.ones(n, dtype=bool)
    state = None
    episode_start = np.ones(n, dtype=bool)
    for t in range(length):
        action, state = agent.predict(
            obs, state=state, episode_start=episode_start, deterministic=True
        )
        if batched and np.shape(action)[:1] != (n,):
            raise ValueError(f"predict returned {np.shape(action)} actions for a batch of {n}")
        obs, _, terminated, _, info = env.step(action)
        episode_start = np.zeros(n, dtype=bool)
        step_cost = sum(np.asarray(info.get(k, 0.0), dtype=np.float64) for k in _COST_KEYS)
        row = step_fields(info)
        equity[t + 1] = np.where(alive, row["equity"], equity[t])
        position[t] = np.where(alive, row["position"], 0.0)
        trade[t] = np.where(alive, row["trade"], 0.0)
        fees[t] = np.where(alive, row["fees"], 0.0)
        costs[t] = np.where(alive, step_cost, 0.0)
        ended = alive & np.asarray(terminated, dtype=bool).reshape(n)
        steps[ended] = t + 1
        alive &= ~ended
        if not alive.any():
            break
    return _Paths(equity, position, trade, fees, costs, steps)


def evaluate_units(
    make: Callable[[Any], Any], cell: Cell, market: Any, units: Sequence[TestUnit]
) -> tuple[list[np.ndarray], list[dict[str, float]]]:
    """Equity path (length ``n_steps + 1``) and metrics of each unit (in the order of
    ``units``), batched per length; ``make(env)`` builds the agent for each evaluation env."""
    from quantgym.envs.metrics import performance_metrics

    paths: dict[int, tuple[np.ndarray, dict[str, float]]] = {}
    by_length: dict[int, list[TestUnit]] = {}
    for unit in units:
        by_length.setdefault(unit.n_steps, []).append(unit)
    env_id = env_id_for(cell.market)
    for length, group in by_length.items():
        starts = [u.start for u in group]
        end = max(u.end for u in group)
        kwargs = {"data": market, **cell.env_kwargs, "episode_length": length}
        if (
            market_env(cell.market) == "trading"
        ):  # a PanelData is used whole: episode_length ends it
            kwargs["end"] = bar_timestamp(market, end)
        vec = gym.make_vec(env_id, num_envs=len(group), **kwargs)
        try:
            result: list[_Paths] | None = [
                _rollout(make(vec), vec, starts, length, cell.seed, True)
            ]
        except Exception:  # predict does not take a batch: one single env per unit
            result = None
        finally:
            vec.close()
        if result is None:
            result = []
            for i, start in enumerate(starts):
                env = gym.make(env_id, **kwargs)
                try:
                    result.append(_rollout(make(env), env, [start], length, cell.seed + i, False))
                finally:
                    env.close()
            columns = [(p, 0) for p in result]
        else:
            columns = [(result[0], i) for i in range(len(group))]
        for unit, (p, i) in zip(group, columns, strict=True):
            k = int(p.steps[i])
            eq = p.equity[: k + 1, i]
            metrics = performance_metrics(
                eq,
                bars_per_year=market.bars_per_year,
                positions=p.position[:k, i],
                trade_notional=p.trade[:k, i] * eq[:-1],
                fees=p.fees[:k, i],
            )
            metrics["costs"] = float(p.costs[:k, i].sum() / eq[0])
            paths[unit.unit] = (eq, metrics)
    return [paths[u.unit][0] for u in units], [paths[u.unit][1] for u in units]


def unit_row(
    unit: TestUnit, market: Any, equity: np.ndarray, metrics: Mapping[str, float]
) -> dict[str, Any]:
    """One unit of a record: where it is, its log growth (floored) and its metrics."""
    return {
        "unit": unit.unit,
        "fold": unit.fold,
        "start": unit.start,
        "end": unit.end,
        "start_time": bar_timestamp(market, unit.start).isoformat(),
        "end_time": bar_timestamp(market, unit.end).isoformat(),
        "n_bars": unit.n_steps,
        "log_growth": log_growth(equity),
        "total_return": float(metrics["total_return"]),
        "sharpe": float(metrics["sharpe"]),
        "sortino": float(metrics["sortino"]),
        "max_drawdown": -float(metrics["max_drawdown"]),
        "turnover": float(metrics["turnover"]),
        "costs": float(metrics["costs"]),
        "n_trades": int(metrics["n_trades"]),
    }


def curve_quantiles(equities: Sequence[np.ndarray], points: int) -> dict[str, Any]:
    """Quantiles (25/50/75 %) across units of log(equity / initial) and drawdown at up to
    ``points`` offsets from the unit start (units truncated to the shortest)."""
    shortest = min(len(e) for e in equities)
    x = np.unique(np.linspace(0, shortest - 1, min(points, shortest)).round().astype(int))
    block = np.stack([e[:shortest] for e in equities])  # (units, T + 1)
    with np.errstate(divide="ignore"):
        log_eq = np.log(np.maximum(block / block[:, :1], math.exp(LOG_GROWTH_FLOOR)))
    drawdown = 1.0 - block / np.maximum.accumulate(block, axis=1)
    out: dict[str, Any] = {"x": x.tolist()}
    for name, values in (("log_equity", log_eq[:, x]), ("drawdown", drawdown[:, x])):
        q = np.quantile(values, [0.25, 0.5, 0.75], axis=0)
        out[name] = {"q25": q[0].tolist(), "q50": q[1].tolist(), "q75": q[2].tolist()}
    return out


def scored_fields(
    units: Sequence[TestUnit],
    market: Any,
    equities: Mapping[int, np.ndarray],
    metrics: Mapping[int, Mapping[str, float]],
    curve_points: int,
) -> dict[str, Any]:
    """The scored fields of a record: ``units`` (one :func:`unit_row` each, in plan order),
    ``bars_per_year`` and ``curves`` (:func:`curve_quantiles`); ``equities`` and ``metrics``
    are keyed by ``unit.unit``."""
    return {
        "units": [unit_row(u, market, equities[u.unit], metrics[u.unit]) for u in units],
        "bars_per_year": float(market.bars_per_year),
        "curves": curve_quantiles([equities[u.unit] for u in units], curve_points),
    }
