"""Tiny suites for the harness tests (a few short windows: each cell runs in well under a second)."""

from __future__ import annotations

from typing import Any

import pytest

from quantgym.benchmark.suite import Suite

TINY = {
    "window_bars": 200,
    "n_windows": 6,
    "train_bars": 2_000,
    "embargo_bars": 50,
    "dataset_steps": 600,
}


def tiny_suite(**overrides: Any) -> Suite:
    """A validated suite on the regime market with tiny windows (fields overridable)."""
    values: dict[str, Any] = {
        "name": "tiny",
        "markets": ["synthetic:regime"],
        "agents": ["buy_and_hold", "sma_crossover", "bayes_filter_expert"],
        "seeds": [0],
        **TINY,
    }
    values.update(overrides)
    return Suite(**values).validate()


@pytest.fixture
def tiny() -> Suite:
    return tiny_suite()
