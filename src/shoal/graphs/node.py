"""One graph node at run time: call the agent, apply the node's threshold, trace, log.

A NodeRunner never raises into LangGraph: an agent's failure becomes an ``error`` in the state
and halts the run, so the record comes back with its id and the batch goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shoal.agents.base import Agent, AgentContext, AgentResult
from shoal.errors import AgentError, ErrorCode, ShoalError
from shoal.graphs.state import ErrorRecord, Halt, NodeRecord, RunState
from shoal.observability.logging import get_logger
from shoal.observability.phi import arm, disarm

if TYPE_CHECKING:
    from shoal.policies.escalation import Escalator, NodeRule

_log = get_logger()


class _ResultsView(Mapping[str, AgentResult]):
    """Earlier nodes' results as AgentResults, built only when an agent reads them."""

    __slots__ = ("_cache", "_records")

    def __init__(self, records: Mapping[str, NodeRecord]) -> None:
        self._records = records
        self._cache: dict[str, AgentResult] = {}

    def __getitem__(self, key: str) -> AgentResult:
        if key not in self._cache:
            r = self._records[key]
            self._cache[key] = AgentResult.model_construct(
                output=r["output"], confidence=r["confidence"], escalate=r["escalate"],
                reason=r["reason"], label=r["label"], refuse=r["refuse"], text=None,
            )
        return self._cache[key]

    def __iter__(self) -> Any:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)


class NodeRunner:
    """The LangGraph node function for one spec node."""

    def __init__(
        self,
        *,
        node: str,
        agent: Agent,
        agent_name: str,
        model: str | None,
        rule: NodeRule | None,
        timeout_s: float | None,
        escalator: Escalator | None = None,
        route_labels: frozenset[str] | None = None,
        labels: frozenset[str] | None = None,
        metered: bool = False,
    ) -> None:
        self.node = node
        self.agent = agent
        self.agent_name = agent_name
        self.model = model
        self.rule = rule
        """When this node escalates; None: never (no rule, or a masker)."""
        self.timeout_s = timeout_s
        self.escalator = escalator
        self.route_labels = route_labels
        """Labels a route without a default accepts; None when any label may pass."""
        self.labels = labels
        """The labels the agent may answer with; the planner must pick one of them."""
        self.task = (escalator.task_for(node, agent_name, rule, labels)
                     if escalator is not None and rule is not None else "")
        self.metered = metered
        """Some model of the graph is remote: count its calls for this node's cost."""

    async def __call__(self, state: RunState) -> dict[str, Any]:
        if state.get("halt"):
            return {}  # refused or failed upstream: nothing more runs on this input
        # Everything this node logs, the agent and its backends included, is checked against
        # the raw input (see shoal.observability.phi).
        token = arm(state["meta"]["input"])
        try:
            return await self._run(state)
        finally:
            disarm(token)

    async def _run(self, state: RunState) -> dict[str, Any]:
        ctx = AgentContext(
            node=self.node,
            run_id=state["meta"]["run_id"],
            record_id=state["meta"]["record_id"],
            text=state["text"],
            results=_ResultsView(state.get("results", {})),
        )
        start = time.perf_counter()
        with self._meter(ctx.run_id) as meter:
            try:
                result = await self._call_agent(ctx)
            except ShoalError as exc:
                return self._failed(exc.code, exc.message, start)
            except TimeoutError:
                return self._failed(ErrorCode.AGENT_TIMEOUT,
                                    f"no result within {self.timeout_s:g} s", start)
            except Exception as exc:  # an agent bug must not end the batch
                # Only the type: a foreign exception's message may quote the input.
                return self._failed(ErrorCode.AGENT_FAILED, f"raised {type(exc).__name__}",
                                    start)
            escalate, reason = self._wants_escalation(result)
            escalated = False
            pending: str | None = None
            cost: dict[str, Any] | None = None
            if self.escalator is not None and self.rule is not None:
                outcome = await self.escalator.decide(
                    node=self.node, task=self.task, labels=self.labels, ctx=ctx, result=result,
                    wants=escalate, reason=reason, attach=self.rule.attach)
                result, escalated, reason = outcome.result, outcome.escalated, outcome.reason
                pending = outcome.pending
                cost = outcome.cost.as_dict()
            elif escalate:
                why = ("no planner configured" if self.escalator is None
                       else "this node never escalates")
                reason = f"{reason}; {why}, local answer kept"
        if meter is not None and meter.calls:
            # What the remote calls really cost is the node's cost, whoever made them.
            cost = {"calls": meter.calls, "planner_ms": meter.ms, "tokens": meter.tokens,
                    "usd": meter.usd, "estimate_usd": meter.usd}
        if self.route_labels is not None and result.label not in self.route_labels:
            return self._failed(ErrorCode.AGENT_FAILED,
                                f"label {result.label!r} has no route and the route has no "
                                "'default'", start)
        latency_ms = (time.perf_counter() - start) * 1000.0
        record: NodeRecord = {
            "node": self.node,
            "agent": self.agent_name,
            "model": self.model,
            "output": result.output,
            "label": result.label,
            "confidence": result.confidence,
            "escalate": escalate,
            "escalated": escalated,
            "reason": reason,
            "refuse": result.refuse,
            "latency_ms": latency_ms,
            "pending": pending,
            "cost": cost,
        }
        _log.info(
            "node_finished", run_id=ctx.run_id, record_id=ctx.record_id, node=self.node,
            agent=self.agent_name, model=self.model, latency_ms=round(latency_ms, 3),
            confidence=result.confidence, label=result.label, escalate=escalate,
            escalated=escalated, reason=reason,
        )
        update: dict[str, Any] = {"results": {self.node: record}}
        if result.text is not None:
            update["text"] = result.text
        if result.refuse:
            update["halt"] = Halt(status="refused", error=None)
        return update

    def _meter(self, run_id: str) -> Any:
        if not self.metered:
            return contextlib.nullcontext(None)
        from shoal.policies.boundary import metering

        return metering(run_id, self.node)

    async def _call_agent(self, ctx: AgentContext) -> AgentResult:
        if self.timeout_s is None:
            result = await self.agent.run(ctx)
        else:
            async with asyncio.timeout(self.timeout_s):
                result = await self.agent.run(ctx)
        if not isinstance(result, AgentResult):
            raise AgentError(f"returned {type(result).__name__}, not AgentResult",
                             node=self.node, agent=self.agent_name)
        return result

    def _wants_escalation(self, result: AgentResult) -> tuple[bool, str | None]:
        rule = self.rule
        if result.escalate and (rule is None or rule.on_flag):
            return True, result.reason or "agent asked to escalate"
        below = rule.below if rule is not None else None
        if below is not None and result.confidence < below:
            why = f" ({result.reason})" if result.reason else ""
            return True, f"confidence {result.confidence:.3f} below {below:g}{why}"
        return False, result.reason

    def _failed(self, code: ErrorCode, message: str, start: float) -> dict[str, Any]:
        latency_ms = (time.perf_counter() - start) * 1000.0
        if not message.startswith("node "):
            message = f"node {self.node!r} (agent {self.agent_name!r}): {message}"
        _log.warning("node_failed", node=self.node, agent=self.agent_name, code=str(code),
                     error=message, latency_ms=round(latency_ms, 3))
        error: ErrorRecord = {"code": str(code), "message": message, "node": self.node}
        return {"halt": Halt(status="error", error=error)}
