"""Agent registry: names -> ``"package.module:Class"`` strings, imported only when used.

Keeping import paths (not classes) means ``import quantgym.agents`` never imports torch or
Stable-Baselines3; a baseline built by name imports only its own module.

>>> from quantgym.agents import make_agent, list_agents, register_agent
>>> agent = make_agent("ppo_lstm", n_envs=8)                     # by registered name
>>> agent = make_agent("my_pkg.agents:MyAgent", alpha=0.1)       # by import path
>>> register_agent("mine", "my_pkg.agents:MyAgent")              # or register the class itself
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from quantgym.policies.base import (
    AGENT_FILE,
    agent_class_from_meta,
    import_object,
    read_agent_meta,
)

__all__ = [
    "register_agent",
    "unregister_agent",
    "list_agents",
    "agent_class",
    "make_agent",
    "load_agent",
]

_POLICIES = "quantgym.policies"
_SB3 = "quantgym.agents.sb3"
_D3RLPY = "quantgym.agents.d3rlpy"
_PORTFOLIO = "quantgym.policies.portfolio"

_REGISTRY: dict[str, str | type] = {
    "random": f"{_POLICIES}:RandomAgent",
    "flat": f"{_POLICIES}:FlatAgent",
    "buy_and_hold": f"{_POLICIES}:BuyAndHoldAgent",
    "sma_crossover": f"{_POLICIES}:SMACrossoverAgent",
    "mean_reversion": f"{_POLICIES}:MeanReversionAgent",
    "regime_expert": f"{_POLICIES}:RegimeExpert",
    "bayes_filter_expert": f"{_POLICIES}:BayesFilterExpert",
    "hindsight_oracle": f"{_POLICIES}:HindsightOracle",
    "epsilon_mix": f"{_POLICIES}:EpsilonMix",
    "ppo_mlp": f"{_SB3}.ppo_mlp:PPOMlpAgent",
    "ppo_lstm": f"{_SB3}.ppo_lstm:PPOLstmAgent",
    "ppo_transformer": f"{_SB3}.ppo_transformer:PPOTransformerAgent",
    "ppo_eiie": f"{_SB3}.ppo_eiie:PPOEIIEAgent",
    "ppo_cross_attention": f"{_SB3}.ppo_cross_attention:PPOCrossAttentionAgent",
    "bc": f"{_D3RLPY}.bc:BCAgent",
    "filtered_bc": f"{_D3RLPY}.filtered_bc:FilteredBCAgent",
    "cql": f"{_D3RLPY}.cql:CQLAgent",
    "bcq": f"{_D3RLPY}.bcq:BCQAgent",
    "dt_d3rlpy": f"{_D3RLPY}.dt_d3rlpy:D3rlpyDecisionTransformerAgent",
    "dt": "quantgym.agents.decision_transformer:DecisionTransformerAgent",
    "qdt": "quantgym.agents.decision_transformer.qdt:QDTAgent",
    "supervised": "quantgym.agents.supervised:SupervisedAgent",
    # TradingEnv-v0: the exact experts of the lagged and crash synthetic markets
    "lag_expert": f"{_POLICIES}:LagExpert",
    "crash_expert": f"{_POLICIES}:CrashExpert",
    # PortfolioEnv-v0, factor_regime market: the Kelly filter (reference) and the regime seer (bound)
    "kelly_filter_expert": f"{_PORTFOLIO}.kelly:KellyFilterAgent",
    "regime_seer": f"{_PORTFOLIO}.kelly:RegimeSeerAgent",
    # PortfolioEnv-v0: online portfolio selection, classical allocation, hindsight bounds
    "ubah": f"{_PORTFOLIO}:UBAHAgent",
    "ucrp": f"{_PORTFOLIO}:UCRPAgent",
    "eg": f"{_PORTFOLIO}:EGAgent",
    "ons": f"{_PORTFOLIO}:ONSAgent",
    "olmar": f"{_PORTFOLIO}:OLMARAgent",
    "pamr": f"{_PORTFOLIO}:PAMRAgent",
    "anticor": f"{_PORTFOLIO}:AnticorAgent",
    "corn": f"{_PORTFOLIO}:CORNAgent",
    "min_variance": f"{_PORTFOLIO}:MinVarianceAgent",
    "mean_variance": f"{_PORTFOLIO}:MeanVarianceAgent",
    "hrp": f"{_PORTFOLIO}:HRPAgent",
    "risk_parity": f"{_PORTFOLIO}:RiskParityAgent",
    "best_stock": f"{_PORTFOLIO}:BestStockAgent",
    "bcrp": f"{_PORTFOLIO}:BCRPAgent",
}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def _is_import_path(spec: str) -> bool:
    module, sep, attr = spec.partition(":")
    return bool(sep and module and attr)


def register_agent(name: str, agent: str | type, *, overwrite: bool = False) -> None:
    """Register ``agent`` (a class, or a ``"package.module:Class"`` string imported lazily)
    under ``name`` so ``make_agent(name, ...)`` builds it.

    Raises ``ValueError`` for a malformed name or import path, or when ``name`` is taken and
    ``overwrite`` is false.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"name must be an identifier-like string (letters, digits, _ or -), got {name!r}"
        )
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"agent {name!r} is already registered; pass overwrite=True to replace it")
    if isinstance(agent, str):
        if not _is_import_path(agent):
            raise ValueError(f"agent must be a class or 'package.module:Class', got {agent!r}")
    elif not isinstance(agent, type):
        raise ValueError(
            f"agent must be a class or 'package.module:Class', got {type(agent).__name__}"
        )
    _REGISTRY[name] = agent


def unregister_agent(name: str) -> None:
    """Remove ``name`` from the registry (``ValueError`` if it is not registered)."""
    if name not in _REGISTRY:
        raise ValueError(f"agent {name!r} is not registered")
    del _REGISTRY[name]


def list_agents() -> list[str]:
    """Registered agent names, in registration order (baselines first)."""
    return list(_REGISTRY)


def agent_class(name: str) -> type:
    """The class behind a registered ``name`` or a ``"package.module:Class"`` path (imported now)."""
    if not isinstance(name, str):
        raise ValueError(f"name must be a string, got {type(name).__name__}")
    if name in _REGISTRY:
        entry = _REGISTRY[name]
    elif _is_import_path(name):
        entry = name
    else:
        raise ValueError(f"unknown agent {name!r}; registered agents: {', '.join(list_agents())}")
    cls = import_object(entry) if isinstance(entry, str) else entry
    if not isinstance(cls, type):
        raise ValueError(f"{entry!r} is not a class")
    return cls


def make_agent(name: str, **kwargs: Any) -> Any:
    """Build an agent by registered name or ``"package.module:Class"``: ``cls(**kwargs)``.

    Env-bound baselines need ``env=``; SB3 agents take config fields (and optionally ``env=``).
    """
    return agent_class(name)(**kwargs)


def load_agent(path: str | os.PathLike, **kwargs: Any) -> Any:
    """Load any agent saved with ``BaseAgent.save`` (the class is read from ``agent.json``).

    ``kwargs`` are run-time objects such as ``env=`` for env-bound experts.
    """
    path = Path(path)
    if not (path / AGENT_FILE).is_file():
        raise ValueError(f"{path} is not a saved agent directory (no {AGENT_FILE})")
    meta = read_agent_meta(path, trusted=bool(kwargs.get("trusted", False)))  # verifies files
    cls = agent_class_from_meta(meta, path, trusted=bool(kwargs.get("trusted", False)))
    return cls.load(path, **kwargs)  # the class's own load (e.g. EpsilonMix loads its inner policy)
