"""Offline agents on d3rlpy: ``bc`` (DiscreteBC / BC), ``cql`` (DiscreteCQL / CQL) and
``dt_d3rlpy`` (d3rlpy's DiscreteDecisionTransformer, the reference point for our ``dt``).

Each trains with ``fit(dataset, n_steps=...)`` on a
:class:`~quantgym.datasets.trajectory.TrajectoryDataset` (exported with ``to_d3rlpy``) and
satisfies the Agent API: ``predict`` takes one observation ``(D,)`` or a batch ``(N, D)``
(SB3's signature). A saved agent is a directory::

    agent.json      class + config (BaseAgent); the config holds the built shapes
    model.pt        the d3rlpy modules' state dicts (``torch.save``), read back with
                    ``torch.load(..., weights_only=True)`` (d3rlpy's own ``load_model``
                    unpickles, so it is not used)

What differs from calling d3rlpy directly:

- defaults that suit short CPU runs: DiscreteCQL's target network is synced every 500 steps
  (d3rlpy: 8,000, so a 5,000-step run never syncs it), ``gamma=0.9`` (a decision's effect on
  a trading account shows within a few bars), larger batches and learning rates;
- ``fit`` runs exactly ``n_steps`` gradient steps as one d3rlpy epoch (d3rlpy trains
  ``n_steps // n_steps_per_epoch`` epochs, i.e. nothing when ``n_steps < n_steps_per_epoch``);
- ``action_size`` is taken from the dataset's action space, not from the largest action seen;
- no ``d3rlpy_logs/`` directory unless ``fit(..., log_dir=...)`` asks for one;
- the padding row ``to_d3rlpy`` appends to each truncated episode (so Q-learning gets its true
  next observation) is not used by the Decision Transformer: its sequences are exported
  without it, so d3rlpy's trajectory slicer never trains on a made-up step;
- ``dt_d3rlpy.predict`` is batched and stateful (context window and return-to-go per env in
  ``state``); the return-to-go is decremented by the realised log growth recovered from the
  observations (:func:`quantgym.agents.observations.realised_log_return`).

This module imports torch and d3rlpy: it is only imported when one of these agents is built.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import structlog
import torch

from quantgym._compat import quiet_legacy_gym

quiet_legacy_gym()  # before d3rlpy, which imports legacy gym and its stderr notice
import d3rlpy  # noqa: E402
from d3rlpy.logging import FileAdapterFactory, NoopAdapterFactory  # noqa: E402
from d3rlpy.models.encoders import VectorEncoderFactory  # noqa: E402
from d3rlpy.preprocessing import MultiplyRewardScaler  # noqa: E402

from quantgym._io import atomic_write  # noqa: E402
from quantgym.agents.observations import (  # noqa: E402
    episode_start_mask,
    realised_log_return,
    recent_bar_columns,
)
from quantgym.datasets import to_d3rlpy  # noqa: E402
from quantgym.policies.base import BaseAgent  # noqa: E402

__all__ = [
    "MODEL_FILE",
    "quiet_d3rlpy",
    "D3rlpyAgent",
    "BCAgent",
    "CQLAgent",
    "D3rlpyDecisionTransformerAgent",
    "DTState",
]

MODEL_FILE = "model.pt"


@contextlib.contextmanager
def quiet_d3rlpy(level: int = logging.ERROR) -> Iterator[None]:
    """Silence d3rlpy's structlog messages below ``level`` (its per-fit info lines and the
    "already built" warning) for the duration of the block, then restore the config."""
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))
    try:
        yield
    finally:
        structlog.configure(**previous)


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _dataset_window_size(dataset: Any, needed: bool) -> int | None:
    """The env's ``window_size`` recorded in the dataset's metadata (needed to select columns)."""
    window = (dataset.metadata.get("env_kwargs") or {}).get("window_size")
    if window is None and needed:
        raise ValueError(
            "the dataset's metadata has no env_kwargs['window_size']; pass recent_bars=None "
            "to read whole observations"
        )
    return None if window is None else int(window)


def _check_dataset(dataset: Any) -> None:
    from quantgym.datasets.trajectory import TrajectoryDataset

    if not isinstance(dataset, TrajectoryDataset):
        raise ValueError(
            f"dataset must be a quantgym TrajectoryDataset (TrajectoryDataset.load(path)), "
            f"got {type(dataset).__name__}"
        )
    if len(dataset.observation_shape) != 1:
        raise ValueError(
            f"dataset observations must be flat vectors, got shape {dataset.observation_shape}"
        )


class D3rlpyAgent(BaseAgent):
    """Shared machinery of the d3rlpy agents: build, fit, predict, save and load.

    Subclasses implement :meth:`_d3rlpy_config` (the d3rlpy ``XConfig`` for a discrete or
    continuous dataset). The config's ``observation_dim``, ``action_size`` and ``discrete``
    are filled in by :meth:`fit` (or given, to build an untrained agent with :meth:`build`).
    """

    name: ClassVar[str] = "d3rlpy"
    offline: ClassVar[bool] = True

    @dataclasses.dataclass
    class Config:
        """Fields shared by every d3rlpy agent.

        ``n_steps`` is the default of :meth:`fit`; ``hidden_units`` the MLP encoder of
        observations; ``device`` a torch device string (``"cpu:0"``). The networks read the
        newest ``recent_bars`` rows of the market window (``None``: all of it) and, with
        ``account_features``, the account features; without them BC cannot copy the
        behaviour policy's previous position instead of reading the market (see
        :mod:`quantgym.agents.observations`). ``window_size`` is read from the dataset.
        """

        n_steps: int = 5_000
        batch_size: int = 256
        learning_rate: float = 1e-3
        hidden_units: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
        seed: int = 0
        device: str = "cpu:0"
        observation_dim: int | None = None
        action_size: int | None = None
        discrete: bool | None = None
        recent_bars: int | None = 1
        account_features: bool = False
        window_size: int | None = None

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._validate_config()
        self.algo: Any = None
        if self.config.observation_dim is not None:
            self.build()

    def _validate_config(self) -> None:
        c = self.config
        _check_positive_int("n_steps", c.n_steps)
        _check_positive_int("batch_size", c.batch_size)
        if not (isinstance(c.learning_rate, (int, float)) and c.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {c.learning_rate!r}")
        if not (
            isinstance(c.hidden_units, (list, tuple))
            and c.hidden_units
            and all(
                isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h > 0
                for h in c.hidden_units
            )
        ):
            raise ValueError(
                f"hidden_units must be a non-empty list of positive ints, got {c.hidden_units!r}"
            )
        if isinstance(c.seed, bool) or not isinstance(c.seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {c.seed!r}")
        shapes = (c.observation_dim, c.action_size, c.discrete)
        if any(v is None for v in shapes) and any(v is not None for v in shapes):
            raise ValueError(
                "observation_dim, action_size and discrete are set together (or all left None), "
                f"got {shapes}"
            )
        if c.observation_dim is not None:
            _check_positive_int("observation_dim", c.observation_dim)
            _check_positive_int("action_size", c.action_size)
            if c.recent_bars is not None or not c.account_features:
                if c.window_size is None:
                    raise ValueError("window_size must be set to select observation columns")
                recent_bar_columns(c.observation_dim, c.window_size, c.recent_bars)
        elif c.recent_bars is not None:
            _check_positive_int("recent_bars", c.recent_bars)

    @property
    def columns(self) -> np.ndarray | None:
        """Observation columns the networks read (``None``: all of them)."""
        c = self.config
        if c.observation_dim is None:
            raise ValueError(f"{self.name} has no model yet: call fit(dataset) or load(path)")
        if c.recent_bars is None and c.account_features:
            return None
        return recent_bar_columns(
            int(c.observation_dim), int(c.window_size), c.recent_bars, c.account_features
        )

    @property
    def input_dim(self) -> int:
        """Width of the network input."""
        columns = self.columns
        return int(self.config.observation_dim) if columns is None else int(columns.size)

    def _select(self, observations: np.ndarray) -> np.ndarray:
        columns = self.columns
        return observations if columns is None else np.ascontiguousarray(observations[..., columns])

    # -- d3rlpy objects ------------------------------------------------------------------
    def _encoder(self) -> VectorEncoderFactory:
        return VectorEncoderFactory(hidden_units=list(self.config.hidden_units))

    def _d3rlpy_config(self, discrete: bool) -> Any:
        raise NotImplementedError

    def _export(self, dataset: Any) -> Any:
        """The d3rlpy ``MDPDataset`` this agent trains on."""
        return to_d3rlpy(self._reduced(dataset))

    def _reduced(self, dataset: Any) -> Any:
        """``dataset`` with only the observation columns the networks read."""
        if self.columns is None:
            return dataset
        from quantgym.datasets.trajectory import TrajectoryDataset

        return TrajectoryDataset.from_arrays(
            self._select(np.asarray(dataset.observations)),
            dataset.actions,
            dataset.rewards,
            dataset.terminations,
            dataset.truncations,
            dataset.episode_lengths,
            metadata=dataset.metadata,
        )

    def build(self) -> None:
        """Create the d3rlpy algorithm and its networks from the config's shapes."""
        c = self.config
        if c.observation_dim is None:
            raise ValueError(f"{self.name}: build() needs observation_dim/action_size/discrete")
        torch.manual_seed(c.seed)
        self.algo = self._d3rlpy_config(bool(c.discrete)).create(device=c.device)
        self.algo.create_impl((self.input_dim,), int(c.action_size))

    def _require_algo(self) -> Any:
        if self.algo is None or self.algo.impl is None:
            raise ValueError(f"{self.name} has no model yet: call fit(dataset) or load(path)")
        return self.algo

    # -- training ------------------------------------------------------------------------
    def fit(
        self,
        dataset: Any,
        n_steps: int | None = None,
        progress_bar: bool = True,
        log_dir: str | os.PathLike | None = None,
    ) -> D3rlpyAgent:
        """Train for exactly ``n_steps`` gradient steps (default ``config.n_steps``).

        Args:
            dataset: a :class:`~quantgym.datasets.trajectory.TrajectoryDataset`.
            n_steps: gradient steps.
            progress_bar: show d3rlpy's tqdm bar.
            log_dir: write d3rlpy's file logs (params, per-step metrics) under this
                directory; ``None`` (default) writes nothing.
        """
        _check_dataset(dataset)
        n_steps = _check_positive_int(
            "n_steps", self.config.n_steps if n_steps is None else n_steps
        )
        discrete = bool(dataset.is_discrete)
        if discrete:
            action_size = int(dataset.n_actions or 1)
        else:
            action_size = int(np.prod(dataset.actions.shape[1:], dtype=np.int64))
        shapes = {
            "observation_dim": int(dataset.observation_shape[0]),
            "action_size": action_size,
            "discrete": discrete,
            "window_size": _dataset_window_size(
                dataset, self.config.recent_bars is not None or not self.config.account_features
            ),
        }
        self._prepare(dataset)
        if self.algo is None or any(getattr(self.config, k) != v for k, v in shapes.items()):
            self.config = dataclasses.replace(self.config, **shapes)
            self.build()
        d3rlpy.seed(int(self.config.seed))
        logger = NoopAdapterFactory() if log_dir is None else FileAdapterFactory(os.fspath(log_dir))
        with quiet_d3rlpy():
            self._fit_d3rlpy(dataset, n_steps, progress_bar, logger, log_dir is not None)
        return self

    def _fit_d3rlpy(
        self, dataset: Any, n_steps: int, progress_bar: bool, logger: Any, logging_on: bool
    ) -> None:
        self.algo.fit(
            self._export(dataset),
            n_steps=n_steps,
            n_steps_per_epoch=n_steps,  # one epoch: exactly n_steps updates
            show_progress=progress_bar,
            logger_adapter=logger,
            experiment_name=self.name,
            with_timestamp=logging_on,
            save_interval=n_steps + 1,  # never write checkpoints into the log
        )

    def _prepare(self, dataset: Any) -> None:
        """Set dataset-derived config fields before the model is built (hook)."""

    # -- inference -----------------------------------------------------------------------
    def _check_observation(self, observation: Any) -> tuple[np.ndarray, bool]:
        dim = self.config.observation_dim
        obs = np.asarray(observation, dtype=np.float32)
        if obs.ndim not in (1, 2) or obs.shape[-1] != dim:
            raise ValueError(f"observation must have shape ({dim},) or (N, {dim}), got {obs.shape}")
        return (obs, True) if obs.ndim == 2 else (obs[None], False)

    def _finish(self, actions: np.ndarray, batched: bool) -> np.ndarray:
        if self.config.discrete:
            actions = actions.astype(np.int64).reshape(-1)
        else:  # TradingEnv's continuous space is Box(-1, 1): keep the env from rejecting it
            actions = np.clip(actions.astype(np.float32), -1.0, 1.0)
        return actions if batched else actions[0]

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Greedy action(s) for ``(D,)`` or ``(N, D)`` observations. ``deterministic=False``
        uses d3rlpy's ``sample_action`` (a stochastic policy where the algorithm has one)."""
        algo = self._require_algo()
        obs, batched = self._check_observation(observation)
        obs = self._select(obs)
        actions = algo.predict(obs) if deterministic else algo.sample_action(obs)
        return self._finish(np.asarray(actions), batched), state

    # -- persistence ---------------------------------------------------------------------
    def _modules(self) -> dict[str, Any]:
        return dict(self._require_algo().impl.modules.create_checkpointer("cpu:0").modules)

    def _save_state(self, path: Path) -> None:
        states = {name: module.state_dict() for name, module in self._modules().items()}
        atomic_write(path / MODEL_FILE, lambda tmp: torch.save(states, tmp))

    def _load_state(self, path: Path) -> None:
        file = path / MODEL_FILE
        if not file.is_file():
            raise ValueError(f"{file} does not exist: not a saved {self.name} agent")
        if self.algo is None:
            self.build()
        try:
            states = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a bad file
            raise ValueError(f"{file} is not a readable weights file: {exc}") from None
        modules = self._modules()
        if not isinstance(states, dict) or set(states) != set(modules):
            got = sorted(states) if isinstance(states, dict) else type(states).__name__
            raise ValueError(f"{file} holds {got}, expected modules {sorted(modules)}")
        for name, module in modules.items():
            try:
                module.load_state_dict(states[name])
            except (RuntimeError, KeyError, ValueError) as exc:
                raise ValueError(
                    f"{file}: module {name!r} does not match the config in agent.json: {exc}"
                ) from None


