"""The learning loop from the command line and in a running ``shoal serve``, on the real models.

A graph of the healthcare cascade's first three nodes (real guard, real masker, real ONNX triage)
escalates to the oracle planner (``benchmarks/oracle_planner.py``, the test double that answers
the gold label, over loopback). One module-scoped store goes through the whole cycle:

run (escalations answered, ledger filled) -> ``shoal learn`` (v2) -> ``shoal shadow start`` ->
run again (shadow records, outputs unchanged) -> ``shoal shadow report`` -> ``shoal promote`` (the
gate passes) -> a run on v2 -> ``shoal rollback`` -> a refused promotion of a candidate that
lost emergency recall -> ``shoal serve`` following a promotion and a rollback without a restart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from benchmarks.oracle_planner import OracleServer, read_records, serve_oracle
from prometheus_client.parser import text_string_to_metric_families

from shoal.models.local_server import HOST, free_port
from shoal.policies.escalation import SqliteLedger, SqliteModelRegistry
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HEALTH = REPO / "examples" / "healthcare"
GRAPH_NAME = "learning-loop-test"
PER_CLASS = 12
"""Records per label in the sample the graph runs on: 84 messages."""

POLICY = """\
escalation: 1
name: learning-loop-test
nodes:
  guard: {on_flag: false}
  triage:
    below: 0.6
    critical:
      emergency: {floor: 0.1336, min_recall: 0.99, action: escalate,
                  red_flags: clinical_red_flags}
budget: {max_share: 0.6, window: 200}
"""

GRAPH = f"""\
shoal: 1
name: {GRAPH_NAME}
models:
  guard: {{kind: onnx-classifier, path: {HEALTH / 'models' / 'guard.onnx'}}}
  triage: {{kind: onnx-classifier, path: {HEALTH / 'models' / 'triage.onnx'}}}
  planner: {{kind: openai, base_url: "${{SHOAL_PLANNER_URL}}", model: oracle, max_retries: 0}}
packs: [hipaa_safe_harbor]
nodes:
  guard: {{agent: input_guard, model: guard}}
  mask: {{agent: privacy_masker, pack: hipaa_safe_harbor}}
  triage:
    agent: classifier
    model: triage
    learn: {{train: [{HEALTH / 'data' / 'train.jsonl'},
                     {HEALTH / 'data' / 'lookalikes_train.jsonl'}],
             eval: {HEALTH / 'data' / 'dev.jsonl'},
             min_shadow: 5, ledger_weight: 10, accuracy_tolerance: 0.05, target_accuracy: 0.9}}
edges: [guard -> mask -> triage]
output: triage
escalation:
  planner: planner
  policies: [policy.yaml]
