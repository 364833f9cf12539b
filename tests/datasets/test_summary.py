"""Summaries of a dataset's arrays."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from quantgym.datasets.summary import (
    action_histogram,
    flat_columns,
    metadata_date_range,
    value_stats,
)


def test_value_stats():
    stats = value_stats(np.array([1.0, 2.0, 6.0]))
    assert stats == {"mean": 3.0, "std": stats["std"], "min": 1.0, "median": 2.0, "max": 6.0}
    assert math.isclose(stats["std"], np.std([1.0, 2.0, 6.0]))
    assert all(math.isnan(v) for v in value_stats(np.zeros(0)).values())


def test_action_histograms():
    discrete = action_histogram(
        np.array([0, 2, 2]), {"type": "discrete", "n": 3}, [-1.0, 0.0, 1.0], bins=10
    )
    assert discrete == {
        "labels": ["0 (target -1)", "1 (target +0)", "2 (target +1)"],
        "counts": [1, 0, 2],
    }
    assert action_histogram(np.array([1]), {"type": "discrete", "n": 2}, None, 10)["labels"] == [
        "0",
        "1",
    ]
    values = np.array([[0.1], [0.9], [np.nan]], np.float32)
    continuous = action_histogram(values, {"type": "continuous"}, None, bins=2)
    assert continuous["counts"] == [1, 1] and len(continuous["labels"]) == 2


def test_flat_columns_and_date_range():
    assert list(flat_columns("action", np.zeros(3))) == ["action"]
    wide = flat_columns("obs", np.arange(6).reshape(3, 2))
    assert list(wide) == ["obs_0", "obs_1"] and wide["obs_1"].tolist() == [1, 3, 5]
    assert metadata_date_range({"date_range": ["2020-01-01", "2020-02-01"]}) == (
        pd.Timestamp("2020-01-01"),
        pd.Timestamp("2020-02-01"),
    )
    assert metadata_date_range({"date_range": ["not a date", "x"]}) is None
    assert metadata_date_range({}) is None
