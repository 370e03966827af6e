"""The declarative graph: spec, loader, compiler onto LangGraph, the runtime, and the cut a
calibration runs."""

from pathlib import Path

from shoal.graphs.calibration import calibration_graph, prefix_spec
from shoal.graphs.results import ErrorInfo, NodeEvent, NodeTrace, Record, RunResult, Status
from shoal.graphs.runtime import DEFAULT_CONCURRENCY, Graph
from shoal.graphs.spec import (
    END,
    ChainEdge,
    EscalationSpec,
    GraphSpec,
    LlamaCppModelSpec,
    NodeSpec,
    OnnxClassifierModelSpec,
    OnnxEmbedderModelSpec,
    OpenAIModelSpec,
    Price,
    RouteEdge,
    StepsSpec,
)


def load_graph(path: str | Path) -> Graph:
    """Load, check and compile a graph YAML. Raises :class:`shoal.SpecError` with every mistake,
    each as ``FILE:LINE:COL: message``."""
    return Graph.from_yaml(path)


__all__ = [
    "ChainEdge",
    "DEFAULT_CONCURRENCY",
    "END",
    "ErrorInfo",
    "EscalationSpec",
    "Graph",
    "GraphSpec",
    "LlamaCppModelSpec",
    "NodeEvent",
    "NodeSpec",
    "NodeTrace",
    "OnnxClassifierModelSpec",
    "OnnxEmbedderModelSpec",
    "OpenAIModelSpec",
    "Price",
    "Record",
    "RouteEdge",
    "RunResult",
    "Status",
    "StepsSpec",
    "calibration_graph",
    "load_graph",
    "prefix_spec",
]
