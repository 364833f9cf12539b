"""The machinery the offline agents on d3rlpy share (:class:`D3rlpyAgent`): ``bc``
(DiscreteBC / BC, :mod:`~quantgym.agents.d3rlpy.bc`), ``cql`` (DiscreteCQL / CQL,
:mod:`~quantgym.agents.d3rlpy.cql`) and ``bcq`` (DiscreteBCQ, :mod:`~quantgym.agents.d3rlpy.bcq`;
both on :mod:`~quantgym.agents.d3rlpy.value`), and ``dt_d3rlpy`` (d3rlpy's
DiscreteDecisionTransformer, the reference point for our ``dt``,
:mod:`~quantgym.agents.d3rlpy.dt_d3rlpy`).

Each trains with ``fit(dataset, train_steps=...)`` (gradient steps) on a
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
- ``fit`` runs exactly ``train_steps`` gradient steps as one d3rlpy epoch (d3rlpy trains
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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import structlog
import torch

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before d3rlpy, which imports legacy gym and its stderr notice
import d3rlpy
from d3rlpy.logging import FileAdapterFactory, NoopAdapterFactory
from d3rlpy.models.encoders import VectorEncoderFactory

from quantgym.agents.base import TrainableAgent
from quantgym.agents.observations import (
    ColumnSelection,
    ObservationLayout,
    account_feature_offsets,
    dataset_layout,
    recent_bar_columns,
)
from quantgym.checks import check_positive_int
from quantgym.datasets import to_d3rlpy
from quantgym.files import atomic_write

__all__ = ["MODEL_FILE", "quiet_d3rlpy", "check_dataset", "D3rlpyAgent"]

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


def check_dataset(dataset: Any) -> None:
    """``ValueError`` unless ``dataset`` is a ``TrajectoryDataset`` of flat observations."""
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


class D3rlpyAgent(ColumnSelection, TrainableAgent):
    """Shared machinery of the d3rlpy agents: build, fit, predict, save and load.

    Subclasses implement :meth:`_d3rlpy_config` (the d3rlpy ``XConfig`` for a discrete or
    continuous dataset). The config's ``observation_dim``, ``action_size`` and ``discrete``
    are filled in by :meth:`fit` (or given, to build an untrained agent with :meth:`build`).
    """

    name: ClassVar[str] = "d3rlpy"
    offline: ClassVar[bool] = True
    renamed_config_keys: ClassVar[Mapping[str, str]] = {"n_steps": "train_steps"}

    @dataclasses.dataclass
    class Config(ObservationLayout):
        """Fields shared by every d3rlpy agent.

        ``train_steps`` is the gradient-step budget of :meth:`fit`; ``hidden_units`` the MLP
        encoder of observations; ``device`` a torch device string (``"cpu:0"``). The networks
        read the newest ``recent_bars`` rows of the market window (``None``: all of it) and
        the account features ``account_features`` selects (``True``: all, ``False``: none, or
        names such as ``["position"]``); without them BC cannot copy the behaviour policy's
        previous position instead of reading the market (see
        :mod:`quantgym.agents.observations`). The layout (``window_size`` ...,
        :class:`~quantgym.agents.observations.ObservationLayout`) is read from the dataset;
        so are ``action_low``/``action_high``, the bounds continuous actions are clipped to.
        """

        train_steps: int = 5_000
        batch_size: int = 256
        learning_rate: float = 1e-3
        hidden_units: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
        seed: int = 0
        device: str = "cpu:0"
        observation_dim: int | None = None
        action_size: int | None = None
        discrete: bool | None = None
        recent_bars: int | None = 1
        account_features: bool | list[str] = False
        action_low: float = -1.0
        action_high: float = 1.0

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._validate_config()
        self.algo: Any = None
        if self.config.observation_dim is not None:
            self.build()

    def _validate_config(self) -> None:
        c = self.config
        check_positive_int("train_steps", c.train_steps)
        check_positive_int("batch_size", c.batch_size)
        c.validate_layout()
        account_feature_offsets(c.account_features)
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
            check_positive_int("observation_dim", c.observation_dim)
            check_positive_int("action_size", c.action_size)
            if c.recent_bars is not None or c.account_features is not True:
                if c.window_size is None:
                    raise ValueError("window_size must be set to select observation columns")
                recent_bar_columns(c.observation_dim, c.window_size, c.recent_bars)

    # -- d3rlpy objects ------------------------------------------------------------------
    def _encoder(self) -> VectorEncoderFactory:
        return VectorEncoderFactory(hidden_units=list(self.config.hidden_units))

    def _d3rlpy_config(self, discrete: bool) -> Any:
        raise NotImplementedError

    def _export(self, dataset: Any) -> Any:
        """The d3rlpy ``MDPDataset`` this agent trains on."""
        return to_d3rlpy(self._reduced(dataset))

    def _training_rewards(self, dataset: Any) -> Any:
        """The rewards the algorithm trains on (hook; default: the dataset's own)."""
        return dataset.rewards

    def _reduced(self, dataset: Any) -> Any:
        """``dataset`` with only the observation columns the networks read and the
        rewards of :meth:`_training_rewards`."""
        rewards = self._training_rewards(dataset)
        if self.columns is None and rewards is dataset.rewards:
            return dataset
        from quantgym.datasets.trajectory import TrajectoryDataset

        observations = np.asarray(dataset.observations)
        return TrajectoryDataset.from_arrays(
            observations if self.columns is None else self._select(observations),
            dataset.actions,
            rewards,
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
        train_steps: int | None = None,
        progress_bar: bool = True,
        log_dir: str | os.PathLike | None = None,
    ) -> D3rlpyAgent:
        """Train for exactly ``train_steps`` gradient steps (default ``config.train_steps``).

        Args:
            dataset: a :class:`~quantgym.datasets.trajectory.TrajectoryDataset`.
            train_steps: gradient steps.
            progress_bar: show d3rlpy's tqdm bar.
            log_dir: write d3rlpy's file logs (params, per-step metrics) under this
                directory; ``None`` (default) writes nothing.
        """
        check_dataset(dataset)
        train_steps = self._train_steps(train_steps)
        layout = dataset_layout(dataset)
        if layout["window_size"] is None and not self.config.reads_whole_observation(
            self.config.account_features
        ):
            raise ValueError(
                "the dataset's observations have no TradingEnv window layout (its metadata has no "
                "env_kwargs['window_size'], or it logs another env such as PortfolioEnv-v0); pass "
                "recent_bars=None and account_features=True to read whole observations"
            )
        discrete = bool(dataset.is_discrete)
        if discrete:
            action_size = int(dataset.n_actions or 1)
        else:
            action_size = int(np.prod(dataset.actions.shape[1:], dtype=np.int64))
        space = dataset.metadata.get("action_space") or {}
        if not discrete and np.ndim(space.get("low")) == 0 and np.ndim(space.get("high")) == 0:
            # the env's bounds (PortfolioEnv's long-only weights are Box(0, 1))
            bounds = {"action_low": float(space["low"]), "action_high": float(space["high"])}
            self.config = dataclasses.replace(self.config, **bounds)
        shapes = {
            "observation_dim": int(dataset.observation_shape[0]),
            "action_size": action_size,
            "discrete": discrete,
            "window_size": layout["window_size"],
        }
        self._prepare(dataset)
        if self.algo is None or any(getattr(self.config, k) != v for k, v in shapes.items()):
            self.config = dataclasses.replace(self.config, **shapes)
            self.build()
        # the feature counts only describe the input: a change does not rebuild the networks
        self.config = dataclasses.replace(
            self.config,
            n_market_features=layout["n_market_features"],
            n_account_features=layout["n_account_features"],
        )
        d3rlpy.seed(int(self.config.seed))
        logger = NoopAdapterFactory() if log_dir is None else FileAdapterFactory(os.fspath(log_dir))
        with quiet_d3rlpy():
            self._fit_d3rlpy(dataset, train_steps, progress_bar, logger, log_dir is not None)
        return self

    def _fit_d3rlpy(
        self, dataset: Any, train_steps: int, progress_bar: bool, logger: Any, logging_on: bool
    ) -> None:
        self.algo.fit(
            self._export(dataset),
            n_steps=train_steps,
            n_steps_per_epoch=train_steps,  # one epoch: exactly train_steps updates
            show_progress=progress_bar,
            logger_adapter=logger,
            experiment_name=self.name,
            with_timestamp=logging_on,
            save_interval=train_steps + 1,  # never write checkpoints into the log
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
        else:  # keep the env from rejecting it: TradingEnv's Box(-1, 1), PortfolioEnv's (0, 1)
            c = self.config
            actions = np.clip(actions.astype(np.float32), c.action_low, c.action_high)
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

    # -- the differentiable hook of quantgym.agents.perturbation ---------------------------
    @property
    def action_scores_kind(self) -> str | None:
        """What :meth:`action_scores` returns (``"logits"``, ``"q_values"`` or ``"mean"``);
        ``None``: this agent has no differentiable scores."""
        self._require_algo()
        return self._scores_kind(bool(self.config.discrete))

    def _scores_kind(self, discrete: bool) -> str | None:
        return None

    def action_scores(
        self, observation: torch.Tensor, state: Any = None, episode_start: Any = None
    ) -> torch.Tensor:
        """Scores ``(N, A)`` of raw observations ``(N, D)`` (float32) whose argmax (discrete)
        or value (``"mean"``, before clipping to the action bounds) is the greedy action,
        differentiable with respect to ``observation``; the networks read the selected
        columns only (the others get zero gradient)."""
        algo = self._require_algo()
        if self.action_scores_kind is None:
            raise ValueError(f"{self.name} has no differentiable action scores")
        x = observation.to(device=self.config.device, dtype=torch.float32)
        columns = self.columns
        if columns is not None:
            x = x[:, torch.from_numpy(columns).to(x.device)]
        if algo.config.observation_scaler is not None:
            x = algo.config.observation_scaler.transform(x)
        modules = algo.impl.modules
        modules.set_eval()
        return self._network_scores(modules, x, state, episode_start, observation)

    def _network_scores(
        self, modules: Any, x: torch.Tensor, state: Any, episode_start: Any, raw: torch.Tensor
    ) -> torch.Tensor:
        """Scores of the selected (and scaled) columns ``x``; ``raw`` is the whole observation."""
        raise ValueError(f"{self.name} has no differentiable action scores")

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