class BCAgent(D3rlpyAgent):
    """``bc``: behaviour cloning (d3rlpy ``DiscreteBC`` for discrete datasets, ``BC`` for
    continuous ones). It imitates the dataset's actions and ignores its rewards."""

    name: ClassVar[str] = "bc"

    @dataclasses.dataclass
    class Config(D3rlpyAgent.Config):
        """:class:`D3rlpyAgent.Config` plus ``beta`` (DiscreteBC's logit penalty)."""

        beta: float = 0.5

    def _d3rlpy_config(self, discrete: bool) -> Any:
        c = self.config
        common = {
            "batch_size": c.batch_size,
            "learning_rate": c.learning_rate,
            "encoder_factory": self._encoder(),
        }
        if discrete:
            return d3rlpy.algos.DiscreteBCConfig(beta=c.beta, **common)
        return d3rlpy.algos.BCConfig(**common)


class CQLAgent(D3rlpyAgent):
    """``cql``: conservative Q-learning (d3rlpy ``DiscreteCQL`` for discrete datasets, ``CQL``
    for continuous ones). Unlike ``bc`` it learns from the rewards, so it can do better than
    the behaviour policy (random data included)."""

    name: ClassVar[str] = "cql"

    @dataclasses.dataclass
    class Config(D3rlpyAgent.Config):
        """:class:`D3rlpyAgent.Config` plus the Q-learning fields.

        ``gamma=0.9`` (short effect horizon of a trading decision), ``alpha`` the
        conservative penalty weight, ``n_critics``, ``target_update_interval=500`` gradient
        steps (discrete), ``tau`` soft target updates (continuous).
        """

        learning_rate: float = 3e-4
        gamma: float = 0.9
        alpha: float = 1.0
        n_critics: int = 2
        target_update_interval: int = 500
        tau: float = 0.005

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        if not 0.0 <= c.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {c.gamma!r}")
        _check_positive_int("n_critics", c.n_critics)
        _check_positive_int("target_update_interval", c.target_update_interval)

    def _d3rlpy_config(self, discrete: bool) -> Any:
        c = self.config
        if discrete:
            return d3rlpy.algos.DiscreteCQLConfig(
                batch_size=c.batch_size,
                learning_rate=c.learning_rate,
                encoder_factory=self._encoder(),
                gamma=c.gamma,
                alpha=c.alpha,
                n_critics=c.n_critics,
                target_update_interval=c.target_update_interval,
            )
        return d3rlpy.algos.CQLConfig(
            batch_size=c.batch_size,
            actor_learning_rate=c.learning_rate,
            critic_learning_rate=c.learning_rate,
            actor_encoder_factory=self._encoder(),
            critic_encoder_factory=self._encoder(),
            gamma=c.gamma,
            conservative_weight=c.alpha,
            n_critics=c.n_critics,
            tau=c.tau,
        )


