"""Plan mode on the healthcare cascade with its real models and a real planner (llama_cpp.server
on 127.0.0.1 behind a recording proxy): a message with several requests gets one reply that
answers each, an emergency leads, single requests stay whole with their label, and an unsure
split asks the planner once and keeps to the words of the masked message."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import shoal
from shoal.graphs.results import RunResult
from shoal.policies.escalation import SqliteLedger
from tests.conftest import REPO
from tests.integration.recording_proxy import RecordingProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HEALTH = REPO / "examples" / "healthcare"
TEMPLATES = REPO / "src" / "shoal" / "agents" / "data" / "reply_templates" / "clinic_replies.yaml"
CANARY = "Zebulon Quarterfield"
CANARIES = (CANARY, "Zebulon", "Quarterfield")

THREE = (f"Hi, this is {CANARY}. I'm out of lisinopril, can you send a refill to my pharmacy? "
         "Also I need to move my appointment on Thursday. "
         "And why was I charged twice for my last visit?")
REFILL_AND_EMERGENCY = ("Please refill my lisinopril. I have crushing chest pain and I can't "
                        "breathe.")
# Unsure as the cascade splits it (one clause between sure and unsure): plan mode asks.
UNSURE = ("Dear care team, need an appt asap. BP has been 160/98 most days since "
          f"last month. Is that high enough to worry about?\nThanks, {CANARY}")


def fixed_sentences(label: str) -> list[str]:
    """The reply's sentences for ``label`` that have no slot and are always there."""
    pack = yaml.safe_load(TEMPLATES.read_text(encoding="utf-8"))
    return [s["text"] for s in pack["replies"][label]["sentences"]
            if "{" not in s["text"] and not s.get("optional")]


@pytest.fixture
def proxy(planner_server: Any, monkeypatch: pytest.MonkeyPatch,
          tmp_path: Path) -> Iterator[RecordingProxy]:
    monkeypatch.setenv("SHOAL_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    with RecordingProxy(planner_server.base_url) as recording:
        monkeypatch.setenv("SHOAL_PLANNER_URL", recording.base_url)
        monkeypatch.setenv("SHOAL_PLANNER_MODEL", planner_server.model_id)
        yield recording


@pytest.fixture
def cascade(proxy: RecordingProxy) -> shoal.Graph:
    return shoal.load_graph(HEALTH / "cascade.yaml")


def nodes(result: RunResult, name: str) -> list[Any]:
    return [n for n in result.nodes if n.node == name]


def split_of(result: RunResult) -> dict[str, Any]:
    [split] = nodes(result, "split")
    assert isinstance(split.output, dict)
    return split.output


async def test_three_requests_get_one_reply_that_answers_each_once(
        cascade: shoal.Graph, proxy: RecordingProxy, tmp_path: Path) -> None:
    result = await cascade.arun(THREE, id="three")
    assert result.status == "ok", result.error
    answers = nodes(result, "answer")
    assert [n.step for n in answers] == [1, 2, 3]
    assert [n.label for n in answers] == ["prescription_refill", "appointment", "billing"]
    [join] = nodes(result, "reply")
    assert join.step is None and result.output is join.output
    [comply] = nodes(result, "comply")
    assert comply.label == "pass"
    reply = result.reply
    assert reply is not None
    for label in ("prescription_refill", "appointment", "billing"):
        for sentence in fixed_sentences(label):
            assert reply.count(sentence) == 1, (label, sentence, reply)
    pack = yaml.safe_load(TEMPLATES.read_text(encoding="utf-8"))
    assert reply.startswith(f"Hello {CANARY},")  # the sender's own name, in their reply only
    assert reply.count("Hello") == 1
    assert reply.count(pack["footer"]["text"]) == 1 and reply.endswith(pack["footer"]["text"])
    # The refill is answered first, the bill last: the order the sender wrote them.
    assert (reply.index(fixed_sentences("prescription_refill")[0])
            < reply.index(fixed_sentences("appointment")[0])
            < reply.index(fixed_sentences("billing")[0]))
    dumped = result.model_dump_json()
    audit = (tmp_path / "audit.jsonl").read_text()
    for canary in CANARIES:
        assert canary not in dumped and canary not in audit
        assert canary.encode() not in proxy.recorded()


async def test_an_emergency_beside_a_refill_leads_the_reply(cascade: shoal.Graph) -> None:
    result = await cascade.arun(REFILL_AND_EMERGENCY)
    assert result.status not in ("refused", "error"), result.error
    assert [(s["label"], s["target"]) for s in split_of(result)["steps"]] == [
        ("prescription_refill", "validate"), ("emergency", "urgent")]
    assert result.reply is not None
    emergency = fixed_sentences("emergency")[0]
    assert "911" in emergency and result.reply.startswith(emergency)
    assert result.reply.count(emergency) == 1
    for sentence in fixed_sentences("prescription_refill"):
        assert result.reply.count(sentence) == 1
    [comply] = nodes(result, "comply")
    assert comply.label == "pass"


async def test_single_requests_keep_the_triage_label_and_are_rarely_split(
        cascade: shoal.Graph) -> None:
    rows = [json.loads(line) for line in
            (HEALTH / "data" / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if not r["hard"]][:20]
    assert len(rows) == 20
    results = await cascade.abatch([(r["id"], r["text"]) for r in rows], concurrency=2)
    assert all(r.status != "error" for r in results), [r.error for r in results]
    split_into_steps = []
    for result in results:
        [triage] = nodes(result, "triage")
        [split] = nodes(result, "split")
        assert split.label == triage.label, result.id
        if split_of(result)["steps"]:
            split_into_steps.append(
                (result.id, [(s["label"], s["source"]) for s in split_of(result)["steps"]]))
    assert len(split_into_steps) <= 1, (
        f"{len(split_into_steps)} of 20 single-request messages were split into steps: "
        f"{split_into_steps}")


async def test_an_unsure_split_asks_the_real_planner_once_and_keeps_to_the_message(
        cascade: shoal.Graph, proxy: RecordingProxy) -> None:
    result = await cascade.arun(UNSURE, id="unsure")
    assert result.status != "error", result.error
    out = split_of(result)
    assert out["sure"] is False
    plan = out["plan"]
    assert plan["cache"] == "miss" and plan.get("calls", 0) <= 1, plan
    # Answered requests only: the client's first try in the json_schema form, which
    # llama_cpp.server refuses, is not a call the planner answered.
    assert len([b for b in proxy.answered if b"Split it into steps" in b]) <= 1
    [mask] = nodes(result, "mask")
    masked = mask.output["masked"]
    assert "[NAME_1]" in masked and CANARY not in masked
    # Whatever the planner answered, every step is made of the masked message's own words.
    for step in out["steps"]:
        for piece in re.split(r"\n| … ", step["text"]):
            assert piece in masked, (piece, masked)
    for canary in CANARIES:
        assert canary.encode() not in proxy.recorded()
        assert canary not in result.model_dump_json()
    if plan.get("calls") == 1:  # the planner answered: one ledger row for the plan, masked
        ledger = SqliteLedger(cascade.outbox_path)
        try:
            rows = [r for r in ledger.entries(graph=cascade.name) if r.record_id == "unsure"]
        finally:
            ledger.close()
        assert [r.node for r in rows].count("split") == 1
        for row in rows:
            assert all(c not in f"{row.text} {row.planner_answer}" for c in CANARIES)
