"""Two ``shoal serve`` replicas of one graph on one Postgres (``SHOAL_DB``), under load at once.

The planner is down while they serve: every escalation the shared budget admits waits in the
shared outbox. Then a real llama_cpp.server comes up behind a recording proxy and two ``shoal
outbox drain`` processes send the queue. The test checks that the planner share held across both
replicas, that both wrote one unbroken audit chain, that each queued escalation reached the
planner once and none was lost, and that each replica's /metrics counts its own requests."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shoal.graphs.results import RunResult
from shoal.models.local_server import HOST, free_port, serve_embedded
from shoal.policies.audit import PostgresAuditLog
from shoal.policies.escalation import PostgresLedger, PostgresOutbox
from tests.integration.recording_proxy import RecordingProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HEALTH = Path(__file__).resolve().parents[2] / "examples" / "healthcare"
GRAPH_NAME = "replicas"
# 3 planner calls in any 50 decisions; 30 requests make 90 decisions, fewer than the two windows
# that pruning keeps, so every decision stays in the table for the test to read.
WINDOW, MAX_SHARE = 50, 0.06
ALLOWED = math.floor(MAX_SHARE * WINDOW)  # planner calls in any WINDOW consecutive decisions
DECIDING_NODES = ("triage", "reply", "comply")  # one budget decision each per request
SENT = {"a": 18, "b": 12}  # requests per replica: different, so their counts cannot be swapped
WARMUP_ID = "shoal-serve-warmup"
READY_TIMEOUT_S = 240.0
LABELS = ("appointment", "billing", "emergency", "injection", "off_topic", "prescription_refill",
          "symptom_report")

GRAPH_YAML = """\
shoal: 1
name: {name}
models:
  triage: {{kind: onnx-classifier, path: {triage}}}
  planner:
    kind: openai
    base_url: ${{SHOAL_PLANNER_URL}}
    model: ${{SHOAL_PLANNER_MODEL:-smollm2-135m-instruct}}
    timeout_s: 60
    max_retries: 0
    # The planner is down while the replicas serve; a circuit opened then (shared in Postgres)
    # would turn the drains away until its cooldown. This test is about the queue, not that.
    circuit_failures: 1000
packs: [hipaa_safe_harbor]
nodes:
  mask: {{agent: privacy_masker, pack: hipaa_safe_harbor}}
  triage:
    agent: classifier
    model: triage
    labels: [{labels}]
    escalate_below: 0.99   # nearly every message wants the planner
  reply:
    agent: template_reply
    from_node: triage
    default: "Thanks for your message. A member of the care team will get back to you."
    templates:
{templates}
  comply:
    agent: compliance_checker
    target: reply
    emergency_from: triage
    checks: [no_identifiers, emergency_routed]
edges:
  - mask -> triage -> reply -> comply
escalation:
  planner: planner
  max_tokens: 160
  max_share: {share}
  window: {window}
