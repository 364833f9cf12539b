"""Find the trading env behind gymnasium wrappers, SB3 VecEnv wrappers and our SB3 adapter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["iter_env_layers", "find_trading_env"]

_INNER = ("unwrapped", "venv", "vec_env", "env")


def iter_env_layers(env: Any) -> Iterator[Any]:
    """Every object reachable from ``env`` through ``unwrapped``/``venv``/``vec_env``/``env``,
    breadth-first, each once (``env`` itself first)."""
    seen: set[int] = set()
    frontier = [env]
    while frontier:
        obj = frontier.pop(0)
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        for attr in _INNER:
            try:
                frontier.append(getattr(obj, attr, None))
            except Exception:  # noqa: BLE001 - a broken property is simply not a path
                continue


def find_trading_env(env: Any) -> Any:
    """The ``TradingEnv`` / ``TradingVectorEnv`` behind any wrappers, or a ``ValueError``."""
    for obj in iter_env_layers(env):
        if (
            hasattr(obj, "market")
            and hasattr(obj, "config")
            and (hasattr(obj, "bars") or hasattr(obj, "bar"))
        ):
            return obj
    raise ValueError(
        f"env must be a TradingEnv (gym.make('TradingEnv-v0')), a TradingVectorEnv or its SB3 "
        f"adapter; got {type(env).__name__}"
    )
