"""When a node's result goes to the planner, and what comes back.

Rules come from the graph (a node's ``escalate_below``, the ``escalation:`` block) and from
escalation policy files listed under ``policies:``; a later policy overrides an earlier one, and
any policy overrides the graph's inline threshold::

    escalation: 1
    name: healthcare-calibrated
    nodes:
      triage: {below: 0.62}            # confidence under this goes to the planner
      validate: {on_flag: true}        # the agent's own flag (a failed check, a guard 'review')
      guard: {on_flag: false}          # never: it runs before the masker
    budget: {max_share: 0.2, window: 100, max_usd_per_run: 0.01}

The :class:`Escalator` sends only the failing node: its task, the run's working (masked) text and
the local draft, through the planner's :class:`~shoal.policies.boundary.RemoteGuard`. Whatever
goes wrong (budget, egress scan, planner down or malformed) the node keeps its local answer and the
trace says why; a run never fails because the planner could not help.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shoal.agents.base import AgentContext, AgentResult
from shoal.errors import BackendError, BudgetExhausted, EgressBlocked, ShoalError, SpecError
from shoal.graphs.spec import GraphSpec
from shoal.observability.logging import get_logger
from shoal.policies.boundary import RemoteGuard, mask_leftovers
from shoal.policies.budget import Budget, BudgetSpec
from shoal.policies.outbox import Outbox

__all__ = [
    "EscalationPolicy",
    "Escalator",
    "NodeCost",
    "NodeRule",
    "Outcome",
    "Rules",
    "load_policy",
    "resolve_rules",
]

_log = get_logger()
UNMASKABLE_AGENTS = frozenset({"privacy_masker"})
"""Agents whose input is the raw text: they never escalate, whatever the rules say."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class NodeRule(_Strict):
    """When one node escalates."""

    below: float | None = Field(default=None, ge=0.0, le=1.0)
    """Escalate when the agent's confidence is below this."""
    on_flag: bool = True
    """Escalate when the agent asks to (a validator's failed check, a guard's ``review``)."""
    task: str | None = Field(default=None, min_length=1)
    """What the planner is asked to do for this node; default: stand in for the node."""
    attach: bool = False
    """Keep the local answer as the node's output and attach the planner's under ``planner``
    (an emergency's fixed safe reply goes out as written; the planner drafts the hand-off)."""

    def merged(self, later: NodeRule) -> NodeRule:
        return self.model_copy(update=later.model_dump(exclude_unset=True))

    @property
    def active(self) -> bool:
        return self.below is not None or self.on_flag


class EscalationPolicy(_Strict):
    """An escalation policy file (``escalation: 1``)."""

    escalation: Literal[1]
    name: str = Field(min_length=1)
    description: str | None = None
    nodes: dict[str, NodeRule] = Field(default_factory=dict)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)


def load_policy(path: Path, label: str | None = None) -> EscalationPolicy:
    """Load and validate one policy file; SpecError with FILE:LINE:COL for every mistake."""
    from shoal.graphs.loader import load_yaml_model

    return load_yaml_model(path, label or str(path), EscalationPolicy, "policy")


@dataclass
class Rules:
    """The graph's escalation rules after every policy file was applied."""

    nodes: dict[str, NodeRule | None]
    """Per node; None: the node never escalates."""
    budget: BudgetSpec
    problems: list[tuple[int, str]] = field(default_factory=list)
    """(index in ``policies:``, message) for policy files that failed to load or name nodes
    the graph does not have."""


