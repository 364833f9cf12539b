"""Configuration of the ``dt`` agent: one JSON-serialisable dataclass, validated on creation."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from quantgym.agents.observations import ObservationLayout
from quantgym.agents.smoothing import check_action_smoothing
from quantgym.checks import (
    check_choice,
    check_non_negative,
    check_optional_positive_int,
    check_positive,
    check_positive_int,
)

__all__ = ["DecisionTransformerConfig", "RETURN_CONDITIONING", "RISK_KINDS"]

RETURN_CONDITIONING = ("target", "critic")
RISK_KINDS = ("drawdown", "volatility")


@dataclasses.dataclass
class DecisionTransformerConfig(ObservationLayout):
    """Every field of the ``dt`` agent (model shape, training, conditioning).

    Model: ``context_length`` steps ``K`` (``3K`` tokens), ``n_layers`` pre-LN blocks of
    ``n_heads`` heads and width ``d_model``, ``dropout``. The state embedding reads the newest
    ``recent_bars`` rows of the market window and, with ``account_features``, the account
    features (the d3rlpy agents' defaults, see :mod:`quantgym.agents.observations`; the
    layout fields are :class:`~quantgym.agents.observations.ObservationLayout`'s).

    Training: ``train_steps`` gradient steps (the budget of ``fit``), AdamW
    (``learning_rate``, ``weight_decay`` on weight matrices only), linear warm-up over
    ``warmup_steps`` then cosine decay to ``min_lr_ratio * learning_rate`` at
    ``train_steps``, gradient norm clipped to ``grad_clip``, ``bf16`` autocast, validation on the
    chronologically last ``val_fraction`` of the bars every ``eval_every`` steps, early stop
    after ``patience`` evaluations without improvement (``patience=0``: never).

    Heads and loss weights: action cross entropy (weight 1); ``value_weight`` for the value
    head (expectile ``expectile`` regression on the scaled return-to-go, needed by
    ``return_conditioning="critic"``); ``size_weight`` for the position-size head (``|position|``
    of the action as a fraction of the largest grid position); ``risk_weight`` for the risk
    head (``risk_kind`` ``"drawdown"``: max drawdown of the cumulative reward over the next
    ``risk_horizon`` steps, or ``"volatility"``: their standard deviation). A weight of 0
    leaves the head untrained.

    Conditioning: ``return_conditioning="target"`` starts every episode at ``target_return``
    (log growth; ``None``: the ``target_quantile`` of the dataset's episode returns, set by
    ``fit``) and decrements it by the realised rewards; ``"critic"`` conditions each step on
    the value head's estimate (see :mod:`quantgym.agents.decision_transformer.policy`).
    Returns-to-go enter the network divided by ``rtg_scale`` (discount ``gamma``).
    ``action_smoothing``: the action is read from a moving average of the action
    probabilities with this weight on the newest step (1: none; :mod:`quantgym.agents.smoothing`).

    Defaults: a shape (context 10, 2 layers, width 64) that trains about five times faster on
    a CPU than context 20, 3 layers, width 128, and critic conditioning, which scored above
    target conditioning on the ``regime`` datasets with a signal, and ``action_smoothing=0.1``,
    which cut the per-bar flips near the decision boundary (measured: docs/offline.md).

    ``action_input=False`` (default) leaves the action tokens in place but without the
    action (their embedding is the timestep's alone): the model cannot copy its previous
    action, the copycat shortcut of imitation (:mod:`quantgym.agents.observations`). With
    ``True`` (the paper's inputs) a DT trained on ``regime`` expert data holds whatever
    position it holds (measurements: docs/results.md).

    Filled in by ``fit`` (or given to build an untrained model): ``observation_dim``,
    ``window_size`` (and the feature counts), ``n_actions``, ``positions``, ``max_timestep``
    (timesteps are clipped to it; default the longest episode minus one).
    """

    context_length: int = 10
    n_layers: int = 2
    n_heads: int = 1
    d_model: int = 64
    dropout: float = 0.1
    batch_size: int = 64
    learning_rate: float = 6e-4
    weight_decay: float = 0.1
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    bf16: bool = False
    train_steps: int = 2_000
    val_fraction: float = 0.1
    eval_every: int = 100
    val_batches: int = 8
    patience: int = 5
    seed: int = 0
    rtg_scale: float = 1.0
    gamma: float = 1.0
    return_conditioning: str = "critic"
    target_return: float | None = None
    target_quantile: float = 0.9
    value_weight: float = 0.5
    expectile: float = 0.8
    action_smoothing: float = 0.1
    size_weight: float = 0.0
    risk_weight: float = 0.0
    risk_kind: str = "drawdown"
    risk_horizon: int = 20
    recent_bars: int | None = 1
    account_features: bool = False
    action_input: bool = False
    observation_dim: int | None = None
    n_actions: int | None = None
    positions: list[float] | None = None
    max_timestep: int | None = None
    verbose: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        for name in (
            "context_length",
            "n_layers",
            "n_heads",
            "d_model",
            "batch_size",
            "train_steps",
            "eval_every",
            "val_batches",
            "risk_horizon",
        ):
            check_positive_int(name, getattr(self, name))
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        for name in ("weight_decay", "grad_clip", "value_weight", "size_weight", "risk_weight"):
            check_non_negative(name, getattr(self, name))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        for name in ("warmup_steps", "patience", "seed"):
            check_positive_int(name, getattr(self, name), minimum=0)
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        check_positive("rtg_scale", self.rtg_scale)
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")
        check_choice("return_conditioning", self.return_conditioning, RETURN_CONDITIONING)
        if self.target_return is not None and not math.isfinite(float(self.target_return)):
            raise ValueError(f"target_return must be finite or None, got {self.target_return!r}")
        if not 0.0 <= self.target_quantile <= 1.0:
            raise ValueError(f"target_quantile must be in [0, 1], got {self.target_quantile!r}")
        if not 0.0 < self.expectile < 1.0:
            raise ValueError(f"expectile must be in (0, 1), got {self.expectile!r}")
        check_choice("risk_kind", self.risk_kind, RISK_KINDS)
        check_action_smoothing(self.action_smoothing)
        self.validate_layout()
        for name in ("observation_dim", "n_actions"):
            check_optional_positive_int(name, getattr(self, name))
        check_optional_positive_int("max_timestep", self.max_timestep, minimum=0)
        if self.positions is not None and self.n_actions is not None:
            if len(self.positions) != self.n_actions:
                raise ValueError(
                    f"positions has {len(self.positions)} entries for n_actions={self.n_actions}"
                )

    @property
    def built(self) -> bool:
        """Whether the shapes a model needs are known."""
        return None not in (self.observation_dim, self.n_actions, self.max_timestep) and (
            self.window_size is not None or self.reads_whole_observation(self.account_features)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return dataclasses.asdict(self)
