"""Hands a node that wants the planner to it, and says what came back.

The :class:`Escalator` sends only the failing node: its task, the run's working (masked) text and
the local draft, through the planner's :class:`~shoal.policies.escalation.guard.RemoteGuard`.
Whatever goes wrong (budget, egress scan, planner down or malformed) the node keeps its local
answer and the reason says why; a run never fails because the planner could not help.

A critical decision (a critical label fired) is different in two ways: no budget holds it back
(it is counted, and its spending recorded), and the answer it keeps when the planner does not
answer carries the critical label, not the local one. ``action: route`` takes the critical label
with no planner call at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from shoal.errors import BackendError, BudgetExhausted, EgressBlocked, ShoalError
from shoal.models.base import Generator
from shoal.observability.logging import get_logger
from shoal.policies.escalation.budget import Budget, critical_call
from shoal.policies.escalation.guard import RemoteGuard
from shoal.policies.escalation.ledger import LedgerStore
from shoal.policies.escalation.outbox import OutboxStore
from shoal.policies.escalation.planner_call import ask_planner
from shoal.policies.escalation.rules import DEFAULT_SYSTEM, Decision, NodeRule
from shoal.policies.privacy import mask_leftovers
from shoal.policies.scope import RunScope

__all__ = ["BOUNDARY_MARK", "DEFAULT_TASK", "Escalator", "LocalAnswer", "Outcome"]

_log = get_logger()

BOUNDARY_MARK = "planner_boundary"
"""Key of an escalated output naming where the planner that answered runs, when that is inside
the organisation's trust boundary (``"inside"``); absent otherwise."""

DEFAULT_TASK = ("Stand in for the '{node}' step of the pipeline (agent '{agent}'): do what that "
                "step does for this message. {labels}The local model's draft may be wrong.")


@dataclass(frozen=True, slots=True)
class LocalAnswer:
    """What the node's agent answered."""

    output: Any
    label: str | None
    confidence: float
    p_wrong: float | None = None
    """The learned router's score, when the node has one (kept in the ledger)."""
    model_version: str | None = None
    """The node's model and the first hex digits of its file's sha256 (kept in the ledger)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What escalation made of a node's answer. Costs are not here: the remote model's guard
    measured them in the node's meter."""

    output: Any
    label: str | None
    confidence: float
    escalated: bool
    reason: str | None
    estimate_usd: float = 0.0
    """What sending this node to the planner costs (0 without a price): the all-planner
    estimate of a node that stayed local."""
    pending: str | None = None
    """The outbox id when the planner could not take it now."""
    critical: str | None = None
    """The critical label that fired (escalated past the budget, or routed)."""


