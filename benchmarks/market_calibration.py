"""Calibration of the synthetic markets: which simple policies have an edge, after costs.

Backtest (vectorised, same timing as ``TradingEnv``): the target ``p_t`` is decided at the close
of bar t and filled at ``open_{t+1}``; the position held before it, ``p_{t-1}``, rides the
overnight gap. The log return booked for step t (bar t+1) is

    p_{t-1} * (log open_{t+1} - log close_t) + p_t * (log close_{t+1} - log open_{t+1})
    - cost * |p_t - p_{t-1}|

i.e. position times log return (exact for |p| in {0, 1} up to the usual ``log(1 + p(e^r - 1))``
convexity term, which is the same for every policy and does not change the ranking).
The gap has mean zero, so only the intraday term carries an expected edge.

Policies (each returns targets in {-1, 0, 1}, one per bar):
  oracle        knows the hidden regime of bar t; forecasts E[r_{t+1}] = T[regime_t] @ drifts and
                goes long/short on its sign, holding its position when the forecast is 0
                (sideways: holding costs nothing in expectation, switching costs fees)
  oracle_flat   the same, but flat in a zero-forecast regime (lower variance, pays more fees)
  bayes_filter  ``quantgym.envs.synthetic.bayes_filter_positions``: HMM forward filter on past
                close-to-close returns, long/short when |E[r_{t+1}]| > band, else hold; the band
                is chosen on separate tuning seeds (``--tune-seeds``)
  momentum      sign of the past ``--momentum-window``-bar log return, hold on 0
  buy_and_hold  always long
  random        uniform over {-1, 0, 1} each bar (seeded), what an untrained agent does

Run: ``python benchmarks/market_calibration.py`` (defaults: 200k bars, seeds 0 1 2, 15 bp cost).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from quantgym.envs.synthetic import (
    SyntheticMarket,
    bayes_filter_positions,
    generate_market,
    hmm_forward_filter,
    ou_expected_return,
    regime_expected_return,
)

__all__ = [
    "BAND_GRID",
    "backtest_log_returns",
    "buy_and_hold_positions",
    "momentum_positions",
    "oracle_positions",
    "ou_positions",
    "random_positions",
    "sign_positions",
    "summarize",
    "tune_band",
]

BARS_PER_YEAR = 252.0
BAND_GRID = (0.0, 0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.0015)


def sign_positions(signal: np.ndarray, band: float = 0.0) -> np.ndarray:
    """+1 where ``signal > band``, -1 where ``< -band``, else the previous position (start flat).

    NaN (not enough history yet) counts as "inside the band".
    """
    signal = np.asarray(signal, dtype=np.float64)
    target = np.where(signal > band, 1.0, np.where(signal < -band, -1.0, np.nan))
    decided = ~np.isnan(target)
    last = np.maximum.accumulate(np.where(decided, np.arange(target.size), -1))
    return np.where(last >= 0, target[np.maximum(last, 0)], 0.0)


def oracle_positions(market: SyntheticMarket, *, flat_when_zero: bool = False) -> np.ndarray:
    """Positions of a policy that sees the hidden regime of bar t at its close."""
    if market.regime is None:
        raise ValueError("market has no regime path: the oracle needs a 'regime' market")
    k = len(market.params["drifts"])
    expected = regime_expected_return(np.eye(k)[market.regime], market.params)
    if flat_when_zero:
        return np.sign(expected)
    return sign_positions(expected, 0.0)


def momentum_positions(market: SyntheticMarket, window: int = 100) -> np.ndarray:
    """Sign of the past ``window``-bar log return (flat until ``window`` bars are seen)."""
    log_close = np.log(market.frame["close"].to_numpy())
    past = np.full(log_close.size, np.nan)
    past[window:] = log_close[window:] - log_close[:-window]
    return sign_positions(past, 0.0)


def ou_positions(market: SyntheticMarket, band: float = 0.0) -> np.ndarray:
    """Sign of the exact OU forecast on a ``mean_reversion`` market, with a no-trade band."""
    log_close = np.log(market.frame["close"].to_numpy())
    return sign_positions(ou_expected_return(log_close, market.params), band)


def buy_and_hold_positions(market: SyntheticMarket) -> np.ndarray:
    """Always long."""
    return np.ones(len(market.frame))


def random_positions(market: SyntheticMarket, seed: int = 0) -> np.ndarray:
    """Uniform over {-1, 0, 1} each bar."""
    rng = np.random.default_rng(seed)
    return rng.integers(-1, 2, size=len(market.frame)).astype(np.float64)


def backtest_log_returns(
    market: SyntheticMarket, positions: np.ndarray, cost: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step (gross, net) log returns, shape (n - 1,), with the env's timing (module docstring)."""
    log_open = np.log(market.frame["open"].to_numpy())
    log_close = np.log(market.frame["close"].to_numpy())
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape != log_close.shape:
        raise ValueError(f"positions must have shape {log_close.shape}, got {positions.shape}")
    target = positions[:-1]  # decided at close t, held from open t+1 to close t+1
    held = np.concatenate(([0.0], positions[:-2]))  # held over the gap close t -> open t+1
    gap = log_open[1:] - log_close[:-1]
    intraday = log_close[1:] - log_open[1:]
    gross = held * gap + target * intraday
    return gross, gross - cost * np.abs(target - held)


