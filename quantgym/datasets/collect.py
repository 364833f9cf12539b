"""Record trajectories of any policy into a :class:`TrajectoryDataset`.

``collect(env, policy, n_steps=... | n_episodes=...)`` runs a policy with SB3's
``predict(obs, state, episode_start, deterministic)`` signature on a single gymnasium env or a
gymnasium vector env (NEXT_STEP autoreset, as ``gym.make_vec("TradingEnv-v0", num_envs=N)``).

With a vector env every step is written into preallocated ``(N, T, ...)`` arrays (env-major,
so each env's stream of observations is contiguous); after the loop, episodes are cut out
with vectorised numpy: the autoreset steps (the step after env i reported done, whose action
is ignored and whose reward is 0) are dropped, and each episode keeps its final observation.
Under NEXT_STEP autoreset every observation of an env's stream belongs to exactly one episode
(the final observation is the input of the discarded autoreset step, whose output is the
next episode's first observation), so the dataset's observations are a prefix of each env's
stream: no per-step per-env Python loop anywhere.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import math
import os
from typing import Any

import gymnasium as gym
import numpy as np

from quantgym import ENV_ID, __version__
from quantgym.datasets.storage import (
    DERIVED_INFO_KEYS,
    MarketReference,
    ObservationReferences,
    market_reference,
)
from quantgym.datasets.trajectory import TrajectoryDataset

__all__ = ["OBSERVATION_MODES", "collect", "env_metadata"]


_INFO_DTYPES: dict[str, Any] = {
    "equity": np.float64,
    "position": np.float64,
    "bar": np.int64,
    "timestamp": np.int64,  # ns since the epoch
    "regime": np.int64,
}


# --------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """Recursively turn ``value`` into JSON types (unknown objects become their repr)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.datetime64):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        import dataclasses

        return {"class": type(value).__name__, **_json_safe(dataclasses.asdict(value))}
    name = getattr(value, "__name__", None)
    return name if isinstance(name, str) else repr(value)


def _action_space_dict(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "discrete", "n": int(space.n)}
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "continuous",
            "shape": [int(d) for d in space.shape],
            "low": float(np.min(space.low)),
            "high": float(np.max(space.high)),
        }
    raise ValueError(f"collect supports Discrete and Box action spaces, got {space}")


