"""Training-time noise on the market columns of ``TradingEnv`` observations
(:class:`MarketNoiseVecEnv`, the online agents' ``obs_noise``).

A policy trained on one market path can learn to trade on short patterns of that path's
features that do not recur on new bars (``ppo_transformer`` on ``regime``: it scores above the
Bayes filter on its training bars and turns over 3x as much as the filter on held-out ones;
docs/results.md). Independent Gaussian noise on every market column of every observation the
policy *trains* on (``N(0, obs_noise**2)``, in the env's units: its features are z-scores, so
``obs_noise`` is a fraction of a feature's spread) makes such patterns unreliable while a
feature that keeps its value over many bars (a regime's momentum) stays readable: the policy
acts on the noisy observation during rollouts and is trained on what it saw, so PPO's ratio is
consistent (unlike dropout inside the network). The account columns (position ...) are left
exact. Inference never sees noise.

The noise of vector step ``s`` is drawn from ``numpy.random.default_rng([seed, s])`` (resets
use ``[seed, s, 1]``), and ``s`` starts at the model's step count when the env is built, so a
resumed run draws the noise an uninterrupted one would have.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

__all__ = ["MarketNoiseVecEnv"]


class MarketNoiseVecEnv(VecEnvWrapper):
    """Add ``N(0, sigma**2)`` to the first ``n_columns`` observation columns (module docstring).

    :param venv: the SB3 vector env (below ``VecNormalize``, so the noise is in env units).
    :param sigma: noise standard deviation, > 0.
    :param n_columns: columns that get noise (``TradingEnv``: the market window).
    :param seed: seed of the noise stream.
    :param step: vector steps already taken (a resumed run's position in the stream).
    """

    def __init__(self, venv: VecEnv, sigma: float, n_columns: int, seed: int, step: int = 0):
        super().__init__(venv)
        if not (np.isfinite(sigma) and sigma > 0):
            raise ValueError(f"obs_noise must be a number > 0, got {sigma!r}")
        dim = int(np.prod(venv.observation_space.shape or (0,)))
        if not 0 < n_columns <= dim:
            raise ValueError(f"n_columns must be in [1, {dim}], got {n_columns}")
        self.sigma, self.n_columns, self.noise_seed, self.step_index = (
            float(sigma), int(n_columns), int(seed), int(step)
        )  # fmt: skip

    def _noisy(self, obs: np.ndarray, key: list[int]) -> np.ndarray:
        rng = np.random.default_rng([self.noise_seed, *key])
        out = np.array(obs, copy=True)
        noise = rng.standard_normal((out.shape[0], self.n_columns)) * self.sigma
        out[:, : self.n_columns] += noise.astype(out.dtype)
        return out

    def reset(self) -> np.ndarray:
        return self._noisy(self.venv.reset(), [self.step_index, 1])

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.step_index += 1
        for i, done in enumerate(dones):  # the terminal observation SB3 bootstraps from
            terminal = infos[i].get("terminal_observation") if done else None
            if terminal is not None:
                noisy = self._noisy(terminal[None], [self.step_index, 2, i])[0]
                infos[i]["terminal_observation"] = noisy
        return self._noisy(obs, [self.step_index]), rewards, dones, infos
