"""Training reward of the allocating agents: log growth in excess of the uniform portfolio's.

The env's reward is the log growth of the account, ``log(V_(t+1) / V_t)``. Most of its
variance is the market's move, which no action can change, and it drowns the policy
gradient: on the synthetic factor market the value of holding cash rather than the market in
a bear regime is ~1e-3 per bar against ~1.7e-2 of bar noise. :class:`ExcessLogReturnVecEnv`
subtracts the log growth of the uniform buy-at-close portfolio over the same bar (1/N of every
asset tradable at decision bar ``t``, gross of costs)::

    r'_t = log(V_(t+1) / V_t) - log(mean_j close_(t+1, j) / close_(t, j))

The subtracted term depends on the market path only, never on an action (prices are
exogenous), so it is a control variate: every policy's expected return changes by the same
amount, the optimal policy is the same, and the score-function gradient stays unbiased; its
variance falls by the share of the noise the agent's portfolio has in common with the uniform
one (nearly all of it at the uniform initial allocation). Only training sees it: evaluation
and ``predict`` use the env as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from quantgym.agents.sb3.envs import env_attr
from quantgym.envs.unwrap import iter_env_layers

__all__ = ["ExcessLogReturnVecEnv", "uniform_log_growth"]

_VECTOR_ATTRS = ("panel", "layout", "bars", "num_envs")


def uniform_log_growth(close: np.ndarray, tradable: np.ndarray) -> np.ndarray:
    """``(T,)``: entry ``t`` is ``log(mean_j close[t+1, j] / close[t, j])`` over the assets
    tradable at ``t`` with both closes positive (0 where there is none, and at the last bar)."""
    out = np.zeros(close.shape[0])
    prev, nxt = close[:-1], close[1:]
    ok = tradable[:-1] & (prev > 0) & (nxt > 0)
    relative = np.divide(nxt, prev, out=np.zeros_like(prev), where=ok)
    count = ok.sum(axis=1)
    mean = np.divide(relative.sum(axis=1), count, out=np.ones(count.shape), where=count > 0)
    out[:-1] = np.log(mean)
    return out


class ExcessLogReturnVecEnv(VecEnvWrapper):
    """An SB3 VecEnv over ``PortfolioEnv``s whose reward is the excess log growth over the
    uniform portfolio (module docstring). Needs the log-growth reward (the env's default)."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        # the native PortfolioVectorEnv (behind the SB3 adapter), or single envs (DummyVecEnv)
        self._core = next(
            (o for o in iter_env_layers(venv) if all(hasattr(o, a) for a in _VECTOR_ATTRS)), None
        )
        panel = self._core.panel if self._core is not None else env_attr(venv, "panel")
        if panel is None or not hasattr(panel, "mark_close"):
            raise ValueError(
                f"excess_reward needs a PortfolioEnv (single or vector), got {type(venv).__name__}"
            )
        self.benchmark = uniform_log_growth(panel.mark_close, panel.tradable)
        self._bars: np.ndarray | None = None

    def _decision_bars(self) -> np.ndarray:
        if self._core is not None:
            return np.asarray(self._core.bars, dtype=np.int64).copy()
        return np.asarray(self.venv.get_attr("bar"), dtype=np.int64)

    def reset(self) -> Any:
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self._bars = self._decision_bars()
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        if self._bars is None:
            raise ValueError("step_wait() called before step_async()")
        rewards = (rewards - self.benchmark[self._bars]).astype(np.float32)
        self._bars = None
        return obs, rewards, dones, infos
