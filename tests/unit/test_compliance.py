"""The compliance_checker agent: its four checks, its verdicts, and one audit record per decision.

Tests marked ``slow`` use the real presidio/spaCy detector of the HIPAA pack. The others check
only what needs no detector (disclaimer, emergency routing, targets, audit, config) or drive the
pseudonym logic with a scan whose hits are given, never to prove detection works.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal import AgentContext, AgentResult
from shoal.agents.compliance import (
    AUDIT_ENV,
    DEFAULT_DISCLAIMER,
    DEFAULT_EMERGENCY,
    ComplianceChecker,
    ComplianceConfig,
)
from shoal.policies.audit import verify

NAME = "Jonathan Weatherby"
PHONE = "555-867-5309"
CANARIES = (NAME, "Weatherby", PHONE, "867-5309")


def ctx(text: str = "", results: dict[str, AgentResult] | None = None,
        record_id: str = "rec-1") -> AgentContext:
    return AgentContext(node="comply", run_id="run-1", record_id=record_id, text=text,
                        results=results or {})


def checker(scan: Any = None, **config: Any) -> ComplianceChecker:
    return ComplianceChecker(ComplianceConfig(**config), node="comply", scan=scan)


def checks_of(result: AgentResult) -> dict[str, bool]:
    return {c["name"]: c["passed"] for c in result.output["checks"]}


@dataclass(frozen=True)
class Hit:
    type: str
    start: int
    end: int


def scan_for(*spans: tuple[str, str]) -> Any:
    """A scan reporting the given (type, substring) hits wherever the substrings occur."""

    async def scan(text: str) -> Sequence[Hit]:
        return [Hit(type_, m.start(), m.end()) for type_, value in spans
                for m in re.finditer(re.escape(value), text)]

    return scan


# --- checks that need no detector ---------------------------------------------------------------


async def test_clinical_advice_needs_the_disclaimer():
    agent = checker(checks=["disclaimer"])
    advice = "You should take 200 mg of ibuprofen twice a day with food."
    failed = await agent.run(ctx(advice))
    assert failed.label == "fail" and failed.escalate and failed.confidence == 0.0
    assert failed.reason == "failed: disclaimer"
    assert failed.output == {"verdict": "fail", "checks": [
        {"name": "disclaimer", "passed": False,
         "detail": "clinical advice (4 cue(s)), disclaimer missing"}]}
    # Case and line breaks do not matter; the text itself never appears in the detail.
    with_it = f"{advice}\n{DEFAULT_DISCLAIMER.upper().replace(' ', chr(10), 3)}"
    passed = await agent.run(ctx(with_it))
    assert passed.label == "pass" and not passed.escalate and passed.confidence == 1.0
    assert "ibuprofen" not in json.dumps(passed.output)
    neutral = await agent.run(ctx("Your appointment is confirmed for Friday."))
    assert checks_of(neutral) == {"disclaimer": True}


async def test_advice_cues_and_disclaimer_are_configurable_data():
    agent = checker(checks=["disclaimer"], advice_patterns=[r"\bapply\b"],
                    disclaimer="Ask your pharmacist.", disclaimer_patterns=[r"not medical advice"])
    assert (await agent.run(ctx("Apply the cream daily."))).label == "fail"
    assert (await agent.run(ctx("Apply the cream daily. Ask your pharmacist"))).label == "pass"
    assert (await agent.run(ctx("Apply it. This is not medical advice."))).label == "pass"
    assert (await agent.run(ctx("Take 200 mg."))).label == "pass"  # default cues replaced


async def test_an_emergency_reply_must_carry_the_instruction():
    agent = checker(checks=["emergency_routed"])
    emergency = {"triage": AgentResult(label="emergency", confidence=0.9),
                 "answer": AgentResult(output="Please rest.", label="emergency")}
    failed = await agent.run(ctx("Please rest and drink water.", emergency))
    assert failed.label == "fail" and failed.reason == "failed: emergency_routed"
    assert failed.output["checks"][0]["detail"] == ("labelled emergency by 'triage', "
                                                    "instruction missing")
    passed = await agent.run(ctx(f"Chest pain needs care now. {DEFAULT_EMERGENCY}", emergency))
    assert passed.label == "pass"
    assert "911" in DEFAULT_EMERGENCY
    calm = {"triage": AgentResult(label="billing")}
    assert (await agent.run(ctx("Please rest.", calm))).label == "pass"


async def test_emergency_from_names_the_one_node_that_counts():
    agent = checker(checks=["emergency_routed"], emergency_from="triage")
    other = {"guard": AgentResult(label="emergency"), "triage": AgentResult(label="billing")}
    assert (await agent.run(ctx("ok", other))).label == "pass"
    flagged = {"triage": AgentResult(label="emergency")}
    assert (await agent.run(ctx("ok", flagged))).label == "fail"
    loose = checker(checks=["emergency_routed"], emergency_patterns=[r"\b911\b"])
    assert (await loose.run(ctx("Call 911.", flagged))).label == "pass"


async def test_target_reads_an_earlier_nodes_reply():
    agent = checker(checks=["disclaimer"], target="answer")
    bad = {"answer": AgentResult(output="Take 2 tablets.")}
    assert (await agent.run(ctx("the masked input, no advice", bad))).label == "fail"
    as_dict = {"answer": AgentResult(output={"reply": "Your visit is booked.", "n": 1})}
    assert (await agent.run(ctx("Take 2 tablets.", as_dict))).label == "pass"
    keyed = checker(checks=["disclaimer"], target="answer", target_key="draft")
    assert (await keyed.run(ctx("", {"answer": AgentResult(
        output={"reply": "fine", "draft": "take 5 mg"})}))).label == "fail"


async def test_a_missing_or_unreadable_target_fails_closed():
    agent = checker(target="answer")
    missing = await agent.run(ctx("text"))
    assert missing.label == "fail" and missing.reason == "failed: target"
    assert missing.output["checks"] == [{
        "name": "target", "passed": False,
        "detail": "target node 'answer' has no result in this run"}]
    numeric = await agent.run(ctx("text", {"answer": AgentResult(output=42)}))
    assert numeric.output["checks"][0]["detail"] == "output of node 'answer' (int) holds no text"


async def test_on_fail_refuse_and_raise():
    refusing = checker(checks=["disclaimer"], on_fail="refuse", fail_confidence=0.2)
    result = await refusing.run(ctx("take 5 mg"))
    assert result.refuse and result.confidence == 0.2
    raising = checker(checks=["disclaimer"], on_fail="raise")
    with pytest.raises(shoal.PolicyViolation, match="failed: disclaimer") as info:
        await raising.run(ctx("take 5 mg"))
    assert info.value.node == "comply" and "5 mg" not in str(info.value)


def test_labels_and_config_errors():
    assert ComplianceChecker.labels(ComplianceConfig()) == frozenset({"pass", "fail"})
    bad = shoal.GraphSpec(name="g", nodes={"c": shoal.NodeSpec(
        agent="compliance_checker", advice_patterns=["(unclosed"], pack="no_such_pack")})
    with pytest.raises(shoal.SpecError) as info:
        shoal.Graph(bad)
    text = str(info.value)
    assert "bad pattern" in text and "unknown pack 'no_such_pack'" in text


# --- pseudonyms and counting, with given hits ---------------------------------------------------


async def test_pseudonyms_are_not_leaks_but_clear_values_are():
    hits = scan_for(("PERSON", "Dr [NAME_1]"), ("PERSON", "[NAME_2]"),
                    ("PHONE_NUMBER", PHONE), ("PERSON", "Nora [NAME_3]"))
    agent = checker(hits, checks=["no_identifiers"])
    masked = await agent.run(ctx("Dr [NAME_1] will call [NAME_2] at [PHONE_1]."))
    assert masked.label == "pass"
    clear = await agent.run(ctx(f"Dr [NAME_1] will call at {PHONE}."))
    assert clear.label == "fail"
    assert clear.output["checks"][0]["detail"] == "1 unmasked identifier(s): PHONE_NUMBER"
    half = await agent.run(ctx("Ask Nora [NAME_3]."))  # a first name left next to a pseudonym
    assert half.label == "fail"


async def test_max_identifiers_counts_distinct_identifiers():
    agent = checker(scan_for(("PHONE_NUMBER", PHONE)), checks=["max_identifiers"],
                    max_identifiers=2)
    assert (await agent.run(ctx("[NAME_1], [NAME_1] and [DATE_1]"))).label == "pass"
    over = await agent.run(ctx(f"[NAME_1] and [DATE_1], call {PHONE} or {PHONE}"))
    assert over.label == "fail"
    assert over.output["checks"][0]["detail"] == "3 identifier(s), limit 2"
    unlimited = checker(scan_for(), checks=["max_identifiers"])
    assert (await unlimited.run(ctx("[NAME_1] [NAME_2] [NAME_3]"))).label == "pass"


# --- audit --------------------------------------------------------------------------------------


async def test_each_decision_appends_one_audit_record(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    agent = checker(scan_for(("PHONE_NUMBER", PHONE)), audit_log=str(path), audit_fsync=False)
    await agent.run(ctx(f"Call {PHONE}, take 5 mg.", record_id="r1"))
    await agent.run(ctx("All set.", record_id="r2"))
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["decision"] == "fail" and second["decision"] == "pass"
    assert first["record_id"] == "r1" and first["node"] == "comply"
    assert first["agent"] == "compliance_checker"
    assert first["checks"] == [
        {"name": "no_identifiers", "passed": False, "count": 1, "kinds": ["PHONE_NUMBER"]},
        {"name": "max_identifiers", "passed": True, "count": 1},
        {"name": "disclaimer", "passed": False, "count": 2},
        {"name": "emergency_routed", "passed": True},
    ]
    assert PHONE not in path.read_text()
    assert verify(path).ok


async def test_audit_path_defaults_to_the_environment(tmp_path: Path, monkeypatch):
    path = tmp_path / "env-audit.jsonl"
    monkeypatch.setenv(AUDIT_ENV, str(path))
    agent = checker(checks=["disclaimer"])
    assert agent.audit is not None and agent.audit.path == path
    await agent.run(ctx("hello"))
    assert verify(path).records == 1
    monkeypatch.delenv(AUDIT_ENV)
    assert checker(checks=["disclaimer"]).audit is None


def test_importing_the_agent_does_not_import_presidio():
    import subprocess
    import sys

    code = ("import sys, shoal.agents.compliance; "
            "print(any(m.split('.')[0] in ('presidio_analyzer', 'spacy') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# --- with the real detector ---------------------------------------------------------------------


@pytest.mark.slow
async def test_real_detector_fails_raw_identifiers_and_passes_them_masked():
    from shoal.policies import privacy

    agent = checker()
    raw = f"Hi {NAME}, the clinic will call you at {PHONE} tomorrow about your visit."
    failed = await agent.run(ctx(raw))
    assert failed.label == "fail" and failed.escalate
    assert checks_of(failed)["no_identifiers"] is False
    detail = failed.output["checks"][0]["detail"]
    assert "PERSON" in detail and "PHONE_NUMBER" in detail
    assert not any(c in json.dumps(failed.output) + (failed.reason or "") for c in CANARIES)

    masked = privacy.mask(raw, vault=privacy.Vault("t")).masked
    assert "[NAME_1]" in masked and "[PHONE_1]" in masked
    passed = await agent.run(ctx(masked))
    assert passed.label == "pass", passed.output
    phone_only = await agent.run(ctx(f"Please call the clinic back at {PHONE}."))
    assert checks_of(phone_only)["no_identifiers"] is False


@pytest.mark.slow
async def test_real_detector_passes_a_masked_advice_reply_with_disclaimer():
    agent = checker()
    reply = ("Hi [NAME_1], you should take 200 mg of ibuprofen twice a day with food. "
             f"{DEFAULT_DISCLAIMER}")
    assert (await agent.run(ctx(reply))).label == "pass"
    bare = await agent.run(ctx(reply.replace(DEFAULT_DISCLAIMER, "")))
    assert bare.reason == "failed: disclaimer"


@shoal.agent("t_compliance_reply", labels={"emergency", "routine"})
async def scripted_reply(ctx: AgentContext) -> AgentResult:
    """Replies per the message: leaks the canary name, advises without disclaimer, skips the
    emergency line, or answers properly; labels the message like a triage node would."""
    text = ctx.text
    emergency = "chest pain" in text
    if "leak" in text:
        reply = f"Thanks {NAME}, we will call {PHONE}."
    elif "dose" in text:
        reply = "You should take 400 mg every 6 hours."
    elif emergency and "forget" in text:
        reply = "Please rest and we will follow up."
    elif emergency:
        reply = f"Thanks [NAME_1]. {DEFAULT_EMERGENCY}"
    else:
        reply = "Thanks [NAME_1], your appointment is confirmed."
    return AgentResult(output=reply, label="emergency" if emergency else "routine")


@pytest.mark.slow
def test_in_a_graph_the_trace_shows_the_verdict_and_the_audit_has_one_record_per_run(
        tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    spec = shoal.GraphSpec(
        name="comply", output="answer",
        nodes={"answer": shoal.NodeSpec(agent="t_compliance_reply"),
               "comply": shoal.NodeSpec(agent="compliance_checker", target="answer",
                                        emergency_from="answer", audit_log=str(path))},
        edges=[shoal.ChainEdge.parse("answer -> comply")])
    graph = shoal.Graph(spec)
    inputs = {
        "ok": f"{NAME} here, can I confirm my appointment?",
        "leak": f"{NAME} here ({PHONE}), please leak check",
        "dose": f"{NAME} asking about the dose",
        "em-ok": f"{NAME}: chest pain since noon",
        "em-bad": f"{NAME}: chest pain, forget the instruction",
    }
    expected = {"ok": (True, None), "leak": (False, "failed: no_identifiers"),
                "dose": (False, "failed: disclaimer"), "em-ok": (True, None),
                "em-bad": (False, "failed: emergency_routed")}
    for record_id, text in inputs.items():
        result = graph.run(text, id=record_id)
        assert result.status == "ok", result.error
        trace = {n.node: n for n in result.nodes}["comply"]
        passed, reason = expected[record_id]
        assert trace.label == ("pass" if passed else "fail"), record_id
        assert trace.escalate is not passed
        if reason is not None:
            # Without a planner the failed check is kept locally, and the reason says both.
            assert trace.reason is not None
            assert trace.reason.startswith("no planner configured; local answer kept; ")
            assert trace.reason.removeprefix(
                "no planner configured; local answer kept; ").startswith(reason)
            assert trace.confidence == 0.0
        assert not any(c in (trace.reason or "") for c in CANARIES)

    lines = path.read_text().splitlines()
    assert len(lines) == len(inputs)  # exactly one record per run
    records = [json.loads(line) for line in lines]
    assert [r["record_id"] for r in records] == list(inputs)
    assert [r["decision"] for r in records] == ["pass" if expected[k][0] else "fail"
                                                for k in inputs]
    assert len({r["run_id"] for r in records}) == len(inputs)
    assert verify(path).ok
    raw = path.read_text()
    assert not any(c in raw for c in CANARIES)


@pytest.mark.slow
async def test_check_latency_stays_small_once_the_detector_is_warm():
    agent = checker()
    reply = f"Hi [NAME_1], you should take 200 mg twice a day. {DEFAULT_DISCLAIMER}"
    await agent.run(ctx(reply))  # loads spaCy once per process
    start = time.perf_counter()
    for _ in range(10):
        await agent.run(ctx(reply))
    per_call = (time.perf_counter() - start) / 10
    assert per_call < 0.5, f"{per_call * 1000:.0f} ms per check"
