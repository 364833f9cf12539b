"""Throughput of ``quantgym.datasets.collect`` with a vector env (recorded steps per second).

    python benchmarks/collect_throughput.py                      # random policy, N=256, 1M steps
    python benchmarks/collect_throughput.py --num-envs 64 --steps 200000 --policy regime_expert
    python benchmarks/collect_throughput.py --observations dense   # today's dense recording

Reports the env-only stepping rate (same actions, nothing recorded) next to the collection
rate, so the recording overhead is visible, and the bytes per transition the dataset holds.
``--observations auto`` (default) records a raw env by reference (bar + account features);
``dense`` stores every observation whole. Target: >= 500k recorded steps/s at N=256 with
the random policy.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np

from quantgym import ENV_ID
from quantgym.agents.registry import make_agent
from quantgym.datasets import collect

__all__ = ["env_steps_per_second", "collect_steps_per_second", "main"]


def env_steps_per_second(num_envs: int, n_steps: int, seed: int = 0, **env_kwargs) -> float:
    """Raw ``TradingVectorEnv.step`` rate with uniformly random actions (nothing recorded)."""
    env = gym.make_vec(ENV_ID, num_envs=num_envs, **env_kwargs)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    n_actions = env.single_action_space.n
    n_iter = max(1, n_steps // num_envs)
    actions = rng.integers(0, n_actions, size=(n_iter, num_envs))
    start = time.perf_counter()
    for k in range(n_iter):
        env.step(actions[k])
    elapsed = time.perf_counter() - start
    env.close()
    return n_iter * num_envs / elapsed


def collect_steps_per_second(
    num_envs: int,
    n_steps: int,
    policy: str = "random",
    seed: int = 0,
    observations: str = "auto",
    **env_kwargs,
) -> tuple[float, float, int, float]:
    """``(steps/s, seconds, n_steps, bytes per transition)`` of a full ``collect`` call."""
    env = gym.make_vec(ENV_ID, num_envs=num_envs, **env_kwargs)
    agent = make_agent(policy, env=env)
    start = time.perf_counter()
    dataset = collect(
        env, agent, n_steps=n_steps, seed=seed, progress=False, observations=observations
    )
    elapsed = time.perf_counter() - start
    env.close()
    return dataset.n_steps / elapsed, elapsed, dataset.n_steps, dataset.nbytes / dataset.n_steps


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--policy", default="random", help="registered baseline name (env-bound)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--observations", default="auto", choices=("auto", "dense"))
    args = parser.parse_args(argv)
    env_rate = env_steps_per_second(args.num_envs, args.steps, args.seed)
    runs = [
        collect_steps_per_second(
            args.num_envs, args.steps, args.policy, args.seed + r, args.observations
        )
        for r in range(args.repeats)
    ]
    best = max(runs)
    result = {
        "num_envs": args.num_envs,
        "policy": args.policy,
        "steps": best[2],
        "env_only_steps_per_s": round(env_rate),
        "collect_steps_per_s": round(best[0]),
        "collect_steps_per_s_median": round(float(np.median([r[0] for r in runs]))),
        "collect_over_env_only": round(best[0] / env_rate, 3),
        "collect_seconds": round(best[1], 3),
        "observations": args.observations,
        "bytes_per_transition": round(best[3], 1),
        "all_runs_steps_per_s": [round(r[0]) for r in runs],
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
