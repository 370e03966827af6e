"""A planner inside the organisation's trust boundary (``boundary: inside`` on its model): a graph
with no personal data and no masker may escalate to it; the same graph with the default boundary
is refused at FILE:LINE:COL; every run that used it says so in its trace, an event and the audit
log; the egress checks count but never block.

The planner is ``FakeBackend`` (a named fake) declared as ``kind: openai``, so it sits behind the
real RemoteGuard the runtime builds from the YAML; the last test runs the same graph against the
real ``llama_cpp.server`` stand-in planner (``planner_server``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal.graphs.loader import load_spec
from shoal.models.base import Message
from shoal.policies.audit import verify
from shoal.policies.escalation import RemoteGuard, guard
from shoal.testing import FakeBackend

ROUTER = """
shoal: 1
name: intent-router
description: A generic intent router with no personal data in it.
models:
  onprem:
    kind: openai
    base_url: http://127.0.0.1:9/v1
    model: m{boundary}
nodes:
  route:
    agent: keyword_classifier
    labels: {{billing: [bill, invoice], support: [broken, error]}}
    escalate_below: 0.5
escalation:
  planner: onprem
"""
INSIDE = "\n    boundary: inside"
UNSURE = "Where can I change the delivery address of my order?"
WITH_EMAIL = "Please write to ops.lead@corp.example about my order."


def router(write_yaml: Callable[[str], Path], boundary: str = INSIDE) -> Path:
    return write_yaml(ROUTER.format(boundary=boundary))


def graph_with(path: Path, planner: FakeBackend) -> shoal.Graph:
    spec, source = load_spec(path)
    return shoal.Graph(spec, base_dir=path.parent, source=source, models={"onprem": planner})


def answer(label: str = "support") -> Callable[[Sequence[Message]], str]:
    return lambda _: json.dumps({"answer": "Settings > Orders > Address.", "label": label,
                                 "confidence": 0.9})


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_the_default_boundary_is_refused_at_file_line_col(write_yaml) -> None:
    path = router(write_yaml, boundary="")
    with pytest.raises(shoal.SpecError) as err:
        shoal.load_graph(path)
    [issue] = [str(i) for i in err.value.issues]
    # Line 13, column 21: the value of route's escalate_below, the setting that escalates it.
    assert issue.startswith(f"{path}:13:21: node 'route' can escalate to the remote planner "
                            "'onprem'")
    assert "passes no privacy_masker" in issue and "boundary: inside" in issue


def test_an_inside_planner_needs_no_masker(write_yaml) -> None:
    graph = shoal.load_graph(router(write_yaml))  # validates, with the real OpenAI backend
    wrapped = graph.models["onprem"]
    assert isinstance(wrapped, RemoteGuard)
    assert wrapped.boundary == "inside" and wrapped.circuit is not None
    spec = graph.spec.models["onprem"]
    assert getattr(spec, "boundary", None) == "inside"


async def test_a_run_that_used_it_says_so(write_yaml, tmp_path, monkeypatch,
                                          log_stream: io.StringIO) -> None:
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("SHOAL_AUDIT_LOG", str(audit))
    scanned: list[Any] = []

    async def scan_spy(*args: Any) -> dict[str, int]:
        scanned.append(args)
        return {}

    monkeypatch.setattr(guard, "scan_outbound", scan_spy)
    planner = FakeBackend(handler=answer())
    graph = graph_with(router(write_yaml), planner)

    r = await graph.arun(UNSURE, id="q1")
    assert r.status == "escalated", r
    [trace] = r.nodes
    assert trace.escalated and trace.label == "support"
    assert trace.planner_boundary == "inside"
    assert json.loads(r.model_dump_json())["nodes"][0]["planner_boundary"] == "inside"
    # The text went as it was: no masker, and the masker's re-scan never ran.
    assert UNSURE in json.dumps(planner.calls) and scanned == []

    [inside] = [e for e in events(log_stream) if e["event"] == "egress_inside_boundary"]
    assert inside["model"] == "onprem" and inside["node"] == "route"
    assert inside["identifiers"] == {}

    report = verify(audit)
    assert report.ok, report
    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert (record["decision"], record["agent"], record["node"], record["record_id"]) == (
        "sent_inside_boundary", "remote_guard", "route", "q1")
    assert {c["name"] for c in record["checks"]} == {"model:onprem", "independent_check"}

    # A run that stays local is not marked.
    sure = await graph.arun("my invoice shows a bill twice", id="q2")
    assert sure.status == "ok" and sure.nodes[0].planner_boundary is None
    assert len(audit.read_text().splitlines()) == 1


async def test_egress_checks_count_but_never_block_inside(write_yaml, tmp_path, monkeypatch,
                                                          log_stream: io.StringIO) -> None:
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("SHOAL_AUDIT_LOG", str(audit))
    planner = FakeBackend(handler=answer())
    r = await graph_with(router(write_yaml), planner).arun(WITH_EMAIL, id="q3")
    assert r.status == "escalated" and len(planner.calls) == 1
    assert "ops.lead@corp.example" in json.dumps(planner.calls)  # inside: sent as written
    [inside] = [e for e in events(log_stream) if e["event"] == "egress_inside_boundary"]
    assert inside["identifiers"] == {"EMAIL": 1}
    assert not [e for e in events(log_stream) if e["event"] == "egress_blocked"]
    # Counted in the audit record too: types and counts, never the value.
    text = audit.read_text()
    assert "ops.lead" not in text and "corp.example" not in text
    check = next(c for c in json.loads(text)["checks"] if c["name"] == "independent_check")
    assert check == {"name": "independent_check", "passed": False, "count": 1,
                     "kinds": ["EMAIL"]}


async def test_an_unwritable_audit_log_stops_the_call(write_yaml, tmp_path, monkeypatch) -> None:
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("SHOAL_AUDIT_LOG", str(audit))
    planner = FakeBackend(handler=answer())
    graph = graph_with(router(write_yaml), planner)
    wrapped = graph.models["onprem"]
    assert isinstance(wrapped, RemoteGuard) and wrapped.audit is not None
    wrapped.audit.close()  # as if the disk went away under a running graph
    r = await graph.arun(UNSURE, id="q4")
    assert planner.calls == []
    [trace] = r.nodes
    assert not trace.escalated and trace.reason is not None
    assert "policy_violation" in trace.reason and trace.planner_boundary is None


@pytest.mark.integration
@pytest.mark.slow
async def test_inside_planner_against_the_real_server(write_yaml, tmp_path, monkeypatch,
                                                      planner_server: Any) -> None:
    from tests.integration.recording_proxy import RecordingProxy

    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("SHOAL_AUDIT_LOG", str(audit))
    with RecordingProxy(planner_server.base_url) as proxy:
        path = write_yaml(ROUTER.format(boundary=INSIDE)
                          .replace("http://127.0.0.1:9/v1", proxy.base_url)
                          .replace("model: m\n", f"model: {planner_server.model_id}\n"))
        graph = shoal.load_graph(path)
        r = await graph.arun(WITH_EMAIL, id="live-1")
    assert b"ops.lead@corp.example" in proxy.recorded()  # inside: unmasked, as configured
    [trace] = r.nodes
    assert trace.escalate
    # The stand-in model may fail to answer in JSON; a call that answered is marked.
    assert trace.planner_boundary == ("inside" if trace.escalated else None)
    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert record["decision"] == "sent_inside_boundary" and verify(audit).ok
