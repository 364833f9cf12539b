"""``supervised``: the baseline most users try first, a classifier of the next ``horizon``-bar
return sign that trades its prediction.

Training data (:meth:`SupervisedAgent.fit`, from a
:class:`~quantgym.datasets.trajectory.TrajectoryDataset`):

- inputs: the market part of each observation (the ``window_size x n_market_features``
  window; the account features depend on the behaviour policy and are dropped), one sample
  per bar (the market window of a bar is the same in every episode);
- labels: ``1`` if ``close[t + horizon] > close[t]`` else ``0``, for bar ``t`` whose
  observation has seen bar ``t`` closed. Only bars with ``t + horizon <= last bar of the
  dataset`` get a label: no label ever reads a price beyond the dataset's (train) range;
- prices: ``close`` rebuilt from the dataset's recorded ``env_kwargs`` (synthetic and sample
  markets, CSV paths), or passed as ``fit(..., prices=...)`` (bar-indexed closes);
- chronological split: the last ``val_fraction`` of the bars validate; train labels that
  would read a validation-range price (``t + horizon >= first validation bar``) are purged;
- an MLP trained with AdamW on the cross entropy, early stopping on the validation loss
  (``patience`` evaluations every ``eval_every`` steps), best weights kept;
- precision / recall / F1 of both classes on the validation range are printed and stored in
  :attr:`SupervisedAgent.validation_metrics`.

Trading (``predict``): with ``p = P(up)`` (its moving average over the episode when
``action_smoothing < 1``), long (``+max_position``) if ``p >= threshold``,
short if ``p <= 1 - threshold``, flat otherwise, mapped to the nearest position of the env's
grid (``positions`` from the dataset's env kwargs) or to ``[-1, 1]`` for continuous actions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quantgym.agents.base import TrainableAgent
from quantgym.agents.observations import N_ACCOUNT_FEATURES, episode_start_mask
from quantgym.agents.smoothing import check_action_smoothing, smooth
from quantgym.checks import check_positive_int
from quantgym.files import atomic_write

__all__ = ["SupervisedAgent", "Classifier", "label_bars", "MODEL_FILE"]

MODEL_FILE = "model.pt"


class Classifier(nn.Module):
    """Standardise -> MLP (GELU) -> 2 logits (down, up)."""

    mean: torch.Tensor  # (F,) train-range feature means (buffer, saved with the weights)
    std: torch.Tensor  # (F,)

    def __init__(self, input_dim: int, hidden_units: list[int], dropout: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("std", torch.ones(input_dim))
        layers: list[nn.Module] = []
        width = input_dim
        for h in hidden_units:
            layers += [nn.Linear(width, h), nn.GELU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F) -> (B, 2)
        return self.net((x - self.mean) / self.std)


def label_bars(
    close: np.ndarray, bars: np.ndarray, horizon: int, last_bar: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``close[t + horizon] > close[t]`` for the bars ``t`` with ``t + horizon <= last_bar``.

    Returns ``(mask, labels)``: ``mask[i]`` says bar ``bars[i]`` has a label; ``labels`` are
    int64 (0 for masked bars). No price after ``last_bar`` is read.
    """
    bars = np.asarray(bars, dtype=np.int64)
    if last_bar >= len(close):
        raise ValueError(f"last_bar={last_bar} is beyond the {len(close)} prices")
    mask = (bars >= 0) & (bars + horizon <= last_bar)
    labels = np.zeros(bars.shape, np.int64)
    t = bars[mask]
    labels[mask] = (close[t + horizon] > close[t]).astype(np.int64)
    return mask, labels


