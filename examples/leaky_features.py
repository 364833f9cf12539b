"""Feature functions for ``quantgym check-features``: one causal set and one that leaks.

PYTHONPATH=examples quantgym check-features leaky_features:leaky --data sample:googl   # exit 1
PYTHONPATH=examples quantgym check-features leaky_features:causal --data sample:googl  # exit 0
"""

import pandas as pd


def causal(df: pd.DataFrame) -> pd.DataFrame:
    """Past-only columns: the bar's return and its trailing 20-bar volatility."""
    r = df["close"].pct_change()
    return pd.DataFrame({"ret": r, "vol20": r.rolling(20).std()})


def leaky(df: pd.DataFrame) -> pd.DataFrame:
    """Two classic leaks (tomorrow's return, a centred window) and a start-dependent EMA."""
    r = df["close"].pct_change()
    return pd.DataFrame(
        {
            "ret": r,
            "next_ret": r.shift(-1),  # tomorrow's return: look-ahead
            "smooth": df["close"].rolling(11, center=True).mean(),  # centred window: look-ahead
            "ema": df["close"].ewm(span=50).mean(),  # recursive: depends on the first bar
        }
    )
