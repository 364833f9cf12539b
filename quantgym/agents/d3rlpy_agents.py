"""Old home of the d3rlpy agents, now :mod:`quantgym.agents.d3rlpy` (one module per algorithm).

Kept only so that agent folders saved before the move, whose ``agent.json`` names
``quantgym.agents.d3rlpy_agents:BCAgent`` (or ``CQLAgent``,
``D3rlpyDecisionTransformerAgent``), still load. New code imports from
:mod:`quantgym.agents.d3rlpy`.
"""

from quantgym.agents.d3rlpy import BCAgent, CQLAgent, D3rlpyAgent, D3rlpyDecisionTransformerAgent

__all__ = ["D3rlpyAgent", "BCAgent", "CQLAgent", "D3rlpyDecisionTransformerAgent"]
