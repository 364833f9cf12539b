"""Env throughput, side by side in one run: quantgym vs gym-anytrading vs Gym-Trading-Env.

All envs run unwrapped on the same bundled GOOGL daily data with uniformly random actions,
resetting when an episode ends. Run ``make bench`` (installs the ``bench`` extra) or
``python benchmarks/env_throughput.py [--quick] [--json]``.

Work per step:
- quantgym ``TradingEnv``: window 32 x 12 causal features + 5 account features, fill at next
  open with commission and slippage, borrow, mark at close, reward, 9-key info, history.
- gym-anytrading ``StocksEnv``: window of (price, diff), fee-adjusted profit bookkeeping.
- Gym-Trading-Env ``TradingEnv``: flat features, fees, portfolio valuation, history.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
import warnings

import numpy as np

warnings.filterwarnings("ignore")

try:  # Gym-Trading-Env registers an unversioned "TradingEnv": import it before quantgym
    import gym_trading_env.environments as gte
except ImportError:  # pragma: no cover - bench extra missing
    gte = None
try:
    from gym_anytrading.envs import StocksEnv
except ImportError:  # pragma: no cover
    StocksEnv = None

import gymnasium as gym  # noqa: E402

with warnings.catch_warnings():  # quantgym warns that only its namespaced id is free here
    warnings.simplefilter("ignore")
    import quantgym
from quantgym.envs import (  # noqa: E402
    TradingEnv,
    TradingVectorEnv,
    load_sample,  # noqa: E402
)

ENV_KWARGS = dict(data="sample:googl", window_size=32, commission=0.001, slippage=0.0005)


def time_single(env, n_steps: int, n_actions: int, repeats: int) -> float:
    """Median steps/s of ``env.step`` with random discrete actions (reset on episode end)."""
    actions = np.random.default_rng(0).integers(0, n_actions, n_steps).tolist()
    env.reset(seed=0)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        rates.append(n_steps / (time.perf_counter() - t0))
    return float(np.median(rates))


def time_vector(venv, n_batches: int, repeats: int) -> float:
    """Median env-steps/s of a vector env's ``step`` with random actions."""
    rng = np.random.default_rng(0)
    actions = (
        [venv.action_space.sample() for _ in range(8)]
        if not hasattr(venv, "single_action_space")
        or not isinstance(venv.single_action_space, gym.spaces.Discrete)
        else list(rng.integers(0, venv.single_action_space.n, (8, venv.num_envs)))
    )
    venv.reset(seed=0)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(n_batches):
            venv.step(actions[i % 8])
        rates.append(n_batches * venv.num_envs / (time.perf_counter() - t0))
    return float(np.median(rates))


def peak_memory_mb(num_envs: int, window_size: int, n_batches: int) -> float:
    """Peak memory traced (numpy buffers included) while building and stepping a vector env."""
    tracemalloc.start()
    venv = TradingVectorEnv(num_envs, **{**ENV_KWARGS, "window_size": window_size})
    venv.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 3, num_envs)
    for _ in range(n_batches):
        venv.step(actions)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def gym_trading_env_peer():
    df = load_sample("googl")
    df["feature_close"] = df["close"].pct_change()
    df["feature_open"] = df["open"] / df["close"]
    df["feature_high"] = df["high"] / df["close"]
    df["feature_low"] = df["low"] / df["close"]
    df = df.dropna()
    return gte.TradingEnv(
        df=df, positions=[-1, 0, 1], trading_fees=0.001, borrow_interest_rate=0.0, verbose=0
    )


def anytrading_peer():
    df = load_sample("googl").rename(columns=str.capitalize)
    return StocksEnv(df=df, window_size=32, frame_bound=(32, len(df)))


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
    args = parser.parse_args()
    single_steps = 20_000 if args.quick else 100_000
    repeats = 1 if args.quick else 3

    rows: list[dict] = []

    def add(name: str, num_envs: int, window: int | str, rate: float, note: str = "") -> None:
        rows.append(
            {"env": name, "num_envs": num_envs, "window": window, "steps_per_s": rate, "note": note}
        )

    ours = TradingEnv(**ENV_KWARGS)
    add("quantgym TradingEnv", 1, 32, time_single(ours, single_steps, 3, repeats))
    if StocksEnv is not None:
        add(
            "gym-anytrading stocks-v0",
            1,
            32,
            time_single(anytrading_peer(), single_steps, 2, repeats),
        )
    if gte is not None:
        add(
            "Gym-Trading-Env TradingEnv",
            1,
            1,
            time_single(gym_trading_env_peer(), single_steps // 4, 3, repeats),
        )
    sync = gym.vector.SyncVectorEnv([lambda: TradingEnv(**ENV_KWARGS) for _ in range(64)])
    add(
        "SyncVectorEnv(quantgym TradingEnv)",
        64,
        32,
        time_vector(sync, max(single_steps // 64, 50), repeats),
    )
    for window in (1, 32):
        for n in (1, 64, 1024, 4096):
            venv = TradingVectorEnv(n, **{**ENV_KWARGS, "window_size": window})
            batches = max(int((2e6 if window == 1 else 5e5) / n), 200) // (4 if args.quick else 1)
            add("quantgym TradingVectorEnv", n, window, time_vector(venv, batches, repeats))
    memory = {w: peak_memory_mb(4096, w, 20) for w in (1, 32)}

    by = {(r["env"], r["num_envs"], r["window"]): r["steps_per_s"] for r in rows}
    anytrading = by.get(("gym-anytrading stocks-v0", 1, 32))
    trading_env = by.get(("Gym-Trading-Env TradingEnv", 1, 1))
    sync_rate = by[("SyncVectorEnv(quantgym TradingEnv)", 64, 32)]
    for r in rows:
        r["x_gym_anytrading"] = r["steps_per_s"] / anytrading if anytrading else None
        r["x_gym_trading_env"] = r["steps_per_s"] / trading_env if trading_env else None
        r["x_sync_vector_env_64"] = r["steps_per_s"] / sync_rate
    result = {
        "quantgym_version": quantgym.__version__,
        "rows": rows,
        "peak_memory_mb_4096_envs": {f"window_{w}": m for w, m in memory.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{'env':36s} {'N':>5s} {'win':>4s} {'steps/s':>13s} {'x anytrading':>13s} {'x GymTradEnv':>13s} {'x Sync64':>9s}"
    )
    for r in rows:
        fmt = lambda x: f"{x:13.2f}" if x is not None else f"{'n/a':>13s}"  # noqa: E731
        print(f"{r['env']:36s} {r['num_envs']:5d} {str(r['window']):>4s} {r['steps_per_s']:13,.0f} "
              f"{fmt(r['x_gym_anytrading'])} {fmt(r['x_gym_trading_env'])} {r['x_sync_vector_env_64']:9.1f}")  # fmt: skip
    for w, m in memory.items():
        print(
            f"peak memory, TradingVectorEnv N=4096 window {w}: {m:,.1f} MiB (tracemalloc, numpy buffers included)"
        )


if __name__ == "__main__":
    main()
