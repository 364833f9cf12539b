"""Small close-only panels and envs for the portfolio agent tests (no test collected here)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd

from quantgym import PORTFOLIO_ENV_ID

ZERO_COSTS = {"commission": 0.0, "slippage": 0.0}


def close_panel(n_bars: int = 160, n_assets: int = 4, seed: int = 0) -> pd.DataFrame:
    """Wide close-only prices (one column per asset), random walks with a little drift."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0003, 0.02, size=(n_bars, n_assets))
    index = pd.bdate_range("2019-01-01", periods=n_bars, name="timestamp")
    return pd.DataFrame(
        100.0 * np.exp(np.cumsum(steps, axis=0)),
        index=index,
        columns=[f"S{j}" for j in range(n_assets)],
    )


def make_env(frame: pd.DataFrame, **kwargs) -> gym.Env:
    """A single PortfolioEnv with no feature warm-up (episodes may start at bar 0)."""
    options = {"features": (), "window_size": 1, "episode_length": None, **ZERO_COSTS, **kwargs}
    return gym.make(PORTFOLIO_ENV_ID, data=frame, **options)


def play(env, agent, start: int | None = None) -> tuple[float, list[np.ndarray]]:
    """One episode: ``(final equity / initial, the actions)``."""
    options = None if start is None else {"start": start}
    obs, _ = env.reset(seed=0, options=options)
    first = np.ones(1, dtype=bool)
    actions, done, info = [], False, {}
    while not done:
        action, _ = agent.predict(obs, episode_start=first)
        first = np.zeros(1, dtype=bool)
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return info["equity"] / env.unwrapped.config.initial_equity, actions
