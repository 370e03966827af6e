"""One graph node at run time: call the agent, decide about escalation, trace, log.

A NodeRunner never raises into LangGraph: an agent's failure becomes an ``error`` in the state
and halts the run, so the record comes back with its id and the batch goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from shoal.agents.base import Agent, AgentContext, AgentResult
from shoal.errors import AgentError, ErrorCode, ShoalError
from shoal.graphs.results import NodeCost, NodeTrace, ShadowTrace
from shoal.graphs.state import ErrorRecord, Halt, RunState
from shoal.models.base import Classifier, SignalClassifier
from shoal.models.router import DeferralRouter
from shoal.observability.logging import get_logger
from shoal.observability.phi import arm, disarm
from shoal.policies.escalation import (
    Escalator,
    LocalAnswer,
    ModelRegistry,
    NodeRule,
    Outcome,
    decide,
)
from shoal.policies.scope import Meter, metering

_log = get_logger()


def _probabilities(output: Any) -> dict[str, float] | None:
    """Per-label probabilities an agent put in its output (the classifier's
    ``probabilities``), for critical labels; None when it gave none."""
    probs = output.get("probabilities") if isinstance(output, dict) else None
    if not isinstance(probs, dict):
        return None
    return {str(k): float(v) for k, v in probs.items() if isinstance(v, int | float)}


@dataclass(frozen=True)
class ShadowModel:
    """A candidate version answering beside the node's champion on every run; its answers go
    into the trace and the registry's shadow records, never into the output."""

    version: str
    model: Classifier
    registry: ModelRegistry
    graph: str


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
        model_version: str | None = None,
        timeout_s: float | None,
        router: DeferralRouter | None = None,
        escalator: Escalator | None = None,
        route_labels: frozenset[str] | None = None,
        labels: frozenset[str] | None = None,
        metered: bool = False,
        version: str | None = None,
        shadow: ShadowModel | None = None,
        halt_on_refusal: bool = True,
    ) -> None:
        self.node = node
        self.agent = agent
        self.agent_name = agent_name
        self.model = model
        self.model_version = model_version
        """The model and its file's hash prefix, for the escalation ledger."""
        self.rule = rule
        """When this node escalates; None: never (no rule, or a masker)."""
        self.timeout_s = timeout_s
        self.router = router
        """The node's learned router (``router:`` in its rule), scoring every result."""
        self.escalator = escalator
        self.route_labels = route_labels
        """Labels a route without a default accepts; None when any label may pass."""
        self.labels = labels
        """The labels the agent may answer with; the planner must pick one of them."""
        self.task = (escalator.task_for(node, agent_name, rule, labels)
                     if escalator is not None and rule is not None else "")
        self.metered = metered
        """Some model of the graph is remote: count its calls for this node's cost."""
        self.version = version
        """The learned model's version (``v1``: the graph file's); None without one."""
        self.shadow = shadow
        self.halt_on_refusal = halt_on_refusal
        """False only in tools that collect what later nodes read (training data): a refused
        record goes on to them."""

    def adopt(self, other: NodeRunner) -> None:
        """Run ``other``'s model, its thresholds (a version's own floors and confidence
        threshold), router and shadow from the next call on (a promotion, a rollback or a
        shadow change picked up while the graph runs). A run in flight finishes with what it
        started with."""
        self.agent, self.router, self.shadow = other.agent, other.router, other.shadow
        self.rule = other.rule
        self.model_version, self.version = other.model_version, other.version

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
        meta = state["meta"]
        scope = meta["scope"]
        ctx = AgentContext(node=self.node, run_id=meta["run_id"], record_id=meta["record_id"],
                           text=state["text"], results=state.get("results", {}), scope=scope)
        start = time.perf_counter()
        meters = (metering(scope, self.node) if self.metered
                  else contextlib.nullcontext(None))
        with meters as meter:
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
            p_wrong: float | None = None
            if self.router is not None:
                if result.signals is None:
                    return self._failed(ErrorCode.AGENT_FAILED, "the node has a learned router "
                                        "but its agent gave no classifier signals", start)
                try:
                    [p_wrong] = (await self.router.p_wrong(result.signals, [ctx.text],
                                                           timeout_s=self.timeout_s)).tolist()
                except ShoalError as exc:
                    return self._failed(exc.code, f"router: {exc.message}", start)
            decision = decide(self.rule, confidence=result.confidence, flagged=result.escalate,
                              note=result.reason, label=result.label,
                              probabilities=_probabilities(result.output), text=ctx.text,
                              p_wrong=p_wrong)
            outcome: Outcome | None = None
            reason = decision.trigger
            if self.escalator is not None and self.rule is not None:
                outcome = await self.escalator.decide(
                    node=self.node, task=self.task, labels=self.labels, scope=scope,
                    text=ctx.text, decision=decision, attach=self.rule.attach,
                    local=LocalAnswer(result.output, result.label, result.confidence,
                                      p_wrong=p_wrong, model_version=self.model_version))
                reason = outcome.reason
            elif decision.wants:
                reason = decision.kept("no planner configured" if self.escalator is None
                                       else "this node never escalates")
        if outcome is None and decision.critical is not None:
            # No planner to ask: the critical label stands all the same.
            result = result.model_copy(update={"label": decision.critical})
        label = outcome.label if outcome is not None else result.label
        if self.route_labels is not None and label not in self.route_labels:
            return self._failed(ErrorCode.AGENT_FAILED,
                                f"label {label!r} has no route and the route has no "
                                "'default'", start)
        shadow = await self._shadow(ctx, result) if self.shadow is not None else None
        trace = self._trace(result, outcome, decision.wants, reason, meter, start,
                            decision.critical, p_wrong, shadow)
        _log.info(
            "node_finished", run_id=ctx.run_id, record_id=ctx.record_id, node=self.node,
            agent=self.agent_name, model=self.model, latency_ms=round(trace.latency_ms, 3),
            confidence=trace.confidence, label=trace.label, escalate=trace.escalate,
            escalated=trace.escalated, reason=reason, critical=trace.critical,
            p_wrong=trace.p_wrong,
        )
        update: dict[str, Any] = {"results": {self.node: trace}}
        if trace.text is not None:
            update["text"] = trace.text
        if trace.refuse and self.halt_on_refusal:
            update["halt"] = Halt(status="refused", error=None)
        return update

    async def _shadow(self, ctx: AgentContext, result: AgentResult) -> ShadowTrace | None:
        """The shadow's answer on the node's text, recorded beside the champion's. A failing
        shadow is logged and skipped: it must never change or fail the run."""
        shadow = self.shadow
        assert shadow is not None
        try:
            if isinstance(shadow.model, SignalClassifier):
                signals = await shadow.model.classify_signals([ctx.text],
                                                              timeout_s=self.timeout_s)
                probs = dict(zip(shadow.model.labels, map(float, signals.probabilities[0]),
                                 strict=True))
            else:
                [probs] = await shadow.model.classify([ctx.text], timeout_s=self.timeout_s)
            label = max(sorted(probs), key=lambda k: probs[k])
            trace = ShadowTrace(version=shadow.version, label=label, confidence=probs[label])
            await asyncio.to_thread(
                shadow.registry.add_shadow, graph=shadow.graph, node=self.node,
                record_id=ctx.record_id, run_id=ctx.run_id,
                champion_version=self.version or "v1", champion_label=result.label,
                champion_confidence=result.confidence, candidate_version=shadow.version,
                candidate_label=label, candidate_confidence=probs[label])
        except Exception as exc:  # only the type: a library's message may quote the input
            _log.warning("shadow_failed", node=self.node, version=shadow.version,
                         error=type(exc).__name__)
            return None
        return trace

    def _trace(self, result: AgentResult, outcome: Outcome | None, wants: bool,
               reason: str | None, meter: Meter | None, start: float,
               critical: str | None = None, p_wrong: float | None = None,
               shadow: ShadowTrace | None = None) -> NodeTrace:
        """The node's one record. An escalated answer replaces the agent's output, label and
        confidence; the planner's answer neither rewrites the working text nor refuses."""
        escalated = outcome is not None and outcome.escalated
        cost: NodeCost | None = None
        if outcome is not None or (meter is not None and meter.calls):
            calls = meter.calls if meter is not None else 0
            usd = meter.usd if meter is not None else 0.0
            estimate = outcome.estimate_usd if outcome is not None else 0.0
            cost = NodeCost(calls=calls, planner_ms=meter.ms if meter is not None else 0.0,
                            tokens=meter.tokens if meter is not None else 0, usd=usd,
                            estimate_usd=usd if calls else estimate)
        return NodeTrace.model_construct(
            output=outcome.output if outcome is not None else result.output,
            label=outcome.label if outcome is not None else result.label,
            confidence=outcome.confidence if outcome is not None else result.confidence,
            escalate=wants,
            reason=reason,
            text=None if escalated else result.text,
            refuse=False if escalated else result.refuse,
            node=self.node,
            agent=self.agent_name,
            model=self.model,
            escalated=escalated,
            latency_ms=(time.perf_counter() - start) * 1000.0,
            pending=outcome.pending if outcome is not None else None,
            critical=outcome.critical if outcome is not None else critical,
            p_wrong=p_wrong,
            version=self.version,
            shadow=shadow,
            cost=cost,
        )

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

    def _failed(self, code: ErrorCode, message: str, start: float) -> dict[str, Any]:
        latency_ms = (time.perf_counter() - start) * 1000.0
        if not message.startswith("node "):
            message = f"node {self.node!r} (agent {self.agent_name!r}): {message}"
        _log.warning("node_failed", node=self.node, agent=self.agent_name, code=str(code),
                     error=message, latency_ms=round(latency_ms, 3))
        error: ErrorRecord = {"code": str(code), "message": message, "node": self.node}
        return {"halt": Halt(status="error", error=error)}
