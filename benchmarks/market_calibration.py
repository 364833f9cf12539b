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

On ``lagged`` and ``crash`` (``--kinds``) the exact experts are measured the same way:
  lag_expert    ``LagExpert``'s rule: the exact forecast ``E[r_{t+1}]`` (a shock ``lag`` bars back
                reverses), traded when ``|forecast| > band`` and flat otherwise, at its default
                band; ``lag_expert_tuned`` with the band chosen on the tuning seeds,
                ``lag_expert_b0`` with no band
  newest_bar    the same rule reading the wrong lag (the newest bar, ``lag=1``): what a policy
                without the window can do
  oracle        (crash) knows the hidden calm/stressed regime; Kelly over {-1, 0, 1} on it
  crash_expert  ``CrashExpert``'s rule: the exact regime filter on gaps and intraday returns,
                Kelly over {-1, 0, 1} with a no-trade band chosen on the tuning seeds;
                ``crash_long_flat`` the same over {0, 1}
and, in ``TradingEnv`` itself (the exact ledger, default 15 bp costs), ``--env-windows``
disjoint 1,000-bar windows of seed 0 compare the expert with ``buy_and_hold`` and the
``hindsight_oracle`` (the exact best path in hindsight: an upper bound no causal policy reaches).

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
from quantgym.envs.synthetic_crash import crash_expected_growth, crash_forward_filter
from quantgym.envs.synthetic_lagged import DEFAULT_LAG_BAND, lag_expected_return
from quantgym.policies.experts import flat_band_positions, kelly_positions

__all__ = [
    "BAND_GRID",
    "CRASH_BAND_GRID",
    "LAG_BAND_GRID",
    "crash_positions",
    "follow_kelly",
    "lag_positions",
    "tune",
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
LAG_BAND_GRID = (0.0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01)
CRASH_BAND_GRID = (0.0, 0.00001, 0.00002, 0.00003, 0.00005, 0.000075, 0.0001, 0.00015, 0.0002)
KELLY_GRID = np.array([-1.0, 0.0, 1.0])


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


def lag_positions(market: SyntheticMarket, band: float, lag: int | None = None) -> np.ndarray:
    """``LagExpert``'s positions on a ``lagged`` market (``lag`` overrides the market's: the
    same rule reading another lag of the window)."""
    params = market.params if lag is None else {**market.params, "lag": lag}
    return flat_band_positions(lag_expected_return(_log_close(market), params), band)


def follow_kelly(growth: np.ndarray, grid: np.ndarray, band: float) -> np.ndarray:
    """The path of ``kelly_positions`` from flat: each bar's choice depends on the position
    held, so the choice for every possible holding is tabulated once and the path follows it."""
    choices = np.stack(
        [kelly_positions(growth, grid, np.full(len(growth), c), band) for c in grid]
    )  # (P, n): choice at bar t when holding grid[i]
    index = {float(c): i for i, c in enumerate(grid)}
    table = choices.tolist()
    held = index.get(0.0, 0)
    out = []
    for t in range(len(growth)):
        position = table[held][t]
        held = index[position]
        out.append(position)
    return np.asarray(out)


def crash_positions(
    market: SyntheticMarket,
    band: float,
    *,
    grid: np.ndarray = KELLY_GRID,
    oracle: bool = False,
    posterior: np.ndarray | None = None,
) -> np.ndarray:
    """``CrashExpert``'s positions on a ``crash`` market (``oracle``: on the true regime)."""
    if oracle:
        k = len(market.params["crash_rates"])
        posterior = np.eye(k)[market.regime]
    elif posterior is None:
        frame = market.frame
        posterior = crash_forward_filter(frame["open"], frame["close"], market.params)
    return follow_kelly(crash_expected_growth(posterior, market.params, grid), grid, band)


def tune(
    markets: list[SyntheticMarket],
    positions_for: Callable[[SyntheticMarket, float], np.ndarray],
    cost: float,
    grid: tuple[float, ...],
) -> tuple[float, dict[float, float]]:
    """Band with the best mean net log return per bar pooled over ``markets``."""
    scores = dict.fromkeys(grid, 0.0)
    for market in markets:
        for band in grid:
            _, net = backtest_log_returns(market, positions_for(market, band), cost)
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
        f"{'policy':<18}{'gross/bar':>11}{'t(gross)':>9}{'net/bar':>11}{'t(net)':>8}"
        f"{'Sharpe':>8}{'turnover':>10}"
    )
    if reference:
        header += f"{'net/oracle':>12}"
    print(header)
    print("-" * len(header))
    for name, row in results.items():
        line = (
            f"{name:<18}{row['gross'] * 1e4:>8.2f} bp{row['t_gross']:>9.1f}{row['net'] * 1e4:>8.2f} bp"
            f"{row['t_stat']:>8.1f}{row['sharpe']:>8.2f}{row['turnover']:>10.4f}"
        )
        if reference:
            line += f"{row['net'] / results[reference]['net']:>12.2f}"
        print(line)


def _title(kind: str, args: argparse.Namespace) -> str:
    return (
        f"{kind}: {args.n_bars} bars x seeds {args.seeds}, cost {args.cost * 1e4:g} bp/unit, "
        f"log returns per bar (Sharpe annualised with {BARS_PER_YEAR:g} bars/year)"
    )


def _print_band(kind: str, seeds: list[int], band: float, scores: dict[float, float]) -> None:
    listed = "  ".join(f"{b:g}:{s * 1e4:.2f}" for b, s in scores.items())
    print(f"\nband tuned on {kind} seeds {seeds} (band: net bp/bar): {listed}")
    print(f"-> {kind} band = {band:g}")


