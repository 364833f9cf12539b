"""``dt_d3rlpy``: d3rlpy's ``DiscreteDecisionTransformer`` behind the quantgym Agent API,
batched and stateful at inference (:class:`D3rlpyDTState`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch

from quantgym.compat import quiet_legacy_gym

quiet_legacy_gym()  # before d3rlpy, which imports legacy gym and its stderr notice
import d3rlpy
from d3rlpy.models.encoders import VectorEncoderFactory
from d3rlpy.preprocessing import MultiplyRewardScaler

from quantgym.agents.d3rlpy.base import D3rlpyAgent
from quantgym.agents.observations import episode_start_mask, realised_log_return
from quantgym.agents.smoothing import check_action_smoothing, smooth
from quantgym.checks import check_choice, check_optional_positive_int, check_positive_int
from quantgym.datasets import to_d3rlpy

__all__ = ["D3rlpyDecisionTransformerAgent", "D3rlpyDTState"]


class D3rlpyDTState(NamedTuple):
    """Per-env inference state of :class:`D3rlpyDecisionTransformerAgent` (``N`` envs,
    context ``K``); the newest step is the last column.

    Not our ``dt``'s :class:`~quantgym.agents.decision_transformer.policy.DTState`: d3rlpy's
    model reads left-padded windows with a ``valid`` mask and unscaled returns-to-go, ours
    right-padded windows with a length and scaled returns-to-go."""

    observations: np.ndarray  # (N, K, D) float32
    actions: np.ndarray  # (N, K) int64 (the newest slot holds the pad action 0)
    returns_to_go: np.ndarray  # (N, K) float32, unscaled
    timesteps: np.ndarray  # (N, K) int64
    valid: np.ndarray  # (N, K) bool, False for the left padding
    return_rest: np.ndarray  # (N,) float64 target minus the realised log growth so far
    timestep: np.ndarray  # (N,) int64 timestep of the next observation
    last_observation: np.ndarray  # (N, obs_dim) float32 raw observation, to recover the reward
    smoothed: np.ndarray  # (N, A) float64 moving average of the action probabilities


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
        the observation encoder is one ReLU layer to ``d_model``, d3rlpy's embedding size).

        Defaults follow d3rlpy's own reproduction settings where a CPU allows: its context
        of 20 steps, ``max_timestep`` the longest episode, a target return near the top of the
        dataset's episode returns (``target_quantile=0.95``); the network is narrower (2
        layers of width 64, several times faster on a CPU than d3rlpy's 3 x 128) so that
        ``train_steps=3_000`` fits in a few CPU-minutes. ``action_sampler="softmax"`` is
        d3rlpy's own inference for a discrete DT (``as_stateful_wrapper`` samples each action
        from the softmax of the logits): ``predict`` then samples even when
        ``deterministic=True``, from a generator seeded with ``seed`` at the first call, so a
        run reproduces. ``"greedy"`` takes the argmax; with the action tokens d3rlpy's model
        reads, the argmax copies the previous action and holds losing positions
        (measured: docs/results.md, offline agents). ``action_smoothing`` (1: off, the
        default) reads the decision from a moving average of the action probabilities
        (:mod:`quantgym.agents.smoothing`); it helps the argmax on random logs only, where
        nothing is copied (benchmarks/dt_d3rlpy_inference.py).
        """

        train_steps: int = 3_000
        batch_size: int = 64
        learning_rate: float = 6e-4
        context_length: int = 20
        n_layers: int = 2
        n_heads: int = 1
        d_model: int = 64
        dropout: float = 0.1
        max_timestep: int | None = None
        rtg_scale: float = 1.0
        target_return: float | None = None
        target_quantile: float = 0.95
        action_sampler: str = "softmax"
        action_smoothing: float = 1.0
        warmup_tokens: int = 10_240

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        for name in ("context_length", "n_layers", "n_heads", "d_model"):
            check_positive_int(name, getattr(c, name))
        check_optional_positive_int("max_timestep", c.max_timestep)
        if not 0.0 <= c.target_quantile <= 1.0:
            raise ValueError(f"target_quantile must be in [0, 1], got {c.target_quantile!r}")
        if not c.rtg_scale > 0:
            raise ValueError(f"rtg_scale must be positive, got {c.rtg_scale!r}")
        check_choice("action_sampler", c.action_sampler, ("softmax", "greedy"))
        check_action_smoothing(c.action_smoothing)
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
            final_tokens=c.train_steps * c.batch_size * c.context_length,
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

    def fit(
        self,
        dataset: Any,
        train_steps: int | None = None,
        progress_bar: bool = True,
        log_dir: Any = None,
    ) -> D3rlpyDecisionTransformerAgent:
        """:meth:`D3rlpyAgent.fit`. d3rlpy's learning rate warms up, then decays on a cosine
        that ends at ``config.train_steps`` (``final_tokens``) and would rise again after it;
        so a model built by this call takes ``train_steps`` as its ``config.train_steps``, and
        its schedule spans the steps it trains. A model that exists keeps its schedule."""
        if train_steps is not None and self.algo is None:
            steps = self._train_steps(train_steps)
            self.config = dataclasses.replace(self.config, train_steps=steps)
        return super().fit(dataset, train_steps, progress_bar, log_dir)

    def _export(self, dataset: Any) -> Any:
        # No padding row: d3rlpy's trajectory slicer would train on it as a real step.
        return to_d3rlpy(self._reduced(dataset), keep_final_observation=False)

    def _sampler(self) -> torch.Generator:
        """The agent's own action-sampling generator, seeded with ``config.seed`` once."""
        generator = getattr(self, "_generator", None)
        if generator is None:
            generator = torch.Generator().manual_seed(int(self.config.seed))
            self._generator = generator
        return generator

    def initial_state(self, n_envs: int = 1) -> D3rlpyDTState:
        """Empty context for ``n_envs`` episodes, conditioned on ``config.target_return``."""
        c = self.config
        k, d = c.context_length, self.input_dim
        return D3rlpyDTState(
            observations=np.zeros((n_envs, k, d), np.float32),
            actions=np.zeros((n_envs, k), np.int64),
            returns_to_go=np.zeros((n_envs, k), np.float32),
            timesteps=np.zeros((n_envs, k), np.int64),
            valid=np.zeros((n_envs, k), np.bool_),
            return_rest=np.full(n_envs, float(c.target_return or 0.0)),
            timestep=np.ones(n_envs, np.int64),
            last_observation=np.zeros((n_envs, int(c.observation_dim or 0)), np.float32),
            smoothed=np.zeros((n_envs, int(c.action_size or 0)), np.float64),
        )

    def _advance(
        self, state: D3rlpyDTState, obs: np.ndarray, episode_start: np.ndarray
    ) -> D3rlpyDTState:
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

        return D3rlpyDTState(
            observations=shift(state.observations, self._select(obs), fresh.observations),
            actions=shift(state.actions, np.zeros(n, np.int64), fresh.actions),
            returns_to_go=shift(state.returns_to_go, rest.astype(np.float32), fresh.returns_to_go),
            timesteps=shift(state.timesteps, timestep, fresh.timesteps),
            valid=shift(state.valid, np.ones(n, np.bool_), fresh.valid),
            return_rest=rest,
            # the timestep embedding has max_timestep rows (0 .. max_timestep - 1)
            timestep=np.minimum(timestep + 1, int(self.config.max_timestep or 1) - 1),
            last_observation=obs.copy(),
            smoothed=state.smoothed,  # predict restarts it at an episode's first step
        )

    def _next_context(
        self, obs: np.ndarray, state: Any, episode_start: np.ndarray | None
    ) -> D3rlpyDTState:
        """The context after appending the ``(N, D)`` raw observations ``obs``."""
        n = obs.shape[0]
        if state is None:
            state, starts = self.initial_state(n), np.ones(n, np.bool_)
        else:
            if not isinstance(state, D3rlpyDTState) or state.observations.shape[0] != n:
                raise ValueError(f"state must be a D3rlpyDTState for {n} envs (or None)")
            starts = episode_start_mask(episode_start, n)
        return self._advance(state, obs, starts)

    def _newest_logits(self, context: D3rlpyDTState, observations: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, A)`` of the action at the newest state of ``context`` whose (selected)
        observations are ``observations`` ``(N, K, D)``."""
        transformer = self._require_algo().impl.modules.transformer
        transformer.eval()  # inference drops the newest (pad) action token; no dropout
        scale = float(self.config.rtg_scale)
        _, logits = transformer(
            observations,  # (N, K, D)
            torch.from_numpy(context.actions),  # (N, K)
            torch.from_numpy(context.returns_to_go * scale)[..., None],  # (N, K, 1)
            torch.from_numpy(context.timesteps),  # (N, K)
            torch.from_numpy((~context.valid).astype(np.float32)),  # d3rlpy: 1 - masks
        )
        return logits[:, -1]  # (N, A) action at the newest state

    def _scores_kind(self, discrete: bool) -> str | None:
        return "logits"

    def _network_scores(
        self, modules: Any, x: torch.Tensor, state: Any, episode_start: Any, raw: torch.Tensor
    ) -> torch.Tensor:
        """Logits at the newest state, the context advanced as :meth:`predict` advances it,
        differentiable with respect to the newest observation ``x`` (the older ones are
        fixed). With ``action_sampler="softmax"`` ``predict`` samples from their softmax."""
        obs = np.asarray(raw.detach().cpu().numpy(), dtype=np.float32)
        context = self._next_context(obs, state, episode_start)
        older = torch.from_numpy(context.observations[:, :-1])  # (N, K - 1, D)
        return self._newest_logits(context, torch.cat([older, x[:, None].to(older)], dim=1))

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, D3rlpyDTState]:
        """Action(s) for ``(D,)`` or ``(N, D)`` observations; ``state`` carries each env's
        context (:class:`D3rlpyDTState`; ``None`` starts new episodes). ``episode_start[i]`` resets
        env ``i``. ``deterministic=True`` follows ``config.action_sampler`` (d3rlpy's softmax
        sampling by default, seeded; ``"greedy"``: argmax); ``deterministic=False`` samples."""
        self._require_algo()
        obs, batched = self._check_observation(observation)
        state = self._next_context(obs, state, episode_start)
        weight = float(self.config.action_smoothing)
        with torch.inference_mode():
            logits = self._newest_logits(state, torch.from_numpy(state.observations))
            if weight != 1.0:  # the decision reads the moving average of the probabilities
                first = state.valid.sum(axis=1) == 1  # an episode's first step restarts it
                probabilities = torch.softmax(logits.double(), dim=-1).numpy()
                average = smooth(probabilities, state.smoothed, first, weight)
                state = state._replace(smoothed=average)
                logits = torch.from_numpy(np.log(np.maximum(average, 1e-300)))
            if deterministic and self.config.action_sampler == "greedy":
                actions = logits.argmax(dim=-1).numpy()
            else:
                actions = torch.multinomial(
                    torch.softmax(logits, dim=-1), 1, generator=self._sampler()
                )[:, 0].numpy()
        state.actions[:, -1] = actions  # the action fills the newest slot's action token
        return self._finish(actions, batched), state
