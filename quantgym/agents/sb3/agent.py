"""The machinery the PPO agents on Stable-Baselines3 share (:class:`SB3Agent`): build, fit,
fast predict, save and load; ``ppo_mlp``, ``ppo_lstm`` and ``ppo_transformer`` live in their
own modules of :mod:`quantgym.agents.sb3`.

They train on the native :class:`~quantgym.envs.TradingVectorEnv` through the SB3 adapter
(``quantgym.envs.to_sb3(gym.make_vec("TradingEnv-v0", num_envs=n_envs, **env_kwargs))``),
optionally behind SB3's ``VecNormalize`` (observations only by default). A saved agent is a
directory::

    agent.json         class + config, library versions, SHA-256 of every file (BaseAgent)
    model.zip          the SB3 zip without rollout-only entries; loading reads its ``data``
                       JSON as JSON, rebuilds every pickled entry (policy class, policy
                       kwargs, spaces, schedules) from agent.json/env.json and hands them to
                       SB3 as ``custom_objects``, so no pickle is decoded; the weights and
                       optimizer state (``policy.pth``, ``policy.optimizer.pth``) are read by
                       SB3 with ``torch.load(weights_only=True)``
    vecnormalize.npz   VecNormalize statistics and settings (``np.load(allow_pickle=False)``),
                       when normalising
    env.json           env kwargs, observation/action spaces as JSON, step counter
    train_state.json   torch / numpy / Python RNG states (restored by ``fit(resume_from=...)``)
    rollout_state.npz  last observations, LSTM states and the env's ``get_state()`` (exact resume)

``predict`` with ``deterministic=True`` runs the policy's torch modules directly under
``torch.inference_mode`` (SB3's ``predict`` costs more than the network at batch 1); the
actions and recurrent states are identical to ``model.predict`` (tested). This module imports
torch: it is only imported when one of these agents is built. The file formats are in
:mod:`quantgym.agents.sb3.files`, the env plumbing in :mod:`quantgym.agents.sb3.envs`.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import os
import pickle  # only for its UnpicklingError: nothing here unpickles
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before SB3, which imports legacy gym and its stderr notice
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize, is_vecenv_wrapped
from torch import nn

from quantgym import ENV_ID
from quantgym.agents.base import TrainableAgent
from quantgym.agents.env_kwargs import json_safe_kwargs
from quantgym.agents.observations import (
    ObservationLayout,
    account_feature_offsets,
    episode_start_mask,
)
from quantgym.agents.sb3.envs import env_attr, make_sb3_vec_env
from quantgym.agents.sb3.extractors import RecentBarsExtractor
from quantgym.agents.sb3.files import (
    CheckpointCallback,
    global_rng_state,
    latest_checkpoint,
    pickle_refusal,
    pickled_entries,
    read_legacy_vecnormalize,
    read_sb3_data,
    read_vecnormalize,
    restore_rollout_state,
    rollout_state,
    set_global_rng_state,
    space_from_json,
    space_to_json,
    vecnormalize_writer,
)
from quantgym.agents.sb3.obs_noise import MarketNoiseVecEnv
from quantgym.agents.smoothing import check_action_smoothing, smooth, smoothed_actions
from quantgym.checks import check_optional_positive_int, check_positive_int
from quantgym.files import atomic_write, atomic_write_json, read_json
from quantgym.policies.base import AGENT_FILE

__all__ = [
    "SB3Agent",
    "MODEL_FILE",
    "VECNORMALIZE_FILE",
    "ENV_FILE",
    "TRAIN_STATE_FILE",
    "ROLLOUT_STATE_FILE",
    "TRAINING_ONLY_ENTRIES",
    "REBUILT_ENTRIES",
]

MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.npz"
LEGACY_VECNORMALIZE_FILE = "vecnormalize.pkl"  # SB3's pickle: read only with trusted=True
ENV_FILE = "env.json"
TRAIN_STATE_FILE = "train_state.json"
ROLLOUT_STATE_FILE = "rollout_state.npz"
#: ``model.zip`` entries that are only rollout state: excluded on save, ignored on load.
TRAINING_ONLY_ENTRIES = (
    "_last_obs",
    "_last_episode_starts",
    "_last_original_obs",
    "_last_lstm_states",
    "ep_info_buffer",
    "ep_success_buffer",
)
#: ``model.zip`` entries SB3 pickles that quantgym rebuilds from its own config and env.json.
REBUILT_ENTRIES = frozenset(
    {
        "policy_class",
        "policy_kwargs",
        "observation_space",
        "action_space",
        "learning_rate",
        "lr_schedule",
        "clip_range",
        "clip_range_vf",
        "rollout_buffer_class",
        *TRAINING_ONLY_ENTRIES,
    }
)

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
}


class SB3Agent(TrainableAgent):
    """Common machinery of the PPO agents (build, fit, fast predict, save/load).

    Construct with config fields as keyword arguments (see each ``Config``); an ``env=`` given
    here is what ``fit()`` trains on when called without one (the model is built by ``fit`` or
    :meth:`build`). ``verbose`` is SB3's verbosity. ``fit(env, train_steps=N)`` trains for
    ``N`` env steps (SB3's ``total_timesteps``).
    """

    name: ClassVar[str] = "sb3"
    renamed_config_keys: ClassVar[Mapping[str, str]] = {"total_timesteps": "train_steps"}
    recurrent: ClassVar[bool] = False
    algorithm_class: ClassVar[type[BaseAlgorithm]] = PPO
    policy_name: ClassVar[str] = "MlpPolicy"
    #: The registered env a dict of env kwargs builds (``fit({...})``, ``quantgym train``).
    env_id: ClassVar[str] = ENV_ID

    @dataclasses.dataclass
    class Config:
        """PPO hyperparameters (SB3 names). Defaults are chosen for ``TradingEnv`` on CPU:

        - ``n_envs=16`` vector envs x ``n_steps=128`` = 2048 transitions per update, split in
          ``batch_size=512`` minibatches for ``n_epochs=10`` epochs;
        - ``learning_rate=3e-4`` (constant; ``lr_schedule="linear"`` anneals it to 0 over each
          ``fit``), ``gamma=0.99`` (a ~100-bar horizon, enough for regime
          persistence), ``gae_lambda=0.95``, ``clip_range=0.2``;
        - ``ent_coef=0.01`` keeps the three-position policy exploring early;
        - ``net_arch=[64, 64]`` (tanh) policy/value MLP: per-bar features are already informative;
        - ``normalize_obs=True``: SB3 ``VecNormalize`` on observations only (returns are
          log-returns, already well scaled; ``normalize_reward`` is off), clipped at ``clip_obs``;
        - ``train_steps`` is the budget in env steps ``fit`` uses when called without one
          (SB3's ``total_timesteps``);
        - ``seed`` seeds SB3 (torch, numpy, env), ``device`` is ``"cpu"``: these nets are tiny;
        - ``obs_noise > 0``: Gaussian noise of that standard deviation on the market columns of
          every ``TradingEnv`` observation the policy trains on, never at inference
          (:mod:`quantgym.agents.sb3.obs_noise`); 0 (default) is none;
        - ``action_smoothing`` in ``(0, 1]``: :meth:`predict` decides from an exponential
          moving average of the policy's action probabilities (of its action, for continuous
          actions) with this weight on the newest bar (:mod:`quantgym.agents.smoothing`), a
          decision with a memory of about ``1 / action_smoothing`` bars; training is
          unchanged. 1 is none (the default here; ``ppo_mlp`` and ``ppo_transformer``
          set their own).
        """

        n_envs: int = 16
        n_steps: int = 128
        batch_size: int = 512
        n_epochs: int = 10
        learning_rate: float = 3e-4
        lr_schedule: str = "constant"
        gamma: float = 0.99
        gae_lambda: float = 0.95
        clip_range: float = 0.2
        ent_coef: float = 0.01
        vf_coef: float = 0.5
        max_grad_norm: float = 0.5
        target_kl: float | None = None
        net_arch: list[int] = dataclasses.field(default_factory=lambda: [64, 64])
        activation: str = "tanh"
        normalize_obs: bool = True
        normalize_reward: bool = False
        clip_obs: float = 10.0
        train_steps: int = 200_000
        seed: int | None = 0
        device: str = "cpu"
        obs_noise: float = 0.0
        action_smoothing: float = 1.0

    def __init__(self, config: Any = None, *, env: Any = None, verbose: int = 0, **kwargs: Any):
        super().__init__(config, **kwargs)
        self._validate_config()
        self.verbose = verbose
        self.model: BaseAlgorithm | None = None
        self.vec_normalize: VecNormalize | None = None
        self.env_kwargs: dict[str, Any] | None = None
        self._env = env  # built lazily by fit()/build(): loading for inference stays cheap
        self._obs_norm: tuple[np.ndarray, np.ndarray, float] | None = None
        self._train_state: dict[str, Any] | None = None  # RNG states of a loaded checkpoint

    # -- configuration ---------------------------------------------------------------------
    def _validate_config(self) -> None:
        c = self.config
        for field in ("n_envs", "n_steps", "batch_size", "n_epochs", "train_steps"):
            check_positive_int(field, getattr(c, field))
        if isinstance(c, ObservationLayout):
            c.validate_layout()
        if hasattr(c, "account_features"):
            account_feature_offsets(c.account_features)  # ValueError naming a bad entry
        if not 0.0 < c.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {c.gamma!r}")
        if c.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {c.learning_rate!r}")
        if not (isinstance(c.obs_noise, int | float) and np.isfinite(c.obs_noise)
                and c.obs_noise >= 0):  # fmt: skip
            raise ValueError(f"obs_noise must be a number >= 0, got {c.obs_noise!r}")
        check_action_smoothing(c.action_smoothing)
        if c.lr_schedule not in ("constant", "linear"):
            raise ValueError(f"lr_schedule must be 'constant' or 'linear', got {c.lr_schedule!r}")
        if c.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {c.activation!r}"
            )
        if not all(isinstance(n, int | np.integer) and n > 0 for n in c.net_arch):
            raise ValueError(f"net_arch must be a list of positive layer sizes, got {c.net_arch!r}")

    def _resolve_layout(self, env: VecEnv) -> None:
        """Fill the config's ``window_size``/``n_market_features``/``n_account_features`` from
        the env where unset (they are saved with the config, so a loaded agent needs no env)."""
        self.config.fill_layout(lambda name: env_attr(env, name))

    def _recent_bars_kwargs(self, env: VecEnv) -> dict[str, Any]:
        """Policy kwargs that feed the policy only the newest ``config.recent_bars`` window rows
        (``None``: all of them) and the account features ``config.account_features`` names
        (:class:`RecentBarsExtractor`); the layout is read from ``env`` (or the saved config).
        No kwargs when the config selects every column (SB3's flatten extractor reads them); an
        env that exposes no window layout (not a quantgym env) has no bars to select: the
        policy then reads the whole observation, with a warning."""
        c: Any = self.config
        if c.reads_whole_observation(c.account_features):
            return {}
        try:
            self._resolve_layout(env)
        except ValueError as exc:
            warnings.warn(
                f"recent_bars ignored: {exc}; the policy reads the whole observation", stacklevel=3
            )
            return {}
        n_bars = c.window_size if c.recent_bars is None else c.recent_bars
        if n_bars > c.window_size:
            raise ValueError(f"recent_bars={c.recent_bars} exceeds window_size={c.window_size}")
        return {
            "features_extractor_class": RecentBarsExtractor,
            "features_extractor_kwargs": {
                "n_bars": n_bars,
                "n_market_features": c.n_market_features,
                "n_account_features": c.n_account_features,
                "account_offsets": account_feature_offsets(c.account_features),
            },
        }

    def _policy_kwargs(self, env: VecEnv) -> dict[str, Any]:
        return {
            "net_arch": list(self.config.net_arch),
            "activation_fn": _ACTIVATIONS[self.config.activation],
        }

    def _algorithm_kwargs(self) -> dict[str, Any]:
        c = self.config
        learning_rate: Any = c.learning_rate
        if c.lr_schedule == "linear":  # to 0 at the end of each fit() call
            learning_rate = LinearSchedule(c.learning_rate, 0.0, 1.0)
        return {
            "learning_rate": learning_rate,
            "n_steps": c.n_steps,
            "batch_size": c.batch_size,
            "n_epochs": c.n_epochs,
            "gamma": c.gamma,
            "gae_lambda": c.gae_lambda,
            "clip_range": c.clip_range,
            "ent_coef": c.ent_coef,
            "vf_coef": c.vf_coef,
            "max_grad_norm": c.max_grad_norm,
            "target_kl": c.target_kl,
            "seed": c.seed,
            "device": c.device,
        }

    # -- building and training -------------------------------------------------------------
    def _wrap(self, venv: VecEnv) -> VecEnv:
        """Put ``venv`` behind VecNormalize (reusing learned statistics when there are some)."""
        if isinstance(venv, VecNormalize):
            return venv
        c = self.config
        if c.obs_noise > 0 and not is_vecenv_wrapped(venv, MarketNoiseVecEnv):
            venv = self._market_noise(venv)
        if not is_vecenv_wrapped(venv, VecMonitor):
            venv = VecMonitor(venv)  # episode return/length in SB3's logs and progress
        if self.vec_normalize is not None:
            normalizer = copy.deepcopy(self.vec_normalize)  # drops the old venv (SB3 __getstate__)
            normalizer.set_venv(venv)
            normalizer.training = True
            return normalizer
        if c.normalize_obs or c.normalize_reward:
            return VecNormalize(
                venv,
                norm_obs=c.normalize_obs,
                norm_reward=c.normalize_reward,
                clip_obs=c.clip_obs,
                gamma=c.gamma,
            )
        return venv

    def _market_noise(self, venv: VecEnv) -> VecEnv:
        """``venv`` behind :class:`MarketNoiseVecEnv` (``config.obs_noise``), its noise stream
        at the model's step count (so a resumed run continues it)."""
        market_dim = getattr(env_attr(venv, "layout"), "market_dim", None)
        if self.env_id != ENV_ID or market_dim is None:
            raise ValueError(f"obs_noise needs {ENV_ID} observations (their market columns)")
        steps = 0 if self.model is None else self.model.num_timesteps // max(venv.num_envs, 1)
        seed = 0 if self.config.seed is None else int(self.config.seed)
        return MarketNoiseVecEnv(venv, self.config.obs_noise, int(market_dim), seed, steps)

    def build(self, env: Any) -> SB3Agent:
        """Create the SB3 model for ``env`` (see :func:`make_sb3_vec_env`) without training."""
        venv, env_kwargs = make_sb3_vec_env(env, self.config.n_envs, self.env_id)
        venv = self._wrap(venv)
        if env_kwargs is not None:
            self.env_kwargs = json_safe_kwargs(env_kwargs)
        if self.model is None:
            if (
                not isinstance(venv.observation_space, spaces.Box)
                or venv.observation_space.shape is None
            ):
                raise ValueError(
                    f"env must have a flat Box observation space, got {venv.observation_space}"
                )
            if len(venv.observation_space.shape) != 1:
                raise ValueError(
                    f"env observations must be flat, got shape {venv.observation_space.shape}"
                )
            self.model = self.algorithm_class(
                self.policy_name,
                venv,
                policy_kwargs=self._policy_kwargs(venv),
                verbose=self.verbose,
                **self._algorithm_kwargs(),
            )
        else:
            if venv.num_envs != self.model.n_envs:
                raise ValueError(
                    f"env has {venv.num_envs} sub-envs but the model was trained with "
                    f"{self.model.n_envs} (n_envs); pass an env with the same number"
                )
            self.model.set_env(venv)
        self.vec_normalize = venv if isinstance(venv, VecNormalize) else None
        self._env = env
        self._refresh_inference_cache()
        return self

    def fit(
        self,
        env: Any = None,
        train_steps: int | None = None,
        *,
        progress_bar: bool = True,
        tensorboard_log: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        callback: Any = None,
        resume_from: str | os.PathLike | None = None,
    ) -> SB3Agent:
        """Train for ``train_steps`` env steps (default ``config.train_steps``; SB3's
        ``total_timesteps``).

        :param env: a single env, a ``TradingVectorEnv``, its SB3 adapter, or a dict of
            ``TradingEnv-v0`` kwargs; ``None`` reuses the env given before.
        :param progress_bar: SB3's tqdm/rich progress bar.
        :param tensorboard_log: TensorBoard log directory (needs ``pip install tensorboard``).
        :param checkpoint_every: save the whole agent every this many env steps to
            ``checkpoint_dir/step_<n>`` (atomically, with its agent.json).
        :param callback: extra SB3 callback(s).
        :param resume_from: a checkpoint folder, or a folder with ``latest.json`` (directly or
            in ``checkpoints/``): continue that run with its weights, optimizer state,
            VecNormalize statistics, step counter and RNG state; ``train_steps`` is then
            the run's total, so only the steps left after the checkpoint are trained.
        """
        if resume_from is not None:
            resume_from = latest_checkpoint(resume_from)
            resumed = type(self).load(resume_from)
            self.config = resumed.config
            self.model, self.vec_normalize = resumed.model, resumed.vec_normalize
            self.env_kwargs = resumed.env_kwargs
            self._train_state = resumed._train_state
            if env is None and self._env is None and self.env_kwargs is not None:
                env = dict(self.env_kwargs)
        total = self._train_steps(train_steps, minimum=0)
        if resume_from is not None:
            total = max(total - self.num_timesteps, 0)
        if tensorboard_log is not None and importlib.util.find_spec("tensorboard") is None:
            raise ValueError(
                "tensorboard_log needs TensorBoard, which is not installed: pip install tensorboard"
            )
        callbacks = (
            [] if callback is None else list(callback) if isinstance(callback, list) else [callback]
        )
        every = check_optional_positive_int("checkpoint_every", checkpoint_every)
        if every is not None:
            if checkpoint_dir is None:
                raise ValueError("checkpoint_dir is required with checkpoint_every")
            callbacks.append(CheckpointCallback(self, every, checkpoint_dir))
        if env is not None:
            self.build(env)
        elif self.model is None or self.model.get_env() is None:
            if self._env is None:
                raise ValueError("env is required: pass an env or TradingEnv kwargs to fit()")
            self.build(self._env)
        assert self.model is not None
        if tensorboard_log is not None:
            self.model.tensorboard_log = str(tensorboard_log)
        first = self.model.num_timesteps == 0
        if resume_from is not None:
            checkpoint = Path(resume_from)
            state = self._train_state or {}
            exact = (checkpoint / ROLLOUT_STATE_FILE).is_file() and restore_rollout_state(
                self.model, checkpoint / ROLLOUT_STATE_FILE, state.get("env_rngs", [])
            )
            if not exact and self.config.seed is not None:
                # another env: its episodes restart, seeded from (seed, step) (reproducible)
                self.model.set_random_seed(int(self.config.seed) + self.num_timesteps)
            if self._train_state is not None:
                set_global_rng_state(self._train_state, checkpoint / TRAIN_STATE_FILE)
        self.model.learn(
            total_timesteps=total,
            callback=callbacks or None,
            progress_bar=progress_bar,
            reset_num_timesteps=first,
            tb_log_name=self.name,
        )
        self.model.policy.set_training_mode(False)
        self._refresh_inference_cache()
        return self

    @property
    def num_timesteps(self) -> int:
        """Env steps trained so far."""
        return 0 if self.model is None else int(self.model.num_timesteps)

    # -- inference -------------------------------------------------------------------------
    def _refresh_inference_cache(self) -> None:
        vn: Any = self.vec_normalize
        if vn is not None and vn.norm_obs:
            std = np.sqrt(vn.obs_rms.var + vn.epsilon)
            self._obs_norm = (vn.obs_rms.mean.copy(), std, float(vn.clip_obs))
        else:
            self._obs_norm = None

    def normalize_observation(self, observation: np.ndarray) -> np.ndarray:
        """Apply the training VecNormalize statistics (identical to ``VecNormalize.normalize_obs``)."""
        obs = np.asarray(observation, dtype=np.float32)
        if self._obs_norm is None:
            return obs
        mean, std, clip = self._obs_norm
        return np.clip((obs - mean) / std, -clip, clip).astype(np.float32)

    def _require_model(self) -> BaseAlgorithm:
        if self.model is None:
            raise ValueError(f"{type(self).__name__} has no model yet: call fit(env) or load(path)")
        return self.model

    def _check_observation(self, observation: Any) -> tuple[np.ndarray, bool]:
        obs = np.asarray(observation, dtype=np.float32)
        space: Any = self._require_model().observation_space
        dim = space.shape[0]
        if obs.ndim not in (1, 2) or obs.shape[-1] != dim:
            raise ValueError(f"observation must have shape ({dim},) or (N, {dim}), got {obs.shape}")
        return obs, obs.ndim == 2

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Action for one observation ``(D,)`` or a batch ``(N, D)`` (SB3's signature).

        Observations are raw env observations (normalisation is applied here). Recurrent
        agents take and return ``state`` and reset it where ``episode_start`` is true. With
        ``action_smoothing < 1`` the state is ``(recurrent state or None, moving average)``:
        pass it back on the next step (``None`` and ``episode_start`` restart it).
        """
        weight = float(self.config.action_smoothing)
        if weight != 1.0:
            return self._smoothed_predict(observation, state, episode_start, deterministic, weight)
        return self._predict(observation, state, episode_start, deterministic)

    def _smoothed_predict(
        self,
        observation: np.ndarray,
        state: Any,
        episode_start: np.ndarray | None,
        deterministic: bool,
        weight: float,
    ) -> tuple[np.ndarray, Any]:
        """:meth:`predict` from the moving average of the policy's outputs (``action_smoothing``)."""
        obs, batched = self._check_observation(observation)
        batch = obs if batched else obs[None]
        inner, average = (None, None) if state is None else state
        starts = episode_start_mask(episode_start, batch.shape[0])  # no average yet: a start
        if isinstance(self._require_model().action_space, spaces.Discrete):
            with torch.inference_mode():
                logits, inner = self._actor_output(
                    torch.from_numpy(self.normalize_observation(batch)), inner, episode_start
                )
            actions, average = smoothed_actions(logits, average, starts, weight, deterministic)
        else:
            raw, inner = self._predict(batch, inner, episode_start, deterministic)
            average = smooth(raw.reshape(batch.shape[0], -1), average, starts, weight)
            actions = average.reshape(raw.shape).astype(raw.dtype)
        return (actions if batched else actions[0]), (inner, average)

    def _predict(
        self,
        observation: np.ndarray,
        state: Any,
        episode_start: np.ndarray | None,
        deterministic: bool,
    ) -> tuple[np.ndarray, Any]:
        """:meth:`predict` without action smoothing."""
        model = self._require_model()
        obs, batched = self._check_observation(observation)
        obs = self.normalize_observation(obs)
        if not deterministic:
            return model.predict(obs, state=state, episode_start=episode_start, deterministic=False)
        action_space = model.action_space
        if not isinstance(action_space, spaces.Discrete | spaces.Box):
            return model.predict(obs, state=state, episode_start=episode_start, deterministic=True)
        batch = obs if batched else obs[None]
        with torch.inference_mode():
            out, state = self._actor_output(torch.from_numpy(batch), state, episode_start)
            if isinstance(action_space, spaces.Discrete):
                # same op sequence as torch Categorical(logits).probs -> argmax (SB3's mode)
                logits = out - out.logsumexp(dim=-1, keepdim=True)
                actions = torch.argmax(torch.softmax(logits, dim=-1), dim=1).numpy()
            else:
                actions = out.numpy().reshape((-1, *action_space.shape))
                actions = np.clip(actions, action_space.low, action_space.high)
        if not batched:
            actions = actions.squeeze(axis=0)
        return actions, state

    # -- the differentiable hook of quantgym.agents.perturbation ---------------------------
    @property
    def action_scores_kind(self) -> str | None:
        """What :meth:`action_scores` returns: ``"logits"`` (``Discrete`` actions),
        ``"mean"`` (``Box``: the Gaussian mean before clipping), ``None`` for other spaces."""
        space = self._require_model().action_space
        if isinstance(space, spaces.Discrete):
            return "logits"
        return "mean" if isinstance(space, spaces.Box) else None

    def action_scores(
        self, observation: torch.Tensor, state: Any = None, episode_start: Any = None
    ) -> torch.Tensor:
        """The actor's output ``(N, A)`` for raw observations ``(N, D)`` (float32), the one
        deterministic :meth:`predict` takes its action from, differentiable with respect to
        ``observation``: the training normalisation is applied as in :meth:`predict` (a
        clipped entry has zero gradient); a recurrent agent reads ``state`` and
        ``episode_start`` as :meth:`predict` does, and its new state is discarded."""
        policy: Any = self._require_model().policy
        obs = observation.to(dtype=torch.float32)
        if self._obs_norm is not None:  # in float64, as normalize_observation (same floats)
            mean, std, clip = self._obs_norm
            scaled = (obs.double() - torch.from_numpy(mean)) / torch.from_numpy(std)
            obs = scaled.clamp(-clip, clip).float()
        scores, _ = self._actor_output(obs.to(policy.device), state, episode_start)
        return scores

    def _actor_output(
        self, obs: torch.Tensor, state: Any, episode_start: Any
    ) -> tuple[torch.Tensor, Any]:
        """Action-net output (logits or Gaussian mean) for a ``(N, D)`` batch."""
        policy: Any = self._require_model().policy
        features = policy.pi_features_extractor(obs)
        latent = policy.mlp_extractor.forward_actor(features)
        return policy.action_net(latent), state

    # -- persistence -----------------------------------------------------------------------
    def _save_state(self, path: Path) -> None:
        model: Any = self._require_model()

        def write_model(tmp: str) -> None:
            with open(tmp, "wb") as f:
                model.save(f, exclude=list(TRAINING_ONLY_ENTRIES))

        atomic_write(path / MODEL_FILE, write_model)
        if self.vec_normalize is not None:
            atomic_write(path / VECNORMALIZE_FILE, vecnormalize_writer(self.vec_normalize))
        atomic_write_json(
            path / ENV_FILE,
            {
                "env_kwargs": self.env_kwargs,
                "observation_dim": int(model.observation_space.shape[0]),
                "observation_space": space_to_json(model.observation_space),
                "action_space": space_to_json(model.action_space),
                "num_timesteps": int(model.num_timesteps),
            },
        )
        train_state = global_rng_state()
        rollout = rollout_state(model, self.vec_normalize)
        if rollout is not None:
            arrays, train_state["env_rngs"] = rollout

            def write_rollout(tmp: str) -> None:
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)

            atomic_write(path / ROLLOUT_STATE_FILE, write_rollout)
        atomic_write_json(path / TRAIN_STATE_FILE, train_state)

    def _rebuilt_entries(self, env_meta: Mapping[str, Any], env_file: Path) -> dict[str, Any]:
        """Every pickled entry of ``model.zip``'s ``data``, rebuilt from quantgym's own files."""
        if "observation_space" not in env_meta or "action_space" not in env_meta:
            raise ValueError(
                f"{env_file} has no observation_space/action_space (written by an older "
                "quantgym): pass trusted=True (or --trust) to unpickle them from model.zip"
            )
        algo_kwargs = self._algorithm_kwargs()
        entries: dict[str, Any] = {
            "policy_class": self.algorithm_class.policy_aliases[self.policy_name],
            "policy_kwargs": self._policy_kwargs(None),  # type: ignore[arg-type]
            "observation_space": space_from_json(env_meta["observation_space"], env_file),
            "action_space": space_from_json(env_meta["action_space"], env_file),
            "learning_rate": algo_kwargs["learning_rate"],
            "lr_schedule": None,  # rebuilt from learning_rate by SB3's _setup_model
            "clip_range": algo_kwargs["clip_range"],  # wrapped in a schedule by _setup_model
            "clip_range_vf": None,
            "rollout_buffer_class": None,  # chosen again by _setup_model
        }
        entries.update(dict.fromkeys(TRAINING_ONLY_ENTRIES))
        return entries

    def _load_state(self, path: Path, trusted: bool = False) -> None:
        model_path = path / MODEL_FILE
        if not model_path.is_file():
            raise ValueError(f"{path} has no {MODEL_FILE}")
        env_file = path / ENV_FILE
        env_meta = read_json(env_file) if env_file.is_file() else {}
        data = read_sb3_data(model_path)
        serialized = pickled_entries(data)
        unknown = serialized - REBUILT_ENTRIES
        custom_objects: dict[str, Any] | None
        if trusted and (unknown or "observation_space" not in env_meta):
            custom_objects = None  # plain SB3 / older quantgym file the user chose to trust
        elif unknown:
            raise ValueError(pickle_refusal(model_path, sorted(unknown)))
        else:
            custom_objects = self._rebuilt_entries(env_meta, env_file)
        try:
            model: Any = self.algorithm_class.load(
                model_path, device=self.config.device, custom_objects=custom_objects
            )
        except (RuntimeError, KeyError, ValueError, TypeError, pickle.UnpicklingError) as exc:
            raise ValueError(
                f"{model_path} does not match the config in agent.json: {exc}"
            ) from None
        model.policy.set_training_mode(False)
        self.model = model
        self.vec_normalize = None
        if (path / VECNORMALIZE_FILE).is_file():
            self.vec_normalize = read_vecnormalize(path / VECNORMALIZE_FILE, model)
        elif (path / LEGACY_VECNORMALIZE_FILE).is_file():
            legacy = path / LEGACY_VECNORMALIZE_FILE
            if not trusted:
                raise ValueError(pickle_refusal(legacy, ["VecNormalize (a plain pickle)"]))
            self.vec_normalize = read_legacy_vecnormalize(legacy, model)
        self.env_kwargs = env_meta.get("env_kwargs")
        state_file = path / TRAIN_STATE_FILE
        self._train_state = read_json(state_file) if state_file.is_file() else None
        self._refresh_inference_cache()

    @classmethod
    def load(cls, path: str | os.PathLike, *, trusted: bool = False, **kwargs: Any) -> SB3Agent:
        """Load a saved agent folder (see :meth:`BaseAgent.load`); never unpickles.

        With ``trusted=True`` it also loads a plain SB3 ``.zip`` (or a folder holding one
        without ``agent.json``) and an older quantgym folder, unpickling their entries: only
        for files you trust, since a pickle can run any code.
        """
        path = Path(path)
        if path.is_dir() and (path / AGENT_FILE).is_file():
            return super().load(path, trusted=trusted, **kwargs)  # type: ignore[return-value]
        zip_path = path if path.is_file() else path / MODEL_FILE
        if not zip_path.is_file():
            raise ValueError(f"{path} is neither a saved agent folder nor an SB3 .zip")
        if not trusted:
            entries = sorted(pickled_entries(read_sb3_data(zip_path)))
            raise ValueError(pickle_refusal(zip_path, entries or ["(no agent.json manifest)"]))
        if cls.name == SB3Agent.name:
            raise ValueError("load a plain SB3 zip with the agent class, e.g. PPOMlpAgent.load")
        agent = cls(**kwargs)
        model: Any = cls.algorithm_class.load(zip_path, device=agent.config.device)
        model.policy.set_training_mode(False)
        agent.model = model
        legacy = zip_path.parent / LEGACY_VECNORMALIZE_FILE
        if legacy.is_file():
            agent.vec_normalize = read_legacy_vecnormalize(legacy, model)
        agent._refresh_inference_cache()
        return agent
