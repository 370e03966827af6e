"""The independent egress check: a second detector, built differently from the masker's, looks at
every payload before it leaves for a remote model; a hit blocks the call, the node keeps its
local answer, and only types and counts are told.

The remote planner is ``FakeBackend`` (a named fake) declared as ``kind: openai``, so it sits
behind the real RemoteGuard; the masker is the real one. Where a test needs "the masker missed
it", a node after the masker writes the value back into the working text and the masker's
re-scan is replaced by a stand-in that finds nothing: the second detector must stand alone.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal import AgentContext, AgentResult, ChainEdge, GraphSpec, NodeSpec
from shoal.graphs.spec import EscalationSpec, OpenAIModelSpec
from shoal.models.specs import EgressSpec
from shoal.policies.escalation import RemoteGuard, guard
from shoal.policies.privacy.second_detector import second_detector
from shoal.testing import FakeBackend

CANARY = "Bunnykins"
"""A nickname no detector knows as a name: only its place (after "prefers to be called") says
it is one."""
NOTE = "My mother has her follow-up on Tuesday and asks about her lisinopril dose."


class MissCfg(shoal.AgentConfig):
    nickname: str = CANARY
    confidence: float = 0.1


@shoal.agent("egress_missed_nickname", config=MissCfg)
async def missed_nickname(ctx: AgentContext, cfg: MissCfg) -> AgentResult:
    """After the masker: the working text as a masker that missed the nickname leaves it."""
    text = f'{ctx.text} She prefers to be called "{cfg.nickname}".'
    return AgentResult(output={"answer": "noted"}, confidence=0.99, text=text)


@shoal.agent("egress_unsure", config=MissCfg)
async def unsure(ctx: AgentContext, cfg: MissCfg) -> AgentResult:
    return AgentResult(output={"answer": "Please call the clinic."}, confidence=cfg.confidence)


def spec(egress: EgressSpec | None = None) -> GraphSpec:
    planner = OpenAIModelSpec(kind="openai", base_url="http://127.0.0.1:9/v1", model="m",
                              **({"egress": egress} if egress is not None else {}))
    return GraphSpec(
        name="e2",
        models={"big": planner},
        nodes={"mask": NodeSpec(agent="privacy_masker"),
               "miss": NodeSpec(agent="egress_missed_nickname"),
               "answer": NodeSpec(agent="egress_unsure", escalate_below=0.5)},
        edges=[ChainEdge.parse("mask -> miss -> answer")],
        escalation=EscalationSpec(planner="big"),
    )


def planner() -> FakeBackend:
    return FakeBackend(handler=lambda _: json.dumps(
        {"answer": "Ask the pharmacist.", "label": None, "confidence": 0.9}))


@pytest.fixture
def masker_misses(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The masker's re-scan, replaced by a stand-in that finds nothing (as it would not find
    what the masker missed)."""
    seen: list[Any] = []

    async def finds_nothing(texts: Any, pack: str) -> dict[str, int]:
        seen.append(pack)
        return {}

    monkeypatch.setattr(guard, "scan_outbound", finds_nothing)
    return seen


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


# --- the detector ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind"), [
    ('Please note she prefers to be called "Bunny" at visits.', "NAME_CUE"),
    ("he goes by Moose these days", "NAME_CUE"),
    ("Can Zsófia get the flu shot?", "NAME"),
    ("Wojciech needs a refill", "NAME"),
    ("Hrvoje drove me to the ER", "NAME"),
    ("my aunt Guðrún has a fever", "NAME"),
    ("need a refill pls\nthanks, zsofia", "NAME_CUE"),
    ("write to jane.doe+portal@example.org", "EMAIL"),
    ("or kiki99@example.org", "EMAIL"),
    ("i live at 12 elm street", "ADDRESS"),
    ("reach me on +44 20 7946 0958", "PHONE"),
    ("or (553) 428-7486 after six", "PHONE"),
    ("my insurance number is 9876543210", "ID_NUMBER"),
    ("member id 48213", "ID_NUMBER"),
    ("SSN 219-09-9999", "SSN"),
    ("born 02/29/1956", "DATE"),
    ("see https://example.org/u/jdoe", "URL"),
    ("Duluth MN 55811", "ZIP"),
])
def test_known_misses_are_found(text: str, kind: str) -> None:
    assert kind in {h.type for h in second_detector().scan(text)}


@pytest.mark.parametrize("text", [
    "Hi [NAME_1], please call [PHONE_1] or write to [EMAIL_2]; [NAME:1a2b3c4d] and [SSN] too.",
    "Dear care team, my SQL script throws an error. Thanks!",
    "I called the pharmacy and they said the refill is ready.",
    "It is a 10 minute drive, 2 more CT scans to go.",
    "Will you refill my lisinopril 10 mg? May I come in April? Grace period?",
    "Task: Stand in for the 'triage' step. Draft: {\"label\": \"billing\", \"confidence\": "
    "0.4312, \"probabilities\": {\"billing\": 0.1234567, \"emergency\": 0.00012345}}",
    "Hi Dr [NAME_1], I have Crohn's and Graves disease, thanks, [NAME_2]",
])
def test_ordinary_text_and_pseudonyms_do_not_count(text: str) -> None:
    assert second_detector().scan(text) == []