class DTState(NamedTuple):
    """Per-env inference state of :class:`D3rlpyDecisionTransformerAgent` (``N`` envs,
    context ``K``); the newest step is the last column."""

    observations: np.ndarray  # (N, K, D) float32
    actions: np.ndarray  # (N, K) int64 (the newest slot holds the pad action 0)
    returns_to_go: np.ndarray  # (N, K) float32, unscaled
    timesteps: np.ndarray  # (N, K) int64
    valid: np.ndarray  # (N, K) bool, False for the left padding
    return_rest: np.ndarray  # (N,) float64 target minus the realised log growth so far
    timestep: np.ndarray  # (N,) int64 timestep of the next observation
    last_observation: np.ndarray  # (N, obs_dim) float32 raw observation, to recover the reward


class D3rlpyDecisionTransformerAgent(D3rlpyAgent):
    """``dt_d3rlpy``: d3rlpy's ``DiscreteDecisionTransformer`` (discrete datasets only).

    The reference point for our own ``dt``: same defaults (context 20, 3 layers, embedding
    128, 1 head, batch 64). d3rlpy's discrete DT trains its left padding as action 0; that is
    kept, as it is what users get from d3rlpy. ``target_return`` conditions the policy;
    ``None`` sets it at fit time to the ``target_quantile`` of the dataset's episode returns.
    ``rtg_scale`` multiplies rewards and returns-to-go before they enter the network.
    """

    name: ClassVar[str] = "dt_d3rlpy"

    @dataclasses.dataclass
    class Config(D3rlpyAgent.Config):
        """:class:`D3rlpyAgent.Config` plus the transformer (``hidden_units`` is unused:
        the observation encoder is one ReLU layer to ``d_model``, d3rlpy's embedding size)."""

        batch_size: int = 64
        learning_rate: float = 6e-4
        context_length: int = 20
        n_layers: int = 3
        n_heads: int = 1
        d_model: int = 128
        dropout: float = 0.1
        max_timestep: int | None = None
        rtg_scale: float = 1.0
        target_return: float | None = None
        target_quantile: float = 0.9
        warmup_tokens: int = 10_240

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        for name in ("context_length", "n_layers", "n_heads", "d_model"):
            _check_positive_int(name, getattr(c, name))
        if c.max_timestep is not None:
            _check_positive_int("max_timestep", c.max_timestep)
        if not 0.0 <= c.target_quantile <= 1.0:
            raise ValueError(f"target_quantile must be in [0, 1], got {c.target_quantile!r}")
        if not c.rtg_scale > 0:
            raise ValueError(f"rtg_scale must be positive, got {c.rtg_scale!r}")
        if c.observation_dim is not None and c.max_timestep is None:
            raise ValueError("max_timestep must be set to build a dt_d3rlpy model")

    def _d3rlpy_config(self, discrete: bool) -> Any:
        if not discrete:
            raise ValueError("dt_d3rlpy needs a discrete dataset (DiscreteDecisionTransformer)")
        c = self.config
        return d3rlpy.algos.DiscreteDecisionTransformerConfig(
            batch_size=c.batch_size,
            learning_rate=c.learning_rate,
            encoder_factory=VectorEncoderFactory(hidden_units=[c.d_model]),
            context_size=c.context_length,
            max_timestep=int(c.max_timestep or 1),
            num_heads=c.n_heads,
            num_layers=c.n_layers,
            attn_dropout=c.dropout,
            resid_dropout=c.dropout,
            embed_dropout=c.dropout,
            reward_scaler=MultiplyRewardScaler(c.rtg_scale) if c.rtg_scale != 1.0 else None,
            warmup_tokens=c.warmup_tokens,
            final_tokens=c.n_steps * c.batch_size * c.context_length,
        )

    def _prepare(self, dataset: Any) -> None:
        if not dataset.is_discrete:
            raise ValueError("dt_d3rlpy needs a discrete dataset (DiscreteDecisionTransformer)")
        updates: dict[str, Any] = {}
        if self.config.max_timestep is None:
            updates["max_timestep"] = int(dataset.episode_lengths.max()) + 1
        if self.config.target_return is None:
            returns = np.asarray(dataset.episode_returns(), dtype=np.float64)
            updates["target_return"] = float(np.quantile(returns, self.config.target_quantile))
        if updates:
            self.config = dataclasses.replace(self.config, **updates)
            self.algo = None  # rebuilt with the new max_timestep

    def _export(self, dataset: Any) -> Any:
        # No padding row: d3rlpy's trajectory slicer would train on it as a real step.
        return to_d3rlpy(self._reduced(dataset), keep_final_observation=False)

    def initial_state(self, n_envs: int = 1) -> DTState:
        """Empty context for ``n_envs`` episodes, conditioned on ``config.target_return``."""
        c = self.config
        k, d = c.context_length, self.input_dim
        return DTState(
            observations=np.zeros((n_envs, k, d), np.float32),
            actions=np.zeros((n_envs, k), np.int64),
            returns_to_go=np.zeros((n_envs, k), np.float32),
            timesteps=np.zeros((n_envs, k), np.int64),
            valid=np.zeros((n_envs, k), np.bool_),
            return_rest=np.full(n_envs, float(c.target_return or 0.0)),
            timestep=np.ones(n_envs, np.int64),
            last_observation=np.zeros((n_envs, int(c.observation_dim or 0)), np.float32),
        )

    def _advance(self, state: DTState, obs: np.ndarray, episode_start: np.ndarray) -> DTState:
        """Append the raw observations ``obs`` to every env's context (a copy of ``state``)."""
        n = obs.shape[0]
        fresh = self.initial_state(n)
        reward = realised_log_return(state.last_observation, obs)
        reward = np.where(episode_start | ~state.valid[:, -1], 0.0, reward)
        rest = np.where(episode_start, fresh.return_rest, state.return_rest - reward)
        timestep = np.where(episode_start, 1, state.timestep)
        keep = ~episode_start[:, None]

        def shift(old: np.ndarray, new: np.ndarray, reset: np.ndarray) -> np.ndarray:
            extra = (1,) * (old.ndim - 2)
            old = np.where(keep.reshape(n, 1, *extra), old, reset)
            return np.concatenate([old[:, 1:], new[:, None]], axis=1)

        return DTState(
            observations=shift(state.observations, self._select(obs), fresh.observations),
            actions=shift(state.actions, np.zeros(n, np.int64), fresh.actions),
            returns_to_go=shift(state.returns_to_go, rest.astype(np.float32), fresh.returns_to_go),
            timesteps=shift(state.timesteps, timestep, fresh.timesteps),
            valid=shift(state.valid, np.ones(n, np.bool_), fresh.valid),
            return_rest=rest,
            # the timestep embedding has max_timestep rows (0 .. max_timestep - 1)
            timestep=np.minimum(timestep + 1, int(self.config.max_timestep or 1) - 1),
            last_observation=obs.copy(),
        )

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, DTState]:
        """Action(s) for ``(D,)`` or ``(N, D)`` observations; ``state`` carries each env's
        context (:class:`DTState`; ``None`` starts new episodes). ``episode_start[i]`` resets
        env ``i``. ``deterministic=False`` samples from the action distribution."""
        algo = self._require_algo()
        obs, batched = self._check_observation(observation)
        n = obs.shape[0]
        if state is None:
            state, starts = self.initial_state(n), np.ones(n, np.bool_)
        else:
            if not isinstance(state, DTState) or state.observations.shape[0] != n:
                raise ValueError(f"state must be a DTState for {n} envs (or None)")
            starts = episode_start_mask(episode_start, n)
        state = self._advance(state, obs, starts)
        transformer = algo.impl.modules.transformer
        transformer.eval()  # inference drops the newest (pad) action token; no dropout
        scale = float(self.config.rtg_scale)
        with torch.inference_mode():
            _, logits = transformer(
                torch.from_numpy(state.observations),  # (N, K, D)
                torch.from_numpy(state.actions),  # (N, K)
                torch.from_numpy(state.returns_to_go * scale)[..., None],  # (N, K, 1)
                torch.from_numpy(state.timesteps),  # (N, K)
                torch.from_numpy((~state.valid).astype(np.float32)),  # d3rlpy: 1 - masks
            )
            logits = logits[:, -1]  # (N, A) action at the newest state
            if deterministic:
                actions = logits.argmax(dim=-1).numpy()
            else:
                actions = torch.distributions.Categorical(logits=logits).sample().numpy()
        state.actions[:, -1] = actions  # the action fills the newest slot's action token
        return self._finish(actions, batched), state
