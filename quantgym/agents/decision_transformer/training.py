"""Training of the ``dt`` network: window sampling, the masked multi-task loss, the loop.

Sampling (:class:`WindowSampler`) keeps every per-step array as one torch tensor and draws a
batch with a handful of tensor ops (no per-window Python): a window starts at a uniformly
drawn step ``s`` (episode ``i`` with ``p ∝ L_i``, then a uniform start, the DT paper's law)
and runs to ``min(s + K, end of episode)``, *right*-padded (see
:mod:`quantgym.agents.decision_transformer.model`).

Chronological validation split: with the dataset's ``bar`` info, the validation windows are
those whose first step is at or after the bar that leaves ``val_fraction`` of the bar range
after it, and the training windows those whose last step is before it (windows straddling
the split are used by neither). The returns-to-go of a training step still sum rewards to
the end of its episode, which may lie past the split: validation drives early stopping
only, and the test range is never in the dataset. Without ``bar`` info the step index
within each episode plays the bar's part (the last ``val_fraction`` of the longest
episode's steps validate).

Loop (:func:`train`): AdamW (decay on weight matrices only, as nanoGPT), linear warm-up then
cosine decay, gradient-norm clipping, optional bf16 autocast, seeded (``torch.manual_seed``
for init/dropout, a seeded generator for sampling), validation loss on fixed batches every
``eval_every`` steps, early stopping with the best weights restored, a tqdm bar.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from quantgym.agents.decision_transformer.config import DecisionTransformerConfig
from quantgym.agents.decision_transformer.model import DecisionTransformer

__all__ = [
    "DTBatch",
    "WindowSampler",
    "forward_risk",
    "expectile_loss",
    "compute_loss",
    "lr_factor",
    "TrainingHistory",
    "train",
]


class DTBatch(NamedTuple):
    """A batch of right-padded windows."""

    states: torch.Tensor  # (B, K, D) float32
    actions: torch.Tensor  # (B, K) int64
    returns_to_go: torch.Tensor  # (B, K, 1) float32, scaled
    timesteps: torch.Tensor  # (B, K) int64
    mask: torch.Tensor  # (B, K) float32, 1 for real steps
    size: torch.Tensor  # (B, K) float32 target in [0, 1]
    risk: torch.Tensor  # (B, K) float32 target >= 0


def forward_risk(
    rewards: np.ndarray, episode_ends: np.ndarray, horizon: int, kind: str
) -> np.ndarray:
    """Per step, the risk of the next ``horizon`` rewards of its episode (the step's own reward
    first): ``"drawdown"`` the max drawdown of their cumulative sum (from 0), ``"volatility"``
    their standard deviation. ``episode_ends[i]`` is one past the last step of episode ``i``."""
    rewards = np.asarray(rewards, dtype=np.float64)
    n = rewards.size
    steps = np.arange(n)
    ends = np.repeat(episode_ends, np.diff(np.concatenate([[0], episode_ends])))  # (N,)
    idx = steps[:, None] + np.arange(horizon)[None, :]  # (N, h)
    inside = idx < ends[:, None]
    window = np.where(inside, rewards[np.minimum(idx, n - 1)], 0.0)  # (N, h)
    if kind == "volatility":
        count = inside.sum(1)
        mean = window.sum(1) / count
        var = (np.where(inside, window - mean[:, None], 0.0) ** 2).sum(1) / count
        return np.sqrt(var)
    path = np.concatenate([np.zeros((n, 1)), np.cumsum(window, axis=1)], axis=1)  # (N, h+1)
    return (np.maximum.accumulate(path, axis=1) - path).max(1)


class WindowSampler:
    """Right-padded training / validation windows of a dataset, as torch tensors.

    Args:
        states: ``(N, D)`` state per step (the columns the network reads).
        actions: ``(N,)`` action indices.
        rewards: ``(N,)`` rewards; returns-to-go and risk targets come from them.
        episode_lengths: ``(E,)`` lengths (episodes stored one after the other).
        bars: ``(N,)`` bar index per step, or ``None`` (split by episode order).
        positions: the action grid's positions (size targets ``|p| / max |p|``).
        config: the ``dt`` config (context, scale, gamma, risk, split, max_timestep).
        returns_to_go: ``(N,)`` unscaled returns-to-go when already computed (else from
            ``rewards`` with ``config.gamma``).
    """

    def __init__(
        self,
        states: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        episode_lengths: np.ndarray,
        bars: np.ndarray | None,
        positions: list[float],
        config: DecisionTransformerConfig,
        returns_to_go: np.ndarray | None = None,
    ) -> None:
        n = int(actions.shape[0])
        lengths = np.asarray(episode_lengths, dtype=np.int64)
        if states.shape[0] != n or rewards.shape[0] != n or int(lengths.sum()) != n:
            raise ValueError(
                f"states ({states.shape[0]}), actions ({n}), rewards ({rewards.shape[0]}) and "
                f"episode_lengths (sum {int(lengths.sum())}) disagree on the number of steps"
            )
        if config.max_timestep is None:
            raise ValueError("config.max_timestep must be set before sampling windows")
        self.context_length = k = int(config.context_length)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        episode = np.repeat(np.arange(lengths.size), lengths)
        step_in_episode = np.arange(n) - starts[episode]
        # returns-to-go G_t = r_t + gamma * G_{t+1}, reset at every episode end
        rew = np.asarray(rewards, dtype=np.float64)
        if returns_to_go is None:
            rtg = np.zeros(n)
            running = 0.0
            is_last = np.zeros(n, np.bool_)
            is_last[ends - 1] = True
            for t in range(n - 1, -1, -1):
                running = rew[t] + (0.0 if is_last[t] else config.gamma * running)
                rtg[t] = running
        else:
            rtg = np.asarray(returns_to_go, dtype=np.float64).reshape(n)
        grid = np.abs(np.asarray(positions, dtype=np.float64))
        size = grid[np.asarray(actions, dtype=np.int64)] / max(grid.max(), 1e-12)
        risk = forward_risk(rew, ends, int(config.risk_horizon), config.risk_kind)
        self.risk_scale = float(max(risk.mean(), 1e-8))

        self.states = torch.from_numpy(np.ascontiguousarray(states, dtype=np.float32))
        self.actions = torch.from_numpy(np.array(actions, dtype=np.int64))
        self.rtg = torch.from_numpy((rtg / config.rtg_scale).astype(np.float32))
        self.timesteps = torch.from_numpy(np.minimum(step_in_episode, config.max_timestep))
        self.size = torch.from_numpy(size.astype(np.float32))
        self.risk = torch.from_numpy((risk / self.risk_scale).astype(np.float32))
        self.episode_end = torch.from_numpy(ends[episode])  # (N,) one past the episode's end
        self.offsets = torch.arange(k)

        last_in_window = np.minimum(np.arange(n) + k, ends[episode]) - 1
        # without bar indices each episode's own step index is its clock
        bars = step_in_episode if bars is None else np.asarray(bars, dtype=np.int64)
        split = int(
            bars.min() + math.ceil((bars.max() - bars.min() + 1) * (1 - config.val_fraction))
        )
        train = bars[last_in_window] < split
        val = bars >= split
        if not train.any() or not val.any():
            raise ValueError(
                f"the chronological split leaves {int(train.sum())} training and "
                f"{int(val.sum())} validation windows; collect more data or change val_fraction"
            )
        self.train_starts = torch.from_numpy(np.flatnonzero(train))
        self.val_starts = torch.from_numpy(np.flatnonzero(val))

    def batch(self, starts: torch.Tensor) -> DTBatch:
        """Windows starting at global steps ``starts`` ``(B,)``."""
        idx = starts[:, None] + self.offsets[None, :]  # (B, K)
        valid = idx < self.episode_end[starts][:, None]  # (B, K), real steps first
        idx = torch.where(valid, idx, starts[:, None])  # pad with the first step (any value)
        return DTBatch(
            states=self.states[idx],
            actions=self.actions[idx],
            returns_to_go=self.rtg[idx].unsqueeze(-1),
            timesteps=self.timesteps[idx],
            mask=valid.float(),
            size=self.size[idx],
            risk=self.risk[idx],
        )

    def sample(self, batch_size: int, generator: torch.Generator) -> DTBatch:
        """``batch_size`` training windows with uniformly drawn starts."""
        pick = torch.randint(0, self.train_starts.numel(), (batch_size,), generator=generator)
        return self.batch(self.train_starts[pick])

    def validation_batches(self, batch_size: int, n_batches: int, seed: int) -> list[DTBatch]:
        """Fixed validation batches (the same every evaluation)."""
        generator = torch.Generator().manual_seed(seed + 1)
        out = []
        for _ in range(n_batches):
            pick = torch.randint(0, self.val_starts.numel(), (batch_size,), generator=generator)
            out.append(self.batch(self.val_starts[pick]))
        return out


def expectile_loss(prediction: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    """Elementwise asymmetric squared error ``|tau - 1(target < prediction)| (target - pred)^2``."""
    diff = target - prediction
    weight = torch.where(diff < 0, 1.0 - tau, tau)
    return weight * diff.square()


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def compute_loss(
    model: DecisionTransformer, batch: DTBatch, config: DecisionTransformerConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the masked action / value / size / risk losses, and each part."""
    out = model(batch.states, batch.actions, batch.returns_to_go, batch.timesteps)
    logits = out.action_logits.float()
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), batch.actions.reshape(-1), reduction="none"
    ).view_as(batch.mask)
    parts = {"action": _masked_mean(ce, batch.mask)}
    total = parts["action"]
    if config.value_weight > 0:
        value = expectile_loss(out.value.float(), batch.returns_to_go[..., 0], config.expectile)
        parts["value"] = _masked_mean(value, batch.mask)
        total = total + config.value_weight * parts["value"]
    if config.size_weight > 0:
        size = (out.size.float() - batch.size).square()
        parts["size"] = _masked_mean(size, batch.mask)
        total = total + config.size_weight * parts["size"]
    if config.risk_weight > 0:
        risk = (out.risk.float() - batch.risk).square()
        parts["risk"] = _masked_mean(risk, batch.mask)
        total = total + config.risk_weight * parts["risk"]
    return total, parts


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclasses.dataclass
class TrainingHistory:
    """What :func:`train` did: steps run, validation losses, the best one and when."""

    steps: int = 0
    val_steps: list[int] = dataclasses.field(default_factory=list)
    val_losses: list[float] = dataclasses.field(default_factory=list)
    best_val_loss: float = math.inf
    best_step: int = 0
    stopped_early: bool = False


