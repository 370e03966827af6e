"""Critical labels: an emergency is never traded for cost.

A critical label fires on its probability (the classifier's ``probabilities``, the real triage
ONNX model here) reaching its floor, or on a red flag in the working text; it escalates past
every budget (share window, token caps) or, with ``action: route``, takes the critical label with
no planner call. The planner is ``FakeBackend`` declared as a local ``llamacpp`` model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import shoal
from shoal import GraphSpec, NodeSpec
from shoal.errors import SpecError
from shoal.graphs.report import render_summary, summarize_file
from shoal.graphs.results import NodeTrace, RunResult
from shoal.graphs.spec import EscalationSpec, LlamaCppModelSpec, OnnxClassifierModelSpec
from shoal.policies.escalation import (
    CriticalRule,
    NodeRule,
    decide,
    load_policy,
    load_red_flags,
    matcher_for,
    resolve_rules,
)
from shoal.testing import FakeBackend

ROOT = Path(__file__).resolve().parents[2]
TRIAGE = ROOT / "examples/healthcare/models/triage.onnx"
LABELS = ["appointment", "billing", "emergency", "injection", "off_topic",
          "prescription_refill", "symptom_report"]
# An emergency (heart attack signs, played down) of the test split that the healthcare triage
# model labels 'symptom_report' with P(emergency) ~0.32.
LOW_EMERGENCY = ("Hey - I'm sure it's nothing but my left arm has been tingling for an hour and I "
                 "feel sweaty and sick to my stomach. Thx")


def answer(label: str = "emergency", confidence: float = 0.9) -> str:
    return json.dumps({"answer": "handled", "label": label, "confidence": confidence})


def triage_spec(policy: Path, **budget: Any) -> GraphSpec:
    return GraphSpec(
        name="critical",
        models={"triage": OnnxClassifierModelSpec(kind="onnx-classifier", path=str(TRIAGE)),
                "big": LlamaCppModelSpec(kind="llamacpp", model="smollm2-135m-instruct")},
        nodes={"triage": NodeSpec(agent="classifier", model="triage", labels=LABELS)},
        edges=[],
        escalation=EscalationSpec(planner="big", policies=[str(policy)], **budget),
    )


def policy(tmp_path: Path, critical: str, below: float = 0.0) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(f"escalation: 1\nname: crit\nnodes:\n  triage:\n    below: {below}\n"
                    f"    critical:\n      emergency: {critical}\n")
    return path


async def p_emergency(text: str, tmp_path: Path) -> tuple[str | None, float]:
    g = shoal.Graph(triage_spec(policy(tmp_path, "{min_recall: 0.99}")),
                    models={"big": FakeBackend()})
    r = await g.arun(text)
    trace = r.nodes[0]
    return trace.label, trace.output["probabilities"]["emergency"]


# --- the real model: a low-confidence emergency -------------------------------------------------


async def test_low_confidence_emergency_escalates_past_a_spent_budget(tmp_path: Path) -> None:
    label, p = await p_emergency(LOW_EMERGENCY, tmp_path)
    assert label != "emergency" and 0.01 < p < 0.5  # the model alone would miss it
    floor = round(p / 2, 4)
    planner = FakeBackend(handler=lambda _m: answer("emergency"))
    # Share cap 0 (no call allowed) and a token cap of 1 per run: both spent before we start.
    g = shoal.Graph(triage_spec(policy(tmp_path, f"{{floor: {floor}, action: escalate}}"),
                                max_share=0.0, window=10, max_tokens_per_run=1),
                    models={"big": planner})
    r = await g.arun(LOW_EMERGENCY)
    trace = r.nodes[0]
    assert trace.escalated and trace.critical == "emergency" and trace.label == "emergency"
    assert trace.reason is not None
    assert trace.reason.startswith(f"critical: emergency (P={p:.3f} >= floor {floor:g})")
    assert len(planner.calls) == 1
    assert r.cost is not None and r.cost.planner_tokens > 1  # recorded all the same
    assert "critical" in json.loads(r.model_dump_json())["nodes"][0]
    # A message that is not critical is still held back by the same spent budget.
    quiet = await g.arun("What are your opening hours on Saturday?")
    assert quiet.nodes[0].critical is None and not quiet.nodes[0].escalated


async def test_planner_answer_wins_and_its_failure_keeps_the_critical_label(
        tmp_path: Path) -> None:
    _, p = await p_emergency(LOW_EMERGENCY, tmp_path)
    path = policy(tmp_path, f"{{floor: {p / 2:.4f}}}")
    planner = FakeBackend(handler=lambda _m: answer("symptom_report"))
    r = await shoal.Graph(triage_spec(path), models={"big": planner}).arun(LOW_EMERGENCY)
    assert r.nodes[0].label == "symptom_report" and r.nodes[0].critical == "emergency"

    broken = FakeBackend(replies=["not json"])
    r = await shoal.Graph(triage_spec(path), models={"big": broken}).arun(LOW_EMERGENCY)
    trace = r.nodes[0]
    assert not trace.escalated and trace.label == "emergency"
    assert trace.reason is not None and "label emergency kept" in trace.reason
    assert trace.output["local_label"] != "emergency"


async def test_an_unsure_planner_cannot_clear_a_critical_label(tmp_path: Path) -> None:
    _, p = await p_emergency(LOW_EMERGENCY, tmp_path)
    path = policy(tmp_path, f"{{floor: {p / 2:.4f}, clear_confidence: 0.8}}")

    def unsure(_m: object) -> str:
        return json.dumps({"answer": "routine", "label": "billing", "confidence": 0.5})

    r = await shoal.Graph(triage_spec(path), models={"big": FakeBackend(handler=unsure)}
                          ).arun(LOW_EMERGENCY)
    trace = r.nodes[0]
    assert trace.escalated and trace.label == "emergency" and trace.critical == "emergency"
    assert trace.output["planner_label"] == "billing" and trace.output["label"] == "emergency"
    assert trace.reason is not None and "does not clear 'emergency'" in trace.reason

    def sure(_m: object) -> str:
        return json.dumps({"answer": "routine", "label": "billing", "confidence": 0.85})

    r = await shoal.Graph(triage_spec(path), models={"big": FakeBackend(handler=sure)}
                          ).arun(LOW_EMERGENCY)
    assert r.nodes[0].label == "billing" and r.nodes[0].critical == "emergency"


async def test_route_reaches_the_emergency_route_with_no_planner_call(tmp_path: Path) -> None:
    _, p = await p_emergency(LOW_EMERGENCY, tmp_path)
    planner = FakeBackend(handler=lambda _m: answer())
    spec = triage_spec(policy(tmp_path, f"{{floor: {p / 2:.4f}, action: route}}", below=0.9))
    spec = spec.model_copy(update={
        "nodes": {**spec.nodes, "urgent": NodeSpec(agent="noop"),
                  "usual": NodeSpec(agent="noop")},
        "edges": [shoal.RouteEdge.model_validate(
            {"from": "triage", "route": {"emergency": "urgent", "default": "usual"}})]})
    r = await shoal.Graph(spec, models={"big": planner}).arun(LOW_EMERGENCY)
    assert planner.calls == []
    assert [n.node for n in r.nodes] == ["triage", "urgent"]
    triage = r.nodes[0]
    assert triage.label == "emergency" and triage.critical == "emergency"
    assert not triage.escalate and not triage.escalated


async def test_a_red_flag_holds_the_critical_label_with_no_planner_call(tmp_path: Path) -> None:
    # The planner would answer 'billing', sure of it: a red flag is not its to clear.
    planner = FakeBackend(handler=lambda _m: answer("billing", 0.99))
    # The model says 'prescription_refill' (~0.6, above 0.5): only the red flag fires.
    g = shoal.Graph(triage_spec(policy(tmp_path, "{red_flags: clinical_red_flags}", below=0.5),
                                max_share=0.0),
                    models={"big": planner})
    r = await g.arun("Please refill my sertraline, I want to end my life")
    triage = r.nodes[0]
    assert triage.label == "emergency" and triage.critical == "emergency"
    assert not triage.escalated and planner.calls == []
    assert triage.reason is not None
    assert triage.reason.startswith("critical: emergency (red flag suicidal")
    assert triage.reason.endswith("a red flag holds")
    r = await g.arun("No chest pain, I just need my refill sent to the pharmacy.")
    assert r.nodes[0].critical is None and r.nodes[0].label == "prescription_refill"
    assert planner.calls == []


async def test_red_flags_hold_false_lets_a_sure_planner_clear_a_red_flag(
        tmp_path: Path) -> None:
    planner = FakeBackend(handler=lambda _m: answer("prescription_refill", 0.95))
    # The share cap allows no call: a critical escalation goes past it.
    g = shoal.Graph(triage_spec(policy(
        tmp_path, "{red_flags: clinical_red_flags, red_flags_hold: false}", below=0.5),
        max_share=0.0), models={"big": planner})
    r = await g.arun("Please refill my sertraline, I want to end my life")
    triage = r.nodes[0]
    assert triage.output["local"]["label"] == "prescription_refill"
    assert triage.critical == "emergency" and triage.escalated and len(planner.calls) == 1
    assert triage.label == "prescription_refill"


# --- red flags ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "fired"), [
    ("no chest pain", []),
    ("denies chest pain", []),
    ("I'm not having trouble breathing", []),
    ("the chest pain turned out to be reflux and is gone", []),
    ("crushing chest pain", ["chest_pain"]),
    ("I want to end my life", ["suicidal"]),
    # Stroke and poison-control warning signs (aphasia, sudden loss of sight, ingestion).
    ("he can't get any words out", ["stroke_speech"]),
    ("I can't find the words to thank you", []),
    ("lost vision in my left eye an hour ago", ["vision_loss"]),
    ("no loss of vision in either eye", []),
    ("my toddler got into grandma's pills", ["poisoning"]),
    ("my 3 year old swallowed a button battery", ["poisoning"]),
    ("I swallowed my pills with juice, is that ok?", []),
    # A child given a dose that is not theirs (poison-control guidance).
    ("I think I gave my 3 year old the adult dose of Benadryl", ["child_dose_error"]),
    ("my daughter got a double dose of her tylenol by mistake", ["child_dose_error"]),
    ("I gave my son his dose of amoxicillin, can you refill it?", []),
    # A fresh generator seed wrote this one and the pack missed it (benchmarks/replies.py).
    ("i've been thinking of ending my life and i have the pills out",
     ["suicidal", "means_plan"]),
    ("some days I feel I'd be better off dead", ["suicidal"]),
    ("I have never thought of ending my life", []),
    ("no fever but chest pain since an hour", ["chest_pain"]),
    ("I can't breeeathe", ["cant_breathe"]),
    ("she is having a seizure", ["seizure"]),
])
def test_red_flags_and_negation(text: str, fired: list[str]) -> None:
    assert matcher_for("clinical_red_flags").fired(text) == fired


@pytest.mark.parametrize(("text", "crisis"), [
    ("I want to end my life", True),
    ("i've been thinking of ending my life and i have the pills out", True),
    ("crushing chest pain", False),  # an emergency, not a crisis
    ("I have never thought of ending my life", False),
])
def test_crisis_is_one_test_for_every_agent(text: str, crisis: bool) -> None:
    from shoal.policies.escalation.red_flags import CRISIS_FLAGS, crisis_fired

    assert crisis_fired("clinical_red_flags", CRISIS_FLAGS, text) is crisis
    assert not crisis_fired("clinical_red_flags", [], text)  # no crisis flags, no crisis


def test_builtin_pack_has_the_clean_patterns_only() -> None:
    names = [f.name for f in matcher_for("clinical_red_flags").pack.flags]
    assert "heart_attack" not in names  # an 'extra'-only rule of the research file
    assert names[0] == "chest_pain" and len(names) == 18 and "poisoning" in names
    assert "child_dose_error" in names


def test_a_bad_red_flag_pack_is_a_file_line_col_error(tmp_path: Path) -> None:
    bad = tmp_path / "flags.yaml"
    bad.write_text("red_flags: 1\nname: mine\nflags:\n  - {name: a, pattern: 'chest (pain'}\n")
    with pytest.raises(SpecError) as err:
        load_red_flags(bad)
    assert f"{bad}:4:" in str(err.value) and "regular expression" in str(err.value)
    # Named by a policy, relative to the policy file: reported at the policies entry.
    pol = policy(tmp_path, "{red_flags: flags.yaml}")
    rules = resolve_rules({"triage": NodeSpec(agent="classifier", model="m")},
                          EscalationSpec(planner="big", policies=[str(pol)]), None)
    assert rules.problems and f"{bad}:4:" in rules.problems[0][1]


def test_critical_schema_validates_and_merges(tmp_path: Path) -> None:
    bad = policy(tmp_path, "{min_recall: 1.5, action: shout}")
    with pytest.raises(SpecError) as err:
        load_policy(bad)
    assert "min_recall" in str(err.value) and "action" in str(err.value)
    early = NodeRule(critical={"emergency": CriticalRule(floor=0.2, min_recall=0.99)})
    later = NodeRule.model_validate({"critical": {"emergency": {"floor": 0.05}}})
    merged = early.merged(later).critical["emergency"]
    assert (merged.floor, merged.min_recall, merged.action) == (0.05, 0.99, "escalate")


def test_decide_on_the_critical_label() -> None:
    rule = NodeRule(below=0.5, critical={"emergency": CriticalRule(floor=0.1)})
    probs = {"symptom_report": 0.8, "emergency": 0.12}
    d = decide(rule, confidence=0.8, flagged=False, note=None, label="symptom_report",
               probabilities=probs)
    assert (d.wants, d.critical, d.may_block) == (True, "emergency", False)
    assert d.trigger == "critical: emergency (P=0.120 >= floor 0.1)"
    # Already a confident emergency: nothing to do.
    d = decide(rule, confidence=0.9, flagged=False, note=None, label="emergency",
               probabilities={"emergency": 0.9})
    assert not d.wants and d.critical is None and d.may_block
    # Below the floor: the plain rule.
    d = decide(rule, confidence=0.95, flagged=False, note=None, label="billing",
               probabilities={"billing": 0.95, "emergency": 0.01})
    assert not d.wants and d.critical is None


# --- report -------------------------------------------------------------------------------------


def _result(i: int, **node: Any) -> RunResult:
    fields: dict[str, Any] = {"node": "triage", "agent": "classifier", "latency_ms": 1.0,
                              "label": "billing", "confidence": 0.9, **node}
    status = "escalated" if fields.get("escalated") else "ok"
    return RunResult(id=str(i), status=status, nodes=[NodeTrace(**fields)], latency_ms=1.0)


def test_report_counts_critical_escalations_apart(tmp_path: Path) -> None:
    results = [_result(0), _result(1, escalate=True, escalated=True, reason="confidence low"),
               _result(2, escalate=True, escalated=True, critical="emergency",
                       label="emergency"),
               _result(3, critical="emergency", label="emergency")]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(r.model_dump_json() + "\n" for r in results))
    summary = summarize_file(path)
    data = summary.to_dict()
    assert data["critical"] == {"nodes": 2, "escalated": 1, "labels": {"emergency": 2}}
    assert data["nodes"]["triage"]["critical"] == 2
    assert data["nodes"]["triage"]["escalated"] == 2
    console = Console(record=True, width=120)
    render_summary(summary, console, title="t")
    assert "critical escalations: 2 (1 answered by the planner, 1 routed or kept; emergency 2)" \
        in console.export_text()