"""


def _graph(tmp: Path) -> Path:
    templates = "\n".join(
        f'      {label}: "'
        + ("If this is an emergency, call 911 or your local emergency services now."
           if label == "emergency" else f"Thank you, your {label} message reached the team.")
        + '"' for label in LABELS)
    path = tmp / "graph.yaml"
    path.write_text(GRAPH_YAML.format(
        name=GRAPH_NAME, triage=json.dumps(str(HEALTH / "models" / "triage.onnx")),
        labels=", ".join(LABELS), templates=templates, share=MAX_SHARE, window=WINDOW))
    return path


def _messages(n: int) -> list[str]:
    texts: list[str] = []
    for line in (HEALTH / "data" / "test.jsonl").read_text(encoding="utf-8").splitlines():
        text = json.loads(line)["text"]
        if text not in texts:
            texts.append(text)
        if len(texts) == n:
            break
    return texts


@dataclass
class Replica:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Setup:
    graph: Path
    url: str
    """The database both replicas share."""
    planner_port: int
    """Where the replicas look for the planner; nothing listens until the test starts one."""
    env: dict[str, str]
    replicas: dict[str, Replica]
    later: contextlib.ExitStack
    """What the test starts itself (the planner, the proxy), closed in teardown."""
    tmp: Path


def _wait_ready(replicas: list[Replica]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = list(replicas)
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while waiting:
            for replica in list(waiting):
                if replica.proc.poll() is not None:
                    raise AssertionError(f"replica {replica.name} exited "
                                         f"{replica.proc.returncode}:\n{replica.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{replica.url}/readyz").status_code == 200:
                        waiting.remove(replica)
            if waiting and time.monotonic() > deadline:
                raise AssertionError(f"not ready in {READY_TIMEOUT_S} s:\n"
                                     + "\n".join(r.log_tail() for r in waiting))
            time.sleep(0.1)


@pytest.fixture
def setup(tmp_path: Path, postgres_url: str) -> Iterator[Setup]:
    """Two ``shoal serve`` processes of one graph on one database, the planner down; both
    replicas, and whatever the test started later, stopped in teardown."""
    graph = _graph(tmp_path)
    planner_port = free_port()
    env = {**os.environ, "SHOAL_DB": postgres_url,
           "SHOAL_PLANNER_URL": f"http://{HOST}:{planner_port}/v1",
           "SHOAL_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    replicas: dict[str, Replica] = {}
    with contextlib.ExitStack() as later:
        try:
            for name in SENT:
                port = free_port()
                log = tmp_path / f"serve-{name}.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "shoal.cli", "serve", str(graph), "--host", HOST,
                         "--port", str(port), "--no-auth", "-c", "4"],
                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                        env=env, cwd=tmp_path)
                replicas[name] = Replica(name, proc, f"http://{HOST}:{port}", log)
            _wait_ready(list(replicas.values()))
            yield Setup(graph, postgres_url, planner_port, env, replicas, later, tmp_path)
        finally:
            for replica in replicas.values():
                replica.stop()


def _post(url: str, text: str, record_id: str) -> RunResult:
    with httpx.Client(timeout=300.0, trust_env=False) as client:
        response = client.post(f"{url}/v1/runs", json={"text": text, "id": record_id})
    assert response.status_code == 200, response.text[:500]
    return RunResult.model_validate(response.json())


def _metrics(url: str) -> list[Any]:
    """The samples of a replica's /metrics."""
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        response = client.get(f"{url}/metrics")
    assert response.status_code == 200
    return [s for family in text_string_to_metric_families(response.text)
            for s in family.samples]


