"""Promote, roll back, start and stop a shadow: each one event in the store, each audited.

:func:`promote` measures the champion and the candidate on the frozen evaluation split now
(refusing when the split is not the one the candidate's lineage names), judges the shadow records
and runs the gate (:mod:`shoal.learning.gate`). It writes one audit record whether the gate
passes or not, and changes the champion only when it passes. A running graph picks the change
up with :meth:`shoal.Graph.refresh_models` (``shoal serve`` does, before each request).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path

from shoal.errors import LearningError
from shoal.learning.data import NodeData
from shoal.learning.evaluate import EvalMetrics, evaluate_version
from shoal.learning.gate import GateResult, gate
from shoal.learning.learn import NodeSetup
from shoal.learning.shadow import ShadowStats, shadow_stats
from shoal.policies.audit import AuditCheck, audit_log
from shoal.policies.escalation import BASE_VERSION, LedgerStore, ModelRegistry
from shoal.policies.escalation.model_registry import check_expected

__all__ = ["Promotion", "promote", "rollback", "start_shadow", "stop_shadow"]


@dataclass(frozen=True)
class Promotion:
    node: str
    version: str
    champion: str
    """The champion it was judged against."""
    result: GateResult
    champion_metrics: EvalMetrics
    metrics: EvalMetrics
    shadow: ShadowStats

    @property
    def promoted(self) -> bool:
        return self.result.passed


def _audit(path: Path, setup: NodeSetup, action: str, decision: str,
           checks: list[AuditCheck]) -> None:
    audit_log(path).append(run_id=f"{action}-{uuid.uuid4().hex[:12]}", record_id=setup.graph,
                           node=setup.node, agent=f"model_{action}", decision=decision,
                           checks=checks)


def promote(setup: NodeSetup, version: str, *, evaluation: NodeData, registry: ModelRegistry,
            ledger: LedgerStore, audit_path: Path) -> Promotion:
    """Judge ``version`` against the node's champion; make it the champion if the gate
    passes. LearningError for an unknown version, the champion itself, a changed split, or a
    champion that changed while the candidate was judged (another promotion or rollback)."""
    row = registry.version(setup.graph, setup.node, version)
    if row is None:
        raise LearningError(f"node {setup.node!r} has no version {version!r} (see "
                            "`shoal versions`)")
    # The stack as judged: the promotion is recorded only if no one changed it meanwhile.
    stack = registry.champions(setup.graph).get(setup.node, [BASE_VERSION])
    champion = stack[-1]
    if version == champion:
        raise LearningError(f"{version} is already the champion of {setup.node!r}")
    frozen = row.lineage.get("eval", {}).get("sha256")
    if frozen is not None and frozen != evaluation.sha256:
        raise LearningError(
            f"the frozen evaluation split {evaluation.source} changed since {version} was "
            f"learned (sha256 {frozen[:12]}… then, {evaluation.sha256[:12]}… now): restore it "
            "or learn the candidate again")
    was, now = setup.files(registry, champion), setup.files(registry, version)
    champion_metrics = asyncio.run(evaluate_version(
        was.model, evaluation.texts, evaluation.labels, was.rule, router_path=was.router))
    metrics = asyncio.run(evaluate_version(now.model, evaluation.texts, evaluation.labels,
                                           now.rule, router_path=now.router))
    shadow = shadow_stats(registry, ledger, setup.graph, setup.node, version)
    result = gate(champion_metrics, metrics, shadow, min_shadow=setup.learn.min_shadow,
                  max_share=setup.max_share, accuracy_tolerance=setup.learn.accuracy_tolerance,
                  target_accuracy=setup.learn.target_accuracy)
    checks = [AuditCheck(c.name.split(" ")[0], c.passed) for c in result.checks]
    # Audit decisions are names (no free text): promote:v2:over:v1, refuse:v2:keep:v1.
    decision = f"promote:{version}:over:{champion}" if result.passed else \
        f"refuse:{version}:keep:{champion}"
    # Judging took seconds; a promotion or rollback elsewhere in that time voids the judgement.
    # Refused here, before the audit, the record never names a promotion that cannot happen
    # (add_event checks once more, atomically, for the milliseconds left).
    check_expected(setup.node, stack,
                   registry.champions(setup.graph).get(setup.node, [BASE_VERSION]))
    # The audit record first: a champion no one can trace must not go live.
    _audit(audit_path, setup, "promotion", decision, checks)
    if result.passed:
        registry.add_event(graph=setup.graph, node=setup.node, action="promote",
                           version=version, detail={"over": champion, **result.as_dict()},
                           expect=stack)
        if registry.shadow(setup.graph, setup.node) == version:
            registry.add_event(graph=setup.graph, node=setup.node, action="shadow_stop",
                               version=version, detail={"why": "promoted"})
    return Promotion(node=setup.node, version=version, champion=champion, result=result,
                     champion_metrics=champion_metrics, metrics=metrics, shadow=shadow)


def rollback(setup: NodeSetup, *, registry: ModelRegistry, audit_path: Path) -> tuple[str, str]:
    """Make the champion before the current one the champion again; (from, to).
    LearningError when the node runs the graph file's model, or when its champion changed
    between reading and rolling back (another rollback or promotion at the same time)."""
    stack = registry.champions(setup.graph).get(setup.node, [BASE_VERSION])
    if len(stack) < 2:
        raise LearningError(f"node {setup.node!r} runs {BASE_VERSION}, the graph file's "
                            "model: nothing to roll back")
    current, previous = stack[-1], stack[-2]
    _audit(audit_path, setup, "rollback", f"rollback:{current}:to:{previous}",
           [AuditCheck("rollback", True)])
    registry.add_event(graph=setup.graph, node=setup.node, action="rollback", version=previous,
                       detail={"from": current}, expect=stack)
    return current, previous


def start_shadow(setup: NodeSetup, version: str, *, registry: ModelRegistry) -> None:
    """Run ``version`` beside the champion on live traffic, outputs unchanged."""
    if registry.version(setup.graph, setup.node, version) is None:
        raise LearningError(f"node {setup.node!r} has no version {version!r} (see "
                            "`shoal versions`)")
    if version == registry.champion(setup.graph, setup.node):
        raise LearningError(f"{version} is the champion of {setup.node!r}: shadow a candidate")
    registry.add_event(graph=setup.graph, node=setup.node, action="shadow_start",
                       version=version)


def stop_shadow(setup: NodeSetup, *, registry: ModelRegistry) -> str | None:
    """Stop the node's shadow; the version that was shadowing, or None."""
    current = registry.shadow(setup.graph, setup.node)
    if current is not None:
        registry.add_event(graph=setup.graph, node=setup.node, action="shadow_stop",
                           version=current)
    return current
