"""Escalation policy at run time: only the failing node goes to the planner, budgets keep the
local answer, policy files override inline thresholds, and costs add up.

The planner here is ``FakeBackend`` (a fake, for wiring and fault injection) declared as a local
``llamacpp`` model so that no privacy scan runs; tests/unit/test_boundary.py covers remote
planners and tests/integration/test_egress.py the real one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal import AgentContext, AgentResult, ChainEdge, GraphSpec, NodeSpec
from shoal.errors import SpecError
from shoal.graphs.spec import EscalationSpec, LlamaCppModelSpec
from shoal.policies.escalation import NodeRule, load_policy, resolve_rules
from shoal.policies.escalation.budget import Budget, BudgetSpec
from shoal.policies.privacy import load_pack
from shoal.policies.scope import RunScope
from shoal.resources import PACKS, builtin_file
from shoal.testing import FakeBackend


class Cfg(shoal.AgentConfig):
    label: str | None = None
    confidence: float = 1.0
    flag: bool = False


@shoal.agent("esc_fixed", config=Cfg)
async def fixed(ctx: AgentContext, cfg: Cfg) -> AgentResult:
    return AgentResult(output={"local": ctx.node}, label=cfg.label, confidence=cfg.confidence,
                       escalate=cfg.flag, reason="checked" if cfg.flag else None)


def answer(text: str = "from planner", confidence: float = 0.9) -> str:
    return json.dumps({"answer": text, "label": None, "confidence": confidence})


def spec(nodes: dict[str, dict[str, Any]], *, policies: list[str] | None = None,
         **escalation: Any) -> GraphSpec:
    return GraphSpec(
        name="t",
        models={"big": LlamaCppModelSpec(kind="llamacpp", model="smollm2-135m-instruct")},
        nodes={k: NodeSpec(**v) for k, v in nodes.items()},
        edges=[ChainEdge.parse(" -> ".join(nodes))] if len(nodes) > 1 else [],
        escalation=EscalationSpec(planner="big", policies=policies or [], **escalation),
    )


def three(confidences: tuple[float, float, float]) -> dict[str, dict[str, Any]]:
    return {n: {"agent": "esc_fixed", "confidence": c, "escalate_below": 0.5}
            for n, c in zip("abc", confidences, strict=True)}


async def test_only_the_failing_node_goes_to_the_planner() -> None:
    planner = FakeBackend(replies=[answer("planner says hi")])
    g = shoal.Graph(spec(three((0.9, 0.2, 0.8))), models={"big": planner})
    r = await g.arun("x")
    assert r.status == "escalated"
    a, b, c = r.nodes
    assert (a.escalated, b.escalated, c.escalated) == (False, True, False)
    assert b.reason is not None and "confidence 0.200 below 0.5" in b.reason
    assert len(planner.calls) == 1
    # The planner got node b's task, the working text and b's local draft.
    user = planner.calls[0][1][-1]["content"]
    assert "'b' step" in user and '"local": "b"' in user
    assert r.output == {"local": "c"}  # c is local and is the output node
    assert r.cost is not None and r.cost.planner_calls == 1 and r.cost.planner_tokens > 0


async def test_escalated_output_replaces_the_node_output() -> None:
    planner = FakeBackend(replies=[answer("planner says hi", 0.77)])
    g = shoal.Graph(spec(three((0.9, 0.9, 0.1))), models={"big": planner})
    r = await g.arun("x")
    assert r.output["answer"] == "planner says hi"
    assert r.nodes[2].confidence == pytest.approx(0.77)
    assert r.output["local"] == {"label": None, "confidence": 0.1, "output": {"local": "c"}}


async def test_agent_flag_escalates_unless_the_policy_says_otherwise(tmp_path: Path) -> None:
    nodes = {"v": {"agent": "esc_fixed", "flag": True}}
    planner = FakeBackend(replies=[answer()])
    r = await shoal.Graph(spec(nodes), models={"big": planner}).arun("x")
    assert r.nodes[0].escalated and r.nodes[0].reason == "checked"

    policy = tmp_path / "p.yaml"
    policy.write_text("escalation: 1\nname: quiet\nnodes:\n  v: {on_flag: false}\n")
    planner = FakeBackend(replies=[answer()])
    g = shoal.Graph(spec(nodes, policies=[str(policy)]), models={"big": planner})
    r = await g.arun("x")
    assert not r.nodes[0].escalate and planner.calls == []


async def test_share_budget_keeps_the_local_answer_and_says_so() -> None:
    planner = FakeBackend(handler=lambda _m: answer())
    g = shoal.Graph(spec({"a": {"agent": "esc_fixed", "confidence": 0.1,
                                "escalate_below": 0.5}}, max_share=0.2, window=10),
                    models={"big": planner})
    results = [await g.arun("x", id=str(i)) for i in range(6)]
    escalated = [r.nodes[0].escalated for r in results]
    assert escalated == [True, True, False, False, False, False]  # floor(0.2 * 10) = 2
    kept = results[2].nodes[0]
    assert kept.reason is not None and kept.reason.startswith("budget_exhausted")
    assert "local answer kept" in kept.reason and kept.escalate
    assert all(r.status in ("ok", "escalated") for r in results)
    assert results[2].output == {"local": "a"}
    assert len(planner.calls) == 2


async def test_planner_failure_keeps_the_local_answer() -> None:
    planner = FakeBackend(replies=["not json at all"])
    g = shoal.Graph(spec({"a": {"agent": "esc_fixed", "confidence": 0.1,
                                "escalate_below": 0.5}}), models={"big": planner})
    r = await g.arun("x")
    assert r.status == "ok" and r.output == {"local": "a"}
    assert r.nodes[0].reason is not None and r.nodes[0].reason.startswith("planner failed")


async def test_planner_label_must_be_one_of_the_nodes_labels() -> None:
    nodes = {"triage": {"agent": "keyword_classifier", "labels": {"bill": ["invoice"],
                                                                  "appt": ["visit"]},
                        "escalate_below": 0.99}}
    good = FakeBackend(replies=[json.dumps({"answer": "x", "label": "appt", "confidence": 0.8})])
    r = await shoal.Graph(spec(nodes), models={"big": good}).arun("hello")
    assert r.nodes[0].escalated and r.nodes[0].label == "appt"
    schema_labels = good.calls[0][1][-1]["content"]
    assert "appt" in schema_labels and "bill" in schema_labels

    bad = FakeBackend(replies=[json.dumps({"answer": "x", "label": "nope", "confidence": 0.8})])
    r = await shoal.Graph(spec(nodes), models={"big": bad}).arun("hello")
    assert not r.nodes[0].escalated and r.nodes[0].label != "nope"


# --- policy files -------------------------------------------------------------------------------


def test_policy_overrides_inline_threshold_and_later_policies_win(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(
        "escalation: 1\nname: one\nnodes:\n  a: {below: 0.7}\n  b: {below: 0.1}\n"
        "budget: {max_share: 0.5}\n")
    (tmp_path / "two.yaml").write_text(
        "escalation: 1\nname: two\nnodes:\n  b: {below: 0.3, task: Do b.}\n"
        "budget: {window: 40}\n")
    s = spec(three((1, 1, 1)), policies=["one.yaml", "two.yaml"], max_share=0.9)
    rules = resolve_rules(s.nodes, s.escalation, tmp_path)
    assert rules.problems == []
    assert rules.nodes["a"] == NodeRule(below=0.7)
    assert rules.nodes["b"] == NodeRule(below=0.3, task="Do b.")
    assert rules.nodes["c"] == NodeRule(below=0.5)  # inline, untouched
    assert (rules.budget.max_share, rules.budget.window) == (0.5, 40)


def test_policy_errors_name_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("escalation: 1\nname: bad\nnodes:\n  a: {below: 2}\n  b: {bogus: 1}\n")
    with pytest.raises(SpecError) as err:
        load_policy(bad, "bad.yaml")
    text = str(err.value)
    assert "bad.yaml:4:" in text and "bad.yaml:5:" in text and "bogus" in text


def test_graph_check_reports_policy_problems_at_the_policies_entry(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("escalation: 1\nname: p\nnodes:\n  zz: {below: 0.5}\n")
    (tmp_path / "g.yaml").write_text(
        "shoal: 1\nname: g\nmodels:\n  big: {kind: llamacpp, model: smollm2-135m-instruct}\n"
        "nodes:\n  a: {agent: noop}\nescalation: {planner: big, policies: [p.yaml]}\n")
    with pytest.raises(SpecError) as err:
        shoal.load_graph(tmp_path / "g.yaml")
    assert "g.yaml:7:39:" in str(err.value) and "'zz'" in str(err.value)
    assert "(escalation.policies.0)" in str(err.value)


def test_usd_budget_needs_a_planner_price(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="needs a 'price'"):
        shoal.Graph(spec({"a": {"agent": "noop"}}, max_usd_per_run=0.1),
                    models={"big": FakeBackend()})


# --- the budget itself --------------------------------------------------------------------------


def test_budget_reserves_then_settles_tokens_per_run() -> None:
    budget = Budget(BudgetSpec(max_tokens_per_run=100))
    r1, r2 = RunScope("r1"), RunScope("r2")
    first = budget.admit(r1.spend, 60, 0.0)
    assert not isinstance(first, str)
    refused = budget.admit(r1.spend, 60, 0.0)  # 60 reserved + 60 > 100, even before settling
    assert isinstance(refused, str) and refused.startswith("budget_exhausted")
    budget.settle(first, 20, 0.0)  # the call used less than reserved
    assert r1.spend.tokens == 20
    assert not isinstance(budget.admit(r1.spend, 60, 0.0), str)
    assert not isinstance(budget.admit(r2.spend, 100, 0.0), str)  # another run has its own cap
    # A new run (a new scope) starts from nothing; the old scope's spending went with it.
    assert not isinstance(budget.admit(RunScope("r1").spend, 100, 0.0), str)


def test_budget_share_window_slides() -> None:
    budget = Budget(BudgetSpec(max_share=0.5, window=4))
    assert [budget.decide(True) is None for _ in range(3)] == [True, True, False]
    for _ in range(3):
        assert budget.decide(False) is None
    assert budget.decide(True) is None  # the two calls have slid out of the window


def test_a_builtin_escalation_policy_sets_the_budget() -> None:
    s = spec({"a": {"agent": "noop"}}, policies=["planner_share_20"])
    rules = resolve_rules(s.nodes, s.escalation, None)
    assert (rules.budget.max_share, rules.budget.window) == (0.2, 200)


def test_an_escalation_policy_is_not_an_identifier_pack(tmp_path: Path) -> None:
    policy = tmp_path / "share.yaml"
    policy.write_text("escalation: 1\nname: share\nbudget: {max_share: 0.2}\n")
    with pytest.raises(SpecError, match="escalation policy, not an identifier pack"):
        load_pack(str(policy))
    with pytest.raises(SpecError, match="identifier pack, not an escalation policy"):
        load_policy(builtin_file(PACKS, "hipaa_safe_harbor") or Path("missing"))


async def test_attach_keeps_the_local_output_and_adds_the_planners(tmp_path: Path) -> None:
    nodes = {"urgent": {"agent": "template_reply", "default": "Call 911 now.", "escalate": True}}
    planner = FakeBackend(replies=[answer("handoff for the on-call clinician")])
    (tmp_path / "p.yaml").write_text("escalation: 1\nname: p\nnodes:\n  urgent: {attach: true}\n")
    g = shoal.Graph(spec(nodes, policies=["p.yaml"]), base_dir=tmp_path, models={"big": planner})
    r = await g.arun("x")
    assert r.status == "escalated" and r.nodes[0].escalated
    assert r.output["answer"] == "Call 911 now."
    assert r.output["planner"]["answer"] == "handoff for the on-call clinician"
