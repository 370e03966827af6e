"""What a run returns: its status, output and one trace entry per node. Every field is safe to log
except ``output``, which is the graph's answer and may quote the (masked) input."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["ok", "escalated", "pending_escalation", "refused", "error"]
STATUSES: tuple[Status, ...] = ("ok", "escalated", "pending_escalation", "refused", "error")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)


class ErrorInfo(_Frozen):
    """Why a record failed: a stable code, a message that never quotes input, and the place."""

    code: str
    message: str
    node: str | None = None


class NodeTrace(_Frozen):
    """One node's decision: the audit trail of a run."""

    node: str
    agent: str
    model: str | None = None
    label: str | None = None
    confidence: float
    escalate: bool = False
    """The node asked for escalation (low confidence or the agent's own flag)."""
    escalated: bool = False
    """The node's answer came from the planner."""
    reason: str | None = None
    latency_ms: float
    pending: str | None = None
    """The outbox id of an escalation waiting for the planner (status pending_escalation)."""


class NodeEvent(NodeTrace):
    """Yielded by ``Graph.astream`` as each node finishes."""

    run_id: str
    record_id: str


class RunCost(_Frozen):
    """What a run spent, locally and on the planner, and what sending it all to the planner
    would have cost (the saving a report shows)."""

    local_ms: float = 0.0
    """Wall time not spent waiting on the planner."""
    planner_ms: float = 0.0
    planner_calls: int = 0
    planner_tokens: int = 0
    planner_usd: float = 0.0
    all_planner_usd_estimate: float = 0.0
    """Estimated price of sending every escalation-eligible node of this run to the planner:
    actual prices for the nodes that went, and for the rest the payload's tokens (characters / 4)
    plus the planner's mean answer length so far, at the planner's prices."""


class RunResult(_Frozen):
    """One input's outcome. Serialized as one JSONL line by ``shoal run``."""

    id: str
    status: Status
    output: Any = None
    nodes: list[NodeTrace] = Field(default_factory=list)
    error: ErrorInfo | None = None
    run_id: str | None = None
    latency_ms: float | None = None
    cost: RunCost | None = None


class Record(_Frozen):
    """One input of a batch."""

    id: str
    text: str
    label: str | None = None
    """The gold label, in labelled data (``shoal calibrate``); runs ignore it."""
