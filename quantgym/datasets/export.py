"""Export a :class:`~quantgym.datasets.trajectory.TrajectoryDataset` to d3rlpy and Minari.

Both libraries are imported inside the functions: d3rlpy pulls in torch, and Minari is an
optional extra (``pip install quantgym[minari]``).
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import gymnasium as gym

    from quantgym.datasets.trajectory import TrajectoryDataset

__all__ = [
    "export_memory_bytes",
    "gym_action_space",
    "gym_observation_space",
    "to_d3rlpy",
    "to_minari",
]

logger = logging.getLogger(__name__)
_CHUNK_BYTES = 64 * 2**20  # observations are gathered 64 MiB at a time
_PROGRESS_STEPS = 1_000_000  # progress=None shows a bar from this many steps on


def _n_extra_rows(dataset: TrajectoryDataset) -> int:
    ends = np.cumsum(dataset.episode_lengths)
    return int((dataset.truncations & ~dataset.terminations)[ends - 1].sum())


def export_memory_bytes(
    dataset: TrajectoryDataset, target: str = "d3rlpy", *, keep_final_observation: bool = True
) -> int:
    """Bytes the arrays handed to ``target`` (``"d3rlpy"`` or ``"minari"``) will take.

    d3rlpy: float32 observations, actions, float32 rewards/terminals/timeouts for ``N`` rows
    (+ one per truncated episode with ``keep_final_observation``). Minari: every episode's
    ``L + 1`` observations plus actions, rewards, flags and infos, built one episode at a time
    but all held until the HDF5 file is written.
    """
    dim = int(np.prod(dataset.observation_shape, dtype=np.int64))
    action_bytes = int(np.prod(dataset.actions.shape[1:], dtype=np.int64)) * (
        8 if dataset.is_discrete else 4
    )
    if target == "d3rlpy":
        rows = dataset.n_steps + (_n_extra_rows(dataset) if keep_final_observation else 0)
        return int(rows * (4 * dim + action_bytes + 12))
    if target == "minari":
        info_bytes = sum(v.itemsize * v[:1].size for v in dataset.infos.values())
        obs_rows = dataset.n_steps + dataset.n_episodes
        obs_bytes = obs_rows * dim * dataset.observations_at(slice(0, 1)).dtype.itemsize
        return int(obs_bytes + dataset.n_steps * (action_bytes + 8 + 2 + info_bytes))
    raise ValueError(f"target must be 'd3rlpy' or 'minari', got {target!r}")


def _announce(what: str, n_bytes: int, show: bool) -> None:
    message = f"{what}: materialising about {n_bytes / 2**30:.2f} GiB"
    logger.info(message)
    if show:
        print(message, file=sys.stderr)


def _show(progress: bool | None, dataset: TrajectoryDataset) -> bool:
    return dataset.n_steps >= _PROGRESS_STEPS if progress is None else bool(progress)


def _gather_observations(
    dataset: TrajectoryDataset, rows: np.ndarray, show: bool, desc: str
) -> np.ndarray:
    """``dataset.observations[rows]`` as float32, filled chunk by chunk into one array."""
    dim = int(np.prod(dataset.observation_shape, dtype=np.int64))
    out = np.empty((rows.shape[0], *dataset.observation_shape), dtype=np.float32)
    flat = out.reshape(rows.shape[0], dim)
    chunk = max(1, _CHUNK_BYTES // (4 * max(dim, 1)))
    from tqdm.auto import tqdm

    with tqdm(total=int(rows.shape[0]), desc=desc, unit="row", disable=not show) as bar:
        for lo in range(0, rows.shape[0], chunk):
            hi = min(lo + chunk, rows.shape[0])
            flat[lo:hi] = dataset.observations_at(rows[lo:hi]).reshape(hi - lo, dim)
            bar.update(hi - lo)
    return out


def gym_action_space(dataset: TrajectoryDataset) -> gym.spaces.Space:
    """The Gymnasium action space recorded in ``dataset.metadata['action_space']``."""
    from gymnasium import spaces

    space = dataset.action_space
    if space["type"] == "discrete":
        return spaces.Discrete(int(space["n"]))
    shape = tuple(int(d) for d in space["shape"])
    low = float(space.get("low", -1.0))
    high = float(space.get("high", 1.0))
    return spaces.Box(low=low, high=high, shape=shape, dtype=np.float32)


def gym_observation_space(dataset: TrajectoryDataset) -> gym.spaces.Box:
    """An unbounded ``Box`` with the dataset's observation shape and dtype."""
    from gymnasium import spaces

    dtype = dataset.observations_at(slice(0, 1)).dtype
    if dtype.kind != "f":
        raise ValueError(f"observations must be floating point to build a Box space, got {dtype}")
    box_dtype = np.float32 if dtype == np.float32 else np.float64
    return spaces.Box(low=-np.inf, high=np.inf, shape=dataset.observation_shape, dtype=box_dtype)


