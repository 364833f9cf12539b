"""One cell = one (market, agent, seed) of a suite, run end to end into one record.

:func:`run_cell` builds the market (a seeded synthetic series or real data) and plans the test
units (:mod:`~quantgym.benchmark.protocol`); for each train range (one per (market, seed) on
synthetic markets, one per fold on real data) :func:`train_and_score` trains a fresh learner
once (:mod:`~quantgym.benchmark.training`) and scores it on the range's units
(:mod:`~quantgym.benchmark.scoring`); agents that do not learn are built for each evaluation
env instead. The result is the record of :mod:`~quantgym.benchmark.records` (schema 1). Any
exception becomes a record with ``status="error"`` and its traceback. Runs are reproducible:
python/numpy/torch are seeded with the cell's seed once per cell, one torch thread,
``torch.use_deterministic_algorithms(True, warn_only=True)``.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from quantgym.benchmark.listing import (
    Cell,
    agent_factory,
    agent_kind,
    agent_learns,
    agent_role,
)
from quantgym.benchmark.protocol import BarRange, TestUnit, build_market, plan_for
from quantgym.benchmark.records import SCHEMA, provenance
from quantgym.benchmark.scoring import evaluate_units, fixed_agent, scored_fields
from quantgym.benchmark.training import seed_everything, train_agent
from quantgym.policies.references import reference_policy_name

__all__ = [
    "RangeResult",
    "train_and_score",
    "record_head",
    "train_field",
    "error_fields",
    "run_cell",
]


@dataclasses.dataclass
class RangeResult:
    """One train range of a cell: the agent trained once on it, scored on its units.

    Attributes:
        make_agent: ``make(env) -> agent`` that built the scored agent for each evaluation env
            (a fresh one for agents that do not learn, the trained one otherwise); pass it to
            :func:`~quantgym.benchmark.scoring.evaluate_units` to score more units.
        agent: the trained agent (``None`` when the agent does not learn).
        train_steps: steps it trained for (``None`` when it does not learn).
        equities, metrics: equity path and metrics of each unit, in the order given.
        train_s, train_cpu_s, eval_s: wall-clock and CPU seconds of training, wall-clock
            seconds of scoring.
    """

    make_agent: Callable[[Any], Any]
    agent: Any
    train_steps: int | None
    equities: list[np.ndarray]
    metrics: list[dict[str, float]]
    train_s: float
    train_cpu_s: float
    eval_s: float


def train_and_score(
    cell: Cell,
    market: Any,
    train: BarRange,
    units: Sequence[TestUnit],
    cache_dir: str | os.PathLike | None = None,
) -> RangeResult:
    """Train a fresh agent of ``cell`` on ``train`` (if it learns; an offline learner's dataset
    is collected on ``train`` only, shared through ``cache_dir``) and score it on ``units`` of
    ``market`` (from :func:`~quantgym.benchmark.protocol.build_market`). Seeding is the
    caller's (:func:`~quantgym.benchmark.training.seed_everything`)."""
    from quantgym.agents import agent_class

    cls = agent_class(cell.agent)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    agent, steps = None, None
    if agent_learns(cls) is None:
        make = agent_factory(cls, cell)
    else:
        agent, steps = train_agent(cls, cell, market, train, cache_dir)
        make = fixed_agent(agent)
    train_s, train_cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
    wall0 = time.perf_counter()
    equities, metrics = evaluate_units(make, cell, market, units)
    return RangeResult(
        make, agent, steps, equities, metrics, train_s, train_cpu_s, time.perf_counter() - wall0
    )


def record_head(cell: Cell) -> dict[str, Any]:
    """The fields of a record that name its cell: ids, market, agent, seed, kind, role and the
    market's reference agent."""
    from quantgym.agents import agent_class

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


def train_field(trained: list[int | None]) -> dict[str, Any]:
    """A record's ``train``: the steps each train range's learner trained for (one number when
    they agree), ``{}`` when the agent does not learn."""
    if not trained:
        return {}
    return {"steps": trained[0] if len(set(trained)) == 1 else trained}


def error_fields() -> dict[str, Any]:
    """The fields of a failed cell's record: ``status="error"``, the current exception's
    traceback and empty scored fields."""
    return {
        "status": "error",
        "error": traceback.format_exc(),
        "units": [],
        "bars_per_year": None,
        "curves": None,
        "train": {},
    }


def run_cell(
    cell: Cell | Mapping[str, Any], cache_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Train (if the agent learns) and score one cell; returns its record (never raises for
    a failure inside the cell: the record then has ``status="error"`` and the traceback).
    ``cache_dir``: where offline datasets are shared between cells (it does not change the
    record)."""
    if not isinstance(cell, Cell):
        cell = Cell.from_dict(cell)
    record = record_head(cell)
    timing = {"train_s": 0.0, "eval_s": 0.0}
    try:
        from quantgym.agents import agent_class

        seed_everything(cell.seed, torch_needed=agent_learns(agent_class(cell.agent)) is not None)
        market, first_bar = build_market(cell)
        plan = plan_for(cell, market, first_bar)
        equities: dict[int, np.ndarray] = {}
        metrics: dict[int, dict[str, float]] = {}
        trained: list[int | None] = []
        for train in plan.trains:
            units = plan.units_for(train)
            result = train_and_score(cell, market, train, units, cache_dir)
            timing["train_s"] += result.train_s
            timing["eval_s"] += result.eval_s
            if result.agent is not None:
                trained.append(result.train_steps)
            for unit, eq, m in zip(units, result.equities, result.metrics, strict=True):
                equities[unit.unit], metrics[unit.unit] = eq, m
        record.update(
            status="ok",
            error=None,
            **scored_fields(plan.units, market, equities, metrics, cell.curve_points),
            train=train_field(trained),
        )
    except Exception:
        record.update(error_fields())
    record["timing"] = timing
    record["provenance"] = provenance()
    return record
