"""Run one stress cell: train once, then score the same agent on the same units under each probe.

A cell of a suite with a ``stress:`` section (:mod:`~quantgym.benchmark.stress_spec`) runs like
an ordinary cell (:func:`~quantgym.benchmark.cells.train_and_score`: train on each train range,
score on its units; that is the record's ``units``, the *base* condition), then, with the same
trained agent and the same units:

- ``cost``: one evaluation per commission level (no slippage), the agent as trained;
- ``shift``: the units of a series drawn with the same seed and the variant's market parameters
  (synthetic markets whose kind has variants);
- ``noise`` / ``adversarial``: the observation's market features perturbed
  (:mod:`quantgym.agents.perturbation`) — only for agents that read the observation (env-bound
  rules, experts and the oracle decide from prices: the probes cannot move them, so their
  condition *is* their base units, recorded with ``"by_construction": true``); ``adversarial``
  only for agents with differentiable action scores.

The record is an ordinary record (schema 1) plus ``stress``: ``{"reads_observation",
"differentiable", "conditions": [{"probe", "level", "label", "units", ...}]}``. Each base unit
row also carries ``market_log_return`` (the traded asset's close-to-close log return over the
unit), ``max_underwater_bars``, ``recovery_bars``, ``recovered`` and ``ended_early`` (bankrupt or
liquidated before the unit's end), which the crash and worst-window tables read. Stress suites
trade ``TradingEnv-v0`` markets (the portfolio env has its own cost sweep,
``benchmarks/cost_sweep.py``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from quantgym.benchmark.cells import (
    error_fields,
    record_head,
    run_cell,
    train_and_score,
    train_field,
)
from quantgym.benchmark.listing import Cell, is_env_bound
from quantgym.benchmark.protocol import (
    BarRange,
    TestUnit,
    bar_timestamp,
    build_market,
    market_env_kwargs,
    plan_for,
)
from quantgym.benchmark.records import provenance
from quantgym.benchmark.scoring import evaluate_units, scored_fields, unit_row
from quantgym.benchmark.stress_spec import StressSpec
from quantgym.benchmark.training import seed_everything
from quantgym.envs.metrics import drawdown_durations
from quantgym.policies.references import env_id_for, market_env, market_kind

__all__ = ["run_suite_cell", "run_stress_cell", "shifted_market", "OBSERVATION_SAMPLE"]

#: Observations sampled on the train range to measure each feature's scale for the
#: perturbation probes.
OBSERVATION_SAMPLE = 4096


def run_suite_cell(cell: Cell | Mapping[str, Any], cache_dir: str | None = None) -> dict[str, Any]:
    """The record of any cell: :func:`run_stress_cell` for a stress cell, else
    :func:`~quantgym.benchmark.cells.run_cell` (what the execution backends call)."""
    if not isinstance(cell, Cell):
        cell = Cell.from_dict(cell)
    if cell.stress is None:
        return run_cell(cell, cache_dir)
    return run_stress_cell(cell, cache_dir)


def shifted_market(cell: Cell, params: Mapping[str, Any]) -> Any:
    """The cell's synthetic series drawn again with the same length and seed and ``params``
    replacing the kind's defaults (``ValueError`` on real data)."""
    if market_kind(cell.market) == "real":
        raise ValueError(f"{cell.market}: a shift needs a synthetic market")
    kwargs = market_env_kwargs(cell)
    kwargs["market_kwargs"] = {**kwargs["market_kwargs"], **dict(params)}
    env = gym.make(env_id_for(cell.market), **kwargs, **cell.env_kwargs, episode_length=None)
    try:
        return env.unwrapped.market
    finally:
        env.close()


def _unit_extras(market: Any, unit: TestUnit, equity: np.ndarray) -> dict[str, float]:
    close = np.asarray(market.close, dtype=np.float64)
    extras = {
        "market_log_return": float(math.log(close[unit.end] / close[unit.start])),
        "ended_early": float(len(equity) < unit.n_steps + 1 or equity[-1] <= 0.0),
    }
    extras.update(drawdown_durations(equity))
    return extras


def _rows(
    units: Sequence[TestUnit],
    market: Any,
    scored: Mapping[int, tuple[np.ndarray, Mapping[str, float]]],
    extras: bool = False,
) -> list[dict[str, Any]]:
    rows = []
    for unit in units:
        equity, metrics = scored[unit.unit]
        row = unit_row(unit, market, equity, metrics)
        if extras:
            row.update(_unit_extras(market, unit, equity))
        rows.append(row)
    return rows


def _observation_scale(cell: Cell, market: Any, train: BarRange) -> np.ndarray:
    """Per-dimension scale of the observation on the train range (perturbation units)."""
    from quantgym.agents.perturbation import observation_scale, sample_observations

    env = gym.make(
        env_id_for(cell.market),
        data=market,
        **cell.env_kwargs,
        start=bar_timestamp(market, train.start),
        end=bar_timestamp(market, train.end),
        episode_length=None,
    )
    try:
        observations = sample_observations(env, OBSERVATION_SAMPLE, seed=cell.seed)
        return observation_scale(env, observations)
    finally:
        env.close()


@dataclasses.dataclass
class _Condition:
    probe: str
    level: float
    label: str
    scored: dict[int, tuple[np.ndarray, Mapping[str, float]]] = dataclasses.field(
        default_factory=dict
    )
    market: Any = None
    by_construction: bool = False


def _cost_cell(cell: Cell, bp: float) -> Cell:
    costs = {"commission": bp / 1e4, "slippage": 0.0}
    return dataclasses.replace(cell, env_kwargs={**cell.env_kwargs, **costs})


