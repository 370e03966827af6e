"""``shoal calibrate`` end to end with the oracle planner (nothing is sent anywhere): the graph is
cut after the node, the curve and RouteLLM metrics print, the policy file it writes loads and sets
the threshold. The live planner is exercised in tests/integration/test_calibrate_live.py."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import shoal
from shoal.cli import app
from shoal.graphs import prefix_spec
from shoal.graphs.loader import load_spec
from shoal.policies.escalation import load_policy, resolve_rules
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
