"""The compliance checker's ``reply_fit`` check: every reply that leaves goes through the reply
checker after the sender's pseudonyms are put back (in memory only); a reply that fails is held,
with the failure codes and the reply's source in the audit and never a word of the reply.

Replies are real SmolLM2-135M output captured from the responder (tests/data/
responder_replies.jsonl) and the reviewed templates of ``clinic_replies``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from shoal import AgentContext, AgentResult
from shoal.agents.compliance import ComplianceChecker, ComplianceConfig
from shoal.agents.reply_templates import templates_for
from shoal.policies.audit import verify
from tests.conftest import REPO

CAPTURED = [json.loads(line) for line in
            (REPO / "tests/data/responder_replies.jsonl").read_text().splitlines() if line]
NAME = "Winifred Achterberg"


async def no_hits(_text: str) -> Sequence[Any]:
    return []


def checker(tmp_path: Path | None = None, **config: Any) -> ComplianceChecker:
    base: dict[str, Any] = {
        "target": ["answer", "urgent", "decline"], "emergency_from": "triage",
        "emergency_patterns": [r"\b911\b"],
        "checks": ["disclaimer", "emergency_routed", "reply_fit"],
        "reply": {"label_from": "triage"}, "on_fail": "refuse"}
    if tmp_path is not None:
        base["audit_log"] = str(tmp_path / "audit.jsonl")
    base.update(config)
    return ComplianceChecker(ComplianceConfig(**base), node="comply", scan=no_hits)


def ctx(reply: Any, *, label: str = "billing", text: str = "a question about my bill",
        node: str = "answer") -> AgentContext:
    results = {"triage": AgentResult(output=label, label=label),
               node: AgentResult(output=reply, label=label)}
    return AgentContext(node="comply", run_id="run-1", record_id="rec-1", text=text,
                        results=results)


def template(label: str, **slots: str) -> dict[str, Any]:
    filled = templates_for("clinic_replies").fill(label, slots)
    return {"answer": filled.text, "template": filled.template_id, "version": filled.version,
            "personal": None, "personal_dropped": []}


def verdict(result: AgentResult) -> dict[str, bool]:
    return {c["name"]: c["passed"] for c in result.output["checks"]}


@pytest.mark.parametrize("label", ["appointment", "billing", "prescription_refill",
                                   "symptom_report", "off_topic", "injection"])
async def test_every_template_reply_is_sent(label: str) -> None:
    """The regression the first wiring had: the checker held every template reply."""
    reply = template(label, drug="lisinopril", dose="10 mg")
    result = await checker().run(ctx(reply, label=label))
    assert result.label == "pass", result.output


async def test_the_emergency_and_crisis_replies_are_sent() -> None:
    urgent = await checker().run(ctx(template("emergency"), label="emergency", node="urgent"))
    assert urgent.label == "pass", urgent.output
    crisis = templates_for("clinic_replies").fill("billing", {}, crisis=True)
    reply = {"answer": crisis.text, "template": crisis.template_id, "personal": None}
    sent = await checker().run(ctx(reply, text="I've been planning how to end my life"))
    assert sent.label == "pass", sent.output


TEXT_CODES = {"scaffolding", "forbidden_claim", "repetition", "too_short", "too_long",
              "cut_off", "made_up_pseudonym"}
"""Codes that depend on the reply's words alone (a captured row's placeholder_left turns into
the sender's value once the run's vault reverses it)."""


@pytest.mark.parametrize("row", [r for r in CAPTURED if TEXT_CODES & set(r["expected"])],
                         ids=lambda row: row["id"])
async def test_real_model_replies_that_fail_the_checker_are_held(row: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    agent = checker(tmp_path)
    c = ctx(row["reply"], label=row["label"])
    for token in row["vault"]:  # the pseudonyms the run that wrote this reply had
        kind = token.strip("[]").rsplit("_", 1)[0]
        assert c.scope.vault.pseudonym(kind, f"value of {token}") == token
    result = await agent.run(c)
    assert result.label == "fail" and result.refuse
    assert not verdict(result)["reply_fit"]
    record = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    fit = next(c for c in record["checks"] if c["name"] == "reply_fit")
    assert TEXT_CODES & set(row["expected"]) <= {k.lower() for k in fit["kinds"]}
    assert next(c for c in record["checks"] if c["name"] == "reply_source")["kinds"] == ["MODEL"]
    words = {w for w in row["reply"].split() if len(w) > 6 and w.isalpha()}
    line = (tmp_path / "audit.jsonl").read_text()
    assert not any(w in line for w in words)  # codes and counts only, never the reply


async def test_a_routine_reply_to_a_self_harm_message_is_held() -> None:
    """The case the issue opened with: triaged billing, answered with thanks."""
    reply = "Thank you for your patience and understanding. Our billing team will reply soon."
    result = await checker().run(ctx(reply, text="I've been planning how to end my life"))
    assert result.label == "fail" and "pointer_missing" in result.output["checks"][-1]["detail"]


async def test_the_senders_pseudonym_is_reversed_before_the_check_and_only_there(
        tmp_path: Path) -> None:
    agent = checker(tmp_path)
    c = ctx({**template("billing"), "answer": "Hello [NAME_1],\n\n" + template(
        "billing")["answer"].split("\n\n", 1)[1]})
    token = c.scope.vault.pseudonym("NAME", NAME)
    assert token == "[NAME_1]"
    result = await agent.run(c)
    assert result.label == "pass", result.output
    # A pseudonym the vault never made is a made-up placeholder, held.
    c2 = ctx("Hello [NAME_7], thank you for your message about your bill. We will reply soon.")
    held = await agent.run(c2)
    assert held.label == "fail" and "made_up_pseudonym" in held.output["checks"][-1]["detail"]
    text = (tmp_path / "audit.jsonl").read_text()
    assert NAME not in text and "Achterberg" not in text
    assert NAME not in json.dumps(result.output) and NAME not in json.dumps(held.output)
    verify(tmp_path / "audit.jsonl")


async def test_reviewed_wording_needs_no_disclaimer_but_the_models_sentence_might() -> None:
    reply = template("prescription_refill", drug="lisinopril", dose="10 mg")
    assert "take" in reply["answer"]  # "do not change how you take your medicine"
    assert (await checker().run(ctx(reply, label="prescription_refill"))).label == "pass"
    advice = "We understand that you should take 20 mg twice a day."
    personal = {**reply, "answer": reply["answer"].replace(
        "A member", f"{advice} A member"), "personal": advice}
    result = await checker().run(ctx(personal, label="prescription_refill"))
    assert not verdict(result)["disclaimer"]


async def test_a_planner_drafted_reply_is_checked_like_any_other(tmp_path: Path) -> None:
    drafted = {"answer": "The clinic will provide you with a discount on your next purchase.",
               "label": "billing", "local": {"label": "billing"}}
    result = await checker(tmp_path).run(ctx(drafted))
    assert result.label == "fail" and "forbidden_claim" in result.output["checks"][-1]["detail"]
    record = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert next(c for c in record["checks"]
                if c["name"] == "reply_source")["kinds"] == ["PLANNER"]


@pytest.mark.slow
async def test_on_topic_floor_holds_a_fluent_reply_about_something_else() -> None:
    agent = checker(reply={"label_from": "triage", "templates": "clinic_replies",
                           "on_topic": {"floor": 0.3132}})
    message = "I was charged twice for my visit in May, can you check my bill?"
    off = ("Our team will help you choose a new phone case in blue or black, with a matching "
           "screen protector.")
    held = await agent.run(ctx(off, text=message))
    assert held.label == "fail" and "off_topic" in held.output["checks"][-1]["detail"]
    sent = await agent.run(ctx(template("billing"), text=message))
    assert sent.label == "pass", sent.output


def test_reply_fit_is_opt_in_and_its_packs_load_when_the_graph_is_built() -> None:
    assert "reply_fit" not in ComplianceConfig().checks
    with pytest.raises(Exception, match="no_such_pack"):
        checker(reply={"red_flags": "no_such_pack"})


async def test_a_dropped_model_sentence_is_in_the_audit_by_its_codes(tmp_path: Path) -> None:
    reply = {**template("billing"), "personal_dropped": ["off_voice", "forbidden_claim"]}
    assert (await checker(tmp_path).run(ctx(reply))).label == "pass"
    record = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    dropped = next(c for c in record["checks"] if c["name"] == "personal_sentence")
    assert not dropped["passed"] and dropped["kinds"] == ["FORBIDDEN_CLAIM", "OFF_VOICE"]