def _score_into(
    condition: _Condition,
    make: Callable[[Any], Any],
    cell: Cell,
    market: Any,
    units: Sequence[TestUnit],
) -> None:
    equities, metrics = evaluate_units(make, cell, market, units)
    for unit, eq, m in zip(units, equities, metrics, strict=True):
        condition.scored[unit.unit] = (eq, m)
    condition.market = market


def _probe_range(
    spec: StressSpec,
    cell: Cell,
    market: Any,
    shifted: Mapping[str, Any],
    train: BarRange,
    units: Sequence[TestUnit],
    result: Any,
    reads_observation: bool,
    differentiable: bool,
    conditions: dict[tuple[str, str], _Condition],
    base: Mapping[int, tuple[np.ndarray, Mapping[str, float]]],
) -> None:
    """Score one train range's units under every probe into ``conditions``."""
    make = result.make_agent

    def get(probe: str, level: float, label: str) -> _Condition:
        return conditions.setdefault((probe, label), _Condition(probe, level, label))

    for bp in spec.cost_levels_bp:
        _score_into(get("cost", bp, f"{bp:g} bp"), make, _cost_cell(cell, bp), market, units)
    for k, (name, shifted_market_) in enumerate(shifted.items()):
        _score_into(get("shift", float(k + 1), name), make, cell, shifted_market_, units)
    probes = [("noise", s) for s in spec.noise_scales]
    adversarial = [("adversarial", e) for e in spec.adversarial_eps]
    if not reads_observation:  # decides from prices: both probes leave it as it is
        probes += adversarial
        for probe, level in probes:
            condition = get(probe, level, f"{level:g}")
            condition.scored.update({u.unit: base[u.unit] for u in units})
            condition.market, condition.by_construction = market, True
        return
    probes += adversarial if differentiable else []
    if not probes:
        return
    from quantgym.agents.perturbation import AdversarialObservationAgent, NoisyObservationAgent

    scale = _observation_scale(cell, market, train)
    for probe, level in probes:
        if probe == "noise":

            def wrapped(env: Any, s: float = level) -> Any:
                return NoisyObservationAgent(make(env), s, scale, seed=cell.seed)
        else:

            def wrapped(env: Any, e: float = level) -> Any:
                return AdversarialObservationAgent(
                    make(env),
                    e,
                    scale,
                    steps=spec.adversarial_steps,
                    seed=cell.seed,
                    target=spec.adversarial_target,
                )

        _score_into(get(probe, level, f"{level:g}"), wrapped, cell, market, units)


def run_stress_cell(cell: Cell | Mapping[str, Any], cache_dir: str | None = None) -> dict[str, Any]:
    """Train and score one stress cell under every probe of its ``stress`` spec; returns its
    record (never raises for a failure inside the cell: ``status="error"`` and the traceback)."""
    if not isinstance(cell, Cell):
        cell = Cell.from_dict(cell)
    if cell.stress is None:
        raise ValueError("run_stress_cell needs a cell of a stress suite (cell.stress is None)")
    record = record_head(cell)
    timing = {"train_s": 0.0, "eval_s": 0.0, "stress_s": 0.0}
    try:
        from quantgym.agents import agent_class

        if market_env(cell.market) != "trading":
            raise ValueError(
                f"{cell.market}: stress suites trade TradingEnv-v0 markets; the portfolio "
                "env's cost sweep is benchmarks/cost_sweep.py"
            )
        spec = StressSpec.from_mapping(cell.stress)
        cls = agent_class(cell.agent)
        reads_observation = not is_env_bound(cls)
        seed_everything(cell.seed, torch_needed=reads_observation)
        market, first_bar = build_market(cell)
        plan = plan_for(cell, market, first_bar)
        kind = market_kind(cell.market)
        variants = spec.shifts_for(kind) if kind != "real" else {}
        shifted = {name: shifted_market(cell, params) for name, params in variants.items()}
        base: dict[int, tuple[np.ndarray, Mapping[str, float]]] = {}
        conditions: dict[tuple[str, str], _Condition] = {}
        trained: list[int | None] = []
        differentiable = False
        for train in plan.trains:
            units = plan.units_for(train)
            result = train_and_score(cell, market, train, units, cache_dir)
            timing["train_s"] += result.train_s
            timing["eval_s"] += result.eval_s
            if result.agent is not None:
                trained.append(result.train_steps)
                if spec.adversarial_eps:
                    from quantgym.agents.perturbation import is_differentiable

                    differentiable = is_differentiable(result.agent)
            for unit, eq, m in zip(units, result.equities, result.metrics, strict=True):
                base[unit.unit] = (eq, m)
            t0 = time.perf_counter()
            _probe_range(
                spec,
                cell,
                market,
                shifted,
                train,
                units,
                result,
                reads_observation,
                differentiable,
                conditions,
                base,
            )
            timing["stress_s"] += time.perf_counter() - t0
        equities = {k: v[0] for k, v in base.items()}
        metrics = {k: v[1] for k, v in base.items()}
        fields = scored_fields(plan.units, market, equities, metrics, cell.curve_points)
        for unit, row in zip(plan.units, fields["units"], strict=True):
            row.update(_unit_extras(market, unit, equities[unit.unit]))
        record.update(
            status="ok",
            error=None,
            **fields,
            train=train_field(trained),
            stress={
                "reads_observation": reads_observation,
                "differentiable": differentiable,
                "conditions": [
                    {
                        "probe": c.probe,
                        "level": c.level,
                        "label": c.label,
                        "by_construction": c.by_construction,
                        "units": _rows(plan.units, c.market, c.scored, extras=True),
                    }
                    for c in conditions.values()
                ],
            },
        )
    except Exception:
        record.update(error_fields(), stress=None)
    record["timing"] = timing
    record["provenance"] = provenance()
    return record
