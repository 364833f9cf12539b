"""What every native vector env of quantgym shares before and around its stepping: building
its config from gymnasium's ``make_vec`` arguments, the NEXT_STEP autoreset metadata, and the
per-account seeds and starts of ``reset`` (``TradingVectorEnv`` and ``PortfolioVectorEnv``)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from quantgym.checks import check_positive_int

__all__ = ["vector_config", "next_step_metadata", "account_rngs", "account_starts"]


def vector_config(
    config_cls: type,
    env_name: str,
    num_envs: int,
    data: Any,
    max_episode_steps: int | None,
    kwargs: dict[str, Any],
) -> Any:
    """``config_cls(data=data, **kwargs)`` for a vector env: ``max_episode_steps`` (gymnasium's
    name) sets ``episode_length``; an unknown keyword or ``render_mode="rgb_array"`` (a vector
    env keeps no per-step history to draw) is a ``ValueError`` naming ``env_name``."""
    check_positive_int("num_envs", num_envs)
    if max_episode_steps is not None:
        kwargs = {**kwargs, "episode_length": max_episode_steps}
    try:
        config = config_cls(data=data, **kwargs)
    except TypeError as exc:
        raise ValueError(f"{env_name}: {exc}") from None
    if getattr(config, "render_mode", None) == "rgb_array":
        raise ValueError(
            f"{env_name} renders 'ansi' only (it keeps no per-step history); use the single "
            "env with render_mode='rgb_array' to draw an episode"
        )
    return config


def next_step_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` with gymnasium's NEXT_STEP autoreset mode in the form its version expects."""
    if hasattr(gym.vector, "AutoresetMode"):  # gymnasium >= 1.1
        return {**metadata, "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}
    return dict(metadata)


def account_rngs(seed: int | list[int | None], num_envs: int) -> list[np.random.Generator]:
    """One generator per account: ``seed + i`` for an int seed (so account i is seeded like a
    single env reset with ``seed + i``), or one seed per account."""
    seeds = (
        [seed + i for i in range(num_envs)] if isinstance(seed, int | np.integer) else list(seed)
    )
    if len(seeds) != num_envs:
        raise ValueError(f"reset(seed=...) needs {num_envs} seeds, got {len(seeds)}")
    return [seeding.np_random(s)[0] for s in seeds]


def account_starts(options: dict | None, num_envs: int) -> list | None:
    """``options["start"]`` per account (one start for all, or one each), else ``None``."""
    if not options or options.get("start") is None:
        return None
    raw = options["start"]
    starts = list(raw) if isinstance(raw, list | tuple | np.ndarray) else [raw] * num_envs
    if len(starts) != num_envs:
        raise ValueError(
            f"options['start'] needs one start or {num_envs} starts, got {len(starts)}"
        )
    return starts
