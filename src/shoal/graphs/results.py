"""What a run returns: its status, output and one trace entry per node. Every field is safe to log
except ``output``, which is the graph's answer and may quote the (masked) input."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shoal.agents.base import AgentResult
from shoal.policies.escalation.escalator import BOUNDARY_MARK

Status = Literal["ok", "escalated", "pending_escalation", "refused", "error"]
STATUSES: tuple[Status, ...] = ("ok", "escalated", "pending_escalation", "refused", "error")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)


class ErrorInfo(_Frozen):
    """Why a record failed: a stable code, a message that never quotes input, and the place."""

    code: str
    message: str
    node: str | None = None


class NodeCost(_Frozen):
    """One node's planner spending (measured by the remote model's guard in the node's meter),
    and what sending it to the planner would cost had it stayed local."""

    calls: int = 0
    planner_ms: float = 0.0
    tokens: int = 0
    usd: float = 0.0
    estimate_usd: float = 0.0


class ShadowTrace(_Frozen):
    """What a shadow version of the node's model answered beside the champion (the output
    did not change): its version, label and confidence."""

    version: str
    label: str | None = None
    confidence: float | None = None


class NodeTrace(AgentResult):
    """One node's result: what its agent answered, with what the runtime decided about it.

    The one record of a node from agent to :class:`RunResult`: stored in the run state, read by
    later nodes (``ctx.results``, as the :class:`~shoal.agents.AgentResult` it extends), logged,
    and listed in ``RunResult.nodes``. ``output``, ``text``, ``refuse`` and ``cost`` stay in
    memory; a serialized trace holds only fields that are safe to log.
    """

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    # ``escalate`` (inherited) is the runtime's decision here: the node asked for the planner,
    # for low confidence or for its agent's own flag.
    node: str
    agent: str
    model: str | None = None
    step: int | None = None
    """The step (1, 2, ...) of a multi-request message this run of the node answered (the
    node's key in the run's results is then ``node[step]``); None outside steps."""
    escalated: bool = False
    """The node's answer came from the planner."""
    latency_ms: float
    pending: str | None = None
    """The outbox id of an escalation waiting for the planner (status pending_escalation)."""
    critical: str | None = None
    """The critical label that fired (its probability reached the rule's floor, or a red flag):
    the node escalated past any budget (or was routed there with ``action: route``)."""
    p_wrong: float | None = None
    """The node's learned router's P(local answer wrong) (``router:`` in its escalation rule),
    or None when it has no router."""
    version: str | None = None
    """The version of the node's learned model that answered (``v1``: the graph file's model;
    later ones from ``shoal promote``); None for a node without a trained classifier."""
    shadow: ShadowTrace | None = None
    """A shadow version's answer on the same text (``shoal shadow start``), or None."""
    planner_boundary: Literal["inside"] | None = None
    """``inside`` when the node's answer (or the answer attached to it) came from a planner
    marked ``boundary: inside``: the run's text went to a model inside the organisation's trust
    boundary, unmasked if the graph has no masker. None otherwise. Read from the escalator's
    mark on the output when the trace is made, so it stays in serialized traces."""
    output: Any = Field(default=None, exclude=True, repr=False)
    text: str | None = Field(default=None, exclude=True, repr=False)
    refuse: bool = Field(default=False, exclude=True)
    cost: NodeCost | None = Field(default=None, exclude=True)
    """Planner spending of this node; None when it has no escalation rule and no remote model."""

    def model_post_init(self, context: Any, /) -> None:
        # Runs for model_construct too (how the node runner builds a trace). The trace is
        # frozen: the field is set once, here, from the output it was made with.
        if self.planner_boundary is None and self.escalated:
            mark = _boundary_mark(self.output)
            if mark is not None:
                object.__setattr__(self, "planner_boundary", mark)


def _boundary_mark(output: Any) -> Literal["inside"] | None:
    """The escalator's mark on an escalated output: on the planner's answer, or on the answer
    attached beside the local one (``planner``)."""
    if not isinstance(output, dict):
        return None
    attached = output.get("planner")
    for where in (output, attached if isinstance(attached, dict) else {}):
        if where.get(BOUNDARY_MARK) == "inside":
            return "inside"
    return None


class NodeEvent(NodeTrace):
    """Yielded by ``Graph.astream`` as each node finishes: its trace and which run it is of."""

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
    reply: str | None = Field(default=None, exclude=True, repr=False)
    """The answer for the sender of the input (the output, or its ``answer``), with the
    sender's own values put back in place of their pseudonyms (``[NAME_1]`` -> their name).
    Only for the reply that goes back to them (``shoal serve`` returns it): it is never
    serialized, so result files, logs and reports stay masked. None when refused, failed or
    without an answer."""


class Record(_Frozen):
    """One input of a batch."""

    id: str
    text: str
    label: str | None = None
    """The gold label, in labelled data (``shoal calibrate``); runs ignore it."""
