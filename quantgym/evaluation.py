"""Run an agent on a ``TradingEnv`` and score it: per-episode metrics, equity curves and
normalised scores (cash = 0, a reference policy = 100).

Evaluation is a set of full deterministic passes over a fixed list of episode starts: the
starts are drawn once from ``np.random.default_rng(seed)`` (or given), each episode is
reset with ``options={"start": bar}``, so every agent sees exactly the same bars. An env with
``episode_length=None`` is evaluated in one pass over its whole range. Recurrent agents get
their state back each step and ``episode_start=[True]`` on the first step of each episode.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from quantgym import ENV_ID
from quantgym.checks import check_positive_int

__all__ = [
    "EvaluationResult",
    "evaluate",
    "episode_starts",
    "normalized_score",
    "DEFAULT_N_EPISODES",
    "reference_agent_name",
]

DEFAULT_N_EPISODES = 10


@dataclasses.dataclass
class EvaluationResult:
    """Outcome of :func:`evaluate`.

    Attributes:
        agent: the agent's name (``agent.name`` or its class name).
        starts: first bar index of each episode.
        episodes: ``env.unwrapped.metrics()`` of each episode (``total_return``, ``sharpe``, ...).
        histories: ``env.unwrapped.history()`` of each episode (equity, position, costs per step).
        rewards: sum of the env's rewards per episode.
        deterministic, seed: how it was run.
        initial_equity: the account's equity at each episode's start (``None``: unknown).
    """

    agent: str
    starts: list[int]
    episodes: list[dict[str, float]]
    histories: list[pd.DataFrame]
    rewards: list[float]
    deterministic: bool = True
    seed: int = 0
    initial_equity: float | None = None

    @property
    def n_episodes(self) -> int:
        return len(self.episodes)

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per episode (index = start bar), one column per metric."""
        return pd.DataFrame(self.episodes, index=pd.Index(self.starts, name="start"))

    @property
    def mean(self) -> dict[str, float]:
        """Mean of every metric over the episodes."""
        return {k: float(v) for k, v in self.metrics.mean(numeric_only=True).items()}

    @property
    def std(self) -> dict[str, float]:
        """Sample standard deviation of every metric over the episodes (0 for one episode)."""
        if self.n_episodes < 2:
            return {k: 0.0 for k in self.mean}
        return {k: float(v) for k, v in self.metrics.std(numeric_only=True, ddof=1).items()}

    @property
    def total_return(self) -> float:
        """Mean total return per episode (the whole range's return for one full pass)."""
        return float(np.mean([e["total_return"] for e in self.episodes]))

    @property
    def returns(self) -> np.ndarray:
        """Total return of each episode."""
        return np.array([e["total_return"] for e in self.episodes], dtype=np.float64)

    @property
    def equity_curves(self) -> list[pd.Series]:
        """Equity after each step of each episode (index = timestamp of the marked bar)."""
        return [h["equity"] for h in self.histories]

    @property
    def step_returns(self) -> list[pd.Series]:
        """Simple return of each step of each episode (index = timestamp of the marked bar):
        the step's equity over the previous one's, the first over :attr:`initial_equity`."""
        if self.initial_equity is None:
            raise ValueError("step_returns needs initial_equity (evaluate() records it)")
        out = []
        for curve in self.equity_curves:
            previous = curve.shift(1, fill_value=self.initial_equity)
            out.append((curve / previous - 1.0).rename("returns"))
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary: mean and std of every metric, starts, settings."""
        return {
            "agent": self.agent,
            "n_episodes": self.n_episodes,
            "starts": [int(s) for s in self.starts],
            "deterministic": self.deterministic,
            "seed": self.seed,
            "total_return": self.total_return,
            "mean": self.mean,
            "std": self.std,
        }


def normalized_score(ret: float, reference_ret: float, baseline_ret: float = 0.0) -> float:
    """``100 * (ret - baseline) / (reference - baseline)``: 0 = the baseline (cash), 100 = the
    reference (``BayesFilterExpert`` on synthetic markets, buy-and-hold on real data).

    Raises ``ValueError`` when ``reference_ret == baseline_ret`` or an input is not finite.
    """
    for name, value in (
        ("ret", ret),
        ("reference_ret", reference_ret),
        ("baseline_ret", baseline_ret),
    ):
        if not math.isfinite(float(value)):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if reference_ret == baseline_ret:
        raise ValueError(
            f"reference_ret equals baseline_ret ({reference_ret!r}): the score is undefined"
        )
    # divide first: the reference itself then scores exactly 100
    return 100.0 * (
        (float(ret) - float(baseline_ret)) / (float(reference_ret) - float(baseline_ret))
    )


def reference_agent_name(market: Any) -> str:
    """Registered name of the 100-point reference on ``market``
    (:func:`quantgym.policies.references.reference_policy_name`)."""
    from quantgym.policies.references import reference_policy_name

    return reference_policy_name(market)


def _as_env(env: Any) -> gym.Env:
    if isinstance(env, Mapping):
        return gym.make(ENV_ID, **env)
    if isinstance(env, gym.Env):
        return env
    raise ValueError(
        f"env must be a single gymnasium env or a dict of TradingEnv kwargs, got {type(env).__name__}"
    )


def _episode_length(base: Any) -> int | None:
    config = getattr(base, "config", None)
    return getattr(config, "episode_length", None) if config is not None else None


def episode_starts(env: Any, n_episodes: int = DEFAULT_N_EPISODES, seed: int = 0) -> list[int]:
    """``n_episodes`` sorted episode starts drawn with ``default_rng(seed)`` among the bars where
    a full ``episode_length`` episode fits (``[first_bar, last_bar - episode_length]``)."""
    n_episodes = check_positive_int("n_episodes", n_episodes)
    base = env.unwrapped
    first = int(base.first_bar)
    length = _episode_length(base)
    last = int(base.market.last_bar)
    high = first if length is None else max(first, last - int(length))
    rng = np.random.default_rng(seed)
    return sorted(int(s) for s in rng.integers(first, high + 1, size=int(n_episodes)))


def _agent_name(agent: Any) -> str:
    name = getattr(agent, "name", None)
    return name if isinstance(name, str) else type(agent).__name__


def evaluate(
    agent: Any,
    env: Any,
    deterministic: bool = True,
    n_episodes: int | None = None,
    starts: Sequence[Any] | None = None,
    seed: int = 0,
) -> EvaluationResult:
    """Run ``agent`` on ``env`` (a single ``TradingEnv``, wrapped or not, or a dict of its kwargs).

    :param deterministic: passed to ``agent.predict``.
    :param n_episodes: number of episodes (default 10) at starts drawn by :func:`episode_starts`
        with ``seed``; with ``episode_length=None`` the default is one pass over the whole range.
    :param starts: explicit episode starts (bar indices or timestamps); overrides ``n_episodes``.
    :param seed: seeds the start draw and ``env.reset(seed=seed + i)``.

    Env-bound baselines must be bound to this same ``env``.
    """
    env = _as_env(env)
    base = env.unwrapped
    if not hasattr(base, "metrics") or not hasattr(base, "history"):
        raise ValueError("env must be a TradingEnv (env.unwrapped needs metrics() and history())")
    if starts is not None:
        if isinstance(starts, str | bytes) or len(starts) == 0:
            raise ValueError(
                f"starts must be a non-empty sequence of bars or timestamps, got {starts!r}"
            )
        if n_episodes is not None and n_episodes != len(starts):
            raise ValueError(f"n_episodes={n_episodes} does not match len(starts)={len(starts)}")
        plan: list[Any] = list(starts)
    elif _episode_length(base) is None:
        count = 1 if n_episodes is None else check_positive_int("n_episodes", n_episodes)
        plan = [None] * count
    else:
        plan = episode_starts(env, DEFAULT_N_EPISODES if n_episodes is None else n_episodes, seed)

    initial = getattr(getattr(base, "config", None), "initial_equity", None)
    actual_starts, episodes, histories, rewards = [], [], [], []
    for i, start in enumerate(plan):
        options = None if start is None else {"start": start}
        obs, info = env.reset(seed=seed + i, options=options)
        actual_starts.append(int(info.get("bar", base.bar)))
        state = None
        episode_start = np.ones(1, dtype=bool)
        total_reward = 0.0
        done = False
        while not done:
            action, state = agent.predict(
                obs, state=state, episode_start=episode_start, deterministic=deterministic
            )
            obs, reward, terminated, truncated, _ = env.step(action)
            total_reward += float(reward)
            episode_start = np.zeros(1, dtype=bool)
            done = bool(terminated or truncated)
        episodes.append({k: float(v) for k, v in base.metrics().items()})
        histories.append(base.history())
        rewards.append(total_reward)
    return EvaluationResult(
        agent=_agent_name(agent),
        starts=actual_starts,
        episodes=episodes,
        histories=histories,
        rewards=rewards,
        deterministic=deterministic,
        seed=seed,
        initial_equity=None if initial is None else float(initial),
    )
