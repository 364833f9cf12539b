"""``dt``: our Decision Transformer agent on the quantgym Agent API.

``fit(dataset, train_steps=...)`` (gradient steps) trains on a discrete :class:`TrajectoryDataset`;
``predict(obs, state, episode_start)`` is batched over envs and stateful
(:mod:`quantgym.agents.decision_transformer.policy`); ``save(path)`` writes
``agent.json`` (class + config, :class:`~quantgym.policies.base.BaseAgent`) and
``model.pt`` (the state dict and the shape fields of the config it was trained with,
``torch.save``), ``load(path)`` reads them back with ``weights_only=True`` and raises a
``ValueError`` naming every shape field on which they disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

import quantgym.agents.decision_transformer.policy as dt_policy
from quantgym.agents.base import TrainableAgent
from quantgym.agents.decision_transformer.config import DecisionTransformerConfig
from quantgym.agents.decision_transformer.model import DecisionTransformer
from quantgym.agents.decision_transformer.training import (
    TrainingHistory,
    WindowSampler,
    train,
)
from quantgym.agents.observations import ColumnSelection, dataset_layout, episode_start_mask
from quantgym.agents.smoothing import smoothed_actions
from quantgym.files import atomic_write

__all__ = ["DecisionTransformerAgent", "MODEL_FILE", "SHAPE_FIELDS"]

MODEL_FILE = "model.pt"
# Config fields that fix the network's parameter shapes or its input columns.
SHAPE_FIELDS = (
    "context_length",
    "n_layers",
    "n_heads",
    "d_model",
    "observation_dim",
    "window_size",
    "n_actions",
    "max_timestep",
    "recent_bars",
    "account_features",
    "action_input",
)


class DecisionTransformerAgent(ColumnSelection, TrainableAgent):
    """``dt``: return-conditioned (``"target"``) or critic-guided (``"critic"``) Decision
    Transformer with optional size / risk heads (see :class:`DecisionTransformerConfig`)."""

    name: ClassVar[str] = "dt"
    offline: ClassVar[bool] = True
    renamed_config_keys: ClassVar[Mapping[str, str]] = {"n_steps": "train_steps"}
    Config = DecisionTransformerConfig  # type: ignore[assignment]

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.config.validate()
        self.model: DecisionTransformer | None = None
        self.history: TrainingHistory | None = None
        self.risk_scale: float = 1.0
        self._last_state: dt_policy.DTState | None = None
        if self.config.built:
            self.build()

    # -- shapes (columns, input_dim, _select: ColumnSelection) ------------------------------
    @property
    def state_dim(self) -> int:
        """Width of a state as the network reads it (:attr:`input_dim`)."""
        return self.input_dim

    def build(self) -> None:
        """Create the network from the config's shapes (seeded)."""
        c = self.config
        if not c.built:
            raise ValueError(
                "dt: build() needs observation_dim, n_actions, max_timestep (and window_size)"
            )
        torch.manual_seed(c.seed)
        self.model = DecisionTransformer(
            self.state_dim,
            int(c.n_actions),
            int(c.max_timestep),
            d_model=c.d_model,
            n_layers=c.n_layers,
            n_heads=c.n_heads,
            dropout=c.dropout,
            action_input=c.action_input,
        )
        self.model.eval()

    def _require_model(self) -> DecisionTransformer:
        if self.model is None:
            raise ValueError("dt has no model yet: call fit(dataset) or load(path)")
        return self.model

    # -- fine-tuning -----------------------------------------------------------------------
    def freeze_backbone(self) -> None:
        """Freeze embeddings and blocks (fine-tune the heads only on a new market)."""
        self._require_model().freeze_backbone()

    def unfreeze_last(self, n: int) -> None:
        """Let the last ``n`` blocks train again."""
        self._require_model().unfreeze_last(n)

    # -- training --------------------------------------------------------------------------
    def _prepare(self, dataset: Any) -> None:
        """Fill the config's dataset-dependent fields (kept if already set, e.g. fine-tuning)."""
        c = self.config
        env_kwargs = dataset.metadata.get("env_kwargs") or {}
        n_actions = int(dataset.n_actions)
        positions = env_kwargs.get("positions")
        if positions is None or len(positions) != n_actions:
            positions = list(np.linspace(-1.0, 1.0, n_actions)) if n_actions > 1 else [0.0]
        layout = dataset_layout(dataset)
        if layout["window_size"] is None:  # keep the configured one
            layout["window_size"] = c.window_size
        updates: dict[str, Any] = {
            "observation_dim": int(np.prod(dataset.observation_shape)),
            "n_actions": n_actions,
            "positions": [float(p) for p in positions],
            **layout,
        }
        if c.max_timestep is None:
            updates["max_timestep"] = int(dataset.episode_lengths.max()) - 1
        if c.target_return is None:
            returns = np.asarray(dataset.episode_returns(), dtype=np.float64)
            updates["target_return"] = float(np.quantile(returns, c.target_quantile))
        new = dataclasses.replace(c, **updates)
        if self.model is not None and any(getattr(new, f) != getattr(c, f) for f in SHAPE_FIELDS):
            raise ValueError(
                "the dataset does not fit the trained model: "
                + ", ".join(
                    f"{f}={getattr(new, f)!r} (model {getattr(c, f)!r})"
                    for f in SHAPE_FIELDS
                    if getattr(new, f) != getattr(c, f)
                )
            )
        self.config = new

    def _returns_to_go(self, dataset: Any) -> np.ndarray:
        """``(N,)`` returns-to-go the model trains on: the realised ones (hook)."""
        return dataset.returns_to_go(self.config.gamma)

    def fit(
        self,
        dataset: Any,
        train_steps: int | None = None,
        progress_bar: bool = True,
        callback: Callable[[int], None] | None = None,
    ) -> DecisionTransformerAgent:
        """Train on a discrete :class:`TrajectoryDataset` for up to ``train_steps`` gradient
        steps (default ``config.train_steps``; early stopping may end sooner). A model that already
        exists (loaded, or with a frozen backbone) is trained further, not rebuilt.
        ``callback(step)`` runs after every gradient step."""
        from quantgym.datasets.trajectory import TrajectoryDataset

        if not isinstance(dataset, TrajectoryDataset):
            raise ValueError(f"dataset must be a TrajectoryDataset, got {type(dataset).__name__}")
        if not dataset.is_discrete:
            raise ValueError("dt needs a discrete dataset (actions index the position grid)")
        train_steps = self._train_steps(train_steps)
        self._prepare(dataset)
        if self.model is None:
            self.build()
        model = self._require_model()
        infos = dataset.infos
        sampler = WindowSampler(
            self._select(dataset.step_observations()).astype(np.float32, copy=False),
            dataset.actions,
            dataset.rewards,
            dataset.episode_lengths,
            np.asarray(infos["bar"]) if "bar" in infos else None,
            list(self.config.positions or []),
            self.config,
            returns_to_go=self._returns_to_go(dataset),
        )
        self.risk_scale = sampler.risk_scale
        self.history = train(model, sampler, self.config, train_steps, progress_bar, callback)
        if self.config.verbose:
            h = self.history
            print(
                f"dt: {h.steps} steps, best validation loss {h.best_val_loss:.4f} at step "
                f"{h.best_step}{' (early stop)' if h.stopped_early else ''}"
            )
        return self

    # -- inference -------------------------------------------------------------------------
    def initial_state(self, n_envs: int = 1) -> dt_policy.DTState:
        """Empty contexts for ``n_envs`` envs."""
        c = self.config
        return dt_policy.initial_state(
            n_envs,
            c.context_length,
            self.state_dim,
            int(c.observation_dim),
            self._target(),
            int(c.n_actions),
        )

    def _target(self) -> float:
        return float(self.config.target_return or 0.0)

    def _check_observation(self, observation: Any) -> tuple[np.ndarray, bool]:
        dim = int(self.config.observation_dim)
        obs = np.asarray(observation, dtype=np.float32)
        if obs.ndim not in (1, 2) or obs.shape[-1] != dim:
            raise ValueError(f"observation must have shape ({dim},) or (N, {dim}), got {obs.shape}")
        return np.atleast_2d(obs), obs.ndim == 2

    def _tensors(
        self, state: dt_policy.DTState
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            torch.from_numpy(state.states),  # (N, K, D)
            torch.from_numpy(state.actions),  # (N, K)
            torch.from_numpy(state.returns_to_go)[..., None],  # (N, K, 1)
            torch.from_numpy(state.timesteps),  # (N, K)
        )

    def _begin_step(
        self, obs: np.ndarray, state: Any, episode_start: np.ndarray | None
    ) -> dt_policy.DTState:
        """``state`` (``None``: new episodes) with the envs flagged in ``episode_start`` reset
        and the realised reward leading to the ``(N, D)`` observations ``obs`` taken off."""
        n = obs.shape[0]
        if state is None:
            state, starts = self.initial_state(n), np.ones(n, np.bool_)
        else:
            if not isinstance(state, dt_policy.DTState) or state.states.shape[0] != n:
                raise ValueError(f"state must be a DTState for {n} envs (or None)")
            starts = episode_start_mask(episode_start, n)
        reward = dt_policy.realised_rewards(state, obs, starts)
        state = dt_policy.reset_envs(state, starts, self._target())
        return state._replace(return_rest=state.return_rest - reward)

    # -- the differentiable hook of quantgym.agents.perturbation ---------------------------
    action_scores_kind: ClassVar[str] = "logits"

    def action_scores(
        self, observation: torch.Tensor, state: Any = None, episode_start: Any = None
    ) -> torch.Tensor:
        """Action logits ``(N, A)`` at the newest state for raw observations ``(N, D)``
        (float32), the context advanced as :meth:`predict` advances it, differentiable with
        respect to the newest observation (the older context is fixed; with
        ``return_conditioning="critic"`` the conditioning return the value head reads from
        it too)."""
        model = self._require_model()
        c = self.config
        obs = np.asarray(observation.detach().cpu().numpy(), dtype=np.float32)
        n = obs.shape[0]
        context = self._begin_step(obs, state, episode_start)
        columns = self.columns
        selected = observation.float()
        if columns is not None:
            selected = selected[:, torch.from_numpy(columns)]  # (N, D')
        if c.return_conditioning == "critic":
            t = torch.from_numpy(np.minimum(context.timestep, int(c.max_timestep)))
            rtg = model.value(selected, t)  # (N,) scaled
        else:
            rtg = torch.from_numpy((context.return_rest / c.rtg_scale).astype(np.float32))
        context = dt_policy.append_step(
            context, selected.detach().numpy(), rtg.detach().numpy(), int(c.max_timestep), obs
        )
        rows, slot = torch.arange(n), torch.from_numpy(context.length - 1)
        states, actions, returns_to_go, timesteps = self._tensors(context)
        states = states.index_put((rows, slot), selected)
        returns_to_go = returns_to_go.index_put((rows, slot), rtg[:, None])
        return model.action_logits_at(
            states, actions, returns_to_go, timesteps, torch.from_numpy(context.length)
        )

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, dt_policy.DTState]:
        """Action index (or indices) for ``(D,)`` or ``(N, D)`` observations. ``state``
        (:class:`DTState`, ``None`` starts new episodes) carries each env's context;
        ``episode_start[i]`` resets env ``i``; ``deterministic=False`` samples."""
        model = self._require_model()
        c = self.config
        obs, batched = self._check_observation(observation)
        n = obs.shape[0]
        state = self._begin_step(obs, state, episode_start)
        selected = np.ascontiguousarray(self._select(obs), dtype=np.float32)  # (N, D)
        with torch.inference_mode():
            if c.return_conditioning == "critic":
                t = torch.from_numpy(np.minimum(state.timestep, int(c.max_timestep)))
                rtg = model.value(torch.from_numpy(selected), t).numpy()  # scaled
            else:
                rtg = (state.return_rest / c.rtg_scale).astype(np.float32)
            state = dt_policy.append_step(state, selected, rtg, int(c.max_timestep), obs)
            logits = model.action_logits_at(
                *self._tensors(state), torch.from_numpy(state.length)
            )  # (N, A)
            actions, smoothed = smoothed_actions(
                logits,
                state.smoothed,
                dt_policy.first_steps(state),
                float(c.action_smoothing),
                deterministic,
            )
        state = state._replace(smoothed=smoothed)
        state.actions[np.arange(n), state.length - 1] = actions
        self._last_state = state
        return (actions if batched else actions[0]), state

    def attention_weights(self, state: dt_policy.DTState | None = None) -> np.ndarray:
        """Attention maps ``(N, n_layers, n_heads, 3K, 3K)`` over the ``(R, s, a)`` tokens of
        ``state`` (default: the last state :meth:`predict` returned). Only the first
        ``3 * state.length[i]`` tokens of env ``i`` are real."""
        state = self._last_state if state is None else state
        if state is None:
            raise ValueError("no context yet: call predict() first or pass a state")
        return self._require_model().attention_weights(*self._tensors(state)).numpy()

    def value(self, observation: np.ndarray, timestep: int | np.ndarray = 0) -> np.ndarray:
        """Value head: estimated (unscaled) return-to-go of ``(N, D)`` observations at ``timestep``."""
        model = self._require_model()
        obs, batched = self._check_observation(observation)
        t = np.minimum(
            np.broadcast_to(np.asarray(timestep, np.int64), obs.shape[:1]), self.config.max_timestep
        )
        with torch.inference_mode():
            v = (
                model.value(
                    torch.from_numpy(np.ascontiguousarray(self._select(obs))),
                    torch.from_numpy(t.copy()),
                ).numpy()
                * self.config.rtg_scale
            )
        return v if batched else v[0]

    # -- persistence -----------------------------------------------------------------------
    def _shape_config(self) -> dict[str, Any]:
        return {f: getattr(self.config, f) for f in SHAPE_FIELDS}

    def _save_state(self, path: Path) -> None:
        model = self._require_model()
        payload = {
            "state_dict": model.state_dict(),
            "config": self._shape_config(),
            "risk_scale": float(self.risk_scale),
        }
        atomic_write(path / MODEL_FILE, lambda tmp: torch.save(payload, tmp))

    def _load_state(self, path: Path) -> None:
        file = path / MODEL_FILE
        if not file.is_file():
            raise ValueError(f"{file} does not exist: not a saved dt agent")
        try:
            payload = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a bad file
            raise ValueError(f"{file} is not a readable dt checkpoint: {exc}") from None
        if not isinstance(payload, dict) or "state_dict" not in payload:
            raise ValueError(f"{file} is not a dt checkpoint (no state_dict)")
        saved = payload.get("config", {})
        mismatch = [
            f"{f}: checkpoint {saved.get(f)!r}, config {getattr(self.config, f)!r}"
            for f in SHAPE_FIELDS
            if saved.get(f) != getattr(self.config, f)
        ]
        if mismatch:
            raise ValueError(
                f"{file} does not match the config in agent.json: " + "; ".join(mismatch)
            )
        if self.model is None:
            self.build()
        model = self._require_model()
        try:
            model.load_state_dict(payload["state_dict"])
        except RuntimeError as exc:
            raise ValueError(f"{file} does not match the config in agent.json: {exc}") from None
        self.risk_scale = float(payload.get("risk_scale", 1.0))
        model.eval()
