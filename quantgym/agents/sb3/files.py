"""The files of a saved SB3 agent that are read without unpickling, and resuming from them.

``model.zip``'s ``data`` entry is read as plain JSON (``read_sb3_data``, ``pickled_entries``;
``pickle_refusal`` words the error for a file that would need unpickling), observation/action
spaces and ``VecNormalize`` statistics are stored as JSON and ``.npz`` (``space_to_json``,
``vecnormalize_writer``, ``read_vecnormalize``), the torch / numpy / Python RNG states
(``global_rng_state``) and the rollout state (last observations, LSTM states and the
:class:`~quantgym.envs.TradingVectorEnv`'s ``get_state()``: ``rollout_state``,
``restore_rollout_state``) let a resumed ``fit`` continue exactly, and
:class:`CheckpointCallback` saves the whole agent every ``every`` steps with ``latest.json``
pointing at the newest (``latest_checkpoint``). Nothing here knows the agent class: the
callback takes anything with ``save(path)``. This module imports torch: it is only imported
when an SB3 agent is built or resumed.
"""

from __future__ import annotations

import json
import os
import random
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from gymnasium import spaces

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before SB3, which imports legacy gym and its stderr notice
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from quantgym.agents.sb3.envs import SpacesOnlyEnv, trading_vector_env
from quantgym.files import atomic_write_json, read_json
from quantgym.policies.base import AGENT_FILE

__all__ = [
    "CheckpointCallback",
    "read_sb3_data",
    "pickled_entries",
    "pickle_refusal",
    "space_to_json",
    "space_from_json",
    "vecnormalize_writer",
    "read_vecnormalize",
    "read_legacy_vecnormalize",
    "global_rng_state",
    "set_global_rng_state",
    "rollout_state",
    "restore_rollout_state",
    "latest_checkpoint",
    "LATEST_FILE",
]

LATEST_FILE = "latest.json"


def read_sb3_data(zip_path: Path) -> dict[str, Any]:
    """The ``data`` JSON of an SB3 ``model.zip``, parsed as plain JSON (nothing is decoded)."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            raw = archive.read("data")
        data = json.loads(raw)
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{zip_path} is not an SB3 model zip with a 'data' entry: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{zip_path}: 'data' is not a JSON object")
    return data


def pickled_entries(data: Mapping[str, Any]) -> set[str]:
    """Names of the ``data`` entries SB3 stores as base64 cloudpickle (``":serialized:"``)."""
    return {k for k, v in data.items() if isinstance(v, Mapping) and ":serialized:" in v}


def pickle_refusal(file: Path, entries: list[str]) -> str:
    """The error message for ``file`` whose ``entries`` could only be loaded by unpickling."""
    return (
        f"{file} needs unpickling to load ({', '.join(entries)}), which can run any code "
        "stored in the file; quantgym refuses it. If you trust where the file came from, pass "
        "trusted=True (quantgym evaluate --trust)"
    )


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A Box or Discrete space as JSON (bounds as lists; +-inf survive Python's json)."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    raise ValueError(f"cannot save a {type(space).__name__} space (only Box and Discrete)")


def space_from_json(spec: Any, file: Path) -> spaces.Space:
    """Inverse of :func:`space_to_json`; ``ValueError`` naming ``file`` on a bad entry."""
    try:
        if spec["type"] == "Discrete":
            return spaces.Discrete(int(spec["n"]), start=int(spec["start"]))
        if spec["type"] == "Box" and spec["dtype"] in ("float32", "float64"):
            dtype = np.dtype(spec["dtype"])
            low = np.asarray(spec["low"], dtype=dtype).reshape(spec["shape"])
            high = np.asarray(spec["high"], dtype=dtype).reshape(spec["shape"])
            return spaces.Box(low, high, shape=tuple(spec["shape"]), dtype=dtype)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{file}: bad space entry {spec!r}: {exc}") from None
    raise ValueError(f"{file}: unsupported space entry {spec!r}")


_VN_SETTINGS = ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon")


def vecnormalize_writer(vn: VecNormalize) -> Any:
    """A writer for :func:`quantgym.files.atomic_write` that saves ``vn``'s settings and
    running statistics as ``.npz`` (read back by :func:`read_vecnormalize`)."""

    def write(tmp: str) -> None:
        arrays = {f"setting_{k}": np.asarray(getattr(vn, k)) for k in _VN_SETTINGS}
        arrays.update(
            obs_mean=np.asarray(vn.obs_rms.mean),
            obs_var=np.asarray(vn.obs_rms.var),
            obs_count=np.asarray(vn.obs_rms.count, dtype=np.float64),
            ret_mean=np.asarray(vn.ret_rms.mean),
            ret_var=np.asarray(vn.ret_rms.var),
            ret_count=np.asarray(vn.ret_rms.count, dtype=np.float64),
        )
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return write


def read_vecnormalize(file: Path, model: BaseAlgorithm) -> VecNormalize:
    """Rebuild frozen ``VecNormalize`` statistics from ``vecnormalize.npz`` (no pickle)."""
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        settings = {k: arrays[f"setting_{k}"].item() for k in _VN_SETTINGS}
        placeholder = DummyVecEnv(
            [lambda: SpacesOnlyEnv(model.observation_space, model.action_space)]
        )
        vn = VecNormalize(placeholder, training=False, **settings)
        obs_shape = model.observation_space.shape
        if arrays["obs_mean"].shape != obs_shape or arrays["obs_var"].shape != obs_shape:
            raise ValueError(f"statistics of shape {arrays['obs_mean'].shape}, model {obs_shape}")
        vn.obs_rms.mean = arrays["obs_mean"].astype(np.float64)
        vn.obs_rms.var = arrays["obs_var"].astype(np.float64)
        vn.obs_rms.count = float(arrays["obs_count"])
        vn.ret_rms.mean = arrays["ret_mean"].astype(np.float64)
        vn.ret_rms.var = arrays["ret_var"].astype(np.float64)
        vn.ret_rms.count = float(arrays["ret_count"])
    except (KeyError, OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{file} is not a quantgym VecNormalize statistics file: {exc}") from None
    return vn


def read_legacy_vecnormalize(file: Path, model: BaseAlgorithm) -> VecNormalize:
    """SB3's own pickled ``vecnormalize.pkl``, frozen for inference. It unpickles: call it only
    for files the user marked as trusted."""
    placeholder = DummyVecEnv([lambda: SpacesOnlyEnv(model.observation_space, model.action_space)])
    vn = VecNormalize.load(str(file), placeholder)
    vn.training = False
    return vn


def global_rng_state() -> dict[str, Any]:
    """Global torch / numpy / Python RNG states as JSON (what a resumed ``fit`` restores)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - SB3 seeds it
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }


def set_global_rng_state(state: Mapping[str, Any], file: Path) -> None:
    """Restore RNG states from :func:`global_rng_state`; ``ValueError`` naming ``file``."""
    try:
        torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
        name, keys, pos, has_gauss, cached = state["numpy"]
        keys = np.asarray(keys, dtype=np.uint32)
        np.random.set_state((name, keys, pos, has_gauss, cached))  # noqa: NPY002 - SB3 seeds it
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{file}: bad RNG state: {exc}") from None


def rollout_state(model: Any, vec_normalize: VecNormalize | None) -> tuple[dict, list] | None:
    """Arrays and env RNG states that let a resumed ``fit`` continue mid-episode exactly:
    SB3's last observation / episode starts (and LSTM states), VecNormalize's running
    returns and the :class:`~quantgym.envs.TradingVectorEnv`'s ``get_state()``; ``None``
    when ``model`` does not train on one (or has not stepped yet)."""
    env = trading_vector_env(model.get_env()) if model.get_env() is not None else None
    if env is None or model._last_obs is None or not isinstance(model._last_obs, np.ndarray):
        return None
    arrays: dict[str, np.ndarray] = {
        "sb3_last_obs": np.asarray(model._last_obs),
        "sb3_last_episode_starts": np.asarray(model._last_episode_starts),
    }
    lstm = getattr(model, "_last_lstm_states", None)
    if lstm is not None:
        for part in ("pi", "vf"):
            for i, tensor in enumerate(getattr(lstm, part)):
                arrays[f"lstm_{part}_{i}"] = tensor.detach().cpu().numpy()
    if vec_normalize is not None:
        arrays["vn_returns"] = np.asarray(vec_normalize.returns)
    state = env.get_state()
    for name, value in state["accounts"].items():
        arrays[f"{_ENV_PREFIX}{name}"] = value
    for name, value in state["reward"].items():
        arrays[f"{_REWARD_PREFIX}{name}"] = np.asarray(value)
    return arrays, state["rngs"]