def to_d3rlpy(
    dataset: TrajectoryDataset, *, keep_final_observation: bool = True, progress: bool | None = None
) -> Any:
    """A ``d3rlpy.dataset.MDPDataset`` with the same episodes and transitions.

    d3rlpy stores ``L`` observations per episode and, for an episode that ends in a timeout,
    drops its last transition (it has no next observation). With
    ``keep_final_observation=True`` (default) every truncated episode gets one extra row
    holding its final observation, a copy of its last action and reward 0, flagged as the
    timeout; d3rlpy then keeps all ``L`` transitions with the true next observation
    (``transition_count == dataset.n_steps``), and episode returns are unchanged.
    Terminated episodes need no extra row (d3rlpy bootstraps nothing after a terminal).
    A step both terminated and truncated counts as terminal. With
    ``keep_final_observation=False`` the arrays are passed as they are and each truncated
    episode loses its last transition in d3rlpy.

    Discrete datasets get ``ActionSpace.DISCRETE`` with ``action_size = n``; continuous ones
    ``ActionSpace.CONTINUOUS`` with ``action_size`` = the action dimension.

    Observations are gathered in chunks into one float32 array (by-reference datasets never
    hold a second copy); the memory needed (:func:`export_memory_bytes`) is logged first, and
    printed with a progress bar when ``progress`` (default: from 1M steps on).
    """
    from quantgym.compat import quiet_legacy_gym

    quiet_legacy_gym()
    from d3rlpy.constants import ActionSpace
    from d3rlpy.dataset import MDPDataset

    terminal = dataset.terminations
    timeout = dataset.truncations & ~terminal
    actions = dataset.actions
    if dataset.is_discrete:
        action_space, action_size = ActionSpace.DISCRETE, int(dataset.n_actions or 1)
        actions = actions.astype(np.int64, copy=False)
    else:
        action_space = ActionSpace.CONTINUOUS
        action_size = int(np.prod(actions.shape[1:], dtype=np.int64))
        actions = actions.reshape(actions.shape[0], action_size).astype(np.float32, copy=False)

    show = _show(progress, dataset)
    _announce(
        "to_d3rlpy",
        export_memory_bytes(dataset, "d3rlpy", keep_final_observation=keep_final_observation),
        show,
    )
    obs_rows = dataset.observation_index()
    rewards = dataset.rewards.astype(np.float32)
    terminals = terminal.astype(np.float32)
    timeouts = timeout.astype(np.float32)
    if keep_final_observation:
        ends = np.cumsum(dataset.episode_lengths)  # one past each episode's last step
        truncated_ends = ends[timeout[ends - 1]]
        final_rows = truncated_ends + np.flatnonzero(timeout[ends - 1])  # final obs rows
        # Insert the extra row after each truncated episode's last step.
        obs_rows = np.insert(obs_rows, truncated_ends, final_rows)
        actions = np.insert(actions, truncated_ends, actions[truncated_ends - 1], axis=0)
        rewards = np.insert(rewards, truncated_ends, 0.0)
        terminals = np.insert(terminals, truncated_ends, 0.0)
        timeouts[truncated_ends - 1] = 0.0
        timeouts = np.insert(timeouts, truncated_ends, 1.0)
    observations = _gather_observations(dataset, obs_rows, show, "to_d3rlpy")
    return MDPDataset(
        observations=observations,
        actions=actions,
        rewards=rewards,
        terminals=terminals,
        timeouts=timeouts,
        action_space=action_space,
        action_size=action_size,
    )