def test_allowed_words_are_not_names() -> None:
    text = "Hi, Brightwater called about my bill. Thanks, Kwabena"
    assert {h.type for h in second_detector().scan(text)} == {"NAME", "NAME_CUE"}
    allowed = second_detector(["brightwater", "Kwabena"])
    assert allowed.scan(text) == []
    assert second_detector().scan(text) != []  # the shared detector is not changed


# --- at the boundary ---------------------------------------------------------------------------


async def test_a_missed_nickname_blocks_the_escalation(
        masker_misses: list[Any], log_stream: io.StringIO, tmp_path: Path) -> None:
    big = planner()
    graph = shoal.Graph(spec(), models={"big": big})
    r = await graph.arun(NOTE, id="n1")
    assert masker_misses, "the masker's re-scan ran first (its stand-in was asked)"
    # Nothing was sent, and the node kept its local answer.
    assert big.calls == []
    node = r.nodes[-1]
    assert node.escalate and not node.escalated
    assert node.reason is not None
    assert node.reason.startswith("egress blocked (1 NAME_CUE found by the independent check)")
    assert r.status == "ok" and r.output == {"answer": "Please call the clinic."}
    assert r.error is None
    # Types and counts only: the value is in no event, trace, error or stored row.
    blocked = [e for e in events(log_stream) if e["event"] == "egress_blocked"]
    assert blocked == [{**blocked[0], "identifiers": {"NAME_CUE": 1},
                        "detector": "independent", "model": "big", "node": "answer"}]
    assert CANARY not in log_stream.getvalue()
    assert CANARY not in r.model_dump_json() and CANARY not in node.reason
    store = tmp_path / "outbox.sqlite"  # the conftest's SHOAL_OUTBOX: outbox and ledger
    if store.exists():
        with sqlite3.connect(store) as db:
            tables = [t for (t,) in db.execute("select name from sqlite_master "
                                               "where type = 'table'")]
            for table in tables:
                rows = db.execute(f"select * from {table}").fetchall()
                assert CANARY not in json.dumps(rows, default=str)


async def test_count_mode_sends_and_tells(masker_misses: list[Any],
                                          log_stream: io.StringIO) -> None:
    big = planner()
    graph = shoal.Graph(spec(EgressSpec(independent_check="count")), models={"big": big})
    wrapped = graph.models["big"]
    assert isinstance(wrapped, RemoteGuard) and wrapped.independent_check == "count"
    r = await graph.arun(NOTE)
    assert r.status == "escalated" and len(big.calls) == 1
    [flagged] = [e for e in events(log_stream) if e["event"] == "egress_flagged"]
    assert flagged["identifiers"] == {"NAME_CUE": 1} and flagged["detector"] == "independent"
    assert CANARY not in log_stream.getvalue()


async def test_off_and_allow_let_it_go(masker_misses: list[Any]) -> None:
    for egress in (EgressSpec(independent_check="off"), EgressSpec(allow=[CANARY])):
        big = planner()
        r = await shoal.Graph(spec(egress), models={"big": big}).arun(NOTE)
        assert r.status == "escalated" and len(big.calls) == 1, egress


async def test_the_yaml_setting_reaches_the_guard(write_yaml) -> None:
    path = write_yaml("""
        shoal: 1
        name: e3
        models:
          big:
            kind: openai
            base_url: http://127.0.0.1:9/v1
            model: m
            egress: {independent_check: count, allow: [Brightwater]}
        nodes:
          mask: {agent: privacy_masker}
          ask: {agent: planner, model: big}
        edges:
          - mask -> ask
        """)
    wrapped = shoal.load_graph(path).models["big"]
    assert isinstance(wrapped, RemoteGuard)
    assert wrapped.independent_check == "count" and wrapped.boundary == "outside"
    assert wrapped.second.scan("Hi, Brightwater here") == []


def test_a_bad_allow_entry_is_refused_at_its_place(write_yaml) -> None:
    path = write_yaml("""
        shoal: 1
        name: e4
        models:
          big: {kind: openai, base_url: "http://x/v1", model: m,
                egress: {allow: ["two words"]}}
        nodes:
          mask: {agent: privacy_masker}
        """)
    with pytest.raises(shoal.SpecError) as err:
        shoal.load_graph(path)
    assert f"{path}:5:25: each 'allow' entry must be one word" in str(err.value)


async def test_with_the_real_masker_a_nickname_never_reaches_the_planner(
        log_stream: io.StringIO) -> None:
    # The real masker and its real re-scan: whichever of the three stops the nickname (the
    # masker, the re-scan, the independent check), it never reaches the planner.
    nodes = {"mask": NodeSpec(agent="privacy_masker"),
             "answer": NodeSpec(agent="egress_unsure", escalate_below=0.5)}
    s = spec().model_copy(update={"nodes": nodes, "edges": [ChainEdge.parse("mask -> answer")]})
    big = planner()
    r = await shoal.Graph(s, models={"big": big}).arun(
        f'{NOTE} She prefers to be called "{CANARY}".')
    assert CANARY not in json.dumps(big.calls)
    assert CANARY not in log_stream.getvalue()
    node = r.nodes[-1]
    assert node.escalated or (node.reason or "").startswith("egress blocked (")
