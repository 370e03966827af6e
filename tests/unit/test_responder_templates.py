"""The responder with a reply-templates pack: reviewed wording filled from the validator, the
sender's name and the date as the run's pseudonyms, the crisis reply on a crisis red flag, the
model's one sentence only when it passes every check (real SmolLM output is dropped), and every
reply passing the reply checker."""

from __future__ import annotations

import json
from typing import Any

import pytest

import shoal
from shoal import ChainEdge, GraphSpec, NodeSpec
from shoal.agents.responder import Responder
from shoal.graphs.spec import LlamaCppModelSpec
from shoal.policies.replies import check_reply
from shoal.testing import FakeBackend
from tests.conftest import REPO

CAPTURED = [json.loads(line) for line in
            (REPO / "tests/data/responder_replies.jsonl").read_text().splitlines() if line]
"""Replies SmolLM2-135M wrote as the responder (tests/data/responder_replies.jsonl)."""


@shoal.agent("t_label")
async def fixed_label(ctx: shoal.AgentContext) -> shoal.AgentResult:
    """Labels every message with the word after 'label:' (a stand-in for triage)."""
    label = ctx.text.split("label:", 1)[1].split()[0] if "label:" in ctx.text else "billing"
    return shoal.AgentResult(output={"label": label}, label=label)


def graph(model: FakeBackend, **answer: Any) -> shoal.Graph:
    spec = GraphSpec(
        name="replies",
        models={"slm": LlamaCppModelSpec(kind="llamacpp", model="smollm2-135m-instruct")},
        nodes={"triage": NodeSpec(agent="t_label"),
               "validate": NodeSpec(agent="medical_validator"),
               "answer": NodeSpec(agent="responder", model="slm", label_from="triage",
                                  templates="clinic_replies", **answer)},
        edges=[ChainEdge.parse("triage -> validate -> answer")])
    return shoal.Graph(spec, models={"slm": model})


def answer_of(r: shoal.RunResult) -> str:
    assert isinstance(r.output, dict), r.output
    text = r.output["answer"]
    assert isinstance(text, str)
    return text


@pytest.mark.slow
async def test_refill_reply_is_the_template_with_the_validators_drug_and_dose() -> None:
    model = FakeBackend(replies=["The message was classified as: billing. [NAME_3] discount!"])
    r = await graph(model).arun("label:prescription_refill please refill my lisinopril 10 mg")
    reply = answer_of(r)
    assert "lisinopril" in reply.lower() and "10 mg" in reply
    assert r.output["template"] == "clinic_replies/prescription_refill"
    assert r.output["personal"] is None
    assert "one business day" in reply
    assert model.calls == []  # the model wrote nothing a patient receives
    trace = r.nodes[-1]
    assert trace.reason is not None and trace.reason.startswith("template clinic_replies/")
    assert check_reply(reply, label="prescription_refill").ok


@pytest.mark.slow
async def test_a_crisis_red_flag_gets_988_whatever_the_class() -> None:
    r = await graph(FakeBackend()).arun("label:billing I've been planning how to end my life")
    reply = answer_of(r)
    assert "988" in reply and "911" in reply
    assert r.nodes[-1].reason is not None and "crisis" in r.nodes[-1].reason
    assert check_reply(reply, label="billing", needs_crisis=True).ok
    quiet = await graph(FakeBackend()).arun("label:billing I am not suicidal, just a "
                                            "question about my bill")
    assert "988" not in answer_of(quiet)  # negated: not a crisis


@pytest.mark.slow
async def test_every_class_template_passes_the_checker() -> None:
    for label in ("appointment", "billing", "prescription_refill", "symptom_report"):
        r = await graph(FakeBackend()).arun(f"label:{label} hello there")
        assert check_reply(answer_of(r), label=label).ok, label


GOOD = "We understand that you need a refill of your lisinopril before the weekend."


@pytest.mark.slow
async def test_the_models_sentence_goes_in_when_it_passes_every_check() -> None:
    model = FakeBackend(replies=[GOOD])
    r = await graph(model, personalise="model").arun(
        "label:prescription_refill please refill my lisinopril 10 mg before the weekend")
    reply = answer_of(r)
    assert GOOD in reply and r.output["personal"] == GOOD
    assert reply.index("refill lisinopril") < reply.index(GOOD) < reply.index("one business")
    assert len(model.calls) == 1 and check_reply(reply, label="prescription_refill").ok
    assert "the model's sentence" in (r.nodes[-1].reason or "")


