"""Portfolio env throughput, side by side in one run.

(a) ``PortfolioVectorEnv`` at 1,024 envs x 30 assets against a bare numpy step that does the same
    work: map the weights (mask, scale to sum <= 1), solve the post-trade value exactly (the same
    sorted-breakpoint solve), charge commission and slippage, mark at the close, log reward, gather
    the observation rows and write the weights. No validation, no info record, no autoreset
    bookkeeping, no reward object: the floor a hand-written numpy loop would reach. Target: the
    env at >= 0.5x of it.
(b) ``PortfolioEnv`` at 30 assets against FinRL's ``PortfolioOptimizationEnv`` (target >= 10x),
    both on the same 30-asset market (close, high, low; FinRL's default "trf" commission model at
    0.1 %, our commission 0.1 % + slippage 0.05 %), window 16, random Dirichlet weights.
    FinRL's dependencies pin old packages, so it runs in its own interpreter
    (``--finrl-python``; default ``$QUANTGYM_FINRL_PYTHON`` or ``/tmp/finrl/bin/python``), e.g.::

        python3.11 -m venv /tmp/finrl
        /tmp/finrl/bin/pip install finrl --no-deps
        /tmp/finrl/bin/pip install numpy pandas matplotlib scipy seaborn tabulate yfinance gym quantstats
        # FinRL's module imports stable_baselines3 (and so torch) at the top: let it see ours
        echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/finrl/lib/python3.11/site-packages/zz.pth

    Its env module is loaded from its file (``finrl/__init__.py`` imports trading clients
    that the env does not need). Without FinRL the row says why and the script goes on.

Usage: ``PYTHONPATH=$PWD python benchmarks/portfolio_throughput.py [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

N_ASSETS, N_BARS, WINDOW, NUM_ENVS = 30, 2520, 16, 1024
FINRL_ENV_FILE = "finrl/meta/env_portfolio_optimization/env_portfolio_optimization.py"


# ------------------------------------------------------------------------------ FinRL (child)


def finrl_child(csv_path: str, steps: int) -> None:
    """Run in FinRL's interpreter: time ``PortfolioOptimizationEnv.step`` and print JSON."""
    import importlib.util
    import site

    import pandas as pd

    warnings.filterwarnings("ignore")
    path = next(
        (os.path.join(d, FINRL_ENV_FILE) for d in site.getsitepackages() + sys.path
         if os.path.isfile(os.path.join(d, FINRL_ENV_FILE))),
        None,
    )  # fmt: skip
    if path is None:
        print(json.dumps({"error": "finrl is not installed in this interpreter"}))
        return
    spec = importlib.util.spec_from_file_location("finrl_portfolio_env", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    df = pd.read_csv(csv_path)
    with tempfile.TemporaryDirectory() as cwd:
        env = module.PortfolioOptimizationEnv(
            df, initial_amount=10_000, comission_fee_pct=0.001, time_window=WINDOW,
            features=["close", "high", "low"], cwd=cwd, new_gym_api=True,
        )  # fmt: skip
        env.reset()
        actions = np.random.default_rng(0).dirichlet(np.ones(N_ASSETS + 1), 256).astype(np.float32)
        env.step(actions[0])
        start = time.perf_counter()
        for i in range(steps):
            env.step(actions[i % 256])
        rate = steps / (time.perf_counter() - start)
    from importlib.metadata import version

    print(json.dumps({"steps_per_s": rate, "finrl_version": version("finrl")}))


def finrl_peer(python: str, panel, steps: int) -> dict:
    """Write the market in FinRL's long format and time its env in ``python``."""
    import pandas as pd

    if not os.path.isfile(python):
        return {"error": f"no FinRL interpreter at {python} (see the module docstring)"}
    dates = pd.DatetimeIndex(panel.timestamps).strftime("%Y-%m-%d")
    frame = pd.DataFrame({
        "date": np.repeat(dates, N_ASSETS),
        "tic": np.tile(list(panel.assets), len(dates)),
        "close": panel.close.reshape(-1), "high": panel.high.reshape(-1), "low": panel.low.reshape(-1),
    })  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = os.path.join(tmp, "market.csv")
        frame.to_csv(csv_path, index=False)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(
            [python, os.path.abspath(__file__), "--finrl-child", csv_path, "--steps", str(steps)],
            capture_output=True, text=True, env=env, timeout=1800,
        )  # fmt: skip
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": f"FinRL run failed: {(done.stderr or done.stdout).strip()[-400:]}"}
    return json.loads(lines[-1])


# ------------------------------------------------------------------------------ ours


def time_single(env, steps: int, repeats: int) -> float:
    actions = np.random.default_rng(0).dirichlet(np.ones(N_ASSETS), 256)
    env.reset(seed=0)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            _, _, terminated, truncated, _ = env.step(actions[i % 256])
            if terminated or truncated:
                env.reset()
        rates.append(steps / (time.perf_counter() - start))
    return float(np.median(rates))


def time_vector(step, num_envs: int, batches: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    actions = [rng.dirichlet(np.ones(N_ASSETS), num_envs) for _ in range(8)]
    for i in range(3):
        step(actions[i])
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(batches):
            step(actions[i % 8])
        rates.append(batches * num_envs / (time.perf_counter() - start))
    return float(np.median(rates))


def bare_numpy_step(layout, num_envs: int, seed: int = 0):
    """A closure stepping ``num_envs`` accounts with the env's math and nothing else."""
    panel, cfg = layout.panel, layout.config
    rng = np.random.default_rng(seed)
    first, last = layout.first_bar, panel.last_bar
    table = layout.observation_table()
    commission = layout.commission
    n = panel.n_assets
    state = {
        "t": rng.integers(first, last - 1, num_envs),
        "units": np.zeros((num_envs, n)),
        "cash": np.full(num_envs, cfg.initial_equity),
        "equity": np.full(num_envs, cfg.initial_equity),
    }
    offsets = (np.arange(num_envs) * n)[:, None]
    w_slice = layout.slices["weights"]

    def step(actions: np.ndarray):
        t, units, cash = state["t"], state["units"], state["cash"]
        a = actions * panel.tradable[t]
        total = a.sum(axis=1, keepdims=True)
        a = np.where(total > 1.0, a / np.where(total > 1.0, total, 1.0), a)
        nxt = t + 1
        price, trading = panel.open_mark[nxt], panel.tradable[t] & panel.present[nxt]
        a = a * trading
        holdings = units * price * trading
        value = cash + (units * price).sum(axis=1)
        rate = (commission + layout.slippage_rates[t]) * trading
        nonzero = a != 0.0
        breaks = np.where(nonzero, holdings, 0.0) / np.where(nonzero, a, 1.0)
        weight = np.abs(a) * rate
        rhs = value - (np.abs(holdings) * rate * ~nonzero).sum(axis=1)
        order = breaks.argsort(axis=1) + offsets
        b, w = breaks.reshape(-1)[order], weight.reshape(-1)[order]
        w_lo, wb_lo = w.cumsum(axis=1), (w * b).cumsum(axis=1)
        w_all, wb_all = w_lo[:, -1:], wb_lo[:, -1:]
        left = (1.0 + 2.0 * w_lo - w_all) * b + (wb_all - 2.0 * wb_lo) - rhs[:, None] <= 0.0
        scale = (rhs + 2.0 * (w * b * left).sum(axis=1) - wb_all[:, 0]) / (
            1.0 + 2.0 * (w * left).sum(axis=1) - w_all[:, 0]
        )
        trade = a * scale[:, None] - holdings
        size = np.abs(trade)
        costs = (commission * size).sum(axis=1) + (layout.slippage_rates[t] * size).sum(axis=1)
        units = np.where(trading, units + trade / np.where(trading, price, 1.0), units)
        cash = cash - trade.sum(axis=1) - costs
        held = units * panel.mark_close[nxt]
        equity = cash + held.sum(axis=1)
        reward = np.log(equity / state["equity"])
        obs = table[nxt]
        obs[:, w_slice.start : w_slice.stop - 1] = held / equity[:, None]
        obs[:, w_slice.stop - 1] = cash / equity
        ended = nxt >= last
        state.update(t=np.where(ended, first, nxt), units=np.where(ended[:, None], 0.0, units),
                     cash=np.where(ended, cfg.initial_equity, cash),
                     equity=np.where(ended, cfg.initial_equity, equity))  # fmt: skip
        return obs, reward

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer steps (a smoke run, noisier figures)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the table"
    )
    parser.add_argument(
        "--finrl-python", default=os.environ.get("QUANTGYM_FINRL_PYTHON", "/tmp/finrl/bin/python")
    )
    parser.add_argument("--finrl-child", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=300, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.finrl_child:
        finrl_child(args.finrl_child, args.steps)
        return

    import quantgym
    from quantgym.envs import PortfolioEnv, PortfolioVectorEnv
    from quantgym.machine import cpu_model

    market = {"n_assets": N_ASSETS, "n_bars": N_BARS}
    repeats = 1 if args.quick else 3
    single = PortfolioEnv(market_kwargs=market, window_size=WINDOW)
    single_rate = time_single(single, 500 if args.quick else 3000, repeats)
    finrl = finrl_peer(args.finrl_python, single.panel, 40 if args.quick else 300)
    vector = PortfolioVectorEnv(
        NUM_ENVS, market_kwargs=market, window_size=WINDOW, episode_length=None
    )
    vector.reset(seed=0)
    batches = 10 if args.quick else 60
    vector_rate = time_vector(vector.step, NUM_ENVS, batches, repeats)
    bare_rate = time_vector(bare_numpy_step(vector.layout, NUM_ENVS), NUM_ENVS, batches, repeats)
    finrl_rate = finrl.get("steps_per_s")
    result = {
        "quantgym_version": quantgym.__version__,
        "cpu": cpu_model(),
        "market": {
            **market,
            "window_size": WINDOW,
            "features": len(single.feature_names),
            "obs_dim": int(single.layout.obs_dim),
        },  # fmt: skip
        "vector_env_steps_per_s": vector_rate,
        "bare_numpy_steps_per_s": bare_rate,
        "vector_over_bare": vector_rate / bare_rate,
        "single_env_steps_per_s": single_rate,
        "finrl": finrl,
        "single_over_finrl": single_rate / finrl_rate if finrl_rate else None,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    m = result["market"]
    print(f"PortfolioEnv throughput: {N_ASSETS} assets, {N_BARS} bars, window {WINDOW} x {m['features']} "
          f"features (obs {m['obs_dim']}), CPU {result['cpu']}")  # fmt: skip
    print(f"(a) PortfolioVectorEnv x{NUM_ENVS}: {vector_rate:12,.0f} env-steps/s | bare numpy step: "
          f"{bare_rate:12,.0f} | ratio {vector_rate / bare_rate:5.2f} (target >= 0.5)")  # fmt: skip
    if finrl_rate:
        print(f"(b) PortfolioEnv: {single_rate:10,.0f} steps/s | FinRL {finrl['finrl_version']} "
              f"PortfolioOptimizationEnv: {finrl_rate:8,.1f} steps/s | ratio {single_rate / finrl_rate:6.1f}x "
              "(target >= 10x)")  # fmt: skip
    else:
        print(f"(b) PortfolioEnv: {single_rate:10,.0f} steps/s | FinRL: not run ({finrl['error']})")


if __name__ == "__main__":
    main()
