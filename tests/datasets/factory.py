"""Datasets the dataset tests share: a hand-made one, a recorded one, a comparison of two."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from quantgym import ENV_ID
from quantgym.datasets import TrajectoryDataset, collect
from quantgym.policies import RandomAgent

LENGTHS = (4, 2, 3)  # episode 0 terminated, 1 and 2 truncated
ENV_KWARGS = {"market_kwargs": {"n_bars": 1500}, "episode_length": 20, "window_size": 8}
COLUMNS = ("observations", "actions", "rewards", "terminations", "truncations", "episode_lengths")


def hand_made_dataset(
    discrete: bool = True, lengths: tuple[int, ...] = LENGTHS, seed: int = 0
) -> TrajectoryDataset:
    """Step t of the whole dataset has reward t + 1 and bar 100 + t; 5-dim observations."""
    rng = np.random.default_rng(seed)
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    n, e = int(lengths_arr.sum()), len(lengths)
    ends = np.cumsum(lengths_arr) - 1
    terminations = np.zeros(n, dtype=bool)
    truncations = np.zeros(n, dtype=bool)
    terminations[ends[0]] = True
    truncations[ends[1:]] = True
    if discrete:
        actions = rng.integers(0, 3, n)
        space = {"type": "discrete", "n": 3}
    else:
        actions = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
        space = {"type": "continuous", "shape": [1], "low": -1.0, "high": 1.0}
    return TrajectoryDataset.from_arrays(
        observations=rng.normal(size=(n + e, 5)).astype(np.float32),
        actions=actions,
        rewards=np.arange(1, n + 1, dtype=np.float64),
        terminations=terminations,
        truncations=truncations,
        episode_lengths=lengths_arr,
        infos={
            "equity": 10_000.0 + rng.normal(size=n),
            "position": rng.choice([-1.0, 0.0, 1.0], n),
            "bar": np.arange(100, 100 + n, dtype=np.int64),
            "timestamp": np.datetime64("2020-01-01", "ns") + np.arange(n) * np.timedelta64(1, "D"),
            "regime": rng.integers(0, 2, n),
        },
        metadata={
            "env_id": ENV_ID,
            "env_kwargs": {"window_size": 4, "positions": (-1.0, 0.0, 1.0)},
            "behavior_policy": "random",
            "policy_params": {"epsilon": 0.1},
            "seed": np.int64(7),
            "action_space": space,
        },
    )


def assert_same_data(a: TrajectoryDataset, b: TrajectoryDataset, *, metadata: bool = False) -> None:
    """Same dtypes, shapes and bytes of every column and info (the same recording, stored or
    read back two ways), and with ``metadata`` the same metadata."""
    for name in COLUMNS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name
    assert list(a.infos) == list(b.infos)
    for name, values in b.infos.items():
        assert a.infos[name].dtype == values.dtype, name
        assert a.infos[name].tobytes() == values.tobytes(), name
    if metadata:
        assert a.metadata == b.metadata


def make_env(n_envs: int = 3, **overrides: Any) -> Any:
    """A small ``TradingEnv`` (``n_envs == 1``) or its vector env of ``n_envs``."""
    kwargs = {**ENV_KWARGS, **overrides}
    if n_envs == 1:
        return gym.make(ENV_ID, **kwargs)
    return gym.make_vec(ENV_ID, num_envs=n_envs, **kwargs)


def recorded(
    mode: str = "auto",
    n_steps: int = 400,
    *,
    n_envs: int = 3,
    seed: int = 2,
    policy_seed: int = 1,
    **overrides: Any,
) -> TrajectoryDataset:
    """A random policy recorded on :func:`make_env` with observations ``mode``."""
    env = make_env(n_envs, **overrides)
    try:
        policy = RandomAgent(env=env, seed=policy_seed)
        return collect(env, policy, n_steps=n_steps, seed=seed, progress=False, observations=mode)
    finally:
        env.close()
