"""The outbox in a real Postgres (``SHOAL_DB``), shared by processes: escalations queued by a
batch while the planner is down, then two ``shoal outbox drain`` processes at once against a real
llama_cpp.server behind a recording proxy. The planner answers each escalation once per attempt,
never twice, and none is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoal.cli import app
from shoal.models.local_server import free_port, serve_embedded
from shoal.policies.escalation import PostgresLedger, PostgresOutbox
from tests.conftest import REPO
from tests.integration.recording_proxy import RecordingProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HEALTH = REPO / "examples" / "healthcare"
SHOAL = Path(sys.executable).parent / "shoal"
runner = CliRunner()


def _triage_graph(tmp_path: Path) -> Path:
    """The healthcare triage graph, every message escalated (so the outbox gets them all)."""
    text = (HEALTH / "triage.yaml").read_text().replace(
        "policies: [policies/triage-calibrated.yaml]", "policies: []").replace(
        "path: models/triage.onnx", f"path: {HEALTH / 'models' / 'triage.onnx'}").replace(
        "escalate_below: 0.5", "escalate_below: 0.99").replace(
        # The outage opens the planner's circuit, shared through SHOAL_DB, and the drains would
        # wait out its cooldown (tests/unit/test_outbox.py): this test is about the outbox.
        "    timeout_s: 60\n", "    timeout_s: 60\n    circuit_failures: 1000\n")
    path = tmp_path / "triage.yaml"
    path.write_text(text)
    return path


def _messages(n: int) -> list[dict[str, str]]:
    seen: set[str] = set()
    out = []
    for line in (HEALTH / "data" / "test.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["text"] not in seen and len(out) < n:
            seen.add(row["text"])
            out.append({"id": row["id"], "text": row["text"]})
    return out


def test_two_drains_on_one_postgres_send_each_escalation_once(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens: the planner is down while the batch runs
    monkeypatch.setenv("SHOAL_PLANNER_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("SHOAL_DB", postgres_url)
    graph = _triage_graph(tmp_path)
    rows = _messages(12)
    data, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ran = runner.invoke(app, ["run", str(graph), "--input", str(data), "--output", str(out),
                              "--no-progress", "-c", "4"])
    assert ran.exit_code == 0, ran.output
    box = PostgresOutbox(postgres_url)
    queued = box.rows(status="pending")
    assert len(queued) >= len(rows) - 2  # the guard-free triage graph escalates (nearly) all
    assert not (tmp_path / "outbox.sqlite").exists()  # nothing went to the local file
    listed = runner.invoke(app, ["outbox", "list", "--graph", str(graph)])
    assert listed.exit_code == 0 and f"pending: {len(queued)}" in listed.stdout

    with serve_embedded(port=port, warmup=True) as planner, \
            RecordingProxy(planner.base_url) as proxy:
        env = {**os.environ, "SHOAL_DB": postgres_url, "SHOAL_PLANNER_URL": proxy.base_url}
        drains = [subprocess.Popen([str(SHOAL), "outbox", "drain", str(graph)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for _ in range(2)]
        outputs = [d.communicate(timeout=600) for d in drains]
        bodies = [b.decode() for b in proxy.answered]
    for drain, (stdout, stderr) in zip(drains, outputs, strict=True):
        assert drain.returncode in (0, 1), stdout + stderr
        assert "sent" in stdout
    after = {r.id: r for r in box.rows()}
    assert set(after) == {r.id for r in queued}  # none lost
    for row in after.values():
        # What the planner answered for this row: one request per attempt of the drains.
        asked = sum(json.dumps(row.text)[1:-1] in body for body in bodies)
        expected = (row.attempts - 1) + (1 if row.status == "done" else 0)
        assert asked == expected, (row.record_id, row.status, row.attempts, asked)
        assert row.status in {"done", "pending", "failed"}
    done = {r.record_id for r in after.values() if r.status == "done"}
    assert len(done) >= len(after) // 2
    # Each drained answer became one ledger entry, in the same database.
    entries = PostgresLedger(postgres_url).entries(graph="healthcare-triage")
    assert sorted(e.record_id for e in entries) == sorted(done)
