"""Inference latency: milliseconds per single decision (batch 1, CPU) for every registered agent.

    .venv/bin/python benchmarks/latency.py [--calls 2000] [--window-size 32] [--threads 1]

Each agent decides on one raw ``TradingEnv-v0`` observation at a time (default env: window
32, so a 32 x n_features window + 5 account features), exactly as in live trading or in
:func:`quantgym.evaluation.evaluate`. Observations cycle through a recorded episode so the
inputs vary; recurrent agents carry their state. Learned agents are timed with freshly built
(untrained) networks: latency does not depend on the weights. Env-bound agents (rules, experts,
the oracle) decide from the env they are bound to and check that the observation is its current
one, so they are timed on the live env instead (the env's step between decisions is not timed).
Agents that do not trade ``TradingEnv-v0`` (the portfolio baselines) or need a dataset to build
(offline agents) are listed as skipped with the reason.

``torch.set_num_threads(1)`` (``--threads``): one decision is a handful of tiny matrix
products, which intra-op parallelism only slows down (thread hand-off costs more than the
work), and a live trading process should not compete with itself for cores.
Targets: MLP < 0.5 ms, LSTM < 1 ms, attention encoder < 2 ms. The ``sb3`` column is SB3's own
``model.predict`` on the same inputs, for comparison with the agents' direct torch path.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import gymnasium as gym
import numpy as np

from quantgym import ENV_ID
from quantgym.agents.registry import list_agents, make_agent

__all__ = ["TARGETS_MS", "time_decisions", "time_env_decisions", "build_agent", "main"]

TARGETS_MS = {"ppo_mlp": 0.5, "ppo_lstm": 1.0, "ppo_transformer": 2.0}


def record_observations(env: gym.Env, n: int = 256, seed: int = 0) -> np.ndarray:
    """``n`` observations of one episode under random actions."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [obs]
    while len(out) < n:
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
        out.append(obs)
    env.reset(seed=seed)
    return np.stack(out)


def build_agent(name: str, env: gym.Env) -> Any:
    """A registered agent ready to predict on ``env`` (SB3 agents get their networks built)."""
    from quantgym.agents.registry import agent_class

    cls = agent_class(name)
    if getattr(cls, "offline", False):  # its network's shape comes from a dataset
        raise ValueError("an offline agent needs a dataset to build (dt: benchmarks/dt_speed.py)")
    if hasattr(cls, "build"):  # learned online agents: build the networks, no training
        agent = make_agent(name, n_envs=1, n_steps=128, batch_size=128)
        agent.build(env)
        return agent
    if name == "epsilon_mix":  # wraps another policy: time it around the SMA crossover
        return make_agent(name, policy=make_agent("sma_crossover", env=env), epsilon=0.1, env=env)
    return make_agent(name, env=env)


def time_decisions(predict, observations: np.ndarray, calls: int, warmup: int = 100) -> np.ndarray:
    """Per-call wall times (seconds) of ``predict(obs, state, episode_start)`` over ``calls`` calls."""
    state = None
    start = np.ones(1, dtype=bool)
    not_start = np.zeros(1, dtype=bool)
    n = len(observations)
    for i in range(warmup):
        _, state = predict(observations[i % n], state, start if i == 0 else not_start)
    times = np.empty(calls)
    for i in range(calls):
        obs = observations[i % n]
        t0 = time.perf_counter()
        _, state = predict(obs, state, not_start)
        times[i] = time.perf_counter() - t0
    return times


def time_env_decisions(agent: Any, env: gym.Env, calls: int, warmup: int = 100) -> np.ndarray:
    """Per-call wall times (seconds) of ``agent.predict`` on ``env``'s live observations, the
    env stepped with the chosen action between calls (not timed); resets at episode ends."""
    obs, _ = env.reset(seed=0)
    state = None
    times = np.empty(calls)
    for i in range(warmup + calls):
        t0 = time.perf_counter()
        action, state = agent.predict(obs, state=state, deterministic=True)
        if i >= warmup:
            times[i - warmup] = time.perf_counter() - t0
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
            state = None
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="timed decisions per agent")
    parser.add_argument("--window-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--agents", nargs="*", default=None, help="subset of registered names")
    args = parser.parse_args(argv)

    import torch

    from quantgym.benchmark.listing import is_env_bound

    torch.set_num_threads(args.threads)
    env = gym.make(ENV_ID, window_size=args.window_size)
    observations = record_observations(env)
    print(f"obs dim {observations.shape[1]}, batch 1, CPU, torch threads {torch.get_num_threads()}")
    header = f"{'agent':<22}{'mean ms':>9}{'p50 ms':>9}{'p99 ms':>9}{'sb3 ms':>9}{'target':>9}  ok"
    print(header)
    print("-" * len(header))
    for name in args.agents or list_agents():
        try:
            agent = build_agent(name, env)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other agents
            print(f"{name:<22}skipped: {type(exc).__name__}: {exc}")
            continue

        def predict(obs, state, start, agent=agent):
            return agent.predict(obs, state=state, episode_start=start, deterministic=True)

        if is_env_bound(type(agent)):
            times = time_env_decisions(agent, env, args.calls) * 1e3
        else:
            times = time_decisions(predict, observations, args.calls) * 1e3
        sb3 = ""
        model = getattr(agent, "model", None)
        if model is not None:
            normalized = agent.normalize_observation(observations)

            def sb3_predict(obs, state, start, model=model):
                return model.predict(obs, state=state, episode_start=start, deterministic=True)

            sb3 = f"{np.mean(time_decisions(sb3_predict, normalized, max(200, args.calls // 4))) * 1e3:9.3f}"
        target = TARGETS_MS.get(name)
        ok = "" if target is None else ("yes" if np.mean(times) < target else "NO")
        target_text = "" if target is None else f"{target:9.1f}"
        print(
            f"{name:<22}{np.mean(times):9.3f}{np.percentile(times, 50):9.3f}"
            f"{np.percentile(times, 99):9.3f}{sb3:>9}{target_text:>9}  {ok}"
        )


if __name__ == "__main__":
    main()
