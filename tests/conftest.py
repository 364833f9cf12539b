"""Shared fixtures: small, fast markets built in memory (tests never read ../shared)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import quantgym  # noqa: F401  (registers TradingEnv-v0)


def random_walk_frame(
    n: int = 400, seed: int = 0, freq: str = "B", start: str = "2015-01-01", vol: float = 0.01
) -> pd.DataFrame:
    """A valid OHLCV frame: geometric random walk with an overnight gap and wicks."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    prev = np.concatenate([[100.0], close[:-1]])
    open_ = prev * np.exp(rng.normal(0.0, vol / 4, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n)))
    volume = rng.lognormal(10.0, 0.5, n)
    index = pd.date_range(start, periods=n, freq=freq, name="timestamp")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def simple_feature_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A random walk with one trivial feature column ``x`` (no warm-up): cheap envs for property tests."""
    frame = random_walk_frame(n, seed)
    frame["x"] = np.arange(n, dtype=np.float64)
    return frame


@pytest.fixture(scope="session")
def walk_frame() -> pd.DataFrame:
    return random_walk_frame(400, seed=1)


@pytest.fixture(scope="session")
def hourly_frame() -> pd.DataFrame:
    return random_walk_frame(600, seed=2, freq="h", vol=0.002)
