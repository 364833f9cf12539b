"""Agents: one API (``predict``/``save``/``load``, ``fit(..., train_steps=...)`` where they
learn) for rule-based baselines, Stable-Baselines3 PPO agents (:mod:`quantgym.agents.sb3`),
d3rlpy agents (:mod:`quantgym.agents.d3rlpy`), our Decision Transformer
(:mod:`quantgym.agents.decision_transformer`) and a supervised classifier
(:mod:`quantgym.agents.supervised`).

Torch-backed agents are imported lazily by :func:`make_agent`, so importing this package stays light.
"""

from quantgym.agents.base import Agent, BaseAgent, TrainableAgent, import_object
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
    "TrainableAgent",
    "agent_class",
    "import_object",
    "list_agents",
    "load_agent",
    "make_agent",
    "register_agent",
    "unregister_agent",
]