def resolve_rules(spec: GraphSpec, base_dir: Path | None) -> Rules:
    """Inline thresholds, then each escalation policy file in order (later ones win)."""
    nodes: dict[str, NodeRule | None] = {
        name: NodeRule(below=node.escalate_below) if node.escalate_below is not None
        else NodeRule()
        for name, node in spec.nodes.items()}
    budget = spec.escalation.budget if spec.escalation is not None else BudgetSpec()
    problems: list[tuple[int, str]] = []
    for i, entry in enumerate(spec.policies):
        if entry.endswith((".yaml", ".yml")):
            path = Path(entry) if base_dir is None else base_dir / entry
        else:
            path = _builtin(entry)  # a built-in pack: an escalation policy or identifiers
        if not _is_policy_file(path):
            continue
        try:
            policy = load_policy(path, entry)
        except SpecError as exc:
            problems.append((i, "; ".join(str(issue) for issue in exc.issues)))
            continue
        for name, rule in policy.nodes.items():
            if name not in spec.nodes:
                problems.append((i, f"policy {policy.name!r} has a rule for node {name!r}, "
                                    "which the graph does not have"))
                continue
            current = nodes[name] or NodeRule()
            nodes[name] = current.merged(rule)
        budget = budget.merged(policy.budget)
    for name, node in spec.nodes.items():
        if node.agent in UNMASKABLE_AGENTS:
            nodes[name] = None
    return Rules(nodes=nodes, budget=budget, problems=problems)


def _builtin(name: str) -> Path:
    from importlib.resources import files

    return Path(str(files("shoal.policies") / "packs" / f"{name}.yaml"))


def _is_policy_file(path: Path) -> bool:
    """An escalation policy, not an identifier pack: it says ``escalation:`` at the top level.
    Unreadable files count as policies so that loading them reports the problem."""
    try:
        with path.open("rb") as fh:
            head = fh.read(65536)
    except OSError:
        return True
    return any(line.startswith(b"escalation:") for line in head.splitlines())


# --- the runtime side ---------------------------------------------------------------------------


@dataclass
class NodeCost:
    """One node's planner spending, and the estimate of what it would cost if it had gone."""

    calls: int = 0
    planner_ms: float = 0.0
    tokens: int = 0
    usd: float = 0.0
    estimate_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "planner_ms": self.planner_ms, "tokens": self.tokens,
                "usd": self.usd, "estimate_usd": self.estimate_usd}


@dataclass
class Outcome:
    """What escalation made of a node's result."""

    result: AgentResult
    escalated: bool
    reason: str | None
    cost: NodeCost = field(default_factory=NodeCost)
    pending: str | None = None
    """The outbox id when the planner could not take it now."""


DEFAULT_TASK = ("Stand in for the '{node}' step of the pipeline (agent '{agent}'): do what that "
                "step does for this message. {labels}The local model's draft may be wrong.")


