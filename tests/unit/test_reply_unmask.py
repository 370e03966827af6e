"""The reply that goes back to its sender carries the sender's own values, and only that reply.

The masker (real presidio + spaCy, the hipaa_safe_harbor pack) turns the sender's name into
``[NAME_1]``; a replying agent writes the pseudonym back. ``RunResult.reply`` reverses it for the
sender; the serialized result, the traces and the logs keep the pseudonym.
"""

from __future__ import annotations

import json

import pytest

import shoal
from shoal import AgentContext, AgentResult, ChainEdge, GraphSpec, NodeSpec
from shoal.service.openai_api import answer_text

CANARY = "Zebulon Quartermaine"
TEXT = f"Hi, this is {CANARY}. Can I move my appointment to Friday?"


@shoal.agent("t_echo_reply")
async def echo_reply(ctx: AgentContext) -> AgentResult:
    """Writes back the pseudonyms it saw, and one nobody made."""
    names = [w.strip(".,") for w in ctx.text.split() if w.startswith("[NAME_")]
    return AgentResult(output={"answer": f"Thank you {' '.join(names)}; see [NAME_9]."})


def graph() -> shoal.Graph:
    spec = GraphSpec(name="reply", nodes={
        "mask": NodeSpec(agent="privacy_masker", pack="hipaa_safe_harbor"),
        "answer": NodeSpec(agent="t_echo_reply")}, edges=[ChainEdge.parse("mask -> answer")])
    return shoal.Graph(spec)


@pytest.mark.slow
async def test_the_senders_reply_gets_their_name_back_and_nothing_else_does(
        capsys: pytest.CaptureFixture[str]) -> None:
    result = await graph().arun(TEXT)
    assert result.status == "ok"
    assert "[NAME_1]" in result.output["answer"] and CANARY not in result.output["answer"]
    assert result.reply is not None and CANARY in result.reply
    assert "[NAME_1]" not in result.reply
    assert "[NAME_9]" in result.reply  # a made-up pseudonym is not anyone's value
    assert answer_text(result) == result.reply  # what `shoal serve` sends back to the sender
    dumped = result.model_dump_json()
    assert CANARY not in dumped and "reply" not in json.loads(dumped)
    assert all(CANARY not in t.model_dump_json() for t in result.nodes)
    assert CANARY not in capsys.readouterr().out


@pytest.mark.slow
async def test_streamed_runs_get_the_reply_too() -> None:
    events = [e async for e in graph().astream(TEXT)]
    final = events[-1]
    assert isinstance(final, shoal.RunResult)
    assert final.reply is not None and CANARY in final.reply