def _closes_from_metadata(dataset: Any) -> np.ndarray:
    import gymnasium as gym

    from quantgym import ENV_ID

    kwargs = dict(dataset.metadata.get("env_kwargs") or {})
    if isinstance(kwargs.get("data"), str) and kwargs["data"].startswith("<"):
        raise ValueError(
            "the dataset's market was an in-memory DataFrame; pass fit(..., prices=close) "
            "with the bar-indexed close prices"
        )
    kwargs.pop("end", None)  # labels stop at the dataset's last bar anyway
    try:
        env = gym.make(ENV_ID, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure means the env cannot be rebuilt
        raise ValueError(
            f"cannot rebuild the dataset's market from its env_kwargs ({exc}); pass "
            "fit(..., prices=close) with the bar-indexed close prices"
        ) from None
    try:
        core: Any = env.unwrapped
        return np.asarray(core.market.close, dtype=np.float64)
    finally:
        env.close()


def _metrics(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {
        "accuracy": float(np.mean(labels == predicted)) if labels.size else 0.0
    }
    for cls, name in ((1, "up"), (0, "down")):
        tp = float(np.sum((predicted == cls) & (labels == cls)))
        precision = tp / max(float(np.sum(predicted == cls)), 1.0)
        recall = tp / max(float(np.sum(labels == cls)), 1.0)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        out.update({f"precision_{name}": precision, f"recall_{name}": recall, f"f1_{name}": f1})
    return out


class SupervisedAgent(TrainableAgent):
    """``supervised``: next-``horizon``-bar return-sign classifier that trades with a confidence
    threshold (see the module docstring). ``offline = True``: ``fit(dataset, train_steps=...)``
    (gradient steps)."""

    name: ClassVar[str] = "supervised"
    offline: ClassVar[bool] = True
    renamed_config_keys: ClassVar[Mapping[str, str]] = {"n_steps": "train_steps"}

    @dataclasses.dataclass
    class Config:
        """``horizon`` bars ahead (20: on ``regime`` the next-5-bar sign is close to a coin flip
        to this classifier while the 20-bar sign carries the regime's drift; measurements:
        docs/results.md); ``threshold`` the ``P(up)`` needed to go long (``1 -
        threshold`` to go short), read from a moving average of ``P(up)`` with weight
        ``action_smoothing`` on the newest bar (1: the newest bar's alone;
        :mod:`quantgym.agents.smoothing`; 0.1 scored 87.2 [83.8, 90.4] against 65.3 [61.1, 69.2]
        for 1 on validation windows, benchmarks/results/action_smoothing_supervised.json);
        ``max_position`` the size of a trade (fraction of equity);
        ``val_fraction`` the last share of bars used for early stopping; ``train_steps`` the
        default gradient-step budget of ``fit``. ``observation_dim``/``positions``/``discrete`` are
        filled in by :meth:`SupervisedAgent.fit`."""

        horizon: int = 20
        hidden_units: list[int] = dataclasses.field(default_factory=lambda: [64])
        dropout: float = 0.1
        learning_rate: float = 1e-3
        weight_decay: float = 1e-2
        batch_size: int = 256
        train_steps: int = 2_000
        val_fraction: float = 0.2
        eval_every: int = 100
        patience: int = 5
        threshold: float = 0.6
        action_smoothing: float = 0.1
        max_position: float = 1.0
        seed: int = 0
        verbose: bool = True
        observation_dim: int | None = None
        positions: list[float] | None = None
        max_leverage: float = 1.0
        discrete: bool | None = None

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._validate_config()
        self.model: Classifier | None = None
        self.validation_metrics: dict[str, float] = {}
        if self.config.observation_dim is not None:
            self._build()

    def _validate_config(self) -> None:
        c = self.config
        for name in ("horizon", "batch_size", "train_steps", "eval_every", "patience"):
            check_positive_int(name, getattr(c, name))
        if not 0.0 < c.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {c.val_fraction!r}")
        if not 0.5 <= c.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0.5, 1], got {c.threshold!r}")
        check_action_smoothing(c.action_smoothing)
        if not 0.0 <= c.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {c.dropout!r}")
        if not c.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {c.learning_rate!r}")
        if not (
            isinstance(c.hidden_units, (list, tuple))
            and all(
                isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in c.hidden_units
            )
        ):
            raise ValueError(
                f"hidden_units must be a list of positive ints, got {c.hidden_units!r}"
            )
        if c.observation_dim is not None and c.observation_dim <= N_ACCOUNT_FEATURES:
            raise ValueError(
                f"observation_dim must exceed the {N_ACCOUNT_FEATURES} account features, "
                f"got {c.observation_dim}"
            )

    @property
    def input_dim(self) -> int:
        """Width of the market window the classifier reads."""
        if self.config.observation_dim is None:
            raise ValueError("supervised has no model yet: call fit(dataset) or load(path)")
        return int(self.config.observation_dim) - N_ACCOUNT_FEATURES

    def _build(self) -> None:
        torch.manual_seed(int(self.config.seed))
        self.model = Classifier(self.input_dim, list(self.config.hidden_units), self.config.dropout)

    # -- training ------------------------------------------------------------------------
    def _samples(
        self, dataset: Any, prices: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unique bars of the dataset, their market windows and labels (labelled bars only)."""
        infos = dataset.infos
        if "bar" not in infos:
            raise ValueError("dataset has no 'bar' info: supervised needs bar indices for labels")
        bars_after = np.asarray(infos["bar"], dtype=np.int64)  # bar marked after each step
        bars = bars_after - 1  # bar each step's observation has seen closed
        last_bar = int(bars_after.max())
        close = (
            _closes_from_metadata(dataset)
            if prices is None
            else np.asarray(prices, dtype=np.float64).reshape(-1)
        )
        unique, first = np.unique(bars, return_index=True)
        windows = dataset.step_observations()[first][:, :-N_ACCOUNT_FEATURES]
        mask, labels = label_bars(close, unique, int(self.config.horizon), last_bar)
        return unique[mask], windows[mask].astype(np.float32), labels[mask]

    def fit(
        self,
        dataset: Any,
        train_steps: int | None = None,
        progress_bar: bool = True,
        prices: np.ndarray | None = None,
    ) -> SupervisedAgent:
        """Train the classifier (see the module docstring).

        Args:
            dataset: a :class:`~quantgym.datasets.trajectory.TrajectoryDataset`.
            train_steps: maximum gradient steps (default ``config.train_steps``); early
                stopping may end sooner.
            progress_bar: show a tqdm bar.
            prices: bar-indexed close prices of the dataset's market (default: rebuilt from
                the dataset's env kwargs).
        """
        from tqdm.auto import tqdm

        from quantgym.datasets.trajectory import TrajectoryDataset

        if not isinstance(dataset, TrajectoryDataset):
            raise ValueError(f"dataset must be a TrajectoryDataset, got {type(dataset).__name__}")
        c = self.config
        train_steps = self._train_steps(train_steps)
        env_kwargs = dataset.metadata.get("env_kwargs") or {}
        self.config = dataclasses.replace(
            c,
            observation_dim=int(dataset.observation_shape[0]),
            discrete=bool(dataset.is_discrete),
            positions=[float(p) for p in env_kwargs.get("positions", (-1.0, 0.0, 1.0))]
            if dataset.is_discrete
            else None,
            max_leverage=float(env_kwargs.get("max_leverage", 1.0) or 1.0),
        )
        self._validate_config()
        bars, x, y = self._samples(dataset, prices)
        split_bar = int(
            bars.min() + math.ceil((bars.max() - bars.min() + 1) * (1 - c.val_fraction))
        )
        train = bars + c.horizon < split_bar  # purged: no train label reads a validation price
        val = bars >= split_bar
        if train.sum() < 2 or val.sum() < 1:
            raise ValueError(
                f"too few labelled bars for a train/validation split ({int(train.sum())} train, "
                f"{int(val.sum())} validation); collect a longer dataset or lower horizon={c.horizon}"
            )
        self._build()
        model = self.model
        assert model is not None
        x_train, y_train = torch.from_numpy(x[train]), torch.from_numpy(y[train])
        x_val, y_val = torch.from_numpy(x[val]), torch.from_numpy(y[val])
        model.mean.copy_(x_train.mean(0))
        model.std.copy_(x_train.std(0).clamp_min(1e-6))
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay
        )
        generator = torch.Generator().manual_seed(int(c.seed))
        best = (math.inf, {k: v.clone() for k, v in model.state_dict().items()})
        waited = 0
        bar = tqdm(range(train_steps), disable=not progress_bar, desc="supervised")
        for step in bar:
            model.train()
            idx = torch.randint(0, x_train.shape[0], (c.batch_size,), generator=generator)
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if (step + 1) % c.eval_every == 0 or step + 1 == train_steps:
                val_loss = self._loss(x_val, y_val)
                bar.set_postfix(val_loss=f"{val_loss:.4f}")
                if val_loss < best[0]:
                    best = (val_loss, {k: v.clone() for k, v in model.state_dict().items()})
                    waited = 0
                else:
                    waited += 1
                    if waited >= c.patience:
                        break
        model.load_state_dict(best[1])
        model.eval()
        with torch.inference_mode():
            predicted = model(x_val).argmax(-1).numpy()
        self.validation_metrics = {
            **_metrics(y[val], predicted),
            "val_loss": float(best[0]),
            "n_train": int(train.sum()),
            "n_val": int(val.sum()),
            "steps": int(step + 1),
        }
        if c.verbose:
            m = self.validation_metrics
            print(
                f"supervised: validation bars {int(bars[val].min())}..{int(bars[val].max())} "
                f"({m['n_val']}), accuracy {m['accuracy']:.3f}; up: precision "
                f"{m['precision_up']:.3f} recall {m['recall_up']:.3f} F1 {m['f1_up']:.3f}; "
                f"down: precision {m['precision_down']:.3f} recall {m['recall_down']:.3f} "
                f"F1 {m['f1_down']:.3f}"
            )
        return self

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        assert self.model is not None
        self.model.eval()
        with torch.inference_mode():
            return float(F.cross_entropy(self.model(x), y))

    # -- inference -----------------------------------------------------------------------
    def probability_up(self, observation: np.ndarray) -> np.ndarray:
        """``P(close[t + horizon] > close[t])`` for ``(N, D)`` (or ``(D,)``) observations."""
        if self.model is None:
            raise ValueError("supervised has no model yet: call fit(dataset) or load(path)")
        dim = int(self.config.observation_dim)
        obs = np.asarray(observation, dtype=np.float32)
        if obs.ndim not in (1, 2) or obs.shape[-1] != dim:
            raise ValueError(f"observation must have shape ({dim},) or (N, {dim}), got {obs.shape}")
        batch = np.atleast_2d(obs)[:, :-N_ACCOUNT_FEATURES]
        self.model.eval()
        with torch.inference_mode():
            p = torch.softmax(self.model(torch.from_numpy(np.ascontiguousarray(batch))), -1)[:, 1]
        return p.numpy() if obs.ndim == 2 else p.numpy()[0]

    # -- the differentiable hook of quantgym.agents.perturbation ---------------------------
    action_scores_kind: ClassVar[str] = "logits"

    def action_scores(
        self, observation: torch.Tensor, state: Any = None, episode_start: Any = None
    ) -> torch.Tensor:
        """The classifier's logits ``(N, 2)`` (down, up) for raw observations ``(N, D)``,
        differentiable with respect to them. They are class scores, not action scores: the
        traded action is long / flat / short by ``P(up)`` against ``threshold``, so lowering
        the likelier class's probability moves the action away from it."""
        if self.model is None:
            raise ValueError("supervised has no model yet: call fit(dataset) or load(path)")
        self.model.eval()
        return self.model(observation.float()[:, :-N_ACCOUNT_FEATURES])

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Long / flat / short by the confidence threshold, as env actions. ``state`` is the
        moving average of ``P(up)`` (``None``: new episodes; ``episode_start[i]`` restarts env
        ``i``'s); with ``action_smoothing=1`` it stays ``None``."""
        p = np.atleast_1d(self.probability_up(observation))
        c = self.config
        if c.action_smoothing != 1.0:
            starts = episode_start_mask(episode_start, p.shape[0])
            state = smooth(p[:, None], state, starts, c.action_smoothing)
            p = state[:, 0]
        desired = np.where(
            p >= c.threshold, c.max_position, np.where(p <= 1 - c.threshold, -c.max_position, 0.0)
        )
        if c.discrete:
            grid = np.asarray(c.positions, dtype=np.float64)
            actions: np.ndarray = np.abs(desired[:, None] - grid[None]).argmin(1).astype(np.int64)
        else:
            actions = np.clip(desired / c.max_leverage, -1.0, 1.0).astype(np.float32)[:, None]
        return (actions if np.ndim(observation) == 2 else actions[0]), state

    # -- persistence ---------------------------------------------------------------------
    def _save_state(self, path: Path) -> None:
        if self.model is None:
            raise ValueError("supervised has no model to save: call fit(dataset) first")
        state = self.model.state_dict()
        atomic_write(path / MODEL_FILE, lambda tmp: torch.save(state, tmp))

    def _load_state(self, path: Path) -> None:
        file = path / MODEL_FILE
        if not file.is_file():
            raise ValueError(f"{file} does not exist: not a saved supervised agent")
        self._build()
        assert self.model is not None
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - any unreadable/mismatched file is a bad file
            raise ValueError(f"{file} does not match the config in agent.json: {exc}") from None
        self.model.eval()
