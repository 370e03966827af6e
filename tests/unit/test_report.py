"""`shoal report`: one Summary over a results JSONL, as tables or one JSON object."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from shoal.cli import app
from shoal.graphs.report import Summary, render_summary, summarize_file
from shoal.graphs.results import STATUSES, RunResult

runner = CliRunner()


def _node(name: str, *, escalate: bool = False, escalated: bool = False,
          reason: str | None = None) -> dict[str, Any]:
    return {"node": name, "agent": "a", "confidence": 0.5, "escalate": escalate,
            "escalated": escalated, "reason": reason, "latency_ms": 1.0}


def _cost(usd: float, estimate: float, *, local_ms: float, planner_ms: float = 0.0,
          calls: int = 0, tokens: int = 0) -> dict[str, Any]:
    return {"local_ms": local_ms, "planner_ms": planner_ms, "planner_calls": calls,
            "planner_tokens": tokens, "planner_usd": usd, "all_planner_usd_estimate": estimate}


# Five runs, one per status. Latencies (error excluded): 10, 30, 20, 40 -> nearest-rank p50 20,
# p95 40 (an interpolating median would say 25). Spent 0.02 of an all-planner 0.05 -> 60 % saved.
KNOWN: list[dict[str, Any]] = [
    {"id": "a", "status": "ok", "output": "fine", "latency_ms": 10.0,
     "nodes": [_node("triage"), _node("reply")],
     "cost": _cost(0.0, 0.01, local_ms=10.0)},
    {"id": "b", "status": "escalated", "output": "planned", "latency_ms": 30.0,
     "nodes": [_node("triage", escalate=True, escalated=True)],
     "cost": _cost(0.02, 0.02, local_ms=5.0, planner_ms=25.0, calls=1, tokens=500)},
    {"id": "c", "status": "pending_escalation", "output": None, "latency_ms": 20.0,
     "nodes": [_node("triage", escalate=True, reason="budget_exhausted: 0.02 of 0.02 USD")],
     "cost": _cost(0.0, 0.01, local_ms=20.0)},
    {"id": "d", "status": "refused", "output": None, "latency_ms": 40.0,
     "nodes": [_node("triage", escalate=True, reason="planner: egress blocked by policy")],
     "cost": _cost(0.0, 0.01, local_ms=40.0)},
    {"id": "e", "status": "error", "output": None, "latency_ms": 5.0, "nodes": [],
     "error": {"code": "agent_failed", "message": "boom", "node": "triage"}},
]


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _report_json(path: Path, *, exit_code: int = 0) -> dict[str, Any]:
    result = runner.invoke(app, ["report", str(path), "--json"])
    assert result.exit_code == exit_code, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _report_text(path: Path, *, exit_code: int = 0) -> str:
    result = runner.invoke(app, ["report", str(path)])
    assert result.exit_code == exit_code, result.output
    return result.stdout


def test_json_gives_exact_shares_percentiles_and_saving(tmp_path: Path):
    data = _report_json(_write(tmp_path / "out.jsonl", KNOWN))
    assert set(data) == {"runs", "unreadable", "statuses", "nodes", "critical", "latency_ms",
                         "cost"}
    assert data["runs"] == 5
    assert data["unreadable"] == 0
    assert list(data["statuses"]) == list(STATUSES)
    assert all(s == {"runs": 1, "share": pytest.approx(0.2)} for s in data["statuses"].values())
    assert data["latency_ms"] == {"runs": 4, "p50": 20.0, "p95": 40.0}
    cost = data["cost"]
    assert cost["runs_with_cost"] == 4
    assert cost["planner_usd"] == pytest.approx(0.02)
    assert cost["all_planner_usd_estimate"] == pytest.approx(0.05)
    assert cost["saving_percent"] == pytest.approx(60.0)
    assert (cost["planner_calls"], cost["planner_tokens"]) == (1, 500)
    assert (cost["local_ms"], cost["planner_ms"]) == (pytest.approx(75.0), pytest.approx(25.0))


def test_status_shares_count_zeros(tmp_path: Path):
    path = _write(tmp_path / "out.jsonl", [KNOWN[0], {**KNOWN[0], "id": "a2"}, KNOWN[1]])
    statuses = _report_json(path)["statuses"]
    assert statuses["ok"] == {"runs": 2, "share": pytest.approx(2 / 3)}
    assert statuses["refused"] == {"runs": 0, "share": 0.0}


def test_per_node_escalation_and_kept_local_shares(tmp_path: Path):
    path = _write(tmp_path / "out.jsonl", KNOWN)
    triage = _report_json(path)["nodes"]["triage"]
    assert triage == {
        "runs": 4,
        "escalate": 3, "escalate_share": pytest.approx(0.75),
        "escalated": 1, "escalated_share": pytest.approx(0.25),
        "kept_local": 2, "kept_local_share": pytest.approx(0.5),
        "critical": 0, "critical_share": 0.0,
    }
    text = _report_text(path)
    [row] = [line for line in text.splitlines() if "triage" in line]
    assert re.findall(r"\d+(?:\.\d%)?", row) == ["4", "75.0%", "25.0%", "50.0%", "0.0%"]
    assert "p50 20.00 ms, p95 40.00 ms" in text
    assert "60.0%" in text


def test_bad_lines_are_named_counted_and_exit_1(tmp_path: Path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(
        json.dumps(KNOWN[0]).encode() + b"\n"
        + b"not json at all\n"
        + b"\n"
        + b'{"id": "x", "status": "ok", "output": "caf\xe9"}\n'
        + b"[1, 2]\n"
        + b'{"id": "y", "status": "done"}\n'
        + b'{"id": "z", "status": "ok", "latency_ms": NaN}\n'
        + json.dumps(KNOWN[1]).encode() + b"\n"
    )
    result = runner.invoke(app, ["report", str(path), "--json"])
    assert result.exit_code == 1
    named = result.stderr.splitlines()
    assert len(named) == 5, result.stderr
    assert named[0].startswith(f"{path}:2: not valid JSON")
    assert named[1].startswith(f"{path}:4: not valid UTF-8")
    assert named[2] == f"{path}:5: expected a JSON object, got list"
    assert named[3].startswith(f"{path}:6: not a RunResult: status: ")
    assert named[4].startswith(f"{path}:7: not valid JSON: NaN")
    data = json.loads(result.stdout)
    assert data["runs"] == 2
    assert data["unreadable"] == 5
    assert data["statuses"]["escalated"]["runs"] == 1
    text = runner.invoke(app, ["report", str(path)])
    assert text.exit_code == 1
    assert "2 runs, 5 unreadable line(s)" in text.stdout


def test_file_without_cost_fields(tmp_path: Path):
    old = [{k: v for k, v in r.items() if k != "cost"} for r in KNOWN]
    path = _write(tmp_path / "old.jsonl", old)
    data = _report_json(path)
    assert data["runs"] == 5
    assert data["latency_ms"]["p50"] == 20.0
    assert data["cost"]["runs_with_cost"] == 0
    assert data["cost"]["planner_usd"] == 0.0
    assert data["cost"]["saving_percent"] is None
    assert "money: n/a (no cost fields in these results)" in _report_text(path)


def test_empty_file(tmp_path: Path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n", encoding="utf-8")
    data = _report_json(path)
    assert data["runs"] == 0 and data["unreadable"] == 0
    assert all(s == {"runs": 0, "share": None} for s in data["statuses"].values())
    assert data["nodes"] == {}
    assert data["latency_ms"] == {"runs": 0, "p50": None, "p95": None}
    assert data["cost"]["saving_percent"] is None
    assert "latency per run: n/a" in _report_text(path)


def test_saving_is_na_when_the_estimate_is_zero(tmp_path: Path):
    free = [{**r, "cost": _cost(0.0, 0.0, local_ms=3.0)} for r in KNOWN[:2]]
    path = _write(tmp_path / "free.jsonl", free)
    data = _report_json(path)
    assert data["cost"]["runs_with_cost"] == 2
    assert data["cost"]["saving_percent"] is None
    [row] = [line for line in _report_text(path).splitlines() if "saving" in line]
    assert "n/a" in row


def test_output_text_never_reaches_the_report(tmp_path: Path):
    leaky = {**KNOWN[0], "output": {"reply": "CANARY-7731 for Jane Doe"}}
    broken = {"id": "q", "status": "nope", "output": "CANARY-7731", "nodes": "CANARY-7731"}
    path = _write(tmp_path / "out.jsonl", [leaky, broken, KNOWN[1]])
    for args in (["report", str(path)], ["report", str(path), "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1  # the broken line is unreadable, and named
        assert f"{path}:2: not a RunResult" in result.stderr
        assert "CANARY-7731" not in result.stdout
        assert "CANARY-7731" not in result.stderr


def test_missing_file_is_one_line_and_exit_2(tmp_path: Path):
    result = runner.invoke(app, ["report", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2
    assert result.stderr == f"{tmp_path / 'none.jsonl'}: no such file\n"
    assert result.stdout == ""


def test_run_summary_still_fed_one_result_at_a_time(tmp_path: Path):
    # shoal run's path: Summary.add per result, then render_summary; the same numbers as a file.
    summary = Summary()
    for record in KNOWN:
        summary.add(RunResult.model_validate(record))
    from_file = summarize_file(_write(tmp_path / "out.jsonl", KNOWN))
    assert summary.to_dict() == from_file.to_dict()
    buf = io.StringIO()
    render_summary(summary, Console(file=buf, width=100), title="g: in.jsonl")
    assert "pending_escalation" in buf.getvalue() and "fine" not in buf.getvalue()
