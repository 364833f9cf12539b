"""Bundled sample markets (gym-anytrading's data files, MIT licence).

- ``googl``: daily GOOGL stock, 2009-05-22 to 2018-08-29 (2,335 bars).
- ``eurusd``: hourly EUR/USD ask, 2017 (6,225 bars).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["SAMPLES", "load_sample"]

SAMPLES: dict[str, str] = {
    "googl": "STOCKS_GOOGL.csv.gz",
    "eurusd": "FOREX_EURUSD_1H_ASK.csv.gz",
}
_TIME_FORMATS = {"googl": "%Y-%m-%d", "eurusd": "%d.%m.%Y %H:%M:%S.%f"}


def load_sample(name: str) -> pd.DataFrame:
    """Return a bundled market as an OHLCV DataFrame with a ``DatetimeIndex`` named ``timestamp``."""
    key = name.lower()
    if key not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; available: {sorted(SAMPLES)}")
    with resources.files("quantgym.envs").joinpath("data").joinpath(SAMPLES[key]).open("rb") as f:
        raw = pd.read_csv(f, compression="gzip")
    time_col = raw.columns[0]
    index = pd.DatetimeIndex(
        pd.to_datetime(raw[time_col], format=_TIME_FORMATS[key]), name="timestamp"
    )
    frame = raw.drop(columns=[time_col]).rename(columns=str.lower)
    frame = frame[["open", "high", "low", "close", "volume"]].astype("float64")
    frame.index = index
    return frame
