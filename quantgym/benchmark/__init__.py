"""The benchmark harness: every agent on the same held-out data, scored with confidence intervals.

Protocol (:mod:`~quantgym.benchmark.protocol`):

- *Synthetic markets*: one long seeded series per (market, seed); learners train on its first
  ``train_bars`` bars; after ``embargo_bars`` untouched bars the rest is cut into ``n_windows``
  disjoint test windows of ``window_bars`` steps that every agent trades (paired comparison).
- *Real data* (bundled samples, CSV files): walk-forward folds (expanding train window,
  embargo, 5 folds by default); learners retrain per fold; each fold's test range is traded once.

A suite (:mod:`~quantgym.benchmark.suite`, YAML in ``benchmarks/suites/``) expands into cells
(market x agent x seed, :mod:`~quantgym.benchmark.listing`); a cell
(:mod:`~quantgym.benchmark.cells`) trains its learner on each train range
(:mod:`~quantgym.benchmark.training`) and scores it on the test units
(:mod:`~quantgym.benchmark.scoring`) into one JSON record in ``results.jsonl``
(:mod:`~quantgym.benchmark.records`) with per-unit log growth and metrics, written atomically by
:mod:`~quantgym.benchmark.execution` (local pool or Ray, resumable).
Scores (100 x mean log growth / the reference's over the same units, with paired bootstrap CIs),
tables and plots come from ``statistics``, ``report`` and ``plots``; quantstats tearsheets of one
agent's held-out returns from ``tearsheet``. CLI: ``benchmarks/compare.py``.
"""

from quantgym.benchmark.cells import RangeResult, run_cell, train_and_score
from quantgym.benchmark.execution import BACKENDS, RunSummary, run_cells, run_suite
from quantgym.benchmark.listing import Cell, agent_kind, agent_role, cells_for
from quantgym.benchmark.protocol import BarRange, Plan, TestUnit, walk_forward_plan, window_plan
from quantgym.benchmark.records import (
    RESULTS_FILE,
    SCHEMA,
    append_record,
    cell_id,
    read_records,
    strip_volatile,
)
from quantgym.benchmark.suite import AgentSpec, Suite, list_suites, load_suite

__all__ = [
    "AgentSpec",
    "Suite",
    "load_suite",
    "list_suites",
    "Cell",
    "cells_for",
    "run_cell",
    "train_and_score",
    "RangeResult",
    "agent_kind",
    "agent_role",
    "BarRange",
    "TestUnit",
    "Plan",
    "window_plan",
    "walk_forward_plan",
    "BACKENDS",
    "RunSummary",
    "run_cells",
    "run_suite",
    "SCHEMA",
    "RESULTS_FILE",
    "cell_id",
    "append_record",
    "read_records",
    "strip_volatile",
]
