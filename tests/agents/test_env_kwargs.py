"""json_safe_kwargs: the env kwargs saved next to an agent are those that survive JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from quantgym.agents.env_kwargs import json_safe_kwargs


def test_only_entries_that_survive_a_json_round_trip_are_kept() -> None:
    kwargs = {
        "market": "regime",
        "window_size": 8,
        "positions": (-1.0, 0.0, 1.0),
        "market_kwargs": {"n_bars": 400},
        "data": pd.DataFrame({"close": [1.0, 2.0]}),
        "reward": np.mean,
        "int_keys": {1: 2},
        "nan": float("nan"),
    }
    safe = json_safe_kwargs(kwargs)
    assert safe == {
        "market": "regime",
        "window_size": 8,
        "positions": (-1.0, 0.0, 1.0),
        "market_kwargs": {"n_bars": 400},
    }
    assert json.loads(json.dumps(safe))["positions"] == [-1.0, 0.0, 1.0]
