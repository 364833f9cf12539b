"""Old home of the SB3 agents, now :mod:`quantgym.agents.sb3` (one module per algorithm).

Kept only so that agent folders saved before the move, whose ``agent.json`` names
``quantgym.agents.sb3_agents:PPOMlpAgent`` (or ``PPOLstmAgent``, ``PPOTransformerAgent``),
still load. New code imports from :mod:`quantgym.agents.sb3`.
"""

from quantgym.agents.sb3 import (
    PPOLstmAgent,
    PPOMlpAgent,
    PPOTransformerAgent,
    RecentBarsExtractor,
    SB3Agent,
)

__all__ = ["SB3Agent", "PPOMlpAgent", "PPOLstmAgent", "PPOTransformerAgent", "RecentBarsExtractor"]