def env_metadata(env: Any) -> dict[str, Any]:
    """Env id, constructor kwargs and data description of ``env`` (single or vector).

    Kwargs come from ``env.unwrapped.config`` (``to_dict()`` or a dict) when the env exposes
    it, else from ``env.spec.kwargs``; data from ``env.unwrapped.market`` when present.
    """
    core = getattr(env, "unwrapped", env)
    spec = getattr(env, "spec", None) or getattr(core, "spec", None)
    env_id = getattr(spec, "id", None)
    config = getattr(core, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        kwargs = config.to_dict()
    elif isinstance(config, dict):
        kwargs = dict(config)
    else:
        kwargs = dict(getattr(spec, "kwargs", None) or {})
        kwargs.pop("num_envs", None)
        kwargs.pop("vectorization_mode", None)
    if env_id is None and type(core).__name__ in ("TradingEnv", "TradingVectorEnv"):
        env_id = ENV_ID
    out: dict[str, Any] = {"env_id": env_id, "env_kwargs": _json_safe(kwargs)}
    market = getattr(core, "market", None)
    if market is not None:
        out["data_name"] = getattr(market, "name", None)
        out["data_fingerprint"] = getattr(market, "fingerprint", None)
        date_range = getattr(market, "date_range", None)
        if date_range is not None:
            out["market_date_range"] = [str(d) for d in date_range]
        params = getattr(market, "market_params", None)
        if params:
            out["market_params"] = _json_safe(params)
    return out


def _metadata(
    env: Any, policy: Any, seed: int, infos: dict[str, np.ndarray], extra: dict
) -> dict[str, Any]:
    from quantgym.policies import describe_policy

    policy_info = describe_policy(policy)
    meta = env_metadata(env)
    stamps = infos.get("timestamp")
    if stamps is not None and stamps.size:
        meta["date_range"] = [
            str(np.datetime64(int(stamps.min()), "ns")),
            str(np.datetime64(int(stamps.max()), "ns")),
        ]
    meta.update(
        behavior_policy=policy_info["name"],
        policy_params=_json_safe(policy_info["params"]),
        uses_future=bool(getattr(policy, "uses_future", False)),
        seed=int(seed),
        quantgym_version=__version__,
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **extra,
    )
    return meta


# --------------------------------------------------------------------------------------------
# Recording buffers
# --------------------------------------------------------------------------------------------


_PROBE_STEPS = 8  # vector steps recorded both ways before choosing by-reference storage
OBSERVATION_MODES = ("auto", "reference", "dense")


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality (NaN payloads and signed zeros included)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


class _Buffers:
    """Preallocated env-major arrays ``(N, T, ...)``, grown by doubling when needed.

    Observations are recorded by reference (bar + account features, ``self.market`` set)
    when the env is a quantgym env whose recorded observations equal its own: the first
    ``_PROBE_STEPS`` steps are kept both ways and compared bit for bit, then storage is
    chosen; after that one env's observation per step is still checked (rotating).
    """

    def __init__(
        self,
        n_envs: int,
        capacity: int,
        obs_space: gym.Space,
        continuous: bool,
        act_shape: tuple,
        market: MarketReference | None = None,
        mode: str = "auto",
    ) -> None:
        self.n = n_envs
        self.capacity = max(int(capacity), 1)
        self.obs_shape = tuple(obs_space.shape or ())
        self.obs_dtype = obs_space.dtype
        compatible = (
            market is not None
            and self.obs_shape == (market.observation_dim,)
            and self.obs_dtype == np.float32
        )
        if mode == "reference" and not compatible:
            raise ValueError(
                "observations='reference' needs a quantgym env with flat float32 observations "
                "of its window + account features"
            )
        self.market = market if compatible and mode != "dense" else None
        self.deciding = self.market is not None and mode == "auto"
        self.forced = mode == "reference"
        self.obs: np.ndarray | None = None
        self.probe: np.ndarray | None = None
        if self.market is not None:
            a = self.market.n_account_features
            self.bars: np.ndarray = np.zeros((n_envs, self.capacity + 1), dtype=np.int32)
            self.account: np.ndarray = np.empty((n_envs, self.capacity + 1, a), dtype=np.float32)
            if self.deciding or self.forced:
                self.probe = np.empty(
                    (n_envs, _PROBE_STEPS + 1, *self.obs_shape), dtype=self.obs_dtype
                )
        else:
            self.obs = np.empty((n_envs, self.capacity + 1, *self.obs_shape), dtype=self.obs_dtype)
        act_dtype = np.float32 if continuous else np.int64
        self.actions = np.empty((n_envs, self.capacity, *act_shape), dtype=act_dtype)
        self.rewards = np.empty((n_envs, self.capacity), dtype=np.float64)
        self.terminated = np.empty((n_envs, self.capacity), dtype=bool)
        self.truncated = np.empty((n_envs, self.capacity), dtype=bool)
        self.infos: dict[str, np.ndarray] = {}

    def ensure(self, k: int) -> None:
        """Room for step ``k`` (and observation ``k + 1``)."""
        if k < self.capacity:
            return
        grow = self.capacity

        def extend(a: np.ndarray) -> np.ndarray:
            pad = np.empty((a.shape[0], grow, *a.shape[2:]), dtype=a.dtype)
            return np.concatenate([a, pad], axis=1)

        if self.obs is not None:
            self.obs = extend(self.obs)
        if self.market is not None:
            self.bars = extend(self.bars)
            self.account = extend(self.account)
        self.actions = extend(self.actions)
        self.rewards = extend(self.rewards)
        self.terminated = extend(self.terminated)
        self.truncated = extend(self.truncated)
        self.infos = {key: extend(v) for key, v in self.infos.items()}
        self.capacity += grow

    def record_observations(self, k: int, obs: np.ndarray, infos: dict[str, Any]) -> None:
        """Store observation row ``k`` of every env (``obs`` is ``(N, *obs_shape)``)."""
        if self.market is not None:
            bars = infos.get("bar")
            if bars is None or np.shape(bars) != (self.n,):
                self._fall_back(k, "its info has no per-env 'bar'")
            else:
                self.bars[:, k] = bars
                self.account[:, k] = obs[:, self.market.market_dim :]
                if self.probe is not None and k <= _PROBE_STEPS:
                    self.probe[:, k] = obs
                    if k == _PROBE_STEPS:
                        self._decide(k)
                elif self.market is not None:
                    self._spot_check(k, obs)
        if self.obs is not None:
            self.obs[:, k] = obs

    def _rebuilt(self, rows: slice, envs: slice | int) -> np.ndarray:
        assert self.market is not None
        bars = np.asarray(self.bars[envs, rows]).reshape(-1)
        account = np.asarray(self.account[envs, rows]).reshape(bars.size, -1)
        return ObservationReferences(self.market, bars, account).take(slice(None))

    def _decide(self, k: int) -> None:
        """After probe row ``k``: keep references when they rebuild every probed row exactly."""
        assert self.probe is not None
        recorded = self.probe[:, : k + 1].reshape(-1, *self.obs_shape)
        try:
            ok = _same_bits(self._rebuilt(slice(0, k + 1), slice(None)), recorded)
        except ValueError:  # bars outside the market: not this env's own observations
            ok = False
        if ok:
            self.probe = None
            self.deciding = False
        else:
            self._fall_back(k, "its observations differ from the market's (wrapped env?)")

    def _fall_back(self, k: int, why: str) -> None:
        """Switch to dense storage (rows ``0 .. k - 1`` come from the probe buffer)."""
        if self.forced or not self.deciding or self.probe is None:
            raise ValueError(
                f"cannot record observations by reference: {why}; use observations='dense'"
            )
        self.obs = np.empty((self.n, self.capacity + 1, *self.obs_shape), dtype=self.obs_dtype)
        self.obs[:, : k + 1] = self.probe[:, : k + 1]
        self.market = self.probe = None
        self.bars = np.zeros((self.n, 0), dtype=np.int32)  # free the reference buffers
        self.account = np.zeros((self.n, 0, 0), dtype=np.float32)
        self.deciding = False

    def finish_probe(self, k: int) -> None:
        """Decide on the rows recorded so far when the run ended inside the probe."""
        if self.probe is not None and self.market is not None:
            self._decide(k)
        if self.forced:
            self.probe = None

    def _spot_check(self, k: int, obs: np.ndarray) -> None:
        env = k % self.n
        if not _same_bits(self._rebuilt(slice(k, k + 1), env), obs[env : env + 1]):
            raise ValueError(
                f"observation of env {env} at vector step {k} differs from its market "
                "reference although the first steps matched; record with observations='dense'"
            )

    def observation_prefixes(self, n_obs: np.ndarray) -> np.ndarray | ObservationReferences:
        """The first ``n_obs[i]`` observation rows of every env, env-major (see below)."""
        if self.market is None:
            return self.take_observation_prefixes(n_obs)
        rows = self.capacity + 1
        keep = np.arange(rows)[None, :] < n_obs[:, None]
        return ObservationReferences(self.market, self.bars[keep], self.account[keep])

    def take_observation_prefixes(self, n_obs: np.ndarray) -> np.ndarray:
        """The first ``n_obs[i]`` observations of every env, concatenated env-major.

        Compacts the buffer in place (one ``memmove`` per env block, no new memory: fresh pages
        cost more than the copy) and returns a view of its head; the buffer is consumed.
        """
        rows = self.capacity + 1
        assert self.obs is not None
        flat = self.obs.reshape(self.n * rows, *self.obs.shape[2:])
        if np.all(n_obs == rows):
            return flat
        row_bytes = flat.strides[0]
        base = flat.ctypes.data
        dst = 0
        for i, count in enumerate(n_obs.tolist()):
            src = i * rows
            if count and dst != src:
                ctypes.memmove(base + dst * row_bytes, base + src * row_bytes, count * row_bytes)
            dst += count
        return flat[:dst]

    def record_infos(self, k: int, infos: dict[str, Any]) -> None:
        for key, dtype in _INFO_DTYPES.items():
            if key not in infos:
                continue
            value = np.asarray(infos[key])
            if value.dtype.kind == "M":
                value = value.astype("datetime64[ns]").view(np.int64)
            if key not in self.infos:
                if k > 0:  # an info that appears late cannot be recorded consistently
                    continue
                self.infos[key] = np.zeros((self.n, self.capacity), dtype=dtype)
            self.infos[key][:, k] = value


# --------------------------------------------------------------------------------------------
# Episode splitting (vectorised)
# --------------------------------------------------------------------------------------------


def _split(
    buf: _Buffers, n_taken: int, n_steps: int | None, n_episodes: int | None
) -> dict[str, Any]:
    """Cut the recorded ``(N, K)`` streams into episodes (see the module docstring)."""
    n, k = buf.n, n_taken
    terminated = buf.terminated[:, :k]
    truncated = buf.truncated[:, :k]
    done = terminated | truncated
    valid = np.ones((n, k), dtype=bool)
    valid[:, 1:] = ~done[:, :-1]  # the step after a done is an autoreset step
    done &= valid

    if n_episodes is not None:
        # Keep the first n_episodes episodes to finish (by step, then env index).
        steps, envs = np.nonzero(done.T)
        chosen = envs[:n_episodes]
        per_env = np.bincount(chosen, minlength=n)
        episode_no: np.ndarray = (
            np.cumsum(done, axis=1) - done
        )  # episode index of each step in its env
        keep = valid & (episode_no < per_env[:, None])
    else:
        keep = valid.copy()
        total = int(keep.sum())
        excess = total - int(n_steps or 0)
        if excess > 0:  # drop the last env's transitions of the final step
            last = np.flatnonzero(keep[:, k - 1])[-excess:]
            keep[last, k - 1] = False
    if not keep.any():
        raise ValueError("no transition was recorded; increase n_steps or n_episodes")

    # Episode ends: a done step, or the last kept step of an env (a cut -> truncation).
    counts = keep.sum(axis=1)
    ends = done & keep
    cut_envs = np.flatnonzero(counts > 0)
    last_k = np.where(keep, np.arange(k)[None, :], -1).max(axis=1)
    cut = np.zeros((n, k), dtype=bool)
    cut[cut_envs, last_k[cut_envs]] = True
    cut &= ~ends
    ends |= cut

    flat_keep = keep.ravel()
    steps_idx = np.flatnonzero(flat_keep)
    end_flags = ends.ravel()[steps_idx]
    end_positions = np.flatnonzero(end_flags)
    lengths = np.diff(np.concatenate(([-1], end_positions))).astype(np.int64)

    # Observations: rows 0 .. last_k + 1 of every env with kept steps (a prefix of its stream).
    n_obs = np.where(counts > 0, last_k + 2, 0)
    buf.finish_probe(k)
    observations = buf.observation_prefixes(n_obs)

    def take(a: np.ndarray) -> np.ndarray:
        a = a[:, :k]
        return a.reshape(n * k, *a.shape[2:])[steps_idx]

    truncations = take(truncated) | cut.ravel()[steps_idx]
    return {
        "observations": observations,
        "actions": take(buf.actions),
        "rewards": take(buf.rewards),
        "terminations": take(terminated),
        "truncations": truncations,
        "episode_lengths": lengths,
        "infos": {key: take(v) for key, v in buf.infos.items()},
    }


# --------------------------------------------------------------------------------------------
# Loops
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


def _run_vector(
    env: Any,
    policy: Any,
    n_steps: int | None,
    n_episodes: int | None,
    seed: int,
    progress: bool,
    deterministic: bool,
    obs_mode: str = "auto",
) -> tuple[_Buffers, int]:
    n = int(env.num_envs)
    space = env.single_action_space
    continuous = isinstance(space, gym.spaces.Box)
    act_shape = tuple(space.shape or ()) if continuous else ()
    buf = _Buffers(
        n,
        _capacity(env, n, n_steps, n_episodes),
        env.single_observation_space,
        continuous,
        act_shape,
        market_reference(env),
        obs_mode,
    )
    obs, reset_infos = env.reset(seed=seed)
    buf.record_observations(0, obs, reset_infos)
    state = None
    episode_start = np.ones(n, dtype=bool)
    resetting = np.zeros(n, dtype=bool)
    recorded = finished = 0
    k = 0
    by_steps = n_steps is not None
    budget = int(n_steps if n_steps is not None else n_episodes or 0)
    with _progress(budget, "step" if by_steps else "episode", progress) as bar:
        while True:
            buf.ensure(k)
            action, state = policy.predict(
                obs, state=state, episode_start=episode_start, deterministic=deterministic
            )
            action = _normalise_actions(action, n, continuous, act_shape)
            buf.actions[:, k] = action
            obs, reward, terminated, truncated, infos = env.step(action)
            buf.record_observations(k + 1, obs, infos)
            buf.rewards[:, k] = reward
            buf.terminated[:, k] = terminated
            buf.truncated[:, k] = truncated
            buf.record_infos(k, infos)
            k += 1
            n_valid = n - int(np.count_nonzero(resetting))
            done = (terminated | truncated) & ~resetting
            episode_start = resetting
            resetting = terminated | truncated
            if by_steps:
                recorded += n_valid
                bar.update(n_valid)
                if recorded >= budget:
                    break
            else:
                new = int(np.count_nonzero(done))
                finished += new
                if new:
                    bar.update(new)
                if finished >= budget:
                    break
    return buf, k


def _run_single(
    env: gym.Env,
    policy: Any,
    n_steps: int | None,
    n_episodes: int | None,
    seed: int,
    progress: bool,
    deterministic: bool,
    obs_mode: str = "auto",
) -> tuple[_Buffers, int]:
    """A single env run with the vector env's NEXT_STEP semantics (N = 1)."""
    space = env.action_space
    continuous = isinstance(space, gym.spaces.Box)
    act_shape = tuple(space.shape or ()) if continuous else ()
    buf = _Buffers(
        1,
        _capacity(env, 1, n_steps, n_episodes),
        env.observation_space,
        continuous,
        act_shape,
        market_reference(env),
        obs_mode,
    )
    obs, reset_infos = env.reset(seed=seed)
    buf.record_observations(0, np.asarray(obs)[None], {k: [v] for k, v in reset_infos.items()})
    state = None
    episode_start = np.ones(1, dtype=bool)
    resetting = False
    recorded = finished = 0
    k = 0
    by_steps = n_steps is not None
    budget = int(n_steps if n_steps is not None else n_episodes or 0)
    with _progress(budget, "step" if by_steps else "episode", progress) as bar:
        while True:
            buf.ensure(k)
            action, state = policy.predict(
                obs, state=state, episode_start=episode_start, deterministic=deterministic
            )
            action = _normalise_actions(action, 1, continuous, act_shape)
            buf.actions[0, k] = action[0]
            if resetting:  # the autoreset step: action ignored, reset obs, reward 0
                obs, infos = env.reset()
                reward, terminated, truncated = 0.0, False, False
            else:
                obs, raw_reward, terminated, truncated, infos = env.step(
                    action[0] if continuous else int(action[0])
                )
                reward = float(raw_reward)
            buf.record_observations(
                k + 1, np.asarray(obs)[None], {key: [v] for key, v in infos.items()}
            )
            buf.rewards[0, k] = reward
            buf.terminated[0, k] = terminated
            buf.truncated[0, k] = truncated
            buf.record_infos(k, {key: [v] for key, v in infos.items()})
            k += 1
            was_resetting = resetting
            episode_start = np.array([was_resetting])
            resetting = bool(terminated or truncated)
            if by_steps:
                if not was_resetting:
                    recorded += 1
                    bar.update(1)
                if recorded >= budget:
                    break
            elif resetting:
                finished += 1
                bar.update(1)
                if finished >= budget:
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


def _check_budget(name: str, value: Any) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1
    ):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def collect(
    env: Any,
    policy: Any,
    n_steps: int | None = None,
    n_episodes: int | None = None,
    seed: int = 0,
    progress: bool = True,
    *,
    deterministic: bool = True,
    metadata: dict[str, Any] | None = None,
    observations: str = "auto",
    out: str | os.PathLike | None = None,
    shard_steps: int = 1_000_000,
    resume: bool = True,
) -> TrajectoryDataset:
    """Run ``policy`` on ``env`` and return the recorded :class:`TrajectoryDataset`.

    Args:
        env: a gymnasium vector env with NEXT_STEP autoreset (``gym.make_vec("TradingEnv-v0",
            num_envs=N)``, seeded ``seed + i``) or a single env (``gym.make(...)``).
        policy: anything with SB3's ``predict(obs, state, episode_start, deterministic)``; with a
            vector env it gets the ``(N, D)`` batch. Recurrent state is passed back each step;
            ``episode_start[i]`` is True on the first step of each of env i's episodes. With
            ``out``, also a factory ``policy(env, seed) -> policy`` called once per shard (what
            makes a resumed collection equal an uninterrupted one for a stochastic policy).
        n_steps: record exactly this many transitions (episodes still running at the end are
            cut and marked truncated, their final observation kept).
        n_episodes: record the first ``n_episodes`` episodes to finish (running ones dropped).
        seed: ``env.reset(seed=seed)``.
        progress: show a tqdm progress bar (steps or episodes, with an ETA).
        deterministic: passed to ``policy.predict``.
        metadata: extra metadata keys (override the recorded ones).
        observations: ``"auto"`` (default) records a quantgym env's observations by reference
            (bar + account features, market features once) after checking bit for bit on the
            first steps that they are the env's own, else densely; ``"dense"`` always stores
            them whole; ``"reference"`` insists (``ValueError`` when impossible).
        out: a directory: collect ``n_steps`` in independent shards of ``shard_steps``
            transitions (shard ``j`` resets the env with seed ``seed + j * num_envs``), write
            each as it completes (bounded memory) and return the dataset loaded from disk;
            see :func:`quantgym.datasets.shards.collect_sharded`.
        shard_steps: transitions per shard with ``out``.
        resume: with ``out``, keep the verified shards already there and collect only the
            missing ones.

    Recorded per step: observations (final observation of every episode kept), actions,
    rewards, terminations, truncations and infos ``equity``, ``position``, ``bar``,
    ``timestamp`` (int64 ns) and ``regime`` (synthetic regime markets; by reference ``bar``,
    ``timestamp`` and ``regime`` are derived from the market when they equal it on every
    step). Metadata: env id and kwargs, data name, fingerprint and date range, behaviour
    policy name and params, seed, created-at and package version.
    """
    if observations not in OBSERVATION_MODES:
        raise ValueError(f"observations must be one of {OBSERVATION_MODES}, got {observations!r}")
    if out is not None:
        from quantgym.datasets.shards import collect_sharded

        if n_steps is None or n_episodes is not None:
            raise ValueError("collect(out=...) needs n_steps (and no n_episodes)")
        return collect_sharded(
            env,
            policy,
            out,
            n_steps=n_steps,
            shard_steps=shard_steps,
            seed=seed,
            progress=progress,
            deterministic=deterministic,
            metadata=metadata,
            observations=observations,
            resume=resume,
        )
    if (n_steps is None) == (n_episodes is None):
        raise ValueError("give exactly one of n_steps or n_episodes")
    _check_budget("n_steps", n_steps)
    _check_budget("n_episodes", n_episodes)
    if not hasattr(policy, "predict"):
        raise ValueError(
            f"policy must have a predict(obs, state, episode_start, deterministic) method, got {type(policy).__name__}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    args = (policy, n_steps, n_episodes, int(seed), progress, deterministic, observations)
    if isinstance(env, gym.vector.VectorEnv):
        buf, k = _run_vector(env, *args)
        n_envs = int(env.num_envs)
    elif isinstance(env, gym.Env):
        buf, k = _run_single(env, *args)
        n_envs = 1
    else:
        raise ValueError(f"env must be a gymnasium Env or VectorEnv, got {type(env).__name__}")
    arrays = _split(buf, k, n_steps, n_episodes)
    del buf
    space = env.single_action_space if isinstance(env, gym.vector.VectorEnv) else env.action_space
    extra = {
        "n_envs": n_envs,
        "action_space": _action_space_dict(space),
        "collect": {
            "n_steps": n_steps,
            "n_episodes": n_episodes,
            "deterministic": bool(deterministic),
        },
    }
    meta = _metadata(env, policy, int(seed), arrays["infos"], extra)
    derived = _derive_infos(arrays)
    meta.update(metadata or {})
    return TrajectoryDataset(metadata=meta, derived_infos=derived, **arrays)
