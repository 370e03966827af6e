"""Specialist agents and the registry that finds them by name."""

from shoal.agents.base import (
    ENTRY_POINT_GROUP,
    Agent,
    AgentConfig,
    AgentContext,
    AgentResult,
    agent,
    agent_names,
    get_agent,
    register,
)

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentContext",
    "AgentResult",
    "ENTRY_POINT_GROUP",
    "agent",
    "agent_names",
    "get_agent",
    "register",
]