def test_two_replicas_share_budget_audit_and_outbox(setup: Setup) -> None:
    texts = _messages(sum(SENT.values()))
    jobs: list[tuple[str, str, str]] = []  # (replica, record id, text), the replicas interleaved
    counters = dict.fromkeys(SENT, 0)
    for text in texts:
        name = min((n for n in SENT if counters[n] < SENT[n]),
                   key=lambda n: counters[n] / SENT[n])
        jobs.append((name, f"{name}-{counters[name]}", text))
        counters[name] += 1
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(
            lambda job: (job[0], _post(setup.replicas[job[0]].url, job[2], job[1])), jobs))
    by_id = {result.id: (name, result) for name, result in results}
    assert sorted(by_id) == sorted(record_id for _, record_id, _ in jobs)
    triage = {rid: next(n for n in result.nodes if n.node == "triage")
              for rid, (_, result) in by_id.items()}

    # (a) The planner share held over both replicas: every WINDOW consecutive decisions, in the
    # order Postgres took them from either process, hold at most ALLOWED planner calls.
    with psycopg.connect(setup.url) as conn:
        wants = [bool(w) for (w,) in conn.execute(
            "SELECT wants FROM shoal_budget_decisions WHERE graph = %s ORDER BY seq",
            (GRAPH_NAME,))]
    assert len(wants) == len(DECIDING_NODES) * len(jobs)  # both replicas decided in Postgres
    worst = max(sum(wants[i:i + WINDOW]) for i in range(len(wants) - WINDOW + 1))
    assert worst <= ALLOWED, (worst, ALLOWED)
    refused = [rid for rid, node in triage.items() if "budget_exhausted" in (node.reason or "")]
    assert {rid.split("-")[0] for rid in refused} == set(SENT)  # the cap held back both
    assert sum(wants) >= ALLOWED  # and the share was used, not starved

    # Every call the budget admitted waits in the shared outbox, queued for the request that
    # made it (unless the egress scan kept the text home), and nothing else does.
    box = PostgresOutbox(setup.url)
    queued = box.rows(graph=GRAPH_NAME)
    assert {r.status for r in queued} == {"pending"}
    pending = {node.pending: rid for rid, node in triage.items() if node.pending}
    assert {r.id: r.record_id for r in queued} == pending
    blocked = [rid for rid, node in triage.items() if "egress blocked" in (node.reason or "")]
    assert len(queued) + len(blocked) == sum(wants)

    # (d) Each replica's /metrics counts its own requests, no one else's; the outbox gauge reads
    # the shared queue, the same for both.
    for name, replica in setup.replicas.items():
        samples = _metrics(replica.url)
        runs = {s.labels["status"]: s.value for s in samples if s.name == "shoal_runs_total"}
        assert sum(runs.values()) == SENT[name], (name, runs)
        queued_here = sum(1 for rid, (n, _) in by_id.items() if n == name and triage[rid].pending)
        escalations = {(s.labels["node"], s.labels["outcome"]): s.value for s in samples
                       if s.name == "shoal_escalations_total"}
        assert escalations.get(("triage", "pending"), 0) == queued_here, (name, escalations)
        [outbox_gauge] = [s.value for s in samples if s.name == "shoal_outbox_pending"]
        assert outbox_gauge == len(queued)

    # (b) One unbroken audit chain holding every compliance decision of both replicas (and
    # each replica's start-up warm-up run).
    verified = subprocess.run([sys.executable, "-m", "shoal.cli", "audit", "verify"],
                              capture_output=True, text=True, env=setup.env, cwd=setup.tmp,
                              timeout=120, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    found = re.search(r": ok, (\d+) record\(s\)", verified.stdout)
    assert found is not None, verified.stdout
    assert int(found.group(1)) == len(jobs) + len(SENT)
    exported = setup.tmp / "chain.jsonl"
    assert PostgresAuditLog(setup.url).export(exported) == len(jobs) + len(SENT)
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    assert Counter(r["record_id"] for r in records) == Counter(
        [record_id for _, record_id, _ in jobs] + [WARMUP_ID] * len(SENT))
    assert {r["node"] for r in records} == {"comply"}
    assert not (setup.tmp / "audit.jsonl").exists()  # the chain is in Postgres only

    # (c) The planner comes up; two drains at once send the queue. Each queued escalation
    # reaches the planner once per attempt, and none is lost. (The planner answers at
    # temperature 0, so a row it answered malformed would get the same answer again: one round.)
    planner = setup.later.enter_context(serve_embedded(port=setup.planner_port, warmup=True))
    proxy = setup.later.enter_context(RecordingProxy(planner.base_url))
    env = {**setup.env, "SHOAL_PLANNER_URL": proxy.base_url}
    _drain_twice(setup, env)
    after = {r.id: r for r in box.rows(graph=GRAPH_NAME)}
    assert set(after) == set(pending)  # none lost, none added
    # done, or pending again / given up after malformed answers; never left in flight
    assert {r.status for r in after.values()} <= {"done", "pending", "failed"}
    # Every request the planner got was for one queued escalation: it saw only what the shared
    # budget admitted. (A drain's first request may be refused once: the client then falls back
    # from json_schema to json_object and sends it again; only answered requests count below.)
    asked_rows = [[r.id for r in after.values() if json.dumps(r.text)[1:-1] in b.decode()]
                  for b in proxy.bodies]
    assert all(len(ids) == 1 for ids in asked_rows), asked_rows
    assert len({ids[0] for ids in asked_rows}) <= ALLOWED * math.ceil(len(wants) / WINDOW)
    answered = [b.decode() for b in proxy.answered]
    for row in after.values():
        asked = sum(json.dumps(row.text)[1:-1] in body for body in answered)
        # attempts: the failed one at run time, plus one per malformed answer.
        expected = row.attempts if row.status == "done" else row.attempts - 1
        assert asked == expected, (row.record_id, row.status, row.attempts, asked,
                                   row.last_error)
    done = sorted(r.record_id for r in after.values() if r.status == "done")
    assert len(done) >= len(after) // 2
    entries = PostgresLedger(setup.url).entries(graph=GRAPH_NAME)
    assert sorted(e.record_id for e in entries) == done  # each answer kept once


def _drain_twice(setup: Setup, env: dict[str, str]) -> None:
    """Two ``shoal outbox drain`` processes at once."""
    drains = [subprocess.Popen([sys.executable, "-m", "shoal.cli", "outbox", "drain",
                                str(setup.graph)], env=env, cwd=setup.tmp,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    try:
        outputs = [d.communicate(timeout=600) for d in drains]
    finally:
        for drain in drains:
            if drain.poll() is None:
                drain.kill()
                drain.wait()
    for drain, (stdout, stderr) in zip(drains, outputs, strict=True):
        # 1: a malformed answer (its row waits for the next drain); never a planner it missed.
        assert drain.returncode in (0, 1), stdout + stderr
        assert "sent" in stdout and "planner unavailable" not in stderr, stdout + stderr
