"""The privacy boundary: the compiler refuses unmasked paths to remote models, every outbound
payload is re-scanned, pseudonyms in the planner's answer are reversed locally, money is counted.

The remote planner is ``FakeBackend`` (a fake) declared as ``kind: openai``, so it sits behind the
real RemoteGuard; the masker and the egress scan are the real ones (presidio + spaCy).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal import AgentContext, AgentResult, ChainEdge, GraphSpec, NodeSpec
from shoal.errors import SpecError
from shoal.graphs.spec import EscalationSpec, OpenAIModelSpec, Price
from shoal.models.base import Message
from shoal.testing import FakeBackend

NAME = "Marguerite Oyelaran-Whitfield"
SSN = "078-05-1120"
NOTE = f"Patient {NAME}, SSN {SSN}, asks whether she can take ibuprofen with lisinopril."


class LeakCfg(shoal.AgentConfig):
    leak: str | None = None
    leak_into_text: bool = False
    confidence: float = 0.1


@shoal.agent("bnd_draft", config=LeakCfg)
async def draft(ctx: AgentContext, cfg: LeakCfg) -> AgentResult:
    """A local drafter whose draft (or rewritten working text) may wrongly carry a value."""
    text = f"Draft for: {ctx.text}" + (f" (ref {cfg.leak})" if cfg.leak else "")
    rewritten = f"{ctx.text} ref {cfg.leak}" if cfg.leak_into_text else None
    return AgentResult(output={"answer": text}, confidence=cfg.confidence, text=rewritten)


def remote_spec(nodes: dict[str, dict[str, Any]], edges: list[str], **esc: Any) -> GraphSpec:
    return GraphSpec(
        name="b",
        models={"big": OpenAIModelSpec(kind="openai", base_url="http://127.0.0.1:9/v1",
                                       model="m", price=Price(input_per_mtok=2.5,
                                                              output_per_mtok=10.0))},
        nodes={k: NodeSpec(**v) for k, v in nodes.items()},
        edges=[ChainEdge.parse(e) for e in edges],
        escalation=EscalationSpec(planner="big", **esc),
    )


MASKED = {"mask": {"agent": "privacy_masker"},
          "answer": {"agent": "bnd_draft", "escalate_below": 0.5}}


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    """What shoal's production log chain wrote (the log_stream fixture logs at debug)."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def echo_pseudonym(messages: Sequence[Message]) -> str:
    found = re.findall(r"\[NAME_\d+\]", messages[-1]["content"])
    return json.dumps({"answer": f"Please call {found[0] if found else 'nobody'} back.",
                       "label": None, "confidence": 0.9})


# --- compile time -------------------------------------------------------------------------------


def test_a_remote_model_node_without_a_masker_is_refused() -> None:
    s = GraphSpec(name="b", models={"big": OpenAIModelSpec(kind="openai", base_url="http://x/v1",
                                                           model="m")},
                  nodes={"guard": NodeSpec(agent="noop"),
                         "ask": NodeSpec(agent="planner", model="big")},
                  edges=[ChainEdge.parse("guard -> ask")])
    with pytest.raises(SpecError) as err:
        shoal.Graph(s)
    assert "remote model 'big'" in str(err.value)
    assert "path guard -> ask passes no privacy_masker" in str(err.value)


def test_an_escalating_node_before_the_masker_is_refused(tmp_path: Path) -> None:
    nodes = {"guard": {"agent": "bnd_draft"}, **MASKED}
    with pytest.raises(SpecError) as err:
        shoal.Graph(remote_spec(nodes, ["guard -> mask -> answer"]),
                    models={"big": FakeBackend()})
    message = str(err.value)
    assert "node 'guard' can escalate to the remote planner 'big'" in message
    assert "'answer'" not in message  # after the masker: fine

    (tmp_path / "p.yaml").write_text("escalation: 1\nname: p\nnodes:\n  guard: {on_flag: false}\n")
    ok = remote_spec(nodes, ["guard -> mask -> answer"])
    assert ok.escalation is not None
    ok = ok.model_copy(update={"escalation": ok.escalation.model_copy(
        update={"policies": ["p.yaml"]})})
    graph = shoal.Graph(ok, base_dir=tmp_path, models={"big": FakeBackend()})
    guard = graph.rules.nodes["guard"]
    assert guard is not None and not guard.active


