"""``shoal calibrate`` with the live planner: a real llama_cpp.server on 127.0.0.1 (behind a
recording proxy) answers for every record, and the metrics compare its answers with the local
node's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from shoal.cli import app
from shoal.graphs import calibration
from shoal.graphs.results import RunResult
from shoal.policies.escalation import load_policy
from tests.conftest import REPO
from tests.integration.recording_proxy import RecordingProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HEALTH = REPO / "examples" / "healthcare"
N = 10
# The planner is a 135M model: now and then its reply is not valid JSON (a failed call, counted
# wrong). On these 10 records it fails on about one; most must be real answers.
MAX_FAILED = 3


def test_live_calibration_asks_the_planner_for_every_record(
        tmp_path: Path, planner_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_PLANNER_MODEL", planner_server.model_id)
    lines = (HEALTH / "data" / "dev.jsonl").read_text().splitlines()[:N]
    gold = {r["id"]: r["label"] for r in map(json.loads, lines)}
    labels = set(yaml.safe_load((HEALTH / "triage.yaml").read_text())["nodes"]["triage"]["labels"])
    data = tmp_path / "few.jsonl"
    data.write_text("\n".join(lines))
    # Each record's run as calibrate scored it (a spy: calibrate's own function still decides).
    runs: dict[str, RunResult] = {}
    example_of = calibration.example_of

    def spy(result: RunResult, *args: Any) -> Any:
        runs[result.id] = result
        return example_of(result, *args)

    monkeypatch.setattr(calibration, "example_of", spy)
    report, policy = tmp_path / "r.json", tmp_path / "p.yaml"
    with RecordingProxy(planner_server.base_url) as proxy:
        monkeypatch.setenv("SHOAL_PLANNER_URL", proxy.base_url)
        result = CliRunner().invoke(app, ["calibrate", str(HEALTH / "triage.yaml"), "--data",
                                          str(data), "-o", str(policy), "--json", str(report),
                                          "-c", "2"])
    assert result.exit_code == 0, result.output
    assert "live planner" in result.stdout
    summary = json.loads(report.read_text())
    assert summary["n"] == N and summary["skipped"] == 0
    assert sorted(runs) == sorted(gold)

    # The requests went over HTTP to the real server, at least one per record.
    chats = [json.loads(b) for b in proxy.bodies if b]
    chats = [c for c in chats if "messages" in c]
    assert len(chats) >= N
    assert all(c["model"] == planner_server.model_id for c in chats)

    # Per record: the planner's answer replaced the local one, or the call failed and said so.
    answered: dict[str, str | None] = {}
    for rid, run in runs.items():
        trace = next(t for t in run.nodes if t.node == "triage")
        assert trace.escalate, rid  # live calibration forces every record to the planner
        if trace.escalated:
            assert run.status == "escalated", rid
            assert run.output["model"] == planner_server.model_id, rid
            assert run.output["label"] == trace.label and trace.label in labels, rid
            assert run.output["local"]["label"] in labels, rid
            answered[rid] = trace.label
        else:
            assert trace.reason is not None and trace.reason.startswith("planner failed ("), (
                rid, trace.reason)
    failed = N - len(answered)
    assert summary["planner_failed"] == failed
    assert failed <= MAX_FAILED, f"{failed} of {N} planner calls failed"
    # The reported planner accuracy is the planner's own answers scored against the gold labels.
    right = sum(label == gold[rid] for rid, label in answered.items())
    assert summary["planner_quality"] == pytest.approx(right / N)
    assert load_policy(policy).nodes["triage"].below is not None