def _classic(args: argparse.Namespace, kinds: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """``regime``, ``gbm`` and ``mean_reversion`` against the Bayes filter tuned on ``regime``."""
    tuning = [generate_market("regime", args.n_bars, seed=s) for s in args.tune_seeds]
    band, band_scores = tune_band(tuning, args.cost)
    _print_band("regime", args.tune_seeds, band, band_scores)

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
    for kind in kinds:
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
        _print_table(_title(kind, args), results, reference)
        all_results[kind] = results
    return all_results


def _lagged(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    tuning = [generate_market("lagged", args.n_bars, seed=s) for s in args.tune_seeds]
    band, scores = tune(tuning, lag_positions, args.cost, LAG_BAND_GRID)
    _print_band("lagged", args.tune_seeds, band, scores)
    markets = [generate_market("lagged", args.n_bars, seed=s) for s in args.seeds]
    policies: dict[str, Callable[[SyntheticMarket], np.ndarray]] = {
        "lag_expert": lambda m: lag_positions(m, DEFAULT_LAG_BAND),
        "lag_expert_tuned": lambda m: lag_positions(m, band),
        "lag_expert_b0": lambda m: lag_positions(m, 0.0),
        "newest_bar": lambda m: lag_positions(m, band, lag=1),
        "momentum": lambda m: momentum_positions(m, args.momentum_window),
        "buy_and_hold": buy_and_hold_positions,
        "random": lambda m: random_positions(m, seed=m.params["seed"] + 1),
    }
    results = _evaluate(markets, policies, args.cost)
    _print_table(_title("lagged", args), results, None)
    return results


def _crash(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    posteriors: dict[int, np.ndarray] = {}

    def expert(market: SyntheticMarket, band: float, grid: np.ndarray = KELLY_GRID) -> np.ndarray:
        key = id(market)  # the filter runs once per market, whatever the band
        if key not in posteriors:
            frame = market.frame
            posteriors[key] = crash_forward_filter(frame["open"], frame["close"], market.params)
        return crash_positions(market, band, grid=grid, posterior=posteriors[key])

    tuning = [generate_market("crash", args.n_bars, seed=s) for s in args.tune_seeds]
    band, scores = tune(tuning, expert, args.cost, CRASH_BAND_GRID)
    _print_band("crash", args.tune_seeds, band, scores)
    markets = [generate_market("crash", args.n_bars, seed=s) for s in args.seeds]
    policies: dict[str, Callable[[SyntheticMarket], np.ndarray]] = {
        "oracle": lambda m: crash_positions(m, band, oracle=True),
        "crash_expert": lambda m: expert(m, band),
        "crash_long_flat": lambda m: expert(m, band, np.array([0.0, 1.0])),
        "momentum": lambda m: momentum_positions(m, args.momentum_window),
        "buy_and_hold": buy_and_hold_positions,
        "random": lambda m: random_positions(m, seed=m.params["seed"] + 1),
    }
    results = _evaluate(markets, policies, args.cost)
    _print_table(_title("crash", args), results, "oracle")
    return results


def _env_windows(kind: str, expert: str, n_windows: int, seed: int) -> None:
    """Mean log growth per 1,000-bar window in ``TradingEnv`` (default costs) of the expert (its
    default band), ``buy_and_hold`` and the ``hindsight_oracle`` on ``n_windows`` disjoint
    windows."""
    import gymnasium as gym

    from quantgym import ENV_ID
    from quantgym.agents import make_agent
    from quantgym.evaluation import evaluate

    length = 1000
    env = gym.make(
        ENV_ID,
        market=kind,
        market_kwargs={"n_bars": 300 + n_windows * length, "seed": seed},
        episode_length=length,
    )
    first = int(env.unwrapped.first_bar)
    starts = [first + i * length for i in range(n_windows)]
    growth = {}
    for name in (expert, "buy_and_hold", "hindsight_oracle"):
        agent = make_agent(name, env=env)
        growth[name] = np.asarray(evaluate(agent, env, starts=starts).rewards)
    print(
        f"\n{kind} in TradingEnv (default costs), {n_windows} windows x {length} bars, seed {seed}"
    )
    print(f"{'policy':<18}{'log growth/window':>19}{'std':>8}{'of hindsight':>14}")
    for name, values in growth.items():
        share = values.mean() / growth["hindsight_oracle"].mean()
        print(f"{name:<18}{values.mean():>19.4f}{values.std(ddof=1):>8.3f}{share:>14.3f}")


def main(argv: list[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """Run the calibration and print one table per market kind."""
    kinds = ("regime", "gbm", "mean_reversion", "lagged", "crash")
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
    parser.add_argument("--kinds", nargs="+", choices=kinds, default=list(kinds))
    parser.add_argument(
        "--env-windows", type=int, default=16, help="TradingEnv windows per new market (0: none)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    classic = [k for k in args.kinds if k in ("regime", "gbm", "mean_reversion")]
    all_results = _classic(args, classic) if classic else {}
    for kind, run, expert in (("lagged", _lagged, "lag_expert"), ("crash", _crash, "crash_expert")):
        if kind in args.kinds:
            all_results[kind] = run(args)
            if args.env_windows:
                _env_windows(kind, expert, args.env_windows, args.seeds[0])
    print(f"\n({time.perf_counter() - started:.1f} s)")
    return all_results


def _log_close(market: SyntheticMarket) -> np.ndarray:
    return np.log(market.frame["close"].to_numpy())


if __name__ == "__main__":
    main()
