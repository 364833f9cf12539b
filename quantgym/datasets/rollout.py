"""The rollout loop: run a policy on a single or a vector env and record the episodes.

:func:`rollout` runs a policy with SB3's ``predict(obs, state, episode_start,
deterministic)`` signature on a gymnasium vector env (NEXT_STEP autoreset, as
``gym.make_vec("TradingEnv-v0", num_envs=N)``) or on a single env, which is stepped as a
vector env of one (:class:`SingleEnvStepper`: the step after a done resets it, its action
ignored and its reward 0), so one loop records both. Steps are written into
:class:`~quantgym.datasets.recorder.RolloutBuffers` and cut into episodes after the loop
(:func:`~quantgym.datasets.recorder.cut_episodes`). :func:`from_vector_rollout` builds a
dataset from arrays a caller recorded itself, with the same cut.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from quantgym.checks import check_choice, check_optional_positive_int, check_positive_int
from quantgym.datasets.checks import check_flags
from quantgym.datasets.metadata import (
    DatasetMetadata,
    action_space_metadata,
    collection_metadata,
)
from quantgym.datasets.recorder import OBSERVATION_MODES, RolloutBuffers, cut_episodes
from quantgym.datasets.storage import DERIVED_INFO_KEYS, ObservationReferences, market_reference
from quantgym.datasets.trajectory import TrajectoryDataset

__all__ = [
    "ROLLOUT_OPTIONS",
    "VectorEnvStepper",
    "SingleEnvStepper",
    "rollout",
    "from_vector_rollout",
]

ROLLOUT_OPTIONS = ("deterministic", "metadata", "observations")
"""Keyword arguments of :func:`rollout` beyond the env, policy, budget, seed and progress."""


# --------------------------------------------------------------------------------------------
# Envs stepped as vector envs
# --------------------------------------------------------------------------------------------


class VectorEnvStepper:
    """A gymnasium vector env as the rollout loop steps it (batched arrays in and out)."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        self.env = env
        self.num_envs = int(env.num_envs)
        self.action_space = env.single_action_space
        self.observation_space = env.single_observation_space

    def reset(self, seed: int) -> tuple[np.ndarray, Any, dict[str, Any]]:
        """``(batched observations, what the policy sees, infos)`` after ``reset(seed)``."""
        obs, infos = self.env.reset(seed=seed)
        return obs, obs, infos

    def step(self, actions: np.ndarray) -> tuple[Any, ...]:
        """``(observations, policy input, rewards, terminated, truncated, infos)``."""
        obs, reward, terminated, truncated, infos = self.env.step(actions)
        return obs, obs, reward, terminated, truncated, infos


class SingleEnvStepper:
    """A single env stepped as a vector env of one with NEXT_STEP autoreset.

    The step after a done is its autoreset step: the env is reset, the action ignored, the
    reward 0. Observations and infos come back batched (one row); the policy sees the env's
    own unbatched observation.
    """

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self.num_envs = 1
        self.action_space = env.action_space
        self.observation_space = env.observation_space
        self._continuous = isinstance(env.action_space, gym.spaces.Box)
        self._resetting = False

    def reset(self, seed: int) -> tuple[np.ndarray, Any, dict[str, Any]]:
        """``(batched observations, what the policy sees, infos)`` after ``reset(seed)``."""
        obs, info = self.env.reset(seed=seed)
        self._resetting = False
        return np.asarray(obs)[None], obs, {key: [v] for key, v in info.items()}

    def step(self, actions: np.ndarray) -> tuple[Any, ...]:
        """``(observations, policy input, rewards, terminated, truncated, infos)``."""
        if self._resetting:  # the autoreset step: action ignored, reset obs, reward 0
            obs, info = self.env.reset()
            reward, terminated, truncated = 0.0, False, False
        else:
            action = actions[0] if self._continuous else int(actions[0])
            obs, raw_reward, terminated, truncated, info = self.env.step(action)
            reward = float(raw_reward)
        self._resetting = bool(terminated or truncated)
        batched = {key: [v] for key, v in info.items()}
        flags = np.array([terminated]), np.array([truncated])
        return np.asarray(obs)[None], obs, np.array([reward]), *flags, batched


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def _normalise_actions(action: Any, n: int, continuous: bool, act_shape: tuple) -> np.ndarray:
    a = np.asarray(action)
    if continuous:
        return a.reshape(n, *act_shape).astype(np.float32, copy=False)
    if a.size != n:
        raise ValueError(f"policy returned {a.size} actions for {n} envs (shape {a.shape})")
    return a.reshape(n).astype(np.int64, copy=False)