"""


@dataclass
class Loop:
    tmp: Path
    graph: Path
    sample: Path
    env: dict[str, str]
    oracle: OracleServer

    def shoal(self, *args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shoal.cli", *args], capture_output=True,
                              text=True, env=self.env, cwd=self.tmp, timeout=timeout,
                              check=False)

    def run(self, name: str) -> dict[str, dict[str, Any]]:
        out = self.tmp / f"{name}.jsonl"
        done = self.shoal("run", str(self.graph), "--input", str(self.sample), "--output",
                          str(out), "--no-progress")
        assert done.returncode == 0, done.stderr[-3000:]
        rows = [json.loads(line) for line in out.read_text().splitlines() if line]
        return {r["id"]: next(n for n in r["nodes"] if n["node"] == "triage") for r in rows
                if any(n["node"] == "triage" for n in r["nodes"])}

    @property
    def store(self) -> Path:
        return self.tmp / "outbox.sqlite"


def _sample(path: Path) -> None:
    rows = [json.loads(line) for line in (HEALTH / "data" / "test.jsonl").read_text()
            .splitlines() if line]
    picked: list[dict[str, Any]] = []
    for label in sorted({r["label"] for r in rows}):
        picked += [r for r in rows if r["label"] == label][:PER_CLASS]
    path.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n"
                            for r in picked))


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    tmp = tmp_path_factory.mktemp("learning")
    (tmp / "policy.yaml").write_text(POLICY)
    graph = tmp / "graph.yaml"
    graph.write_text(GRAPH)
    sample = tmp / "sample.jsonl"
    _sample(sample)
    with serve_oracle(read_records(HEALTH / "data" / "test.jsonl")) as oracle:
        env = {**os.environ, "SHOAL_PLANNER_URL": oracle.base_url,
               "SHOAL_OUTBOX": str(tmp / "outbox.sqlite"),
               "SHOAL_AUDIT_LOG": str(tmp / "audit.jsonl")}
        yield Loop(tmp, graph, sample, env, oracle)


@pytest.fixture(scope="module")
def first(loop: Loop) -> dict[str, dict[str, Any]]:
    return loop.run("first")


@pytest.fixture(scope="module")
def learned(loop: Loop, first: dict[str, dict[str, Any]]) -> str:
    done = loop.shoal("learn", str(loop.graph), "--node", "triage")
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def shadowed(loop: Loop, learned: str) -> dict[str, dict[str, Any]]:
    done = loop.shoal("shadow", "start", str(loop.graph), "--node", "triage", "--version", "v2")
    assert done.returncode == 0, done.stderr
    return loop.run("shadowed")


def test_every_answered_escalation_is_one_training_line(loop: Loop,
                                                        first: dict[str, dict[str, Any]]):
    answered = [i for i, t in first.items() if t["escalated"]]
    assert len(answered) >= 10  # the sample has hard cases
    out = loop.tmp / "ledger.jsonl"
    done = loop.shoal("ledger", "export", str(loop.graph), "--node", "triage", "-o", str(out))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines() if line]
    assert len(lines) == len(answered)
    assert {line["source"] for line in lines} == {"planner"}
    # Each line is the planner's (the oracle's: gold) label for that record.
    gold = {r.id: r.label for r in read_records(HEALTH / "data" / "test.jsonl")}
    by_text = {e.text: e.record_id for e in SqliteLedger(loop.store).entries()}
    assert all(line["label"] == gold[by_text[line["text"]]] for line in lines)


def test_learn_writes_a_version_with_its_lineage(loop: Loop, learned: str):
    assert "v2 of triage (parent v1)" in learned
    models = loop.tmp / "models" / "triage"
    assert (models / "v2.onnx").is_file() and (models / "v2.onnx.json").is_file()
    lineage = json.loads((models / "v2.lineage.json").read_text())
    assert lineage["parent"] == "v1" and lineage["version"] == "v2"
    # Both base files, refused kinds included (they stay in the training data).
    assert lineage["data"]["base"]["n"] == 1013 + 355
    assert lineage["data"]["base"]["file"] == "train.jsonl + lookalikes_train.jsonl"
    assert lineage["data"]["ledger"]["planner"] >= 10
    assert lineage["eval"]["n"] == 267
    assert set(lineage["metrics"]) == {"champion", "candidate"}
    assert lineage["metrics"]["candidate"]["critical_recall"]["emergency"] is not None
    # Its own thresholds: the emergency floor chosen out of fold (recall >= min_recall on its
    # training rows), the confidence threshold for the node's target on the frozen split.
    assert 0.0 < lineage["rule"]["critical"]["emergency"] < 1.0
    floor = lineage["rule_choice"]["critical"]["emergency"]
    assert floor["met"] and floor["recall_out_of_fold"] >= 0.99
    assert 0.0 <= lineage["rule"]["below"] <= 1.0
    assert lineage["rule_choice"]["below"]["cascade_accuracy"] >= 0.9
    # Nothing that runs changed: the champion is still the graph file's model.
    assert SqliteModelRegistry(loop.store).champion(GRAPH_NAME, "triage") == "v1"


def test_a_shadow_changes_no_output(first: dict[str, dict[str, Any]],
                                    shadowed: dict[str, dict[str, Any]]):
    assert shadowed.keys() == first.keys()
    for record, trace in shadowed.items():
        assert trace["version"] == "v1"
        assert trace["shadow"]["version"] == "v2"
        assert trace["label"] == first[record]["label"]
        assert trace["escalated"] == first[record]["escalated"]


def test_shadow_report_and_promotion(loop: Loop, shadowed: dict[str, dict[str, Any]]):
    report = loop.shoal("shadow", "report", str(loop.graph), "--node", "triage")
    assert report.returncode == 0, report.stderr
    assert "shadow v2 beside v1" in report.stdout
    stats = SqliteModelRegistry(loop.store).shadow_records(GRAPH_NAME, "triage", "v2")
    assert len(stats) == len(shadowed)

    done = loop.shoal("promote", str(loop.graph), "--node", "triage", "--version", "v2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout
    assert "recall:emergency (critical)" in done.stdout
    assert "v2 is the champion (was v1)" in done.stdout
    registry = SqliteModelRegistry(loop.store)
    assert registry.champion(GRAPH_NAME, "triage") == "v2"
    assert registry.shadow(GRAPH_NAME, "triage") is None  # a promoted shadow stops shadowing

    on_v2 = loop.run("on-v2")
    assert {t["version"] for t in on_v2.values()} == {"v2"}

    back = loop.shoal("rollback", str(loop.graph), "--node", "triage")
    assert back.returncode == 0, back.stderr
    assert "rolled back from v2 to v1" in back.stdout
    assert registry.champion(GRAPH_NAME, "triage") == "v1"
    audit = [json.loads(line) for line in (loop.tmp / "audit.jsonl").read_text().splitlines()]
    decisions = [r["decision"] for r in audit if r["agent"].startswith("model_")]
    assert decisions[-2:] == ["promote:v2:over:v1", "rollback:v2:to:v1"]
    verify = loop.shoal("audit", "verify", str(loop.tmp / "audit.jsonl"))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_the_gate_refuses_a_candidate_that_loses_emergency_recall(loop: Loop, learned: str):
    """A model that never says emergency (emergencies labelled symptom_report in its training
    data) must never go live, whatever else it does."""
    from shoal.models.train import train_text_classifier

    rows = [json.loads(line) for line in (HEALTH / "data" / "train.jsonl").read_text()
            .splitlines() if line]
    data = loop.tmp / "bad-train.jsonl"
    data.write_text("".join(json.dumps({"id": r["id"], "text": r["text"], "label": (
        "symptom_report" if r["label"] == "emergency" else r["label"])}) + "\n" for r in rows))
    bad = loop.tmp / "bad.onnx"
    train_text_classifier(data, bad)
    registry = SqliteModelRegistry(loop.store)
    registry.register(graph=GRAPH_NAME, node="triage", model_path=str(bad), router_path=None,
                      parent="v1", lineage={"note": "test: emergencies relabelled"},
                      version="v9")
    before = registry.champion(GRAPH_NAME, "triage")
    done = loop.shoal("promote", str(loop.graph), "--node", "triage", "--version", "v9")
    assert done.returncode == 1, done.stdout + done.stderr
    failing = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    # Every dev emergency carries a red flag, so the node's recall stays 1 whatever the model
    # does; the model's own part (local label or floor) is what drops.
    assert any("recall:emergency (model+floor)" in line and "no override" in line
               for line in failing)
    assert "v9 refused" in done.stderr
    assert registry.champion(GRAPH_NAME, "triage") == before


# --- shoal serve follows promotions ---------------------------------------------------------


def _versions(text: str) -> dict[str, str]:
    return {s.labels["node"]: s.labels["version"]
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "shoal_model_version_info"}


def test_serve_follows_promotion_and_rollback_without_restart(
        loop: Loop, shadowed: dict[str, dict[str, Any]]):
    registry = SqliteModelRegistry(loop.store)
    if registry.champion(GRAPH_NAME, "triage") != "v1":  # run alone: start from v1
        assert loop.shoal("rollback", str(loop.graph), "--node", "triage").returncode == 0
    port = free_port()
    log = loop.tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shoal.cli", "serve", str(loop.graph), "--host", HOST,
             "--port", str(port), "--no-auth"], stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, env=loop.env, cwd=loop.tmp)
    url = f"http://{HOST}:{port}"
    try:
        with httpx.Client(base_url=url, timeout=120.0, trust_env=False) as client:
            deadline = time.monotonic() + 240
            while True:
                assert proc.poll() is None, log.read_text()[-3000:]
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)

            def version() -> str:
                result = client.post("/v1/runs", json={"text": "Can I move my appointment "
                                                               "to Friday?"}).json()
                return next(n["version"] for n in result["nodes"] if n["node"] == "triage")

            assert version() == "v1"
            assert _versions(client.get("/metrics").text) == {"triage": "v1"}
            promoted = loop.shoal("promote", str(loop.graph), "--node", "triage",
                                  "--version", "v2")
            assert promoted.returncode == 0, promoted.stdout + promoted.stderr
            time.sleep(1.2)  # the server checks the store at most once a second
            assert version() == "v2"
            assert _versions(client.get("/metrics").text) == {"triage": "v2"}
            assert loop.shoal("rollback", str(loop.graph), "--node", "triage").returncode == 0
            time.sleep(1.2)
            assert version() == "v1"
            assert _versions(client.get("/metrics").text) == {"triage": "v1"}
            assert proc.poll() is None  # one process throughout: no restart
    finally:
        proc.terminate()
        proc.wait(timeout=60)
