"""Train a fresh agent of a cell on one train range, and nothing after it.

Online agents learn from an env that ends at the range's last bar (on a portfolio market the
panel is loaded again from its source up to that bar, so later bars are never loaded); offline
agents from a dataset collected on the range only (:func:`offline_dataset`). Every agent gets its budget
through one keyword, ``fit(env_or_dataset, train_steps=cell.train_steps)`` (:func:`fit_agent`);
``None`` leaves the agent's own default. Runs are reproducible: :func:`seed_everything` seeds
python, numpy's legacy global RNG and torch (one thread, deterministic algorithms).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from quantgym.benchmark.listing import Cell, accepts_keyword, agent_init_kwargs, agent_learns
from quantgym.benchmark.protocol import BarRange, bar_timestamp, market_env_kwargs
from quantgym.benchmark.records import cell_id
from quantgym.policies.references import env_id_for, market_base, market_env

__all__ = [
    "seed_everything",
    "fit_agent",
    "trained_steps",
    "offline_dataset",
    "train_agent",
]


def seed_everything(seed: int, torch_needed: bool) -> None:
    """Seed ``random``, numpy's legacy global RNG (for custom agents) and, when torch is needed
    or already imported, torch with one thread and deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global RNG, for custom agents
    if torch_needed or "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True, warn_only=True)


def fit_agent(agent: Any, data: Any, train_steps: int | None = None, **fit_kwargs: Any) -> Any:
    """``agent.fit(data, train_steps=train_steps, **fit_kwargs)`` for every kind of agent
    (``data``: an env or env kwargs for online agents, a ``TrajectoryDataset`` for offline
    ones); ``train_steps=None`` is not passed, so the agent trains for its default budget.
    Returns what ``fit`` returns."""
    if train_steps is not None:
        fit_kwargs["train_steps"] = train_steps
    return agent.fit(data, **fit_kwargs)


def trained_steps(agent: Any, default: int | None) -> int | None:
    """How many steps ``agent`` trained for: its ``num_timesteps`` (or its model's) where it
    counts them, else ``default``."""
    steps: Any = getattr(agent, "num_timesteps", None)
    if steps is None:
        steps = getattr(getattr(agent, "model", None), "num_timesteps", default)
    return None if steps is None else int(steps)


def offline_dataset(
    cell: Cell, market: Any, train: BarRange, cache_dir: str | os.PathLike | None = None
) -> Any:
    """The offline learner's dataset, collected on ``train`` only. The harness passes the range
    itself (``split="all"`` plus ``start``/``end``) and the market's *source* (not the loaded
    ``MarketData``) so the dataset's metadata can rebuild it (the supervised agent relabels
    bars from it). Datasets are deterministic in their arguments, so with ``cache_dir`` the
    cells of one (market, seed, train range) share one copy (saved losslessly)."""
    from quantgym.datasets.presets import make_dataset
    from quantgym.datasets.trajectory import TrajectoryDataset

    n_data = int(cell.dataset_steps or 3)
    kwargs: dict[str, Any] = {
        "market": market_base(cell.market),  # a variant's parameters are in env_kwargs
        "quality": str(cell.dataset_quality),
        "n_steps": n_data,
        "seed": cell.seed,
        "split": "all",
        "num_envs": min(16, n_data // 3 or 1),
        "env_kwargs": {
            **market_env_kwargs(cell),
            **cell.env_kwargs,
            "start": bar_timestamp(market, train.start),
            "end": bar_timestamp(market, train.end),
        },
    }
    if cache_dir is None:
        return make_dataset(**kwargs)
    path = Path(cache_dir) / f"{cell_id(kwargs)}.npz"
    if path.is_file():
        try:
            return TrajectoryDataset.load(path)
        except ValueError:  # a broken cache entry: collect again
            pass
    dataset = make_dataset(**kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save(path, compress=False)
    return dataset


def train_agent(
    cls: type, cell: Cell, market: Any, train: BarRange, cache_dir: str | os.PathLike | None = None
) -> tuple[Any, int | None]:
    """A fresh ``cls`` agent of ``cell`` trained on ``train`` only (bars after ``train.end`` are
    never loaded) and the steps it trained for. ``ValueError`` if ``cls`` does not learn."""
    learns = agent_learns(cls)
    if learns is None:
        raise ValueError(f"agent {cell.agent!r} has no fit: nothing to train")
    agent = cls(**agent_init_kwargs(cls, cell))
    fit_kwargs: dict[str, Any] = {}
    if accepts_keyword(agent.fit, "progress_bar"):
        fit_kwargs["progress_bar"] = False  # the harness shows one bar over cells
    if learns == "offline":
        dataset = offline_dataset(cell, market, train, cache_dir)
        fit_agent(agent, dataset, cell.train_steps, **fit_kwargs)
    else:
        end = bar_timestamp(market, train.end)
        if market_env(cell.market) == "portfolio":  # a PanelData cannot be cut: load up to end
            source = market_env_kwargs(cell)
        else:
            source = {"data": market}
        env = gym.make(env_id_for(cell.market), **source, **cell.env_kwargs, end=end)
        try:
            fit_agent(agent, env, cell.train_steps, **fit_kwargs)
        finally:
            env.close()
    return agent, trained_steps(agent, cell.train_steps)