def summarize(gross: np.ndarray, net: np.ndarray, turnover: float) -> dict[str, float]:
    """Mean gross/net log return per bar, t-statistic and annualised Sharpe of the net returns."""
    std = float(net.std())
    mean = float(net.mean())
    return {
        "gross": float(gross.mean()),
        "net": mean,
        "t_gross": float(gross.mean() / gross.std() * math.sqrt(gross.size)) if std > 0 else 0.0,
        "t_stat": mean / std * math.sqrt(net.size) if std > 0 else 0.0,
        "sharpe": mean / std * math.sqrt(BARS_PER_YEAR) if std > 0 else 0.0,
        "turnover": turnover,
    }


def tune_band(
    markets: list[SyntheticMarket], cost: float, grid: tuple[float, ...] = BAND_GRID
) -> tuple[float, dict[float, float]]:
    """Band of ``bayes_filter_positions`` with the best mean net return pooled over ``markets``."""
    scores = dict.fromkeys(grid, 0.0)
    for market in markets:
        log_close = np.log(market.frame["close"].to_numpy())
        posterior = hmm_forward_filter(np.diff(log_close, prepend=np.nan), market.params)
        expected = regime_expected_return(posterior, market.params)
        for band in grid:  # same rule as bayes_filter_positions, the filter run once
            _, net = backtest_log_returns(market, sign_positions(expected, band), cost)
            scores[band] += float(net.mean()) / len(markets)
    return max(scores, key=scores.__getitem__), scores


def _evaluate(
    markets: list[SyntheticMarket],
    policies: dict[str, Callable[[SyntheticMarket], np.ndarray]],
    cost: float,
) -> dict[str, dict[str, float]]:
    results = {}
    for name, policy in policies.items():
        gross, net, turnover = [], [], []
        for market in markets:
            positions = policy(market)
            g, r = backtest_log_returns(market, positions, cost)
            gross.append(g)
            net.append(r)
            turnover.append(np.abs(np.diff(positions, prepend=0.0)).mean())
        results[name] = summarize(
            np.concatenate(gross), np.concatenate(net), float(np.mean(turnover))
        )
    return results


def _print_table(title: str, results: dict[str, dict[str, float]], reference: str | None) -> None:
    print(f"\n{title}")
    header = (
        f"{'policy':<14}{'gross/bar':>11}{'t(gross)':>9}{'net/bar':>11}{'t(net)':>8}"
        f"{'Sharpe':>8}{'turnover':>10}"
    )
    if reference:
        header += f"{'net/oracle':>12}"
    print(header)
    print("-" * len(header))
    for name, row in results.items():
        line = (
            f"{name:<14}{row['gross'] * 1e4:>8.2f} bp{row['t_gross']:>9.1f}{row['net'] * 1e4:>8.2f} bp"
            f"{row['t_stat']:>8.1f}{row['sharpe']:>8.2f}{row['turnover']:>10.4f}"
        )
        if reference:
            line += f"{row['net'] / results[reference]['net']:>12.2f}"
        print(line)


def main(argv: list[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """Run the calibration and print one table per market kind."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-bars", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--tune-seeds",
        type=int,
        nargs="+",
        default=[1000, 1001, 1002],
        help="seeds to pick the band",
    )
    parser.add_argument("--cost", type=float, default=0.0015, help="cost per unit traded")
    parser.add_argument("--momentum-window", type=int, default=100)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    tuning = [generate_market("regime", args.n_bars, seed=s) for s in args.tune_seeds]
    band, band_scores = tune_band(tuning, args.cost)
    scores = "  ".join(f"{b:g}:{s * 1e4:.2f}" for b, s in band_scores.items())
    print(f"band tuned on regime seeds {args.tune_seeds} (band: net bp/bar): {scores}")
    print(f"-> bayes_filter band = {band:g}")

    def bayes(market: SyntheticMarket) -> np.ndarray:
        # On non-regime markets the filter runs with the default regime model (a fixed policy).
        source = market if market.regime is not None else (_log_close(market), regime_params)
        return bayes_filter_positions(source, band=band)

    regime_params = tuning[0].params
    common = {
        "bayes_filter": bayes,
        "momentum": lambda m: momentum_positions(m, args.momentum_window),
        "buy_and_hold": buy_and_hold_positions,
        "random": lambda m: random_positions(m, seed=m.params["seed"] + 1),
    }
    all_results = {}
    for kind in ("regime", "gbm", "mean_reversion"):
        markets = [generate_market(kind, args.n_bars, seed=s) for s in args.seeds]
        policies: dict[str, Callable[[SyntheticMarket], np.ndarray]] = {}
        reference = None
        if kind == "regime":
            policies["oracle"] = oracle_positions
            policies["oracle_flat"] = lambda m: oracle_positions(m, flat_when_zero=True)
            reference = "oracle"
        if kind == "mean_reversion":
            policies["ou_forecast"] = lambda m: ou_positions(m, band=0.0)
        policies.update(common)
        results = _evaluate(markets, policies, args.cost)
        title = (
            f"{kind}: {args.n_bars} bars x seeds {args.seeds}, cost {args.cost * 1e4:g} bp/unit, "
            f"log returns per bar (Sharpe annualised with {BARS_PER_YEAR:g} bars/year)"
        )
        _print_table(title, results, reference)
        all_results[kind] = results
    print(f"\n({time.perf_counter() - started:.1f} s)")
    return all_results


def _log_close(market: SyntheticMarket) -> np.ndarray:
    return np.log(market.frame["close"].to_numpy())


if __name__ == "__main__":
    main()