async def test_a_local_planner_needs_no_masker(
        log_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    from shoal.graphs.spec import LlamaCppModelSpec
    from shoal.policies.escalation import RemoteGuard, guard

    scanned: list[Any] = []
    real_scan = guard.scan_outbound

    async def scan_spy(*args: Any) -> Any:
        scanned.append(args)
        return await real_scan(*args)

    monkeypatch.setattr(guard, "scan_outbound", scan_spy)
    s = GraphSpec(name="b", models={"big": LlamaCppModelSpec(kind="llamacpp",
                                                             model="smollm2-135m-instruct")},
                  nodes={"a": NodeSpec(agent="bnd_draft", escalate_below=0.5)},
                  escalation=EscalationSpec(planner="big"))
    planner = FakeBackend(handler=lambda _: json.dumps(
        {"answer": "Ibuprofen can blunt lisinopril; ask your doctor.", "label": None,
         "confidence": 0.9}))
    g = shoal.Graph(s, models={"big": planner})
    # Compiled with no masker in the graph, and the planner's rule is on for node 'a'.
    rule = g.rules.nodes["a"]
    assert rule is not None and rule.active and rule.below == 0.5
    # The local planner is metered, but has no egress pack and no circuit breaker.
    wrapped = g.models["big"]
    assert isinstance(wrapped, RemoteGuard) and wrapped.inner is planner
    assert wrapped.pack is None and wrapped.circuit is None

    r = await g.arun(NOTE, id="local-1")
    assert r.status == "escalated", r
    assert [(n.node, n.escalated) for n in r.nodes] == [("a", True)]
    assert r.output["answer"] == "Ibuprofen can blunt lisinopril; ask your doctor."
    # The unmasked note went to the planner on this machine: nothing scanned, nothing blocked.
    assert len(planner.calls) == 1
    sent = json.dumps(planner.calls)
    assert NAME in sent and SSN in sent
    assert scanned == []
    assert "egress_blocked" not in log_stream.getvalue()
    assert r.cost is not None and r.cost.planner_calls == 1 and r.cost.planner_usd == 0


# --- run time -----------------------------------------------------------------------------------


async def test_planner_sees_pseudonyms_and_only_the_senders_reply_is_unmasked(
        log_stream: io.StringIO) -> None:
    planner = FakeBackend(handler=echo_pseudonym)
    g = shoal.Graph(remote_spec(MASKED, ["mask -> answer"]), models={"big": planner})
    r = await g.arun(NOTE, id="n1")
    assert r.status == "escalated", r
    sent = json.dumps(planner.calls)
    assert NAME not in sent and SSN not in sent and "[NAME_1]" in sent
    # The output (result files, traces) stays masked; the reply that goes back to the sender
    # gets their own value back, and is never serialized.
    assert r.output["answer"] == "Please call [NAME_1] back."
    assert r.reply == f"Please call {NAME} back."
    assert NAME not in r.model_dump_json()
    logged = log_stream.getvalue()
    assert "node_escalated" in logged and NAME not in logged
    assert r.cost is not None and r.cost.planner_calls == 1
    assert r.cost.planner_usd > 0 and r.cost.planner_usd == pytest.approx(
        r.cost.all_planner_usd_estimate)


async def test_an_identifier_in_the_draft_goes_out_masked() -> None:
    nodes = {"mask": {"agent": "privacy_masker"},
             "answer": {"agent": "bnd_draft", "escalate_below": 0.5, "leak": SSN}}
    planner = FakeBackend(handler=echo_pseudonym)
    r = await shoal.Graph(remote_spec(nodes, ["mask -> answer"]),
                          models={"big": planner}).arun(NOTE)
    assert r.status == "escalated" and len(planner.calls) == 1
    sent = json.dumps(planner.calls)
    assert SSN not in sent and "[SSN_1]" in sent


async def test_a_surviving_identifier_blocks_the_call_and_keeps_the_local_answer(
        log_stream: io.StringIO) -> None:
    # 'leaky' rewrites the working text after the masker: the next node's payload holds an SSN.
    nodes = {"mask": {"agent": "privacy_masker"},
             "leaky": {"agent": "bnd_draft", "leak": SSN, "leak_into_text": True,
                       "confidence": 0.9},
             "answer": {"agent": "bnd_draft", "escalate_below": 0.5}}
    planner = FakeBackend(handler=echo_pseudonym)
    g = shoal.Graph(remote_spec(nodes, ["mask -> leaky -> answer"]), models={"big": planner})
    r = await g.arun(NOTE)
    assert planner.calls == []
    node = r.nodes[-1]
    assert not node.escalated and node.escalate
    assert node.reason is not None and node.reason.startswith("egress blocked (")
    assert "1 SSN" in node.reason
    assert r.status == "ok" and SSN in r.output["answer"]  # the local draft, kept locally
    blocked = [e for e in events(log_stream) if e["event"] == "egress_blocked"]
    assert blocked and blocked[0]["identifiers"]["SSN"] == 1
    assert SSN not in log_stream.getvalue()
    assert r.cost is not None and r.cost.planner_calls == 0 and r.cost.planner_usd == 0


async def test_a_planner_node_falls_back_to_its_draft_when_blocked() -> None:
    nodes = {"mask": {"agent": "privacy_masker"},
             "draft": {"agent": "bnd_draft", "leak": SSN, "leak_into_text": True},
             "ask": {"agent": "planner", "model": "big"}}
    planner = FakeBackend(handler=echo_pseudonym)
    s = remote_spec(nodes, ["mask -> draft -> ask"]).model_copy(update={"escalation": None})
    r = await shoal.Graph(s, models={"big": planner}).arun(NOTE)
    assert planner.calls == [] and r.status == "ok"
    assert r.nodes[-1].confidence == 0.0
    assert r.nodes[-1].reason is not None and "egress_blocked" in r.nodes[-1].reason


async def test_token_budget_per_run_blocks_before_sending() -> None:
    planner = FakeBackend(handler=echo_pseudonym)
    g = shoal.Graph(remote_spec(MASKED, ["mask -> answer"], max_tokens_per_run=50),
                    models={"big": planner})
    r = await g.arun(NOTE)
    assert planner.calls == []
    assert r.nodes[-1].reason is not None
    assert r.nodes[-1].reason.startswith("budget_exhausted: tokens per run cap 50")
    assert r.cost is not None and r.cost.all_planner_usd_estimate > 0


async def test_confident_runs_cost_nothing_but_carry_an_estimate() -> None:
    nodes = {"mask": {"agent": "privacy_masker"},
             "answer": {"agent": "bnd_draft", "escalate_below": 0.5, "confidence": 0.9}}
    planner = FakeBackend(handler=echo_pseudonym)
    r = await shoal.Graph(remote_spec(nodes, ["mask -> answer"]),
                          models={"big": planner}).arun(NOTE)
    assert r.status == "ok" and planner.calls == []
    assert r.cost is not None and r.cost.planner_usd == 0
    assert r.cost.all_planner_usd_estimate > 0 and r.cost.local_ms > 0