# npz key prefixes; "env__t" ... as written since the first checkpoints (the attribute names)
_ENV_PREFIX = "env__"
_REWARD_PREFIX = "reward_"


def restore_rollout_state(model: Any, file: Path, rngs: list) -> bool:
    """Put a checkpoint's rollout state (see :func:`rollout_state`) back into ``model`` and
    its env; ``False`` when the current env cannot take it (then the episodes restart)."""
    env = trading_vector_env(model.get_env())
    if env is None or len(rngs) != env.num_envs:
        return False
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        if arrays["sb3_last_obs"].shape[0] != env.num_envs:
            return False
        env.set_state(
            {
                "accounts": {
                    k[len(_ENV_PREFIX) :]: v for k, v in arrays.items() if k.startswith(_ENV_PREFIX)
                },
                "reward": {
                    k[len(_REWARD_PREFIX) :]: v
                    for k, v in arrays.items()
                    if k.startswith(_REWARD_PREFIX)
                },
                "rngs": rngs,
            }
        )
        venv: Any = model.get_env()
        if "vn_returns" in arrays and isinstance(venv, VecNormalize):
            venv.returns = arrays["vn_returns"].copy()
        model._last_obs = arrays["sb3_last_obs"].copy()
        model._last_episode_starts = arrays["sb3_last_episode_starts"].copy()
        if "lstm_pi_0" in arrays:
            from sb3_contrib.common.recurrent.type_aliases import RNNStates

            def part(name: str) -> tuple[torch.Tensor, ...]:
                n = sum(1 for k in arrays if k.startswith(f"lstm_{name}_"))
                return tuple(torch.from_numpy(arrays[f"lstm_{name}_{i}"]) for i in range(n))

            model._last_lstm_states = RNNStates(part("pi"), part("vf"))
    except (KeyError, OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{file} is not a quantgym rollout state: {exc}") from None
    return True


def latest_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint to resume from: ``path`` itself when it is a saved agent folder, else the
    one named by ``latest.json`` in ``path`` or ``path/checkpoints`` (``quantgym train --out``)."""
    path = Path(path)
    if (path / AGENT_FILE).is_file() and not (path / "checkpoints" / LATEST_FILE).is_file():
        return path
    for directory in (path / "checkpoints", path):
        latest = directory / LATEST_FILE
        if latest.is_file():
            name = read_json(latest).get("path")
            if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
                raise ValueError(f"{latest} does not name a checkpoint folder: {name!r}")
            return directory / name
    raise ValueError(f"{path} holds no checkpoint (no agent.json, no checkpoints/{LATEST_FILE})")


class Saveable(Protocol):
    """Anything with ``save(path)``: what :class:`CheckpointCallback` saves."""

    def save(self, path: str | os.PathLike) -> None: ...


class CheckpointCallback(BaseCallback):
    """Every ``every`` env steps, save the whole agent (``agent.save``: agent.json + model +
    VecNormalize + RNG state) atomically to ``directory/step_<num_timesteps>`` and point
    ``directory/latest.json`` at it.

    A checkpoint is taken at the first rollout boundary at or after each multiple of ``every``
    (after the policy update, so no collected step is half-used) and at the end of training;
    resuming from it (``fit(resume_from=...)``) loses nothing but the steps after it.
    """

    def __init__(self, agent: Saveable, every: int, directory: str | os.PathLike) -> None:
        super().__init__()
        self.agent = agent
        self.every = int(every)
        self.directory = Path(directory)
        self._next = self.every

    def _on_training_start(self) -> None:
        # a resumed run continues the schedule of the run it resumes
        self._next = (self.num_timesteps // self.every + 1) * self.every

    def _maybe_save(self) -> None:
        if self.num_timesteps >= self._next:
            self.save()
            self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_rollout_start(self) -> None:
        self._maybe_save()  # the previous rollout's update is done

    def _on_training_end(self) -> None:
        self._maybe_save()

    def _on_step(self) -> bool:
        return True

    def save(self) -> Path:
        """Save the agent now; returns the checkpoint folder."""
        target = self.directory / f"step_{self.num_timesteps:09d}"
        self.agent.save(target)  # atomic: a crash mid-save leaves the previous checkpoints
        atomic_write_json(
            self.directory / LATEST_FILE,
            {"path": target.name, "num_timesteps": int(self.num_timesteps)},
        )
        return target
