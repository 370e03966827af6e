"""``shoal outbox drain``: send the queued escalations, then write the answers into the stored
results, each exactly once.

Sending goes through the graph's planner model as a live escalation would (egress scan, budget,
circuit breaker). A results file is rewritten atomically (a temporary file renamed over it); an
answer is marked applied only after the rename, and a line whose node no longer says it waits for
that escalation is left alone, so a drain interrupted anywhere can simply be run again.
Pseudonyms in a drained answer stay as they are: the run's vault ended with the run.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.errors import BackendError, ShoalError
from shoal.graphs.results import RunResult
from shoal.graphs.runtime import Graph
from shoal.observability.logging import get_logger
from shoal.policies.escalation import CircuitOpen, OutboxRow, OutboxStore, ask_planner

_log = get_logger()
MAX_ATTEMPTS = 4
"""Attempts (the first, at run time, included) before a malformed-answer row is given up; a
planner that is down never uses them up."""


@dataclass
class DrainReport:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    """Rows another drain had claimed."""
    applied: int = 0
    gave_up: int = 0
    """Rows marked failed: the planner kept answering malformed JSON."""
    stop_reason: str | None = None


async def send_pending(graph: Graph, outbox: OutboxStore, report: DrainReport) -> None:
    if graph.escalator is None:
        raise ValueError(f"graph {graph.name!r} has no escalation planner")
    planner = graph.escalator.planner
    outbox.requeue_stale()
    for row in outbox.rows(status="pending", graph=graph.name):
        if not outbox.claim(row.id):
            report.skipped += 1
            continue
        try:
            reply = await ask_planner(planner, system=graph.escalator.system, task=row.task,
                                      text=row.text, draft=row.draft, labels=row.labels,
                                      max_tokens=row.max_tokens,
                                      timeout_s=graph.escalator.timeout_s)
        except CircuitOpen as exc:
            # Nothing was sent: recent failures (this process's, or with SHOAL_DB any
            # process's) opened the planner's circuit. Not an attempt of this row's.
            outbox.release(row.id, f"{exc.code}: {exc.message[:200]}", attempted=False)
            report.stop_reason = (f"the planner's circuit is open after recent failures; next "
                                  f"probe in {max(0.0, exc.retry_in_s):.0f} s: drain again "
                                  "then; the rest stay queued")
            break
        except BackendError as exc:
            outbox.release(row.id, f"{exc.code}: {exc.message[:200]}")
            report.failed += 1
            report.stop_reason = f"planner unavailable ({exc.code}); the rest stay queued"
            break  # the planner is down: stop hammering it
        except ShoalError as exc:  # a malformed answer: try again next drain, up to a limit
            give_up = row.attempts + 1 >= MAX_ATTEMPTS
            outbox.release(row.id, f"{exc.code}: {exc.message[:200]}", give_up=give_up)
            report.failed += 1
            report.gave_up += int(give_up)
            continue
        answer = reply.output()
        answer["confidence"] = reply.confidence
        outbox.complete(row.id, answer)
        report.sent += 1
        # An answer that came late is training data all the same, by the same rules.
        rule = graph.rules.nodes.get(row.node)
        draft = row.draft if isinstance(row.draft, dict) else {}
        await graph.escalator.record(
            node=row.node, record_id=row.record_id, run_id=row.run_id, text=row.text,
            local=None, label=reply.label, labels=row.labels,
            attached=rule is not None and rule.attach, answer=reply.answer,
            confidence=reply.confidence,
            local_label=draft["label"] if isinstance(draft.get("label"), str) else None)
        _log.info("escalation_drained", escalation_id=row.id, node=row.node,
                  record_id=row.record_id)


def apply_to_results(path: Path, outbox: OutboxStore, graph_name: str, report: DrainReport) -> None:
    """Write done, unapplied answers into ``path`` (a `shoal run --output` file)."""
    done = {r.id: r for status in ("done", "failed")
            for r in outbox.rows(status=status, graph=graph_name, unapplied=True)}
    if not done:
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    applied: list[str] = []
    out: list[str] = []
    for line in lines:
        if not line.strip():
            out.append(line)
            continue
        try:
            result = RunResult.model_validate_json(line)
        except ValueError:
            out.append(line)  # not ours to judge; shoal report names such lines
            continue
        ids = [n.pending for n in result.nodes if n.pending in done]
        if not ids:
            out.append(line)
            continue
        for esc_id in ids:
            assert esc_id is not None
            result = _apply(result, done[esc_id])
            applied.append(esc_id)
        out.append(result.model_dump_json() + "\n")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(out)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for esc_id in done:
        # Applied now, or already applied by an earlier drain that stopped before marking.
        outbox.mark_applied(esc_id)
    report.applied += len(applied)


def _apply(result: RunResult, row: OutboxRow) -> RunResult:
    answer: dict[str, Any] = dict(row.answer or {})
    nodes = []
    output = result.output
    for trace in result.nodes:
        if trace.pending != row.id:
            nodes.append(trace)
            continue
        if row.status == "failed":
            nodes.append(trace.model_copy(update={
                "pending": None,
                "reason": f"escalation {row.id} given up after {row.attempts} attempts "
                          f"({row.last_error}); local answer kept"}))
            continue
        nodes.append(trace.model_copy(update={
            "pending": None, "escalated": True, "label": answer.get("label") or trace.label,
            "confidence": float(answer.get("confidence", trace.confidence)),
            "reason": f"drained from the outbox ({row.id}); {row.reason or 'escalated'}"}))
        if _same(output, row.draft):
            output = {**answer, "local": row.draft}
    still_pending = any(n.pending for n in nodes)
    status = result.status
    if status == "pending_escalation" and not still_pending:
        status = "escalated" if any(n.escalated for n in nodes) else "ok"
    return result.model_copy(update={"nodes": nodes, "output": output, "status": status})


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True,
                                                                    default=str)
