"""Bundled multi-asset sample data (no download at run time); see ``data/PORTFOLIO_SAMPLES_NOTICE.txt``.

The classic online-portfolio-selection (OLPS) sets, as shipped in the ``universal-portfolios``
0.4.17 wheel (Feedback MIT licence, (c) 2014 Mojmir Vinkler), and skfolio's S&P 500 20-stock
daily prices (BSD 3-Clause, (c) the skfolio developers):

==========  ======  ======  ==============================  =======================================
name        assets  bars    period                          form
==========  ======  ======  ==============================  =======================================
nyse_o      36      5,651   1962-07-03 .. 1984-12-31        close-only, normalised prices
nyse_n      23      6,431   1985-01-01 .. 2010-06-30        close-only, normalised prices
tse         88      1,259   1994-01-04 .. 1998-12-31        close-only, normalised prices
sp500       25      1,276   1998-01-02 .. 2003-01-31        close-only, normalised prices
djia        30      507     2001-01-14 .. 2003-01-14        close-only, normalised prices
msci        24      1,043   2006-04-01 .. 2010-03-31        close-only, normalised prices (indices)
sp500_20    20      8,313   1990-01-02 .. 2022-12-28        close-only, adjusted closes, real dates
==========  ======  ======  ==============================  =======================================

The OLPS files hold each asset's price divided by its price the day before the first row (so
row 0 is the first price relative) and carry **no dates and no asset names** (only letters):
the loader indexes them by business days from the period's first day (calendar approximate;
one row per trading day in the original data) and keeps the letters as asset names, except in
``tse``, whose letters run into unprintable characters, named ``tse_00 .. tse_87``. Values are
exactly the wheel's, so ``universal-portfolios`` run on the same file gives the same wealth.
All sets are close-only: :class:`~quantgym.envs.portfolio.panel.PanelData` fills at the previous
close (see there).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["PORTFOLIO_SAMPLES", "load_portfolio_sample"]

#: name -> (file under quantgym/envs/data, first day of the period or None when dated)
PORTFOLIO_SAMPLES: dict[str, tuple[str, str | None]] = {
    "nyse_o": ("olps_nyse_o.csv.gz", "1962-07-03"),
    "nyse_n": ("olps_nyse_n.csv.gz", "1985-01-01"),
    "tse": ("olps_tse.csv.gz", "1994-01-04"),
    "sp500": ("olps_sp500.csv.gz", "1998-01-02"),
    "djia": ("olps_djia.csv.gz", "2001-01-14"),
    "msci": ("olps_msci.csv.gz", "2006-04-01"),
    "sp500_20": ("sp500_20.csv.gz", None),
}


def load_portfolio_sample(name: str) -> pd.DataFrame:
    """A bundled set as a wide close-price DataFrame (one column per asset) with a
    ``DatetimeIndex`` named ``timestamp``."""
    key = str(name).lower()
    if key not in PORTFOLIO_SAMPLES:
        raise ValueError(
            f"unknown portfolio sample {name!r}; available: {sorted(PORTFOLIO_SAMPLES)}"
        )
    filename, first_day = PORTFOLIO_SAMPLES[key]
    with resources.files("quantgym.envs").joinpath("data").joinpath(filename).open("rb") as f:
        raw = pd.read_csv(f, compression="gzip")
    if first_day is None:  # skfolio: a Date column
        index = pd.DatetimeIndex(pd.to_datetime(raw.iloc[:, 0], format="%Y-%m-%d"))
        raw = raw.iloc[:, 1:]
    else:
        index = pd.bdate_range(first_day, periods=len(raw))
    frame = raw.astype("float64")
    if key == "tse":
        frame.columns = [f"tse_{j:02d}" for j in range(frame.shape[1])]
    frame.index = pd.DatetimeIndex(index, name="timestamp")
    return frame
