"""Agents: one API (``predict``/``save``/``load``, ``fit`` where they learn) for rule-based
baselines, Stable-Baselines3 PPO agents and, next, d3rlpy and Decision Transformer agents.

Torch-backed agents are imported lazily by :func:`make_agent`, so importing this package stays light.
"""

from quantgym.agents.base import Agent, BaseAgent, import_object
from quantgym.agents.registry import (
    agent_class,
    list_agents,
    load_agent,
    make_agent,
    register_agent,
    unregister_agent,
)
from quantgym.policies import (
    BayesFilterExpert,
    BuyAndHoldAgent,
    EpsilonMix,
    FlatAgent,
    HindsightOracle,
    MeanReversionAgent,
    RandomAgent,
    RegimeExpert,
    SMACrossoverAgent,
)

__all__ = [
    "Agent",
    "BaseAgent",
    "BayesFilterExpert",
    "BuyAndHoldAgent",
    "EpsilonMix",
    "FlatAgent",
    "HindsightOracle",
    "MeanReversionAgent",
    "RandomAgent",
    "RegimeExpert",
    "SMACrossoverAgent",
    "agent_class",
    "import_object",
    "list_agents",
    "load_agent",
    "make_agent",
    "register_agent",
    "unregister_agent",
]
