"""Recording buffers of a rollout and the cut of its streams into episodes.

A rollout of ``N`` envs for ``K`` steps is recorded env-major into preallocated ``(N, K, ...)``
arrays (:class:`RolloutBuffers`), so each env's stream of observations is contiguous; they
grow by doubling when the run is longer than expected. Observations of a quantgym env are
kept by reference (bar + account features, :mod:`quantgym.datasets.storage`) once the first
steps prove, bit for bit, that the env's own observations are what was recorded.

:func:`cut_episodes` turns the streams into episodes with vectorised numpy, under gymnasium's
NEXT_STEP autoreset: the step after env ``i`` reported done is its autoreset step (action
ignored, reward 0) and is dropped, and each episode keeps its final observation. Every
observation of an env's stream then belongs to exactly one episode (the final observation is
the input of the dropped autoreset step, whose output is the next episode's first
observation), so the dataset's observations are a prefix of each env's stream: no per-step
per-env Python loop anywhere.
"""

from __future__ import annotations

import ctypes
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from quantgym.datasets.storage import MarketReference, ObservationReferences

__all__ = [
    "OBSERVATION_MODES",
    "RECORDED_INFO_DTYPES",
    "STANDARD_INFO_KEYS",
    "EpisodeCut",
    "cut_episodes",
    "RolloutBuffers",
]

RECORDED_INFO_DTYPES: dict[str, Any] = {
    "equity": np.float64,
    "position": np.float64,
    "bar": np.int64,
    "timestamp": np.int64,  # ns since the epoch
    "regime": np.int64,
}
"""Per-step infos a rollout records, with their stored dtypes."""

STANDARD_INFO_KEYS = tuple(RECORDED_INFO_DTYPES)
"""Per-step info arrays a quantgym collector records (``regime`` on synthetic markets only)."""


# --------------------------------------------------------------------------------------------
# Episodes of NEXT_STEP autoreset streams
# --------------------------------------------------------------------------------------------


class EpisodeCut(NamedTuple):
    """Where the episodes of ``(N, K)`` env-major streams are (see :func:`cut_episodes`)."""

    steps: np.ndarray  # (n,) flat indices into the (N * K) steps of the kept transitions
    episode_lengths: np.ndarray  # (E,) int64
    n_observations: np.ndarray  # (N,) observation rows of each env's stream in the dataset
    terminations: np.ndarray  # (n,) bool
    truncations: np.ndarray  # (n,) bool, episodes cut by the end of the rollout included


def cut_episodes(
    terminated: np.ndarray,
    truncated: np.ndarray,
    n_steps: int | None = None,
    n_episodes: int | None = None,
) -> EpisodeCut:
    """Episodes of ``(N, K)`` env-major done flags of a NEXT_STEP autoreset rollout.

    Autoreset steps are dropped. ``n_episodes``: keep the first ``n_episodes`` episodes to
    finish (by step, then env index). ``n_steps``: keep the first ``n_steps`` transitions (the
    last step's excess dropped from the last envs). Neither: keep every transition. Episodes
    still running at the end are cut and marked truncated. Transitions are ordered env by
    env, then in time.
    """
    n, k = terminated.shape
    done = terminated | truncated
    valid = np.ones((n, k), dtype=bool)
    valid[:, 1:] = ~done[:, :-1]  # the step after a done is an autoreset step
    done &= valid

    if n_episodes is not None:
        chosen = np.nonzero(done.T)[1][:n_episodes]  # env of each finished episode, in order
        per_env = np.bincount(chosen, minlength=n)
        episode_no = np.cumsum(done, axis=1) - done  # episode index of each step in its env
        keep = valid & (episode_no < per_env[:, None])
    else:
        keep = valid.copy()
        excess = int(keep.sum()) - n_steps if n_steps is not None else 0
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

    steps = np.flatnonzero(keep.ravel())
    end_positions = np.flatnonzero(ends.ravel()[steps])
    lengths = np.diff(np.concatenate(([-1], end_positions))).astype(np.int64)
    # Observations: rows 0 .. last_k + 1 of every env with kept steps (a prefix of its stream).
    n_obs = np.where(counts > 0, last_k + 2, 0)
    return EpisodeCut(
        steps=steps,
        episode_lengths=lengths,
        n_observations=n_obs,
        terminations=terminated.ravel()[steps],
        truncations=truncated.ravel()[steps] | cut.ravel()[steps],
    )


# --------------------------------------------------------------------------------------------
# Recording buffers
# --------------------------------------------------------------------------------------------


_PROBE_STEPS = 8  # vector steps recorded both ways before choosing by-reference storage
OBSERVATION_MODES = ("auto", "reference", "dense")


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality (NaN payloads and signed zeros included)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


class RolloutBuffers:
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
        """Store the :data:`RECORDED_INFO_DTYPES` infos of step ``k`` (``datetime64`` as int64
        ns); an info missing from step 0 is not recorded."""
        for key, dtype in RECORDED_INFO_DTYPES.items():
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

    def episodes(self, n_taken: int, n_steps: int | None, n_episodes: int | None) -> dict[str, Any]:
        """The ``TrajectoryDataset`` arrays of the first ``n_taken`` vector steps (see
        :func:`cut_episodes`); the observation buffer is consumed."""
        k = n_taken
        cut = cut_episodes(self.terminated[:, :k], self.truncated[:, :k], n_steps, n_episodes)
        self.finish_probe(k)
        observations = self.observation_prefixes(cut.n_observations)

        def take(a: np.ndarray) -> np.ndarray:
            a = a[:, :k]
            return a.reshape(self.n * k, *a.shape[2:])[cut.steps]

        return {
            "observations": observations,
            "actions": take(self.actions),
            "rewards": take(self.rewards),
            "terminations": cut.terminations,
            "truncations": cut.truncations,
            "episode_lengths": cut.episode_lengths,
            "infos": {key: take(v) for key, v in self.infos.items()},
        }
