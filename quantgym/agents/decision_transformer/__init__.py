"""Our Decision Transformer (``dt``): config, nanoGPT-style model, training loop, stateful
policy and the agent wrapper, one job per module. Importing this package imports torch."""

from quantgym.agents.decision_transformer.agent import DecisionTransformerAgent
from quantgym.agents.decision_transformer.config import DecisionTransformerConfig
from quantgym.agents.decision_transformer.model import DecisionTransformer, DTOutput
from quantgym.agents.decision_transformer.policy import DTState

__all__ = [
    "DecisionTransformerAgent",
    "DecisionTransformerConfig",
    "DecisionTransformer",
    "DTOutput",
    "DTState",
]
