"""The run state that flows between LangGraph nodes.

Kept to plain dicts and strings: LangGraph checkpointers serialize state, and plain data reads back
without registering types (see the project notes on pydantic objects in checkpointed state).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict


def merge_results(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


def last_value(left: Any, right: Any) -> Any:
    # Fan-out branches may both rewrite the working text in one step; the later write wins
    # instead of LangGraph's InvalidUpdateError for concurrent writes to a plain channel.
    return right


class NodeRecord(TypedDict):
    """One node's result as stored in state (the trace plus what later nodes may read)."""

    node: str
    agent: str
    model: str | None
    output: Any
    label: str | None
    confidence: float
    escalate: bool
    escalated: bool
    reason: str | None
    refuse: bool
    latency_ms: float
    pending: str | None
    """Outbox id of an escalation the planner could not take yet."""
    cost: dict[str, Any] | None
    """Planner spending of this node (see ``policies.escalation.NodeCost``); None: no rule."""


class ErrorRecord(TypedDict):
    code: str
    message: str
    node: str | None


class RunMeta(TypedDict):
    run_id: str
    record_id: str
    input: str
    """The raw input. Agents never see it (they get ``text``); it arms the log PHI filter."""


class Halt(TypedDict):
    """Set when a run stops early; later nodes are skipped."""

    status: Literal["refused", "error"]
    error: ErrorRecord | None


class RunState(TypedDict, total=False):
    """Few channels on purpose: LangGraph's per-step cost grows with the number of channels."""

    meta: RunMeta
    text: Annotated[str, last_value]
    """The working text; a masker replaces it for every later node."""
    results: Annotated[dict[str, NodeRecord], merge_results]
    """Per node, in the order the nodes finished (dict insertion order)."""
    halt: Annotated[Halt, last_value]
    """Empty ({}) until a node halts the run: LangGraph starts reducer channels at ``type()``."""
