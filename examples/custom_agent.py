"""Bring your own agent: anything with SB3's ``predict`` works with quantgym's evaluation.

    .venv/bin/python examples/custom_agent.py

Two ways shown here:

1. ``TrendAgent`` subclasses ``BaseAgent``: a ``Config`` dataclass gives it ``save``/``load``
   (agent.json) for free; it is registered by name with ``register_agent``.
2. ``AlwaysLong`` is a plain class; ``make_agent("package.module:Class")`` builds it by import
   path (here ``__main__:AlwaysLong``, since this file runs as a script).

Both are evaluated on the same fixed episodes as a built-in baseline.
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from quantgym import ENV_ID
from quantgym.agents.base import BaseAgent
from quantgym.agents.registry import load_agent, make_agent, register_agent
from quantgym.evaluation import evaluate, normalized_score


class TrendAgent(BaseAgent):
    """Long when one market feature (default: Bollinger %b, rolling z-scored by the env) averaged
    over the last ``lookback`` bars of the window is positive, short otherwise. Reads only the
    observation, so it needs no env; ``config`` says where the feature sits in it."""

    name: ClassVar[str] = "trend"

    @dataclasses.dataclass
    class Config:
        lookback: int = 32
        window_size: int = 32
        n_market_features: int = 10
        feature_index: int = 6  # "bollinger_b" in the default feature set

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        c = self.config
        obs = np.atleast_2d(observation)
        window = obs[:, : c.window_size * c.n_market_features].reshape(
            -1, c.window_size, c.n_market_features
        )
        signal = window[:, -c.lookback :, c.feature_index].mean(axis=1)
        actions = np.where(signal > 0, 2, 0).astype(
            np.int64
        )  # positions (-1, 0, 1): 0 short, 2 long
        return (actions if np.ndim(observation) == 2 else actions[0]), state


class AlwaysLong:
    """The smallest possible agent: no base class, just ``predict``."""

    name = "always_long"

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.int64(2), state


def main() -> None:
    env = gym.make(ENV_ID, episode_length=500)
    base = env.unwrapped
    register_agent("trend", TrendAgent)
    trend = make_agent(
        "trend",
        window_size=base.window_size,
        n_market_features=base.n_market_features,
        feature_index=base.feature_names.index("bollinger_b"),
    )
    with tempfile.TemporaryDirectory() as tmp:  # BaseAgent gives save/load for free
        trend.save(tmp)
        trend = load_agent(tmp)

    always_long = make_agent("__main__:AlwaysLong")
    reference = make_agent("bayes_filter_expert", env=env)

    results = {
        a.name: evaluate(a, env, n_episodes=8, seed=0) for a in (trend, always_long, reference)
    }
    ref_return = results["bayes_filter_expert"].total_return
    print(f"8 episodes of 500 bars (same starts for everyone): {results['trend'].starts}")
    print(f"{'agent':<22}{'mean return':>12}{'mean sharpe':>12}{'score':>8}")
    for name, res in results.items():
        score = normalized_score(res.total_return, ref_return)
        print(f"{name:<22}{res.total_return:12.3f}{res.mean['sharpe']:12.2f}{score:8.1f}")


if __name__ == "__main__":
    main()
