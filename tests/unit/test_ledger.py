"""The escalation ledger: every answered escalation kept (masked) beside the outbox, a person's
label over the planner's, `shoal ledger list` (counts, never text) and `shoal ledger export`
(training lines). Canary values must never reach the ledger file.

The planner is ``FakeBackend`` declared as ``kind: openai`` (a fake, behind the real
RemoteGuard); the masker and the egress scan are the real ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import shoal
from shoal import AgentContext, AgentResult, ChainEdge, GraphSpec, NodeSpec
from shoal.cli import app
from shoal.graphs.spec import EscalationSpec, OpenAIModelSpec
from shoal.models.base import Message
from shoal.policies.escalation import NodeRule, SqliteLedger, training_lines
from shoal.testing import FakeBackend

NAME = "Marguerite Oyelaran-Whitfield"
PHONE = "555-301-7720"
NOTE = f"Hi, this is {NAME}, call me at {PHONE}. Can I move my Tuesday visit?"
CANARIES = (NAME, "Oyelaran", "Whitfield", PHONE, "301-7720")


@shoal.agent("ldg_unsure")
async def unsure(ctx: AgentContext) -> AgentResult:
    """A local classifier that is never sure: every message escalates."""
    return AgentResult(output={"label": "billing"}, label="billing", confidence=0.2)


def planner_answer(messages: Sequence[Message]) -> str:
    names = re.findall(r"\[NAME_\d+\]", messages[-1]["content"])
    return json.dumps({"answer": f"appointment for {names[0] if names else 'nobody'}",
                       "label": "appointment", "confidence": 0.95})


def graph(**esc: Any) -> shoal.Graph:
    spec = GraphSpec(
        name="ledgered",
        models={"big": OpenAIModelSpec(kind="openai", base_url="http://127.0.0.1:9/v1",
                                       model="m")},
        nodes={"mask": NodeSpec(agent="privacy_masker"),
               "triage": NodeSpec(agent="ldg_unsure", escalate_below=0.5)},
        edges=[ChainEdge.parse("mask -> triage")],
        escalation=EscalationSpec(planner="big", **esc))
    return shoal.Graph(spec, models={"big": FakeBackend(handler=planner_answer)})


def store_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(f"{path.name}*") if p.is_file())


@pytest.mark.slow
async def test_an_answered_escalation_is_kept_masked_and_nothing_raw_reaches_the_ledger(
        tmp_path: Path) -> None:
    g = graph()
    r = await g.arun(NOTE, id="msg-1")
    assert r.status == "escalated"
    ledger = SqliteLedger(g.outbox_path)
    [entry] = ledger.entries(graph="ledgered")
    assert entry.node == "triage" and entry.record_id == "msg-1" and entry.run_id == r.run_id
    assert entry.local_label == "billing" and entry.local_confidence == pytest.approx(0.2)
    assert entry.planner_label == "appointment" and entry.planner_confidence == 0.95
    assert "[NAME_1]" in entry.text and "[PHONE_1]" in entry.text
    assert entry.planner_answer == "appointment for [NAME_1]"  # masked, as in the result file
    assert entry.source == "planner" and entry.label == "appointment"
    ledger.close()
    raw = store_bytes(g.outbox_path)
    assert b"[NAME_1]" in raw
    for canary in CANARIES:
        assert canary.encode() not in raw


def test_a_person_outranks_the_planner_and_export_filters(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "store.sqlite")
    common: dict[str, Any] = {
        "graph": "g", "record_id": "r", "run_id": "u", "local_confidence": 0.3,
        "p_wrong": 0.7, "planner_answer": "x", "planner_confidence": 0.9,
        "model_version": "triage@abc"}
    first = ledger.append(node="triage", text="[NAME_1] wants a refill",
                          local_label="billing", planner_label="prescription_refill", **common)
    ledger.append(node="triage", text="no label came back", local_label="billing",
                  planner_label=None, **common)
    ledger.append(node="urgent", text="hand-off", local_label=None, planner_label="x", **common)
    ledger._db().execute("UPDATE ledger SET human_label = 'appointment' WHERE id = ?", (first,))
    lines = training_lines(ledger.entries(graph="g", node="triage"))
    assert lines == [{"id": first, "text": "[NAME_1] wants a refill", "label": "appointment",
                      "source": "human"}]
    assert training_lines(ledger.entries(graph="g"), labels=["x"])[0]["text"] == "hand-off"
    assert ledger.entries(graph="g", since=4102444800.0) == []  # 2100-01-01: nothing yet
    assert ledger.counts(graph="g") == {("triage", "appointment", "human"): 1,
                                        ("triage", "-", "-"): 1, ("urgent", "x", "planner"): 1}


GRAPH_YAML = """\
shoal: 1
name: ledgered
models:
  big: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}
nodes:
  mask: {agent: privacy_masker}
  triage: {agent: noop}
