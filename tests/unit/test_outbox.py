"""Planner outages: the circuit breaker, the durable outbox, and draining it into stored results
exactly once. The planner is ``FakeBackend`` (a fake, for fault injection) behind the real
RemoteGuard, so the egress scan, budget and breaker are the production ones."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal.cli import drain
from shoal.errors import BackendError
from shoal.graphs.spec import EscalationSpec
from shoal.policies.escalation import SqliteLedger
from shoal.policies.escalation.circuit import CircuitBreaker, CircuitOpen
from shoal.policies.escalation.outbox import Outbox
from shoal.testing import FakeBackend


class Down(FakeBackend):
    """A planner that is down until ``up`` is set."""

    def __init__(self) -> None:
        super().__init__(handler=lambda _m: json.dumps(
            {"answer": "planner answer", "label": "billing", "confidence": 0.9}))
        self.up = False

    async def generate_json(self, messages: Any, schema: Any, **kw: Any) -> Any:
        if not self.up:
            self.calls.append(("down", None))
            raise BackendError("connection refused", backend="fake-planner")
        return await super().generate_json(messages, schema, **kw)


def graph(tmp_path: Path, planner: Any, failures: int = 2) -> shoal.Graph:
    spec = shoal.GraphSpec.model_validate({
        "name": "outage",
        "models": {"big": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
                           "circuit_failures": failures, "circuit_cooldown_s": 60}},
        "nodes": {"mask": {"agent": "privacy_masker"},
                  "triage": {"agent": "keyword_classifier", "escalate_below": 0.99,
                             "labels": {"billing": ["invoice"], "appointment": ["visit"]}}},
        "edges": ["mask -> triage"],
    }).model_copy(update={"escalation": EscalationSpec(planner="big",
                                                       outbox=str(tmp_path / "ob.sqlite"))})
    return shoal.Graph(spec, models={"big": planner})


def test_breaker_opens_probes_and_closes() -> None:
    b = CircuitBreaker("t-breaker", failures=2, cooldown_s=0.05)
    b.before()
    b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open"
    with pytest.raises(CircuitOpen):
        b.before()
    time.sleep(0.06)
    b.before()  # the one probe
    assert b.state == "half_open"
    with pytest.raises(CircuitOpen):
        b.before()  # a second caller while the probe is out
    b.failure()
    assert b.state == "open"  # the probe failed: open again
    time.sleep(0.06)
    b.before()
    b.success()
    assert b.state == "closed" and b.opened_count == 2


async def test_planner_down_queues_escalations_and_the_breaker_stops_calls(
        tmp_path: Path) -> None:
    planner = Down()
    g = graph(tmp_path, planner)
    results = [await g.arun(f"question {i} about my visit", id=f"r{i}") for i in range(5)]
    assert [r.status for r in results] == ["pending_escalation"] * 5
    assert len(planner.calls) == 2  # then the circuit opened: no more calls
    trace = results[0].nodes[-1]
    assert trace.pending and not trace.escalated
    assert trace.reason is not None
    assert trace.reason.startswith(f"pending_escalation {trace.pending}")
    last = results[4].nodes[-1].reason
    assert last is not None and "backend_failed" in last
    assert results[0].output == "appointment"  # the local answer
    rows = Outbox(tmp_path / "ob.sqlite").rows(status="pending")
    assert [r.record_id for r in rows] == [f"r{i}" for i in range(5)]
    assert all("[" in r.text or "visit" in r.text for r in rows)


async def test_drain_sends_each_once_and_applies_each_once(tmp_path: Path) -> None:
    planner = Down()
    g = graph(tmp_path, planner, failures=100)
    results = [await g.arun(f"question {i} about my visit", id=f"r{i}") for i in range(3)]
    out = tmp_path / "out.jsonl"
    out.write_text("".join(r.model_dump_json() + "\n" for r in results))
    box = Outbox(tmp_path / "ob.sqlite")

    planner.up = True
    report = drain.DrainReport()
    await drain.send_pending(g, box, report)
    drain.apply_to_results(out, box, g.name, report)
    assert (report.sent, report.applied) == (3, 3)
    lines = [shoal.RunResult.model_validate_json(x) for x in out.read_text().splitlines()]
    assert [r.status for r in lines] == ["escalated"] * 3
    assert all(r.nodes[-1].escalated and r.nodes[-1].pending is None for r in lines)
    assert lines[0].nodes[-1].label == "billing"
    assert lines[0].output["answer"] == "planner answer"
    assert lines[0].output["local"] == "appointment"
    sent = len([c for c in planner.calls if c[0] == "generate_json"])
    # Answers that came late are in the ledger too, one per escalation.
    ledger = SqliteLedger(g.outbox_path)
    assert [(e.record_id, e.planner_label) for e in ledger.entries(graph=g.name)] == [
        ("r0", "billing"), ("r1", "billing"), ("r2", "billing")]

    again = drain.DrainReport()
    await drain.send_pending(g, box, again)
    before = out.read_bytes()
    drain.apply_to_results(out, box, g.name, again)
    assert (again.sent, again.applied) == (0, 0)
    assert out.read_bytes() == before
    assert len([c for c in planner.calls if c[0] == "generate_json"]) == sent


async def test_a_drain_stops_when_the_planner_is_still_down(tmp_path: Path) -> None:
    planner = Down()
    g = graph(tmp_path, planner, failures=100)
    for i in range(3):
        await g.arun(f"question {i} about my visit", id=f"r{i}")
    box = Outbox(tmp_path / "ob.sqlite")
    report = drain.DrainReport()
    await drain.send_pending(g, box, report)
    assert report.failed == 1 and report.sent == 0 and report.stop_reason
    assert len(box.rows(status="pending")) == 3
    assert max(r.attempts for r in box.rows()) == 2


async def test_a_drain_behind_an_open_circuit_sends_nothing_and_counts_no_attempt(
        tmp_path: Path) -> None:
    planner = Down()
    g = graph(tmp_path, planner, failures=2)  # the run's own failures open the circuit
    for i in range(3):
        await g.arun(f"question {i} about my visit", id=f"r{i}")
    box = Outbox(tmp_path / "ob.sqlite")
    attempts = {r.id: r.attempts for r in box.rows()}
    planner.up = True  # back, but the circuit does not know it until its cooldown ends
    calls = len(planner.calls)
    report = drain.DrainReport()
    await drain.send_pending(g, box, report)
    assert report.sent == 0 and report.failed == 0
    assert report.stop_reason is not None and "circuit is open" in report.stop_reason
    assert len(planner.calls) == calls  # nothing reached the planner
    assert {r.id: r.attempts for r in box.rows()} == attempts
    assert len(box.rows(status="pending")) == 3


def test_claims_are_exclusive(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "ob.sqlite")
    esc = box.put(graph="g", node="n", record_id="r", run_id="x", task="t", text="masked",
                  draft=None, labels=None, max_tokens=16, reason=None, error="down")
    other = Outbox(tmp_path / "ob.sqlite")  # a second process's view of the same file
    assert box.claim(esc) is True
    assert other.claim(esc) is False
    box.complete(esc, {"answer": "a"})
    assert other.rows(status="done")[0].answer == {"answer": "a"}
