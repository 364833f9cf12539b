"""One cell = one (market, agent, seed) of a suite, run end to end into one record.

:func:`run_cell` builds the market (a seeded synthetic series or real data), plans the test
units (:mod:`quantgym.benchmark.protocol`), trains a learner once per train range (once per
(market, seed) on synthetic markets, once per fold on real data), evaluates it over every test
unit and returns the record of :mod:`quantgym.benchmark.records` (schema 1). Any exception
becomes a record with ``status="error"`` and its traceback.

Evaluation is batched: all units of a train range that share a length run at once in one
``TradingVectorEnv`` (``gym.make_vec(ENV_ID, num_envs=n_units)``, each account reset to its
unit's start), so 64 windows cost about one. Env-bound agents (rules, experts, the oracle) are
bound to that vector env; learners get the ``(n_units, obs_dim)`` batch. An agent whose
``predict`` rejects a batch is run unit by unit on a single env instead (same trajectories: the
vector env equals N single envs with the same seeds). Per unit: ``log_growth = log(final /
initial equity)`` (a bankrupt unit is floored at :data:`LOG_GROWTH_FLOOR`), the env's metrics
and costs. Runs are reproducible: python/numpy/torch seeded with the cell's seed, one torch
thread, ``torch.use_deterministic_algorithms(True, warn_only=True)``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import os
import random
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from quantgym import ENV_ID
from quantgym.benchmark.protocol import (
    BarRange,
    Plan,
    TestUnit,
    synthetic_n_bars,
    walk_forward_plan,
    window_plan,
)
from quantgym.benchmark.records import SCHEMA, cell_id, provenance
from quantgym.policies.references import market_kind, reference_policy_name

__all__ = [
    "Cell",
    "LOG_GROWTH_FLOOR",
    "agent_kind",
    "agent_role",
    "not_applicable",
    "cells_for",
    "market_env_kwargs",
    "build_market",
    "plan_for",
    "run_cell",
]

#: log growth of a unit whose equity reached 0 (log(1e-9)): finite, so means stay defined.
LOG_GROWTH_FLOOR = math.log(1e-9)
_COST_KEYS = ("fees", "slippage_cost", "borrow_cost", "financing_cost")


@dataclasses.dataclass(frozen=True)
class Cell:
    """Everything that changes one record (its canonical JSON is hashed into ``cell_id``).

    Protocol fields that do not apply (window settings on real data, fold settings and dataset
    settings where unused) are ``None``.
    """

    suite: str
    market: str
    agent: str
    seed: int
    protocol: str
    agent_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    train_steps: int | None = None
    window_bars: int | None = None
    n_windows: int | None = None
    train_bars: int | None = None
    embargo_bars: int | None = None
    n_folds: int | None = None
    fold_train: float | None = None
    fold_test: float | None = None
    dataset_quality: str | None = None
    dataset_steps: int | None = None
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    curve_points: int = 200

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["agent_kwargs"] = dict(self.agent_kwargs)
        out["env_kwargs"] = dict(self.env_kwargs)
        return out

    @property
    def cell_id(self) -> str:
        return cell_id(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        return cls(**dict(data))


# --------------------------------------------------------------------------------------------
# Agents: kind, role, applicability
# --------------------------------------------------------------------------------------------


def _is_env_bound(cls: type) -> bool:
    from quantgym.policies.binding import EnvBoundAgent

    return issubclass(cls, EnvBoundAgent)


def agent_kind(cls: type) -> str:
    """``"oracle"`` (uses the future), ``"expert"``, ``"rule"`` (quantgym's env-bound policies),
    ``"offline"`` (``offline = True``), ``"online"`` (has ``fit``) or ``"custom"``."""
    if getattr(cls, "uses_future", False):
        return "oracle"
    module = cls.__module__
    if module.startswith("quantgym.policies.experts"):
        return "expert"
    if module.startswith("quantgym.policies") and _is_env_bound(cls):
        return "rule"
    if module.startswith("quantgym.") and getattr(cls, "offline", False):
        return "offline"
    if module.startswith("quantgym.") and callable(getattr(cls, "fit", None)):
        return "online"
    return "custom"


def agent_role(cls: type) -> str:
    """``"future"`` (``uses_future``), ``"privileged"`` (reads hidden state) or ``"causal"``."""
    if getattr(cls, "uses_future", False):
        return "future"
    if getattr(cls, "privileged", False):
        return "privileged"
    return "causal"


def _learns(cls: type) -> str | None:
    """``"offline"``, ``"online"`` or ``None`` (no ``fit``: nothing to train)."""
    if getattr(cls, "offline", False):
        return "offline"
    if callable(getattr(cls, "fit", None)):
        return "online"
    return None


@functools.cache
def _probe_env(market: str) -> Any:
    """A small env of ``market``'s kind (synthetic) or on its data (real)."""
    kind = market_kind(market)
    if kind == "real":
        return gym.make(ENV_ID, data=market, episode_length=None)
    return gym.make(
        ENV_ID, market=kind, market_kwargs={"n_bars": 600, "seed": 0}, episode_length=None
    )


def not_applicable(agent: str, market: str) -> str | None:
    """Why an env-bound ``agent`` refuses ``market`` (its ``ValueError``, e.g. ``regime_expert``
    off the regime market), or ``None`` when it applies. Learners apply everywhere."""
    from quantgym.agents.registry import agent_class

    cls = agent_class(agent)
    if not _is_env_bound(cls):
        return None
    try:
        cls(env=_probe_env(market))
    except ValueError as exc:
        return str(exc)
    return None


def cells_for(suite: Any) -> tuple[list[Cell], list[dict[str, str]]]:
    """Expand a validated ``Suite`` into cells (markets x agents x seeds, in that order) and the
    ``{"market", "agent", "reason"}`` of the pairs skipped because the agent refuses the market."""
    from quantgym.agents.registry import agent_class

    cells, skipped = [], []
    for market in suite.markets:
        synthetic = market_kind(market) != "real"
        for spec in suite.agents:
            if not spec.runs_on(market):
                continue
            reason = not_applicable(spec.name, market)
            if reason is not None:
                skipped.append({"market": market, "agent": spec.name, "reason": reason})
                continue
            learns = _learns(agent_class(spec.name))
            own = spec.steps_for(market)
            steps = own if own is not None else suite.train_steps
            for seed in suite.seeds:
                cells.append(
                    Cell(
                        suite=suite.name,
                        market=market,
                        agent=spec.name,
                        seed=seed,
                        protocol="windows" if synthetic else "walk_forward",
                        agent_kwargs=dict(spec.kwargs),
                        train_steps=steps if learns else None,
                        window_bars=suite.window_bars if synthetic else None,
                        n_windows=suite.n_windows if synthetic else None,
                        train_bars=suite.train_bars if synthetic else None,
                        embargo_bars=suite.embargo_bars if synthetic else suite.fold_embargo_bars,
                        n_folds=None if synthetic else suite.n_folds,
                        fold_train=None if synthetic else suite.fold_train,
                        fold_test=None if synthetic else suite.fold_test,
                        dataset_quality=suite.dataset_quality if learns == "offline" else None,
                        dataset_steps=suite.dataset_steps if learns == "offline" else None,
                        env_kwargs=dict(suite.env_kwargs),
                        curve_points=suite.curve_points,
                    )
                )
    return cells, skipped


# --------------------------------------------------------------------------------------------
# Market and plan
# --------------------------------------------------------------------------------------------


def market_env_kwargs(cell: Cell) -> dict[str, Any]:
    """Env kwargs that load the cell's whole market: the seeded long series on synthetic
    markets, the data source otherwise."""
    kind = market_kind(cell.market)
    if kind == "real":
        return {"data": cell.market}
    assert cell.window_bars and cell.n_windows and cell.train_bars is not None
    n_bars = synthetic_n_bars(
        cell.train_bars, cell.embargo_bars or 0, cell.n_windows, cell.window_bars
    )
    return {"market": kind, "market_kwargs": {"n_bars": n_bars, "seed": cell.seed}}


def build_market(cell: Cell) -> tuple[Any, int]:
    """The cell's ``MarketData`` (loaded once, reused by every env) and its first observable bar."""
    env = gym.make(ENV_ID, **market_env_kwargs(cell), **cell.env_kwargs, episode_length=None)
    try:
        core: Any = env.unwrapped
        return core.market, int(core.first_bar)
    finally:
        env.close()


def plan_for(cell: Cell, market: Any, first_bar: int) -> Plan:
    """The cell's test units on ``market`` (:mod:`quantgym.benchmark.protocol`)."""
    if cell.protocol == "windows":
        return window_plan(
            first_bar,
            int(market.last_bar),
            train_bars=int(cell.train_bars or 0),
            embargo_bars=int(cell.embargo_bars or 0),
            n_windows=int(cell.n_windows or 0),
            window_bars=int(cell.window_bars or 0),
        )
    return walk_forward_plan(
        market,
        first_bar=first_bar,
        n_folds=int(cell.n_folds or 0),
        train=float(cell.fold_train or 0.0),
        test=float(cell.fold_test or 0.0),
        embargo=int(cell.embargo_bars or 0),
    )


# --------------------------------------------------------------------------------------------
# Seeding, building and training agents
# --------------------------------------------------------------------------------------------


def _seed_everything(seed: int, torch_needed: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global RNG, for custom agents
    if torch_needed or "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True, warn_only=True)


def _accepts(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _agent_kwargs(cls: type, cell: Cell) -> dict[str, Any]:
    """The cell's kwargs plus ``seed`` when the agent takes one and it was not given."""
    kwargs = dict(cell.agent_kwargs)
    config = getattr(cls, "Config", None)
    if isinstance(config, type) and dataclasses.is_dataclass(config):
        takes_seed = "seed" in {f.name for f in dataclasses.fields(config)}
    else:
        takes_seed = _accepts(cls, "seed")
    if takes_seed:
        kwargs.setdefault("seed", cell.seed)
    return kwargs


def _timestamp(market: Any, bar: int) -> Any:
    import pandas as pd

    return pd.Timestamp(market.timestamps[bar])


def _dataset(cell: Cell, market: Any, train: BarRange, cache_dir: Any) -> Any:
    """The offline learner's dataset, collected on ``train`` only. The harness passes the range
    itself (``split="all"`` plus ``start``/``end``) and the market's *source* (not the loaded
    ``MarketData``) so the dataset's metadata can rebuild it (the supervised agent relabels
    bars from it). Datasets are deterministic in their arguments, so with ``cache_dir`` the
    cells of one (market, seed, train range) share one copy (saved losslessly)."""
    from quantgym.datasets.presets import make_dataset
    from quantgym.datasets.trajectory import TrajectoryDataset

    n_data = int(cell.dataset_steps or 3)
    kwargs: dict[str, Any] = {
        "market": cell.market,
        "quality": str(cell.dataset_quality),
        "n_steps": n_data,
        "seed": cell.seed,
        "split": "all",
        "num_envs": min(16, n_data // 3 or 1),
        "env_kwargs": {
            **market_env_kwargs(cell),
            **cell.env_kwargs,
            "start": _timestamp(market, train.start),
            "end": _timestamp(market, train.end),
        },
    }
    if cache_dir is None:
        return make_dataset(**kwargs)
    key = cell_id(json.loads(json.dumps(kwargs, default=str)))
    path = Path(cache_dir) / f"{key}.npz"
    if path.is_file():
        try:
            return TrajectoryDataset.load(path)
        except ValueError:  # a broken cache entry: collect again
            pass
    dataset = make_dataset(**kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save(path, compress=False)
    return dataset


def _train(
    cls: type,
    learns: str,
    cell: Cell,
    market: Any,
    train: BarRange,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Any, int | None]:
    """A fresh agent trained on ``train`` only (bars after ``train.end`` are never loaded)."""
    agent = cls(**_agent_kwargs(cls, cell))
    range_kwargs = {"data": market, **cell.env_kwargs, "end": _timestamp(market, train.end)}
    if learns == "offline":
        dataset = _dataset(cell, market, train, cache_dir)
        fit_kwargs: dict[str, Any] = {}
        if cell.train_steps is not None:
            fit_kwargs["train_steps"] = cell.train_steps
        if _accepts(agent.fit, "progress_bar"):
            fit_kwargs["progress_bar"] = False  # the harness shows one bar over cells
        agent.fit(dataset, **fit_kwargs)
        return agent, cell.train_steps
    env = gym.make(ENV_ID, **range_kwargs)
    try:
        kwargs: dict[str, Any] = {}
        if cell.train_steps is not None:
            kwargs["train_steps"] = cell.train_steps
        if _accepts(agent.fit, "progress_bar"):
            kwargs["progress_bar"] = False  # the harness shows one bar over cells
        agent.fit(env, **kwargs)
    finally:
        env.close()
    steps: Any = getattr(agent, "num_timesteps", None)
    if steps is None:
        model = getattr(agent, "model", None)
        steps = getattr(model, "num_timesteps", cell.train_steps)
    return agent, None if steps is None else int(steps)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


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
        row = {
            "equity": np.asarray(info["equity"], dtype=np.float64),
            "position": np.asarray(info["position"], dtype=np.float64),
            "trade": np.asarray(info["trade"], dtype=np.float64),
            "fees": np.asarray(info["fees"], dtype=np.float64),
        }
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


def _evaluate_units(
    make: Callable[[Any], Any], cell: Cell, market: Any, units: list[TestUnit]
) -> tuple[list[np.ndarray], list[dict[str, float]]]:
    """Equity path (length ``n_steps + 1``) and metrics of each unit, batched per length."""
    from quantgym.envs.metrics import performance_metrics

    paths: dict[int, tuple[np.ndarray, dict[str, float]]] = {}
    by_length: dict[int, list[TestUnit]] = {}
    for unit in units:
        by_length.setdefault(unit.n_steps, []).append(unit)
    for length, group in by_length.items():
        starts = [u.start for u in group]
        end = max(u.end for u in group)
        kwargs = {
            "data": market,
            **cell.env_kwargs,
            "end": _timestamp(market, end),
            "episode_length": length,
        }
        vec = gym.make_vec(ENV_ID, num_envs=len(group), **kwargs)
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
                env = gym.make(ENV_ID, **kwargs)
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


def _unit_row(unit: TestUnit, market: Any, equity: np.ndarray, m: Mapping[str, float]) -> dict:
    final = float(equity[-1])
    growth = math.log(final / equity[0]) if final > 0 else LOG_GROWTH_FLOOR
    return {
        "unit": unit.unit,
        "fold": unit.fold,
        "start": unit.start,
        "end": unit.end,
        "start_time": _timestamp(market, unit.start).isoformat(),
        "end_time": _timestamp(market, unit.end).isoformat(),
        "n_bars": unit.n_steps,
        "log_growth": max(growth, LOG_GROWTH_FLOOR),
        "total_return": float(m["total_return"]),
        "sharpe": float(m["sharpe"]),
        "sortino": float(m["sortino"]),
        "max_drawdown": -float(m["max_drawdown"]),
        "turnover": float(m["turnover"]),
        "costs": float(m["costs"]),
        "n_trades": int(m["n_trades"]),
    }


def _curves(equities: list[np.ndarray], points: int) -> dict[str, Any]:
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


# --------------------------------------------------------------------------------------------
# One cell
# --------------------------------------------------------------------------------------------


def _builder(cls: type, kwargs: dict[str, Any]) -> Callable[[Any], Any]:
    """Build the agent for each evaluation env (env-bound agents bind to it)."""
    takes_env = _is_env_bound(cls) or _accepts(cls, "env")
    return lambda env: cls(env=env, **kwargs) if takes_env else cls(**kwargs)


def _fixed(agent: Any) -> Callable[[Any], Any]:
    """The trained agent, whatever the evaluation env."""
    return lambda env: agent


def _record_head(cell: Cell) -> dict[str, Any]:
    from quantgym.agents.registry import agent_class

    try:
        cls = agent_class(cell.agent)
        kind, role = agent_kind(cls), agent_role(cls)
    except ValueError:
        kind, role = "custom", "causal"
    return {
        "schema": SCHEMA,
        "cell_id": cell.cell_id,
        "cell": cell.to_dict(),
        "market": cell.market,
        "agent": cell.agent,
        "seed": cell.seed,
        "kind": kind,
        "role": role,
        "reference": reference_policy_name(cell.market),
    }


def run_cell(
    cell: Cell | Mapping[str, Any], cache_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Train (if the agent learns) and evaluate one cell; returns its record (never raises for
    a failure inside the cell: the record then has ``status="error"`` and the traceback).
    ``cache_dir``: where offline datasets are shared between cells (it does not change the
    record)."""
    if not isinstance(cell, Cell):
        cell = Cell.from_dict(cell)
    record = _record_head(cell)
    timing = {"train_s": 0.0, "eval_s": 0.0}
    try:
        from quantgym.agents.registry import agent_class

        cls = agent_class(cell.agent)
        learns = _learns(cls)
        _seed_everything(cell.seed, torch_needed=learns is not None)
        market, first_bar = build_market(cell)
        plan = plan_for(cell, market, first_bar)
        equities: dict[int, np.ndarray] = {}
        metrics: dict[int, dict[str, float]] = {}
        trained: list[int | None] = []
        for train in plan.trains:
            units = plan.units_for(train)
            t0 = time.perf_counter()
            if learns is None:
                make = _builder(cls, _agent_kwargs(cls, cell))
            else:
                agent, steps = _train(cls, learns, cell, market, train, cache_dir)
                trained.append(steps)
                make = _fixed(agent)
            timing["train_s"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            eqs, ms = _evaluate_units(make, cell, market, units)
            timing["eval_s"] += time.perf_counter() - t0
            for unit, eq, m in zip(units, eqs, ms, strict=True):
                equities[unit.unit], metrics[unit.unit] = eq, m
        units_out = [_unit_row(u, market, equities[u.unit], metrics[u.unit]) for u in plan.units]
        record.update(
            status="ok",
            error=None,
            units=units_out,
            bars_per_year=float(market.bars_per_year),
            curves=_curves([equities[u.unit] for u in plan.units], cell.curve_points),
            train={"steps": trained[0] if len(set(trained)) == 1 else trained} if trained else {},
        )
    except Exception:
        record.update(
            status="error",
            error=traceback.format_exc(),
            units=[],
            bars_per_year=None,
            curves=None,
            train={},
        )
    record["timing"] = timing
    record["provenance"] = provenance()
    return record
