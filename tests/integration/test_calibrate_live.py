"""``shoal calibrate`` with the live planner: a real llama_cpp.server on 127.0.0.1 answers for
every record, and the metrics compare its answers with the local node's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shoal.cli import app
from shoal.policies.escalation import load_policy
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HEALTH = REPO / "examples" / "healthcare"


def test_live_calibration_asks_the_planner_for_every_record(
        tmp_path: Path, planner_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_PLANNER_URL", planner_server.base_url)
    monkeypatch.setenv("SHOAL_PLANNER_MODEL", planner_server.model_id)
    data = tmp_path / "few.jsonl"
    data.write_text("\n".join((HEALTH / "data" / "dev.jsonl").read_text().splitlines()[:10]))
    report, policy = tmp_path / "r.json", tmp_path / "p.yaml"
    result = CliRunner().invoke(app, ["calibrate", str(HEALTH / "triage.yaml"), "--data",
                                      str(data), "-o", str(policy), "--json", str(report),
                                      "-c", "2"])
    assert result.exit_code == 0, result.output
    assert "live planner" in result.stdout
    summary = json.loads(report.read_text())
    assert summary["n"] == 10
    # Every record got a planner verdict (right, wrong, or failed and counted wrong).
    assert 0.0 <= summary["planner_quality"] <= 1.0
    assert summary["planner_failed"] <= 10
    assert load_policy(policy).nodes["triage"].below is not None