def _import_minari() -> Any:
    try:
        import minari
    except ImportError as exc:
        raise ValueError(
            f"to_minari needs the optional 'minari' package ({exc}); "
            "install it with `pip install quantgym[minari]`"
        ) from exc
    return minari


def to_minari(
    dataset: TrajectoryDataset,
    dataset_id: str,
    *,
    author: str = "quantgym",
    author_email: str = "unknown",
    code_permalink: str = "https://github.com/quantgym/quantgym",
    description: str | None = None,
    algorithm_name: str | None = None,
    progress: bool | None = None,
) -> Any:
    """Write a Minari dataset (HDF5, under ``$MINARI_DATASETS_PATH``) and return it.

    ``dataset_id`` follows Minari's ``(namespace/)name-v<version>`` form; load it back with
    ``minari.load_dataset(dataset_id)``. Observations keep all ``L + 1`` rows per episode
    (Minari's convention), actions/rewards/terminations/truncations ``L``. Infos are the
    per-step arrays (``L`` rows, no reset info); ``timestamp`` is stored as int64 ns since the
    epoch because HDF5 has no datetime type. The quantgym metadata is kept as a JSON string
    under the Minari metadata key ``quantgym_metadata``. Needs ``pip install quantgym[minari]``.
    Episodes are materialised one at a time (progress bar when ``progress``, default from 1M
    steps on); the memory Minari's buffers will need is logged first.
    """
    minari = _import_minari()
    from minari.data_collector import EpisodeBuffer
    from tqdm.auto import tqdm

    metadata = dataset.metadata
    show = _show(progress, dataset)
    _announce("to_minari", export_memory_bytes(dataset, "minari"), show)
    buffers = []
    episodes = tqdm(
        dataset.iter_episodes(), total=dataset.n_episodes, desc="to_minari", disable=not show
    )
    for i, episode in enumerate(episodes):
        infos = {
            name: (
                values.astype("datetime64[ns]").view(np.int64)
                if values.dtype.kind == "M"
                else values
            )
            for name, values in episode.infos.items()
        }
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=np.asarray(episode.observations),
                actions=np.asarray(episode.actions),
                rewards=np.asarray(episode.rewards),
                terminations=np.asarray(episode.terminations),
                truncations=np.asarray(episode.truncations),
                infos=infos or None,
            )
        )
    if description is None:
        description = (
            f"quantgym {metadata.get('env_id') or 'TradingEnv'} trajectories of behavior policy "
            f"{metadata.get('behavior_policy')!r} (seed {metadata.get('seed')!r})"
        )
    with warnings.catch_warnings():
        # Minari warns about env_spec/eval_env being None: the env id and kwargs live in
        # quantgym_metadata instead, because rebuilding the env needs quantgym's data.
        warnings.simplefilter("ignore", UserWarning)
        result = minari.create_dataset_from_buffers(
            dataset_id=dataset_id,
            buffer=buffers,
            env=None,
            algorithm_name=algorithm_name or str(metadata.get("behavior_policy") or "unknown"),
            author=author,
            author_email=author_email,
            code_permalink=code_permalink,
            action_space=gym_action_space(dataset),
            observation_space=gym_observation_space(dataset),
            description=description,
        )
    result.storage.update_metadata({"quantgym_metadata": json.dumps(metadata)})
    return result
