"""The machinery the allocating PPO agents share (:class:`PortfolioPPOAgent`): they train on
``PortfolioEnv-v0`` (a dict of env kwargs builds ``gym.make_vec("PortfolioEnv-v0", ...)``), read
the observation layout from the env's ``layout`` (saved in the config, so a loaded agent needs
no env) and use :class:`~quantgym.agents.sb3.allocation.AllocationPolicy`.

``ppo_eiie`` (shared per-asset encoder) and ``ppo_cross_attention`` (plus self-attention across
assets) are thin subclasses in their own modules. Everything else (fit, resume, checkpoints,
safe save/load, fast predict) is :class:`~quantgym.agents.sb3.agent.SB3Agent`'s. Resuming is
exact in weights, optimizer, step counter and RNG state; the episodes in flight restart
(``PortfolioVectorEnv`` has no ``get_state``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch

from quantgym import PORTFOLIO_ENV_ID
from quantgym.agents.sb3.agent import SB3Agent
from quantgym.agents.sb3.allocation import (
    ALLOCATION_POLICY,
    AllocationPPO,
    AssetTokenExtractor,
)
from quantgym.agents.sb3.envs import env_attr
from quantgym.agents.sb3.excess_reward import ExcessLogReturnVecEnv
from quantgym.checks import check_positive_int

__all__ = ["PortfolioPPOAgent", "PORTFOLIO_LAYOUT_FIELDS"]

#: Config fields read from the env's ``layout`` at build time.
PORTFOLIO_LAYOUT_FIELDS = ("n_assets", "window_size", "n_features", "n_cross_section")


def _vec_layers(venv: Any) -> list[Any]:
    layers = []
    while venv is not None and venv not in layers:
        layers.append(venv)
        venv = getattr(venv, "venv", None)
    return layers


class PortfolioPPOAgent(SB3Agent):
    """PPO with a permutation-equivariant allocation policy on ``PortfolioEnv-v0`` (see
    :mod:`quantgym.agents.sb3.allocation` for how scores become weights)."""

    name: ClassVar[str] = "ppo_portfolio"
    algorithm_class: ClassVar[Any] = AllocationPPO
    policy_name: ClassVar[str] = ALLOCATION_POLICY
    env_id: ClassVar[str] = PORTFOLIO_ENV_ID

    @dataclasses.dataclass
    class Config(SB3Agent.Config):
        """:class:`SB3Agent.Config` plus the encoder and the observation layout.

        - ``window_channels``: channels of the temporal convolution over each asset's whole
          window (EIIE's; 0 = none);
        - ``recent_bars``: newest window rows each asset's encoder also reads raw;
        - ``d_model`` token width, ``hidden`` width of the encoder and the heads;
        - ``n_attention_layers`` cross-asset blocks (``n_heads``, ``dim_feedforward``);
        - ``log_std_init``: log of the initial exploration noise on each weight;
        - ``rebalance_rate``: the initial fraction of the way from the current weights to the
          softmax target traded each bar (learned; ``1`` = trade to the target, fixed);
        - ``excess_reward``: train on the log growth in excess of the uniform portfolio's (a
          control variate that leaves the optimal policy unchanged,
          :mod:`quantgym.agents.sb3.excess_reward`); needs the env's log-growth reward;
        - ``catch_up_distance``: a gap (L1, assets and cash) from the current weights to the
          target beyond this is closed at once (``AllocationHeads``; 0 = the rate alone);
        - ``normalize_obs=False``: the env's features are already normalised, and per-column
          statistics would break the equivariance (each asset's columns its own scale);
        - ``train_steps=100_000``: the knee of the learning curve on the synthetic factor
          market (50k / 100k / 200k: 35.0 / 44.9 / 39.0 of the Kelly filter; docs/results.md);
        - ``n_assets``/``window_size``/``n_features``/``n_cross_section`` are read from the env.
        """

        window_channels: int = 16
        recent_bars: int = 1
        d_model: int = 32
        hidden: int = 64
        n_attention_layers: int = 0
        n_heads: int = 2
        dim_feedforward: int = 64
        log_std_init: float = -2.0
        rebalance_rate: float = 0.03
        catch_up_distance: float = 0.0
        excess_reward: bool = True
        normalize_obs: bool = False
        gamma: float = 0.97
        gae_lambda: float = 0.9
        lr_schedule: str = "linear"
        train_steps: int = 100_000
        ent_coef: float = 0.0
        n_assets: int | None = None
        window_size: int | None = None
        n_features: int | None = None
        n_cross_section: int | None = None

    def _validate_config(self) -> None:
        super()._validate_config()
        c = self.config
        for field in ("recent_bars", "d_model", "hidden", "n_heads", "dim_feedforward"):
            check_positive_int(field, getattr(c, field))
        if c.window_channels < 0:
            raise ValueError(f"window_channels must be >= 0, got {c.window_channels}")
        if c.n_attention_layers < 0:
            raise ValueError(f"n_attention_layers must be >= 0, got {c.n_attention_layers}")
        if c.d_model % c.n_heads:
            raise ValueError(f"d_model={c.d_model} must be divisible by n_heads={c.n_heads}")
        if not 0.0 < c.rebalance_rate <= 1.0:
            raise ValueError(f"rebalance_rate must be in (0, 1], got {c.rebalance_rate}")
        if not (np.isfinite(c.catch_up_distance) and c.catch_up_distance >= 0.0):
            raise ValueError(f"catch_up_distance must be >= 0, got {c.catch_up_distance}")
        if not np.isfinite(c.log_std_init):
            raise ValueError(f"log_std_init must be finite, got {c.log_std_init}")

    def _wrap(self, venv: Any) -> Any:
        if self.config.excess_reward and not any(
            isinstance(layer, ExcessLogReturnVecEnv) for layer in _vec_layers(venv)
        ):
            venv = ExcessLogReturnVecEnv(venv)
        return super()._wrap(venv)

    def _resolve_portfolio_layout(self, env: Any) -> None:
        c = self.config
        if all(getattr(c, f) is not None for f in PORTFOLIO_LAYOUT_FIELDS):
            return
        layout = env_attr(env, "layout") if env is not None else None
        shapes = getattr(layout, "shapes", None)
        if shapes is None or "windows" not in shapes:
            raise ValueError(
                f"{self.name} needs a PortfolioEnv (its layout gives n_assets, window_size, "
                "n_features, n_cross_section), or those four set in the config"
            )
        c.n_assets, c.window_size, c.n_features = (int(x) for x in shapes["windows"])
        c.n_cross_section = int(shapes["cross_section"][1])

    def _policy_kwargs(self, env: Any) -> dict[str, Any]:
        self._resolve_portfolio_layout(env)
        c = self.config
        return {
            "features_extractor_class": AssetTokenExtractor,
            "features_extractor_kwargs": {
                "n_assets": c.n_assets,
                "window_size": c.window_size,
                "n_features": c.n_features,
                "n_cross_section": c.n_cross_section,
                "recent_bars": c.recent_bars,
                "d_model": c.d_model,
                "hidden": c.hidden,
                "n_attention_layers": c.n_attention_layers,
                "n_heads": c.n_heads,
                "dim_feedforward": c.dim_feedforward,
                "window_channels": c.window_channels,
            },
            "head_hidden": c.hidden,
            "rebalance_rate": c.rebalance_rate,
            "catch_up_distance": c.catch_up_distance,
            "log_std_init": c.log_std_init,
        }

    def scores(self, observation: np.ndarray) -> np.ndarray:
        """The actor's scores for raw observations ``(D,)`` or ``(B, D)``: ``(B, N + 1)``, cash
        last, untradable assets at -1e9; their softmax is the target the deterministic weights
        move to (a fraction ``rebalance_rate`` of the way from the current weights)."""
        obs, _ = self._check_observation(observation)
        policy: Any = self._require_model().policy
        with torch.inference_mode():
            features = policy.pi_features_extractor(torch.from_numpy(np.atleast_2d(obs)))
            return policy.mlp_extractor.scores(features).numpy()
