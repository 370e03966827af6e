"""The responder with a reply-templates pack: reviewed wording filled from the validator, the
crisis reply on a crisis red flag, and every reply passing the reply checker."""

from __future__ import annotations

import pytest

import shoal
from shoal import ChainEdge, GraphSpec, NodeSpec
from shoal.graphs.spec import LlamaCppModelSpec
from shoal.policies.replies import check_reply
from shoal.testing import FakeBackend


@shoal.agent("t_label")
async def fixed_label(ctx: shoal.AgentContext) -> shoal.AgentResult:
    """Labels every message with the word after 'label:' (a stand-in for triage)."""
    label = ctx.text.split("label:", 1)[1].split()[0] if "label:" in ctx.text else "billing"
    return shoal.AgentResult(output={"label": label}, label=label)


def graph(model: FakeBackend) -> shoal.Graph:
    spec = GraphSpec(
        name="replies",
        models={"slm": LlamaCppModelSpec(kind="llamacpp", model="smollm2-135m-instruct")},
        nodes={"triage": NodeSpec(agent="t_label"),
               "validate": NodeSpec(agent="medical_validator"),
               "answer": NodeSpec(agent="responder", model="slm", label_from="triage",
                                  templates="clinic_replies")},
        edges=[ChainEdge.parse("triage -> validate -> answer")])
    return shoal.Graph(spec, models={"slm": model})


@pytest.mark.slow
async def test_refill_reply_is_the_template_with_the_validators_drug_and_dose() -> None:
    model = FakeBackend(replies=["The message was classified as: billing. [NAME_3] discount!"])
    r = await graph(model).arun("label:prescription_refill please refill my lisinopril 10 mg")
    reply = r.output
    assert isinstance(reply, str) and "lisinopril" in reply.lower() and "10 mg" in reply
    assert "one business day" in reply
    assert model.calls == []  # the model wrote nothing a patient receives
    trace = r.nodes[-1]
    assert trace.reason is not None and trace.reason.startswith("template clinic_replies/")
    assert check_reply(reply, label="prescription_refill").ok


@pytest.mark.slow
async def test_a_crisis_red_flag_gets_988_whatever_the_class() -> None:
    r = await graph(FakeBackend()).arun("label:billing I've been planning how to end my life")
    reply = r.output
    assert isinstance(reply, str) and "988" in reply and "911" in reply
    assert r.nodes[-1].reason is not None and "crisis" in r.nodes[-1].reason
    assert check_reply(reply, label="billing", needs_crisis=True).ok
    quiet = await graph(FakeBackend()).arun("label:billing I am not suicidal, just a "
                                            "question about my bill")
    assert "988" not in quiet.output  # negated: not a crisis


@pytest.mark.slow
async def test_every_class_template_passes_the_checker() -> None:
    for label in ("appointment", "billing", "prescription_refill", "symptom_report"):
        r = await graph(FakeBackend()).arun(f"label:{label} hello there")
        assert isinstance(r.output, str) and check_reply(r.output, label=label).ok, label