class Escalator:
    """Hands failing nodes to the planner, within the budget and the privacy boundary."""

    def __init__(
        self,
        planner: Generator,
        *,
        budget: Budget,
        system: str = DEFAULT_SYSTEM,
        max_tokens: int = 256,
        timeout_s: float | None = None,
        outbox: OutboxStore | None = None,
        ledger: LedgerStore | None = None,
        graph: str = "",
    ) -> None:
        self.planner = planner
        self.budget = budget
        self.system = system
        self.outbox = outbox
        self.ledger = ledger
        """Where answered escalations are kept as training data; None: nowhere."""
        self.graph = graph
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s

    def task_for(self, node: str, agent: str, rule: NodeRule,
                 labels: frozenset[str] | None) -> str:
        if rule.task is not None:
            return rule.task
        hint = (f"Answer with one label from: {', '.join(sorted(labels))}. " if labels else "")
        return DEFAULT_TASK.format(node=node, agent=agent, labels=hint)

    async def decide(
        self,
        *,
        node: str,
        task: str,
        labels: frozenset[str] | None,
        scope: RunScope,
        text: str,
        local: LocalAnswer,
        decision: Decision,
        attach: bool = False,
    ) -> Outcome:
        """The node's final answer: the local one, or the planner's in its place (or beside it,
        with ``attach``)."""
        estimate = self._estimate(task, text, local.output)
        critical = not decision.may_block
        refused = (await asyncio.to_thread(self.budget.decide, decision.wants, critical=critical)
                   if self.budget.blocking
                   else self.budget.decide(decision.wants, critical=critical))
        # What stands when no planner answer replaces it: a critical label, else the local one.
        stands = (local if decision.critical is None
                  else _as_critical(local, decision.critical))
        if not decision.wants:
            if decision.critical is not None:
                _log.info("node_critical", run_id=scope.run_id, record_id=scope.record_id,
                          node=node, label=decision.critical, action="route")
            return self._local(stands, decision.trigger, estimate, critical=decision.critical)
        if refused is not None:
            return self._kept(node, stands, decision, refused, estimate)
        draft: Any = local.output
        try:
            draft = await self._outbound_draft(scope, local.output)
            with critical_call() if not decision.may_block else contextlib.nullcontext():
                reply = await ask_planner(
                    self.planner, system=self.system, task=task, text=text, draft=draft,
                    labels=sorted(labels) if labels else None, max_tokens=self.max_tokens,
                    timeout_s=self.timeout_s)
        except BudgetExhausted as exc:
            return self._kept(node, stands, decision, exc.detail, estimate)
        except EgressBlocked as exc:
            kinds = ", ".join(f"{n} {t}" for t, n in sorted(exc.types.items()))
            found = ("found by the independent check" if exc.detector == "independent"
                     else "survived masking")
            return self._kept(node, stands, decision, f"egress blocked ({kinds} {found})",
                              estimate)
        except ShoalError as exc:
            if isinstance(exc, BackendError) and self.outbox is not None:
                # Unreachable, timed out or circuit open: the escalation waits in the outbox.
                esc_id = await asyncio.to_thread(
                    self.outbox.put, graph=self.graph, node=node, record_id=scope.record_id,
                    run_id=scope.run_id, task=task, text=text, draft=draft,
                    labels=sorted(labels) if labels else None, max_tokens=self.max_tokens,
                    reason=decision.trigger, error=f"{exc.code}: {exc.message[:200]}")
                _log.warning("escalation_queued", node=node, record_id=scope.record_id,
                             escalation_id=esc_id, code=str(exc.code))
                return self._kept(node, stands, decision,
                                  f"pending_escalation {esc_id} (planner unavailable: "
                                  f"{exc.code})", estimate, pending=esc_id)
            return self._kept(node, stands, decision,
                              f"planner failed ({exc.code}: {exc.message[:200]})", estimate)
        output = reply.output()
        # The answer stays masked: it goes into result files and traces. Only the reply that
        # goes back to the sender gets their values back (RunResult.reply).
        output["answer"] = reply.answer
        if self.inside_boundary:
            # The node trace reads this mark (NodeTrace.planner_boundary): a run whose text went
            # to a planner inside the boundary, maybe unmasked, says so in its trace.
            output[BOUNDARY_MARK] = "inside"
        await self.record(node=node, record_id=scope.record_id, run_id=scope.run_id, text=text,
                          local=local, label=reply.label, labels=labels, attached=attach,
                          answer=reply.answer, confidence=reply.confidence,
                          critical=decision.critical)
        # The local answer stays on record: audits and calibration compare the two.
        output["local"] = {"label": local.label, "confidence": local.confidence,
                           "output": local.output}
        _log.info("node_escalated", run_id=scope.run_id, record_id=scope.record_id, node=node,
                  reason=decision.trigger, label=reply.label, critical=decision.critical)
        if attach:
            kept = dict(stands.output) if isinstance(stands.output, dict) else {
                "answer": stands.output}
            kept["planner"] = output
            return Outcome(kept, stands.label, stands.confidence, True, decision.trigger,
                           critical=decision.critical)
        label = (reply.label if reply.label is not None or decision.critical is None
                 else stands.label)
        reason, confidence = decision.trigger, reply.confidence
        if (decision.critical is not None and label != decision.critical
                and reply.confidence < decision.clear_confidence):
            # A planner that is not sure cannot talk a possible emergency down: the critical
            # label stands, the planner's answer stays on record beside it.
            output["planner_label"], output["label"] = label, decision.critical
            reason = (f"{decision.trigger}; the planner's {label!r} at confidence "
                      f"{reply.confidence:.2f} < {decision.clear_confidence:g} does not clear "
                      f"{decision.critical!r}")
            label, confidence = decision.critical, stands.confidence
            _log.info("critical_kept", run_id=scope.run_id, record_id=scope.record_id,
                      node=node, label=decision.critical)
        return Outcome(output, label, confidence, True, reason, critical=decision.critical)

    async def record(self, *, node: str, record_id: str, run_id: str, text: str,
                     local: LocalAnswer | None, label: str | None,
                     labels: Collection[str] | None, attached: bool, answer: Any,
                     confidence: float, critical: str | None = None,
                     local_label: str | None = None) -> None:
        """Keep an answered escalation (now, or drained from the outbox later) in the ledger.
        ``text`` is what the planner was sent (masked); ``local_label`` stands in for ``local``
        when only the stored draft is left. A ledger that cannot be written costs the training
        line, never the run."""
        if self.ledger is None:
            return
        # A label to train on only when it is one: an attached answer (a hand-off) labels
        # nothing, and a label outside the node's set is the planner's mistake.
        trainable = label if not attached and (labels is None or label in labels) else None
        answer_text = answer if isinstance(answer, str) else json.dumps(answer, default=str)
        try:
            await asyncio.to_thread(
                self.ledger.append, graph=self.graph, node=node, record_id=record_id,
                run_id=run_id, text=text, local_label=local.label if local else local_label,
                local_confidence=local.confidence if local else None,
                p_wrong=local.p_wrong if local else None, planner_label=trainable,
                planner_answer=answer_text, planner_confidence=confidence,
                model_version=local.model_version if local else None, critical=critical)
        except (OSError, sqlite3.Error) as exc:
            _log.warning("ledger_write_failed", node=node, record_id=record_id,
                         error=type(exc).__name__)

    @property
    def inside_boundary(self) -> bool:
        """The planner runs inside the organisation's trust boundary (``boundary: inside``)."""
        return isinstance(self.planner, RemoteGuard) and self.planner.boundary == "inside"

    async def _outbound_draft(self, scope: RunScope, draft: Any) -> Any:
        """The local draft, with anything the scan finds in it masked, when the planner is
        remote. The working text passed the masker; the draft never did. A planner inside the
        trust boundary gets it as it is, like the working text."""
        pack = self.planner.pack if isinstance(self.planner, RemoteGuard) else None
        if pack is None or draft is None or self.inside_boundary:
            return draft
        text = draft if isinstance(draft, str) else json.dumps(draft, default=str,
                                                                ensure_ascii=False)
        masked = await mask_leftovers(text, pack, scope.vault)
        return draft if masked == text else masked

    def _estimate(self, task: str, text: str, draft: Any) -> float:
        if not isinstance(self.planner, RemoteGuard) or self.planner.price is None:
            return 0.0
        draft_text = draft if isinstance(draft, str) else json.dumps(draft, default=str)
        return self.planner.estimate_usd(len(task) + len(text) + len(draft_text) + 400)

    @staticmethod
    def _local(local: LocalAnswer, reason: str | None, estimate: float,
               pending: str | None = None, critical: str | None = None) -> Outcome:
        return Outcome(local.output, local.label, local.confidence, False, reason, estimate,
                       pending, critical)

    def _kept(self, node: str, local: LocalAnswer, decision: Decision, why: str,
              estimate: float, pending: str | None = None) -> Outcome:
        _log.info("escalation_skipped", node=node, why=why.split(" ", 1)[0],
                  critical=decision.critical)
        return self._local(local, decision.kept(why), estimate, pending, decision.critical)


def _as_critical(local: LocalAnswer, label: str) -> LocalAnswer:
    """The local answer with the critical label in place of the agent's: what stands when no
    planner answer replaces it. A classifier's output keeps its own label under
    ``local_label``."""
    if local.label == label:
        return local
    output = local.output
    if isinstance(output, dict) and "label" in output:
        output = {**output, "label": label, "local_label": output["label"]}
    return LocalAnswer(output, label, local.confidence)
