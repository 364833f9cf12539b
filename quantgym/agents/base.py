"""The agent API (``Agent`` protocol, ``BaseAgent``), defined in :mod:`quantgym.policies.base`
because the behaviour policies below ``datasets`` are agents too; re-exported here."""

from quantgym.policies.base import AGENT_FILE, Agent, BaseAgent, import_object

__all__ = ["Agent", "BaseAgent", "import_object", "AGENT_FILE"]
