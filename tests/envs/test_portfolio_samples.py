"""Bundled multi-asset samples load offline, exactly as shipped, with the OLPS reference wealth."""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.envs import PortfolioEnv
from quantgym.envs.portfolio import PORTFOLIO_SAMPLES, load_portfolio_sample

SHAPES = {"nyse_o": (5651, 36), "nyse_n": (6431, 23), "tse": (1259, 88), "sp500": (1276, 25),
          "djia": (507, 30), "msci": (1043, 24), "sp500_20": (8313, 20)}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PORTFOLIO_SAMPLES))
def test_samples_load_with_their_shapes(name):
    frame = load_portfolio_sample(name)
    assert frame.shape == SHAPES[name] and frame.index.is_monotonic_increasing
    assert np.isfinite(frame.to_numpy()).all() and (frame.to_numpy() > 0).all()
    assert not frame.columns.duplicated().any()


def test_sp500_20_has_its_real_dates_and_tickers():
    frame = load_portfolio_sample("sp500_20")
    assert (
        str(frame.index[0].date()) == "1990-01-02" and str(frame.index[-1].date()) == "2022-12-28"
    )
    assert frame.columns[0] == "AAPL" and frame.iloc[0, 0] == 0.264


def run_ucrp(name, commission=0.0):
    env = PortfolioEnv(f"sample:{name}", features=(), window_size=1, episode_length=None,
                       commission=commission, slippage=0.0)  # fmt: skip
    env.reset()
    n = env.n_assets
    done = False
    while not done:
        *_, terminated, truncated, info = env.step(np.full(n, 1.0 / n))
        done = terminated or truncated
    return info["equity"] / 10_000.0


def test_ucrp_through_the_env_is_the_product_of_mean_price_relatives():
    closes = load_portfolio_sample("djia").to_numpy()
    relatives = closes[1:] / closes[:-1]
    expected = np.prod(relatives.mean(axis=1))
    assert run_ucrp("djia") == pytest.approx(expected, rel=1e-12)


@pytest.mark.slow
def test_ucrp_on_nyse_o_reaches_the_reference_wealth():
    """universal-portfolios gives UCRP 26.68 on NYSE(O) without fees (issue 21)."""
    assert run_ucrp("nyse_o") == pytest.approx(26.68, abs=0.005)
    assert run_ucrp("nyse_o", commission=0.001) < 26.68