def _autocast(enabled: bool) -> contextlib.AbstractContextManager[Any]:
    if enabled:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _optimizer(model: DecisionTransformer, config: DecisionTransformerConfig) -> torch.optim.AdamW:
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameter (frozen backbone and heads?)")
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
        betas=(0.9, 0.95),
    )


def validation_loss(
    model: DecisionTransformer, batches: list[DTBatch], config: DecisionTransformerConfig
) -> float:
    """Mean total loss over ``batches`` in eval mode."""
    model.eval()
    with torch.no_grad(), _autocast(config.bf16):
        losses = [float(compute_loss(model, b, config)[0]) for b in batches]
    model.train()
    return float(np.mean(losses))


def _steps(train_steps: int, progress_bar: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(range(train_steps), disable=not progress_bar, desc="dt", mininterval=1.0)


def train(
    model: DecisionTransformer,
    sampler: WindowSampler,
    config: DecisionTransformerConfig,
    train_steps: int,
    progress_bar: bool = True,
    callback: Callable[[int], None] | None = None,
) -> TrainingHistory:
    """Train ``model`` in place for up to ``train_steps`` gradient steps (see the module docstring).
    ``callback(step)`` runs after every optimiser step (``step`` counts from 1)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: lr_factor(s, config.warmup_steps, train_steps, config.min_lr_ratio),
    )
    val_batches = sampler.validation_batches(config.batch_size, config.val_batches, config.seed)
    history = TrainingHistory()
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    waited = 0
    bar = _steps(train_steps, progress_bar)
    model.train()
    for step in bar:
        batch = sampler.sample(config.batch_size, generator)
        with _autocast(config.bf16):
            loss, _ = compute_loss(model, batch, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        history.steps = step + 1
        if callback is not None:
            callback(step + 1)
        if (step + 1) % config.eval_every == 0 or step + 1 == train_steps:
            val = validation_loss(model, val_batches, config)
            history.val_steps.append(step + 1)
            history.val_losses.append(val)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", val=f"{val:.4f}")
            if val < history.best_val_loss:
                history.best_val_loss, history.best_step = val, step + 1
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
                waited = 0
            else:
                waited += 1
                if config.patience and waited >= config.patience:
                    history.stopped_early = True
                    break
    model.load_state_dict(best_state)
    model.eval()
    return history
