"""A running graph follows the model registry: a promoted version runs with its own model and
its own escalation thresholds, a rollback restores the graph file's, and nothing changes
between refreshes. The real triage model; the planner is a closed port (escalations wait in
the outbox), since only the decision is under test."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import shoal
from shoal.graphs.runtime import Graph
from shoal.policies.escalation import SqliteModelRegistry
from tests.conftest import REPO

pytestmark = pytest.mark.slow

TRIAGE = REPO / "examples" / "healthcare" / "models" / "triage.onnx"
LABELS = ("appointment, billing, emergency, injection, off_topic, prescription_refill, "
          "symptom_report")
SURE = "Can I move my appointment to next Friday afternoon?"


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Graph:
    monkeypatch.setenv("SHOAL_OUTBOX", str(tmp_path / "outbox.sqlite"))
    (tmp_path / "policy.yaml").write_text(
        "escalation: 1\nname: p\nnodes:\n  triage:\n    below: 0.3\n    critical:\n"
        "      emergency: {floor: 0.9, min_recall: 0.99, action: escalate}\n")
    path = tmp_path / "graph.yaml"
    path.write_text(
        "shoal: 1\nname: versions-test\n"
        f"models:\n  triage: {{kind: onnx-classifier, path: {TRIAGE}}}\n"
        "  planner: {kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m,"
        " max_retries: 0, timeout_s: 1}\n"
        "packs: [hipaa_safe_harbor]\n"
        "nodes:\n  mask: {agent: privacy_masker, pack: hipaa_safe_harbor}\n"
        f"  triage:\n    agent: classifier\n    model: triage\n    labels: [{LABELS}]\n"
        "    learn: {train: train.jsonl, eval: dev.jsonl}\n"
        "edges: [mask -> triage]\noutput: triage\n"
        "escalation: {planner: planner, policies: [policy.yaml]}\n")
    return shoal.load_graph(path)


def _trace(graph: Graph) -> shoal.NodeTrace:
    result = asyncio.run(graph.arun(SURE, id="r1"))
    return next(t for t in result.nodes if t.node == "triage")


def test_a_promoted_version_runs_behind_its_own_thresholds(graph: Graph) -> None:
    before = _trace(graph)
    assert before.version == "v1" and not before.escalate  # a sure appointment stays local
    assert graph.refresh_models() == []  # nothing in the store yet

    registry = SqliteModelRegistry(graph.outbox_path)
    # The same model file as v2, but thresholds that send everything to the planner: only the
    # thresholds can change the decision.
    registry.register(graph="versions-test", node="triage", model_path=str(TRIAGE),
                      router_path=None, parent="v1",
                      lineage={"rule": {"below": 1.0, "critical": {"emergency": 0.0}}})
    registry.add_event(graph="versions-test", node="triage", action="promote", version="v2")
    assert graph.refresh_models() == ["triage"]
    assert graph.model_versions() == {"triage": "v2"}
    after = _trace(graph)
    assert after.version == "v2"
    assert after.escalate and after.critical == "emergency"  # P(emergency) >= the v2 floor 0
    assert graph.refresh_models() == []  # unchanged store: nothing rebuilt

    registry.add_event(graph="versions-test", node="triage", action="rollback", version="v1")
    assert graph.refresh_models() == ["triage"]
    back = _trace(graph)
    assert back.version == "v1" and not back.escalate
