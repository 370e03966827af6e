"""``shoal calibrate`` end to end with the oracle planner (nothing is sent anywhere): the graph is
cut after the node, the curve and RouteLLM metrics print, the policy file it writes loads and sets
the threshold and keeps the critical labels with their chosen floors. The records' examples carry
what the richer metrics need (the local answer, the router's score, red flags on the masked
text). The live planner is exercised in tests/integration/test_calibrate_live.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import shoal
from shoal.cli import app
from shoal.cli.calibrate import node_labels, write_policy
from shoal.graphs import prefix_spec
from shoal.graphs.calibration import example_of
from shoal.graphs.loader import load_spec
from shoal.graphs.results import NodeTrace, RunResult, Status
from shoal.models.onnx import read_sidecar
from shoal.policies.escalation import CriticalRule, NodeRule, load_policy, resolve_rules
from shoal.policies.escalation.calibration import CPT_TARGETS, Example, summarize
from tests.conftest import REPO

runner = CliRunner()
HEALTH = REPO / "examples" / "healthcare"


def labelled(tmp_path: Path, n: int = 60, bad_line: bool = False) -> Path:
    lines = (HEALTH / "data" / "dev.jsonl").read_text().splitlines()[:n]
    if bad_line:
        lines.insert(3, json.dumps({"id": "nolabel", "text": "hello"}))
    path = tmp_path / "labelled.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_prefix_spec_keeps_only_what_leads_to_the_node() -> None:
    spec = shoal.GraphSpec.model_validate({
        "name": "g",
        "nodes": {"guard": {"agent": "noop"}, "mask": {"agent": "noop"},
                  "triage": {"agent": "keyword_classifier", "labels": {"a": ["x"]}},
                  "reply": {"agent": "noop"}, "urgent": {"agent": "noop"}},
        "edges": [{"from": "guard", "route": {"default": "mask"}}, "mask -> triage",
                  {"from": "triage", "route": {"a": "urgent", "default": "reply"}}],
    })
    cut = prefix_spec(spec, "triage")
    assert set(cut.nodes) == {"guard", "mask", "triage"} and cut.output == "triage"
    shoal.Graph(cut)  # still a valid graph


def test_oracle_calibration_prints_the_curve_and_writes_a_policy(tmp_path: Path) -> None:
    policy, report = tmp_path / "cal.yaml", tmp_path / "cal.json"
    result = runner.invoke(app, ["calibrate", str(HEALTH / "triage.yaml"), "--data",
                                 str(labelled(tmp_path)), "--planner", "oracle",
                                 "--target-share", "0.3", "-o", str(policy),
                                 "--json", str(report)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "quality vs planner share" in out and "APGR" in out and "CPT(95%)" in out
    assert "random" in out
    data = json.loads(report.read_text())
    assert data["n"] == 60 and data["planner_quality"] == 1.0
    assert data["chosen_share"] <= 0.3
    assert data["apgr"] > data["random_apgr"] == 0.5  # confidence carries signal
    written = load_policy(policy)
    below = written.nodes["triage"].below
    assert below is not None and 0 < below <= 1
    # The policy file, added to the graph, sets the node's threshold.
    spec, _ = load_spec(HEALTH / "triage.yaml")
    assert spec.escalation is not None
    escalation = spec.escalation.model_copy(update={"policies": [str(policy)]})
    assert resolve_rules(spec.nodes, escalation, HEALTH).nodes["triage"] == written.nodes["triage"]


def test_unlabelled_lines_are_named_and_the_rest_still_calibrates(tmp_path: Path) -> None:
    result = runner.invoke(app, ["calibrate", str(HEALTH / "triage.yaml"), "--data",
                                 str(labelled(tmp_path, n=30, bad_line=True)), "--planner",
                                 "oracle", "-o", str(tmp_path / "p.yaml")])
    assert result.exit_code == 1
    assert "labelled.jsonl:4: record 'nolabel': missing 'label'" in result.stderr
    assert "30 labelled records" in result.stdout


def test_a_node_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["calibrate", str(HEALTH / "triage.yaml"), "--data",
                                 str(labelled(tmp_path, n=5)), "--node", "nope",
                                 "--planner", "oracle"])
    assert result.exit_code == 2 and "has no node 'nope'" in result.stderr


def calibrate(*args: str) -> Any:
    return runner.invoke(app, ["calibrate", str(HEALTH / "triage.yaml"), "--planner", "oracle",
                               *args])


def test_json_and_output_carry_intervals_detection_recall_floors(tmp_path: Path) -> None:
    policy, report = tmp_path / "cal.yaml", tmp_path / "cal.json"
    result = calibrate("--data", str(labelled(tmp_path, n=80)), "--target-share", "0.2",
                       "-o", str(policy), "--json", str(report))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for shown in ("CPT(90%)", "AUROC", "AUPRC", "bootstrap 95% interval", "0.95 x gap",
                  "recall per label", "emergency (critical)", "critical 'emergency': floor"):
        assert shown in out, shown
    data = json.loads(report.read_text())
    assert data["router"] == "confidence" and data["n"] == 80
    assert data["cpt80"] <= data["cpt90"] <= data["cpt95"]
    assert set(data["cpt_ci"]) == set(CPT_TARGETS)
    for key in CPT_TARGETS:
        assert 0 <= data["cpt_ci"][key]["low"] <= data["cpt_ci"][key]["high"] <= 1
    error_rate = 1 - data["local_quality"]
    assert 0.5 < data["auroc"] <= 1 and error_rate < data["auprc"] <= 1  # confidence has signal
    assert data["cpt_floor"] == pytest.approx(0.95 * error_rate)
    recall = data["per_class_recall"]
    assert next(iter(recall)) == "emergency"  # the graph's critical label first
    assert sum(r["n"] for r in recall.values()) == 80
    assert all(r["routed"] >= r["local"] for r in recall.values())  # the oracle is always right
    assert set(data["routers"]) == {"confidence"}
    assert {k: v for k, v in data["routers"]["confidence"].items()} == {
        k: v for k, v in data.items() if k in data["routers"]["confidence"]}
    floor = data["critical"]["emergency"]
    assert floor["min_recall"] == 0.99 and floor["met"] and floor["recall"] >= 0.99
    assert 0 <= floor["floor"] <= 1
    # The written policy keeps the critical label, with the chosen floor and its other keys.
    written = load_policy(policy).nodes["triage"]
    assert written.critical == {"emergency": CriticalRule(
        floor=floor["floor"], min_recall=0.99, action="escalate",
        red_flags="clinical_red_flags")}
    assert written.below is not None and written.router is None


def test_rewriting_a_policy_keeps_its_nodes_keys_and_critical_labels(tmp_path: Path) -> None:
    policy = tmp_path / "cal.yaml"
    policy.write_text(yaml.safe_dump({
        "escalation": 1, "name": "mine", "description": "old",
        "nodes": {
            "triage": {"below": 0.9, "task": "Label it.",
                       "critical": {"injection": {"floor": 0.5, "action": "route"},
                                    "emergency": {"floor": 0.5, "min_recall": 0.99,
                                                  "red_flags": "clinical_red_flags"}}},
            "validate": {"on_flag": True}},
        "budget": {"max_share": 0.3}}))
    result = calibrate("--data", str(labelled(tmp_path, n=40)), "-o", str(policy))
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(policy.read_text())
    assert doc["name"] == "mine" and doc["budget"] == {"max_share": 0.3}
    assert doc["description"].startswith("shoal calibrate on labelled.jsonl (40 records")
    assert doc["nodes"]["validate"] == {"on_flag": True}
    triage = doc["nodes"]["triage"]
    assert triage["below"] != 0.9 and triage["task"] == "Label it."
    assert triage["critical"]["injection"] == {"floor": 0.5, "action": "route"}
    emergency = triage["critical"]["emergency"]
    assert list(emergency) == ["floor", "min_recall", "action", "red_flags"]
    assert emergency["floor"] != 0.5 and emergency["red_flags"] == "clinical_red_flags"
    load_policy(policy)  # still a valid policy


def test_labels_come_from_the_model_sidecar(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    for name in ("triage.onnx", "triage.onnx.json"):
        shutil.copy(HEALTH / "models" / name, tmp_path / "models" / name)
    graph = tmp_path / "g.yaml"
    graph.write_text(yaml.safe_dump({
        "shoal": 1, "name": "bare",
        "models": {"triage": {"kind": "onnx-classifier", "path": "models/triage.onnx"}},
        "nodes": {"triage": {"agent": "classifier", "model": "triage"}},  # no labels: given
        "edges": []}))
    labels = read_sidecar(tmp_path / "models" / "triage.onnx").labels
    assert node_labels(shoal.Graph.from_yaml(graph), "triage") == frozenset(labels)
    result = runner.invoke(app, ["calibrate", str(graph), "--data",
                                 str(labelled(tmp_path, n=20)), "--planner", "oracle",
                                 "-o", str(tmp_path / "p.yaml")])
    assert result.exit_code == 0, result.output  # no --node needed
    assert "node 'triage': 20 labelled records" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--router", "learned"], "--router learned needs --router-model ROUTER.onnx"),
    (["--router-model", "missing.onnx"], "missing.onnx: no such file"),
    (["--router", "learned", "--router-model", "missing.onnx"], "missing.onnx: no such file"),
])
def test_router_options_are_checked(tmp_path: Path, args: list[str], message: str) -> None:
    result = calibrate("--data", str(labelled(tmp_path, n=5)), *args)
    assert result.exit_code == 2 and message in result.stderr


def test_a_learned_policy_names_its_router_relative_to_the_policy(tmp_path: Path) -> None:
    examples = [Example(id=f"e{i}", confidence=0.5, local_correct=i % 3 != 0,
                        planner_correct=True, p_wrong=0.9 if i % 3 == 0 else 0.1 + i / 100)
                for i in range(12)]
    summary = summarize(examples, 0.4, router="learned", resamples=10)
    (tmp_path / "models").mkdir()
    router = tmp_path / "models" / "router.onnx"
    router.write_bytes(b"")
    policy = tmp_path / "policies" / "p.yaml"
    policy.parent.mkdir()
    policy.write_text(yaml.safe_dump({"escalation": 1, "name": "p",
                                      "nodes": {"triage": {"below": 0.4}}}))
    write_policy(policy, graph="g", node="triage", summary=summary, mode="oracle",
                 data=Path("dev.jsonl"), router_model=router)
    triage = yaml.safe_load(policy.read_text())["nodes"]["triage"]
    # The four wrong ones (p 0.9) escalate, nothing else: above is the smallest escalated score.
    assert triage == {"below": None, "router": {"model": "../models/router.onnx", "above": 0.9}}
    assert load_policy(policy).nodes["triage"].router is not None


# --- one record's example -------------------------------------------------------------------------

PROBS = {"symptom_report": 0.55, "emergency": 0.3, "billing": 0.15}
RULE = NodeRule(critical={"emergency": CriticalRule(min_recall=0.99,
                                                    red_flags="clinical_red_flags")})


def run_of(masked: str, triage: NodeTrace, status: Status = "ok") -> RunResult:
    mask = NodeTrace(node="mask", agent="privacy_masker", latency_ms=1.0, text=masked)
    return RunResult(id="r1", status=status, nodes=[mask, triage])


def local_trace(**kw: Any) -> NodeTrace:
    return NodeTrace(node="triage", agent="classifier", latency_ms=1.0, label="symptom_report",
                     confidence=0.55, output={"label": "symptom_report", "probabilities": PROBS},
                     **kw)


def test_an_example_carries_the_local_answer_router_score_and_red_flag() -> None:
    run = run_of("I have crushing chest pain, [NAME_1]", local_trace(p_wrong=0.42))
    example, why, failed = example_of(run, "triage", "emergency", "oracle", "raw", RULE)
    assert why is None and not failed and example is not None
    assert (example.label, example.local_label, example.confidence) == (
        "emergency", "symptom_report", 0.55)
    assert (example.local_correct, example.planner_correct) == (False, True)
    assert example.p_wrong == 0.42 and example.probabilities == PROBS and example.red_flag


@pytest.mark.parametrize(("masked", "raw", "flag"), [
    ("no chest pain today", "no chest pain today", False),    # negated
    ("my chest pain is back", "fine", True),                  # the masked working text counts
    ("all fine", "my chest pain is back", False),             # ... not the raw input
])
def test_red_flags_run_on_the_working_text(masked: str, raw: str, flag: bool) -> None:
    example, _, _ = example_of(run_of(masked, local_trace()), "triage", "emergency", "oracle",
                               raw, RULE)
    assert example is not None and example.red_flag is flag
    bare, _, _ = example_of(run_of(masked, local_trace()), "triage", "emergency", "oracle")
    assert bare is not None and not bare.red_flag  # no rule: nothing to flag


def test_a_live_escalation_keeps_the_local_answer_apart() -> None:
    escalated = NodeTrace(
        node="triage", agent="classifier", latency_ms=1.0, label="emergency", confidence=0.9,
        escalated=True, p_wrong=0.7,
        output={"label": "emergency", "confidence": 0.9, "local": {
            "label": "symptom_report", "confidence": 0.55,
            "output": {"label": "symptom_report", "probabilities": PROBS}}})
    example, _, failed = example_of(run_of("chest pain", escalated, "escalated"), "triage",
                                    "emergency", "live", "chest pain", RULE)
    assert example is not None and not failed
    assert (example.local_label, example.confidence, example.probabilities) == (
        "symptom_report", 0.55, PROBS)
    assert (example.local_correct, example.planner_correct, example.p_wrong) == (False, True,
                                                                                 0.7)
    # The planner did not answer: the local answer stands and the planner gets no credit.
    kept, _, failed = example_of(run_of("chest pain", local_trace()), "triage", "emergency",
                                 "live")
    assert kept is not None and failed and not kept.planner_correct
    assert kept.local_label == "symptom_report"
