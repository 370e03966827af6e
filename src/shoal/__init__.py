"""shoal: a shoal of small local models, chained as a graph, escalating only the hard nodes.

    import shoal
    graph = shoal.load_graph("graph.yaml")
    result = graph.run("Can I move my appointment to Friday?")
"""

from shoal.agents import Agent, AgentConfig, AgentContext, AgentResult, agent
from shoal.engines import RayOptions, run_on_ray
from shoal.errors import (
    AgentError,
    BackendError,
    BackendOverloaded,
    BackendTimeout,
    ErrorCode,
    InputError,
    LearningError,
    OutputValidationError,
    PolicyViolation,
    ShoalError,
    SpecError,
    SpecIssue,
    StoreError,
)
from shoal.graphs import (
    END,
    ChainEdge,
    Graph,
    GraphSpec,
    NodeEvent,
    NodeSpec,
    NodeTrace,
    Record,
    RouteEdge,
    RunResult,
    StepsSpec,
    load_graph,
)
from shoal.observability import configure_logging

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentContext",
    "AgentError",
    "AgentResult",
    "BackendError",
    "BackendOverloaded",
    "BackendTimeout",
    "ChainEdge",
    "END",
    "ErrorCode",
    "Graph",
    "GraphSpec",
    "InputError",
    "LearningError",
    "NodeEvent",
    "NodeSpec",
    "NodeTrace",
    "OutputValidationError",
    "PolicyViolation",
    "RayOptions",
    "Record",
    "RouteEdge",
    "RunResult",
    "ShoalError",
    "SpecError",
    "SpecIssue",
    "StepsSpec",
    "StoreError",
    "__version__",
    "agent",
    "configure_logging",
    "load_graph",
    "run_on_ray",
]
