"""The files of a saved SB3 agent that are read without unpickling, and resuming from them.

``model.zip``'s ``data`` entry is read as plain JSON (``read_sb3_data``, ``pickled_entries``),
observation/action spaces and ``VecNormalize`` statistics are stored as JSON and ``.npz``
(``space_to_json``, ``read_vecnormalize``), the torch / numpy / Python RNG states and the
rollout state (last observations, LSTM states, env accounts and RNGs) let a resumed ``fit``
continue exactly, and :class:`CheckpointCallback` saves the whole agent every ``every`` steps
with ``latest.json`` pointing at the newest (``latest_checkpoint``). This module imports torch:
it is only imported when an SB3 agent is built or resumed.
"""

from __future__ import annotations

import json
import os
import random
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces

from quantgym._compat import quiet_legacy_gym

quiet_legacy_gym()  # before SB3, which imports legacy gym and its stderr notice
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from quantgym._io import atomic_write_json, read_json
from quantgym.agents.sb3_envs import _SpacesEnv
from quantgym.envs.unwrap import iter_env_layers
from quantgym.policies.base import AGENT_FILE

if TYPE_CHECKING:
    from quantgym.agents.sb3_agents import SB3Agent

__all__ = [
    "CheckpointCallback",
    "read_sb3_data",
    "pickled_entries",
    "space_to_json",
    "space_from_json",
    "read_vecnormalize",
    "latest_checkpoint",
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


def _refusal(file: Path, entries: list[str]) -> str:
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


def _vecnormalize_writer(vn: VecNormalize) -> Any:
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
        placeholder = DummyVecEnv([lambda: _SpacesEnv(model.observation_space, model.action_space)])
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


def _rng_state() -> dict[str, Any]:
    """Global torch / numpy / Python RNG states as JSON (what a resumed ``fit`` restores)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - SB3 seeds it
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }


def _set_rng_state(state: Mapping[str, Any], file: Path) -> None:
    try:
        torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
        name, keys, pos, has_gauss, cached = state["numpy"]
        keys = np.asarray(keys, dtype=np.uint32)
        np.random.set_state((name, keys, pos, has_gauss, cached))  # noqa: NPY002 - SB3 seeds it
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{file}: bad RNG state: {exc}") from None


def _trading_vector_env(venv: Any) -> Any:
    from quantgym.envs.vector_env import TradingVectorEnv

    for layer in iter_env_layers(venv):
        if isinstance(layer, TradingVectorEnv):
            return layer
    return None


def _rollout_state(model: Any, vec_normalize: VecNormalize | None) -> tuple[dict, list] | None:
    """Arrays and env RNG states that let a resumed ``fit`` continue mid-episode exactly:
    SB3's last observation / episode starts (and LSTM states), VecNormalize's running
    returns and the :class:`~quantgym.envs.TradingVectorEnv` account and reward state."""
    from quantgym.envs.vector_env import _STATE_ARRAYS

    env = _trading_vector_env(model.get_env()) if model.get_env() is not None else None
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
    for name in (*_STATE_ARRAYS, "_autoreset", "_last_fees"):
        arrays[f"env_{name}"] = np.asarray(getattr(env, name))
    for name, value in vars(env._reward_fn).items():
        if isinstance(value, np.ndarray | float) and not isinstance(value, bool):
            arrays[f"reward_{name}"] = np.asarray(value)
    return arrays, [rng.bit_generator.state for rng in env._rngs]


def _restore_rollout_state(model: Any, file: Path, rngs: list) -> bool:
    """Put a checkpoint's rollout state back (see :func:`_rollout_state`); ``False`` when the
    current env cannot take it (then the episodes restart)."""
    env = _trading_vector_env(model.get_env())
    if env is None or len(rngs) != env.num_envs:
        return False
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        if arrays["sb3_last_obs"].shape[0] != env.num_envs:
            return False
        for key, value in arrays.items():
            if key.startswith("env_"):
                setattr(env, key[4:], value.copy())
            elif key.startswith("reward_"):
                setattr(env._reward_fn, key[7:], value.copy() if value.ndim else float(value))
        for rng, state in zip(env._rngs, rngs, strict=True):
            rng.bit_generator.state = state
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


class CheckpointCallback(BaseCallback):
    """Every ``every`` env steps, save the whole agent (agent.json + model + VecNormalize +
    RNG state) atomically to ``directory/step_<num_timesteps>`` and point
    ``directory/latest.json`` at it.

    A checkpoint is taken at the first rollout boundary at or after each multiple of ``every``
    (after the policy update, so no collected step is half-used) and at the end of training;
    resuming from it (``fit(resume_from=...)``) loses nothing but the steps after it.
    """

    def __init__(self, agent: SB3Agent, every: int, directory: str | os.PathLike) -> None:
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
        target = self.directory / f"step_{self.num_timesteps:09d}"
        self.agent.save(target)  # atomic: a crash mid-save leaves the previous checkpoints
        atomic_write_json(
            self.directory / LATEST_FILE,
            {"path": target.name, "num_timesteps": int(self.num_timesteps)},
        )
        return target
