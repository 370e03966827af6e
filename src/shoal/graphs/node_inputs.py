"""What a node reads: each record's working text when it reaches the node (after a masker).

Training anything for a node (a learned router, a retrained classifier) must use the text the
node sees at run time, not the raw input: in the healthcare graphs that is the masked message.
The graph runs cut after the node with escalation off (nothing leaves the machine); each record's
working text is the last text a node before it wrote, or the input when none did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shoal.graphs.calibration import prefix_spec, working_text
from shoal.graphs.loader import load_spec
from shoal.graphs.results import Record
from shoal.graphs.runtime import Graph
from shoal.policies.escalation.budget import BudgetSpec

__all__ = ["NodeInputs", "node_inputs"]


@dataclass
class NodeInputs:
    texts: dict[str, str] = field(default_factory=dict)
    """record id -> the node's input text, for records that reached the node."""
    skipped: dict[str, str] = field(default_factory=dict)
    """record id -> why it did not reach the node (refused, failed upstream)."""


async def node_inputs(graph_path: str | Path, node: str, records: Sequence[Record], *,
                      concurrency: int = 8, past_refusals: bool = False,
                      on_result: Callable[[], object] | None = None) -> NodeInputs:
    """Run ``records`` through the graph cut after ``node`` (escalation off) and collect the
    text the node read for each. ``ValueError`` when the graph has no such node.

    The escalation block is left out before anything is checked: the router this is often
    collecting data for may not exist yet, and nothing here escalates."""
    path = Path(graph_path)
    spec, _ = load_spec(path)
    if node not in spec.nodes:
        raise ValueError(f"graph {spec.name!r} has no node {node!r}")
    cut = prefix_spec(spec, node).model_copy(update={"escalation": None})
    graph = Graph(cut, base_dir=path.parent, rules=dict.fromkeys(cut.nodes),
                  budget=BudgetSpec(), halt_on_refusal=not past_refusals, shadows=False)
    raw = {r.id: r.text for r in records}
    out = NodeInputs()
    async for result in graph.astream_batch(((r.id, r.text) for r in records),
                                            concurrency=concurrency):
        if not any(trace.node == node for trace in result.nodes):
            out.skipped[result.id] = f"{result.status}: did not reach {node!r}"
        elif result.status == "error":
            out.skipped[result.id] = f"error at {node!r}"
        else:
            out.texts[result.id] = working_text(result, node, raw[result.id])
        if on_result is not None:
            on_result()
    return out
