"""Offline agents on d3rlpy, one module per algorithm: ``bc``, ``filtered_bc``, ``cql``, ``bcq``
and ``dt_d3rlpy`` on the shared machinery of :class:`D3rlpyAgent`
(:mod:`~quantgym.agents.d3rlpy.base`; the value-based ones on
:class:`~quantgym.agents.d3rlpy.value.ValueAgent`). Importing
this package imports torch and d3rlpy (absolute imports: ``import d3rlpy`` inside it is the
library, not this package)."""

from quantgym.agents.d3rlpy.base import D3rlpyAgent, quiet_d3rlpy
from quantgym.agents.d3rlpy.bc import BCAgent
from quantgym.agents.d3rlpy.bcq import BCQAgent
from quantgym.agents.d3rlpy.cql import CQLAgent
from quantgym.agents.d3rlpy.dt_d3rlpy import D3rlpyDecisionTransformerAgent, D3rlpyDTState
from quantgym.agents.d3rlpy.filtered_bc import FilteredBCAgent
from quantgym.agents.d3rlpy.value import ValueAgent

__all__ = [
    "D3rlpyAgent",
    "BCAgent",
    "CQLAgent",
    "BCQAgent",
    "FilteredBCAgent",
    "D3rlpyDecisionTransformerAgent",
    "D3rlpyDTState",
    "ValueAgent",
    "quiet_d3rlpy",
]