@pytest.mark.slow
@pytest.mark.parametrize("row", CAPTURED[:24], ids=lambda row: row["id"])
async def test_real_model_output_as_the_sentence_is_dropped(row: dict[str, Any]) -> None:
    """What SmolLM2 wrote as a reply, offered as the one sentence: none of it is an
    acknowledgement in the clinic's voice, so the patient gets the template alone."""
    label = row["label"] if row["label"] in ("appointment", "billing", "prescription_refill",
                                             "symptom_report") else "billing"
    r = await graph(FakeBackend(replies=[row["reply"]]), personalise="model").arun(
        f"label:{label} a message")
    assert r.output["personal"] is None and r.output["personal_dropped"]
    assert row["reply"] not in answer_of(r)
    assert check_reply(answer_of(r), label=label).ok


@pytest.mark.slow
@pytest.mark.parametrize(("sentence", "code"), [
    ("We understand that you want a discount on your next purchase.", "forbidden_claim"),
    ("We understand that you need [DOCUMENT_1] for [NAME_2].", "made_up_pseudonym"),
    ("We understand that you are sorry. I am an AI.", "more_than_one_sentence"),
    ("Thank you for your message.", "not_an_acknowledgement"),
    ("We understand that you have diabetes and should double your dose.", "forbidden_claim"),
    ("We understand that you need your 20 mg refill by the 14th.", "invented_number"),
    ("We understand that you take lisinopril 10 mg every day.", "clinical_advice"),
    # SmolLM2 filling an example's shape with another request (captured on the dev split).
    ("We understand that you have a question about a bill for stomach pain.", "ungrounded"),
])
async def test_a_sentence_that_fails_a_check_is_dropped_with_its_code(sentence: str,
                                                                      code: str) -> None:
    r = await graph(FakeBackend(replies=[sentence]), personalise="model").arun(
        "label:billing a question about my bill")
    assert r.output["personal"] is None and code in r.output["personal_dropped"]
    assert sentence not in answer_of(r)


@pytest.mark.slow
async def test_on_personal_fail_planner_asks_for_the_planner() -> None:
    r = await graph(FakeBackend(replies=["Thank you."]), personalise="model",
                    on_personal_fail="planner").arun("label:billing a question about my bill")
    answer = r.nodes[-1]
    assert answer.escalate and r.output["personal_dropped"]


@pytest.mark.slow
async def test_off_topic_sentence_is_dropped_by_the_minilm_floor() -> None:
    """A sentence in the right shape about something else: the on-topic floor catches it."""
    off = "We understand that you would like to move your physical to later in the week."
    on = "We understand that you were charged twice for your visit."
    msg = "label:billing I was charged twice for my visit last month, please check my bill"
    floor = {"floor": 0.3132}
    r_off = await graph(FakeBackend(replies=[off]), personalise="model",
                        on_topic=floor).arun(msg)
    assert "copied_example" in r_off.output["personal_dropped"]
    other = "We understand that you would like a new phone case in blue."
    r_other = await graph(FakeBackend(replies=[other]), personalise="model",
                          on_topic=floor).arun(msg)
    assert "off_topic" in r_other.output["personal_dropped"]
    r_on = await graph(FakeBackend(replies=[on]), personalise="model", on_topic=floor).arun(msg)
    assert r_on.output["personal"] == on


@pytest.mark.parametrize(("text", "name"), [
    ("Hi, this is [NAME_1], DOB [DATE_1]. Please renew my statin.", "[NAME_1]"),
    ("I was charged twice. Please refund one. - [NAME_1]", "[NAME_1]"),
    ("Thanks Dr. [NAME_2], see you soon\n- [NAME_1]", "[NAME_1]"),
    ("Rating my pain a 4 today.\n[NAME_1] | MRN#[MRN_1]", "[NAME_1]"),
    ("my mother [NAME_1] needs her refill", None),          # someone else: no greeting by name
    ("Hi Dr. [NAME_1], my foot hurts", None),              # the doctor, not the sender
    ("this is [NAME_1]. My husband [NAME_2] here\nthanks, [NAME_2]", None),  # unsure: none
])
def test_the_senders_own_name_only(text: str, name: str | None) -> None:
    assert Responder._sender_name(text) == name


@pytest.mark.parametrize(("text", "when"), [
    ("can I get an appointment on [DATE_1]? my dob is [DATE_2]", "[DATE_1]"),
    ("can I come in next Tuesday?", "Tuesday"),
    ("DOB [DATE_1], I need an appointment", None),
    ("either on [DATE_1] or on [DATE_2]", None),
])
def test_the_date_asked_about_only(text: str, when: str | None) -> None:
    assert Responder._when(text) == when


def test_a_missing_templates_pack_stops_the_graph_when_it_is_built() -> None:
    spec = GraphSpec(
        name="replies",
        models={"slm": LlamaCppModelSpec(kind="llamacpp", model="smollm2-135m-instruct")},
        nodes={"answer": NodeSpec(agent="responder", model="slm", templates="no_such_pack")},
        edges=[])
    with pytest.raises(shoal.ShoalError, match="no_such_pack"):
        shoal.Graph(spec, models={"slm": FakeBackend()})