def _progress(total: int, unit: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, disable=not enabled, desc="collect", mininterval=0.5)


def _capacity(env: Any, n: int, n_steps: int | None, n_episodes: int | None) -> int:
    """Vector steps to preallocate: enough for the requested data plus the autoreset steps
    when the episode length is known (``env.unwrapped.config.episode_length``)."""
    config = getattr(getattr(env, "unwrapped", env), "config", None)
    length = getattr(config, "episode_length", None)
    length = int(length) if isinstance(length, (int, np.integer)) and length > 0 else None
    if n_steps is not None:
        per_env = math.ceil(n_steps / n)
        return per_env + (per_env // length + 2 if length else max(per_env // 100, 16))
    if length is None or n_episodes is None:
        return 1024
    return math.ceil(n_episodes / n) * (length + 1) + 2


def _run(
    env: Any,
    stepper: VectorEnvStepper | SingleEnvStepper,
    policy: Any,
    n_steps: int | None,
    n_episodes: int | None,
    seed: int,
    progress: bool,
    deterministic: bool,
    obs_mode: str,
) -> tuple[RolloutBuffers, int]:
    """Step until ``n_steps`` transitions or ``n_episodes`` finished episodes are recorded;
    returns the buffers and the number of vector steps taken."""
    n = stepper.num_envs
    space = stepper.action_space
    continuous = isinstance(space, gym.spaces.Box)
    act_shape = tuple(space.shape or ()) if continuous else ()
    buf = RolloutBuffers(
        n,
        _capacity(env, n, n_steps, n_episodes),
        stepper.observation_space,
        continuous,
        act_shape,
        market_reference(env),
        obs_mode,
    )
    obs, policy_obs, reset_infos = stepper.reset(seed)
    buf.record_observations(0, obs, reset_infos)
    state = None
    episode_start = np.ones(n, dtype=bool)
    resetting = np.zeros(n, dtype=bool)  # env i's next step is its autoreset step
    recorded = finished = 0
    k = 0
    by_steps = n_steps is not None
    budget = int(n_steps if n_steps is not None else n_episodes or 0)
    with _progress(budget, "step" if by_steps else "episode", progress) as bar:
        while True:
            buf.ensure(k)
            action, state = policy.predict(
                policy_obs, state=state, episode_start=episode_start, deterministic=deterministic
            )
            action = _normalise_actions(action, n, continuous, act_shape)
            buf.actions[:, k] = action
            obs, policy_obs, reward, terminated, truncated, infos = stepper.step(action)
            buf.record_observations(k + 1, obs, infos)
            buf.rewards[:, k] = reward
            buf.terminated[:, k] = terminated
            buf.truncated[:, k] = truncated
            buf.record_infos(k, infos)
            k += 1
            ended = terminated | truncated
            if by_steps:  # transitions: the steps that were not autoreset steps
                new = n - int(np.count_nonzero(resetting))
                recorded += new
            else:  # finished episodes (an autoreset step never ends one)
                new = int(np.count_nonzero(ended & ~resetting))
                finished += new
            episode_start, resetting = resetting, ended
            if new:
                bar.update(new)
            if (recorded if by_steps else finished) >= budget:
                break
    return buf, k


def _derive_infos(arrays: dict[str, Any]) -> tuple[str, ...]:
    """Drop the infos that equal their value derived from the market reference (checked on
    every step, so nothing is guessed) and return their names."""
    refs = arrays["observations"]
    if not isinstance(refs, ObservationReferences):
        return ()
    lengths = arrays["episode_lengths"]
    n = int(lengths.sum())
    next_rows = np.arange(n, dtype=np.int64) + np.repeat(
        np.arange(lengths.size, dtype=np.int64), lengths
    )
    bars = refs.bars[next_rows + 1]
    derived = []
    for name in DERIVED_INFO_KEYS:
        values = arrays["infos"].get(name)
        if values is None:
            continue
        try:
            expected = refs.market.derived_info(name, bars)
        except ValueError:
            continue
        if values.dtype == expected.dtype and np.array_equal(values, expected):
            derived.append(name)
    for name in derived:
        del arrays["infos"][name]
    return tuple(derived)


def rollout(
    env: Any,
    policy: Any,
    *,
    seed: int = 0,
    n_steps: int | None = None,
    n_episodes: int | None = None,
    progress: bool = True,
    deterministic: bool = True,
    metadata: Mapping[str, Any] | None = None,
    observations: str = "auto",
) -> TrajectoryDataset:
    """Run ``policy`` on ``env`` and return the recorded :class:`TrajectoryDataset` (in memory).

    Args:
        env: a gymnasium vector env with NEXT_STEP autoreset (``gym.make_vec("TradingEnv-v0",
            num_envs=N)``, seeded ``seed + i``) or a single env (``gym.make(...)``).
        policy: anything with SB3's ``predict(obs, state, episode_start, deterministic)``; with a
            vector env it gets the ``(N, D)`` batch, with a single env its observation.
            Recurrent state is passed back each step; ``episode_start[i]`` is True on the first
            step of each of env i's episodes.
        seed: ``env.reset(seed=seed)``.
        n_steps: record exactly this many transitions (episodes still running at the end are
            cut and marked truncated, their final observation kept).
        n_episodes: record the first ``n_episodes`` episodes to finish (running ones dropped).
        progress: show a tqdm progress bar (steps or episodes, with an ETA).
        deterministic: passed to ``policy.predict``.
        metadata: extra metadata keys (override the recorded ones).
        observations: ``"auto"`` (default) records a quantgym env's observations by reference
            (bar + account features, market features once) after checking bit for bit on the
            first steps that they are the env's own, else densely; ``"dense"`` always stores
            them whole; ``"reference"`` insists (``ValueError`` when impossible).

    Recorded per step: observations (final observation of every episode kept), actions,
    rewards, terminations, truncations and infos ``equity``, ``position``, ``bar``,
    ``timestamp`` (int64 ns) and ``regime`` (synthetic regime markets; by reference ``bar``,
    ``timestamp`` and ``regime`` are derived from the market when they equal it on every
    step). Metadata: env id and kwargs, data name, fingerprint and date range, behaviour
    policy name and params, seed, created-at and package version.
    """
    check_choice("observations", observations, OBSERVATION_MODES)
    if (n_steps is None) == (n_episodes is None):
        raise ValueError("give exactly one of n_steps or n_episodes")
    n_steps = check_optional_positive_int("n_steps", n_steps)
    n_episodes = check_optional_positive_int("n_episodes", n_episodes)
    if not hasattr(policy, "predict"):
        raise ValueError(
            "policy must have a predict(obs, state, episode_start, deterministic) method, "
            f"got {type(policy).__name__}"
        )
    seed = check_positive_int("seed", seed, minimum=0)
    stepper: VectorEnvStepper | SingleEnvStepper
    if isinstance(env, gym.vector.VectorEnv):
        stepper = VectorEnvStepper(env)
    elif isinstance(env, gym.Env):
        stepper = SingleEnvStepper(env)
    else:
        raise ValueError(f"env must be a gymnasium Env or VectorEnv, got {type(env).__name__}")
    args = (n_steps, n_episodes, seed, progress, deterministic, observations)
    buf, k = _run(env, stepper, policy, *args)
    arrays = buf.episodes(k, n_steps, n_episodes)
    del buf
    extra = {
        "n_envs": stepper.num_envs,
        "action_space": action_space_metadata(stepper.action_space),
        "collect": {
            "n_steps": n_steps,
            "n_episodes": n_episodes,
            "deterministic": bool(deterministic),
        },
    }
    meta = collection_metadata(env, policy, seed, arrays["infos"], extra)
    derived = _derive_infos(arrays)
    meta.update(metadata or {})
    return TrajectoryDataset(metadata=meta, derived_infos=derived, **arrays)


# --------------------------------------------------------------------------------------------
# A rollout recorded elsewhere
# --------------------------------------------------------------------------------------------


def from_vector_rollout(
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminations: np.ndarray,
    truncations: np.ndarray,
    infos: Mapping[str, np.ndarray] | None = None,
    metadata: Mapping[str, Any] | DatasetMetadata | None = None,
) -> TrajectoryDataset:
    """A dataset from a NEXT_STEP-autoreset vector-env rollout of ``T`` steps and ``N`` envs.

    Args:
        observations: ``(T + 1, N, *obs_shape)``: the reset observation, then the observation
            returned by each ``step``.
        actions, rewards, terminations, truncations: ``(T, N, ...)`` per step.
        infos: per-step arrays ``name -> (T, N, ...)`` (the ``_name`` masks are not needed).
        metadata: the dataset's metadata.

    The step after a done is the vector env's autoreset step (action ignored, reward 0, reset
    observation): it is dropped, and the observation it returns starts the env's next
    episode; the observation returned *at* the done step is the final observation. An
    episode still running at step ``T`` is kept as truncated (final observation
    ``observations[T]``). Episodes are ordered env by env, then in time.
    """
    obs = np.asarray(observations)
    acts = np.asarray(actions)
    if acts.ndim < 2:
        raise ValueError(f"actions must have shape (T, N, ...), got {acts.shape}")
    n_t, n_env = acts.shape[:2]
    if obs.shape[:2] != (n_t + 1, n_env):
        raise ValueError(f"observations must have shape ({n_t + 1}, {n_env}, ...), got {obs.shape}")
    rews = np.asarray(rewards)
    terms, truncs = (
        check_flags(name, np.asarray(flags).reshape(-1), n_t * n_env).reshape(n_t, n_env)
        for name, flags in (("terminations", terminations), ("truncations", truncations))
    )
    if rews.shape != (n_t, n_env):
        raise ValueError(f"rewards must have shape ({n_t}, {n_env}), got {rews.shape}")
    infos = dict(infos or {})
    for name, values in infos.items():
        if np.shape(values)[:2] != (n_t, n_env):
            raise ValueError(
                f"infos[{name!r}] must have shape ({n_t}, {n_env}, ...), got {np.shape(values)}"
            )
    if n_t == 0:
        raise ValueError("the rollout holds no transition")
    cut = cut_episodes(terms.T, truncs.T)

    def env_major(values: Any) -> np.ndarray:
        a = np.swapaxes(np.asarray(values), 0, 1)
        return a.reshape(n_env * n_t, *a.shape[2:])[cut.steps]

    in_dataset = np.arange(n_t + 1)[None, :] < cut.n_observations[:, None]
    return TrajectoryDataset(
        observations=np.swapaxes(obs, 0, 1)[in_dataset],
        actions=env_major(acts),
        rewards=env_major(rews),
        terminations=cut.terminations,
        truncations=cut.truncations,
        episode_lengths=cut.episode_lengths,
        infos={k: env_major(v) for k, v in infos.items()},
        metadata=metadata,
    )