edges: [mask -> triage]
escalation: {planner: big, outbox: store.sqlite}
"""


def test_cli_lists_counts_without_text_and_exports_training_lines(tmp_path: Path) -> None:
    graph_file = tmp_path / "graph.yaml"
    graph_file.write_text(GRAPH_YAML)
    runner = CliRunner()
    empty = runner.invoke(app, ["ledger", "list", str(graph_file)])
    assert empty.exit_code == 0 and "no ledger yet" in empty.output
    ledger = SqliteLedger(tmp_path / "store.sqlite")
    for i, label in enumerate(["appointment", "billing", "appointment"]):
        ledger.append(graph="ledgered", node="triage", record_id=f"r{i}", run_id="u",
                      text=f"secret text {i} about [NAME_1]", local_label="billing",
                      local_confidence=0.2, p_wrong=None, planner_label=label,
                      planner_answer=label, planner_confidence=0.9, model_version=None)
    ledger.append(graph="other-graph", node="triage", record_id="x", run_id="u", text="t",
                  local_label=None, local_confidence=None, p_wrong=None,
                  planner_label="billing", planner_answer="b", planner_confidence=1.0,
                  model_version=None)
    listed = runner.invoke(app, ["ledger", "list", str(graph_file)])
    assert listed.exit_code == 0, listed.output
    assert "secret" not in listed.output and "3 answered escalation(s)" in listed.output
    out = tmp_path / "train.jsonl"
    exported = runner.invoke(app, ["ledger", "export", str(graph_file), "--node", "triage",
                                   "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["label"] for line in lines] == ["appointment", "billing", "appointment"]
    assert all(set(line) == {"id", "text", "label", "source"} for line in lines)
    assert "secret" not in exported.output and "3 training line(s) (planner 3)" in exported.output
    bad = runner.invoke(app, ["ledger", "export", str(graph_file), "--node", "nope",
                              "-o", str(out)])
    assert bad.exit_code == 2 and "no node 'nope'" in bad.output
    when = runner.invoke(app, ["ledger", "export", str(graph_file), "--since", "yesterday",
                               "-o", str(out)])
    assert when.exit_code == 2 and "ISO date" in when.output


LABELLED_YAML = GRAPH_YAML.replace(
    "triage: {agent: noop}",
    "triage: {agent: keyword_classifier, labels: {appointment: [visit], billing: [bill]}}")


def test_a_person_labels_an_entry_it_outranks_the_planner_and_is_audited(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph_file = tmp_path / "graph.yaml"
    graph_file.write_text(LABELLED_YAML)
    monkeypatch.delenv("SHOAL_AUDIT_LOG", raising=False)
    ledger = SqliteLedger(tmp_path / "store.sqlite")
    entry_id = ledger.append(graph="ledgered", node="triage", record_id="r1", run_id="run-1",
                             text="can I move my visit, [NAME_1]", local_label="billing",
                             local_confidence=0.3, p_wrong=None, planner_label="billing",
                             planner_answer="billing", planner_confidence=0.6,
                             model_version=None)
    runner = CliRunner()
    queue = runner.invoke(app, ["review", "list", str(graph_file)], env={"COLUMNS": "200"})
    assert queue.exit_code == 0 and entry_id in queue.output and "1 entry" in queue.output
    assert "[NAME_1]" in queue.output  # masked text, shown as written (not console markup)
    wrong = runner.invoke(app, ["review", "label", str(graph_file), entry_id, "refill"])
    assert wrong.exit_code == 2 and "not one of node 'triage'" in wrong.output
    missing = runner.invoke(app, ["review", "label", str(graph_file), "nope", "billing"])
    assert missing.exit_code == 2 and "no ledger entry 'nope'" in missing.output
    done = runner.invoke(app, ["review", "label", str(graph_file), entry_id, "appointment"])
    assert done.exit_code == 0, done.output
    assert "planner said 'billing'" in done.output
    entry = ledger.entry(entry_id)
    assert entry is not None and entry.human_label == "appointment" and entry.human_at
    assert training_lines([entry])[0]["source"] == "human"
    records = [json.loads(line) for line in
               (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["agent"], r["decision"], r["record_id"]) for r in records] == [
        ("human_review", "appointment", "r1")]
    assert "visit" not in (tmp_path / "audit.jsonl").read_text()
    assert "0 entries" in runner.invoke(app, ["review", "list", str(graph_file)]).output


@pytest.mark.slow
async def test_an_attached_hand_off_is_kept_but_labels_nothing() -> None:
    spec = GraphSpec(
        name="ledgered",
        models={"big": OpenAIModelSpec(kind="openai", base_url="http://127.0.0.1:9/v1",
                                       model="m")},
        nodes={"mask": NodeSpec(agent="privacy_masker"),
               "urgent": NodeSpec(agent="template_reply", default="Call 911.", escalate=True)},
        edges=[ChainEdge.parse("mask -> urgent")],
        escalation=EscalationSpec(planner="big", policies=[]))
    g = shoal.Graph(spec, models={"big": FakeBackend(handler=planner_answer)},
                    rules={"urgent": NodeRule(attach=True)})
    r = await g.arun(NOTE)
    assert "planner" in r.output
    [entry] = SqliteLedger(g.outbox_path).entries(graph="ledgered")
    assert entry.node == "urgent" and entry.planner_label is None and entry.label is None
    assert training_lines([entry]) == []