class Escalator:
    """Hands failing nodes to the planner, within the budget and the privacy boundary."""

    def __init__(
        self,
        planner: Any,
        *,
        budget: Budget,
        max_tokens: int = 256,
        timeout_s: float | None = None,
        outbox: Outbox | None = None,
        graph: str = "",
    ) -> None:
        self.planner = planner
        self.budget = budget
        self.outbox = outbox
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
        ctx: AgentContext,
        result: AgentResult,
        wants: bool,
        reason: str | None,
        attach: bool = False,
    ) -> Outcome:
        """The node's final result: the local one, or the planner's in its place."""
        from shoal.agents.planner import ask_planner

        estimate = self._estimate(task, ctx.text, result.output)
        refused = self.budget.decide(wants)
        if not wants:
            return Outcome(result, False, reason, NodeCost(estimate_usd=estimate))
        if refused is not None:
            return self._kept(node, result, reason, refused, estimate)
        start = time.perf_counter()
        draft: Any = result.output
        try:
            draft = await self._outbound_draft(ctx.run_id, result.output)
            planned = await ask_planner(
                self.planner, task=task, text=ctx.text, draft=draft,
                labels=sorted(labels) if labels else None, max_tokens=self.max_tokens,
                timeout_s=self.timeout_s)
        except BudgetExhausted as exc:
            return self._kept(node, result, reason, exc.detail, estimate)
        except EgressBlocked as exc:
            kinds = ", ".join(f"{n} {t}" for t, n in sorted(exc.types.items()))
            return self._kept(node, result, reason,
                              f"egress blocked ({kinds} survived masking)", estimate)
        except ShoalError as exc:
            if isinstance(exc, BackendError) and self.outbox is not None:
                # Unreachable, timed out or circuit open: the escalation waits in the outbox.
                esc_id = await asyncio.to_thread(
                    self.outbox.put, graph=self.graph, node=node, record_id=ctx.record_id,
                    run_id=ctx.run_id, task=task, text=ctx.text, draft=draft,
                    labels=sorted(labels) if labels else None, max_tokens=self.max_tokens,
                    reason=reason, error=f"{exc.code}: {exc.message[:200]}")
                _log.warning("escalation_queued", node=node, record_id=ctx.record_id,
                             escalation_id=esc_id, code=str(exc.code))
                return self._kept(node, result, reason,
                                  f"pending_escalation {esc_id} (planner unavailable: "
                                  f"{exc.code})", estimate, pending=esc_id)
            return self._kept(node, result, reason,
                              f"planner failed ({exc.code}: {exc.message[:200]})", estimate)
        planner_ms = (time.perf_counter() - start) * 1000.0
        output = dict(planned.output) if isinstance(planned.output, dict) else planned.output
        if isinstance(output, dict):
            if isinstance(output.get("answer"), str):
                output["answer"] = _unmask(ctx.run_id, output["answer"])
            # The local answer stays on record: audits and calibration compare the two.
            output["local"] = {"label": result.label, "confidence": result.confidence,
                               "output": result.output}
        usage = output.get("usage", {}) if isinstance(output, dict) else {}
        tokens = int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
        usd = float(output.get("cost_usd") or 0.0) if isinstance(output, dict) else 0.0
        if attach:
            kept = dict(result.output) if isinstance(result.output, dict) else {
                "answer": result.output}
            kept["planner"] = output
            final = AgentResult(output=kept, label=result.label, confidence=result.confidence,
                                reason=reason, text=None)
        else:
            final = AgentResult(output=output, label=planned.label,
                                confidence=planned.confidence, reason=reason, text=None)
        _log.info("node_escalated", run_id=ctx.run_id, record_id=ctx.record_id, node=node,
                  reason=reason, planner_ms=round(planner_ms, 3), tokens=tokens, usd=usd,
                  label=planned.label)
        return Outcome(final, True, reason,
                       NodeCost(calls=1, planner_ms=planner_ms, tokens=tokens, usd=usd,
                                estimate_usd=usd))

    async def _outbound_draft(self, run_id: str, draft: Any) -> Any:
        """The local draft, with anything the scan finds in it masked, when the planner is
        remote. The working text passed the masker; the draft never did."""
        pack = self.planner.pack if isinstance(self.planner, RemoteGuard) else None
        if pack is None or draft is None:
            return draft
        text = draft if isinstance(draft, str) else json.dumps(draft, default=str,
                                                                ensure_ascii=False)
        masked = await mask_leftovers(text, pack, run_id)
        return draft if masked == text else masked

    def _estimate(self, task: str, text: str, draft: Any) -> float:
        if not isinstance(self.planner, RemoteGuard) or self.planner.price is None:
            return 0.0
        draft_text = draft if isinstance(draft, str) else json.dumps(draft, default=str)
        return self.planner.estimate_usd(len(task) + len(text) + len(draft_text) + 400)

    def _kept(self, node: str, result: AgentResult, reason: str | None, why: str,
              estimate: float, pending: str | None = None) -> Outcome:
        _log.info("escalation_skipped", node=node, why=why.split(" ", 1)[0])
        wanted = f"; {reason}" if reason else ""
        return Outcome(result, False, f"{why}; local answer kept{wanted}",
                       NodeCost(estimate_usd=estimate), pending=pending)


def _unmask(run_id: str, text: str) -> str:
    """Pseudonyms in the planner's answer back to their values, from this run's vault (which
    exists only if a masker ran in this process)."""
    privacy = sys.modules.get("shoal.policies.privacy")
    if privacy is None:
        return text
    return str(privacy.vault_for(run_id).unmask(text))
