"""The CLI through typer's CliRunner: exit codes, FILE:LINE:COL errors, JSONL in and out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoal.cli import app
from tests.conftest import REPO

QUICKSTART = REPO / "examples" / "quickstart" / "graph.yaml"
runner = CliRunner()


def test_validate_ok_prints_one_line():
    result = runner.invoke(app, ["validate", str(QUICKSTART)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (f"ok: {QUICKSTART}: graph 'quickstart', 3 nodes, 1 edges, "
                                     "0 models")


def test_validate_three_mistakes_prints_three_located_errors_and_exits_2(write_yaml):
    path = write_yaml("""
        shoal: 1
        name: broken
        nodes:
          triage: {agent: keyword_clasifier}
          reply: {agent: template_reply, default: hi, tone: warm}
        edges:
          - triage -> reply -> nowhere
        """)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    located = [line for line in result.stderr.splitlines()
               if re.match(rf"{re.escape(str(path))}:\d+:\d+: ", line)]
    assert len(located) == 3, result.stderr
    assert located[0].startswith(f"{path}:4:19: unknown agent 'keyword_clasifier'")
    assert located[1].startswith(f"{path}:5:47: unknown key 'tone'")
    assert located[2].startswith(f"{path}:7:5: edge to a missing node 'nowhere'")
    assert "3 error(s)" in result.stderr


def test_run_text_prints_one_result_line():
    result = runner.invoke(app, ["run", str(QUICKSTART), "--text", "please refill my inhaler",
                                 "--log-level", "warning"])
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    record = json.loads(line)
    assert record["status"] == "ok"
    assert [n["node"] for n in record["nodes"]] == ["triage", "reply"]
    assert set(record["nodes"][0]) >= {"agent", "confidence", "escalated", "reason",
                                       "latency_ms"}
    assert record["output"].startswith("Refill requests")


def test_run_file_keeps_every_line_and_names_bad_ones(tmp_path: Path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b'{"id": "a", "text": "book an appointment"}\n'
        b'not json at all\n'
        b'{"id": "b"}\n'
        b'\n'
        b'{"id": "a", "text": "duplicate id"}\n'
        b'{"id": "c", "text": "caf\xe9 latin-1 bytes"}\n'
        b'{"id": "d", "text": "chest pain"}\n'
        b'[1, 2]\n'
    )
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["run", str(QUICKSTART), "--input", str(src), "--output",
                                 str(out), "--concurrency", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "line-2", "b", "a", "line-6", "d", "line-8"]
    errors = {r["error"]["message"].split(": ", 1)[0]: r["error"]["message"]
              for r in records if r["status"] == "error"}
    assert set(errors) == {f"{src}:2", f"{src}:3", f"{src}:5", f"{src}:6", f"{src}:8"}
    assert "not valid JSON" in errors[f"{src}:2"]
    assert "missing 'text'" in errors[f"{src}:3"]
    assert "duplicate id (first at line 1)" in errors[f"{src}:5"]
    assert "not valid UTF-8" in errors[f"{src}:6"]
    assert records[5]["output"].startswith("If this is an emergency")
    assert "error" in result.stderr and "results:" in result.stderr


def test_fail_on_error_exits_1(tmp_path: Path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "x", "text": ""}\n')
    result = runner.invoke(app, ["run", str(QUICKSTART), "-i", str(src), "-o",
                                 str(tmp_path / "o.jsonl"), "--fail-on-error", "--no-progress"])
    assert result.exit_code == 1


def test_run_needs_exactly_one_input(tmp_path: Path):
    assert runner.invoke(app, ["run", str(QUICKSTART)]).exit_code == 2
    both = runner.invoke(app, ["run", str(QUICKSTART), "-t", "x", "-i", "y.jsonl"])
    assert both.exit_code == 2
    missing = runner.invoke(app, ["run", str(QUICKSTART), "-i", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_run_with_a_broken_graph_exits_2(write_yaml):
    path = write_yaml("shoal: 1\nname: g\nnodes: {a: {agent: nope}}\n")
    result = runner.invoke(app, ["run", str(path), "--text", "x"])
    assert result.exit_code == 2
    assert f"{path}:3:20: unknown agent 'nope'" in result.stderr


def test_log_file_gets_json_events(tmp_path: Path):
    log = tmp_path / "events.jsonl"
    result = runner.invoke(app, ["run", str(QUICKSTART), "--text", "my bill", "--log-file",
                                 str(log)])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["node_finished", "node_finished", "run_finished"]
    assert "my bill" not in log.read_text()


def test_agents_lists_builtins():
    result = runner.invoke(app, ["agents"])
    assert result.exit_code == 0
    names = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert {"noop", "keyword_classifier", "template_reply"} <= set(names)


def test_train_classifier_writes_model_and_sidecar_or_names_bad_lines(tmp_path: Path):
    rows = [("my bill is wrong", "billing"), ("charged twice", "billing"),
            ("invoice error on my statement", "billing"), ("refund my copay", "billing"),
            ("move my visit", "appt"), ("book an appointment", "appt"),
            ("cancel my visit tomorrow", "appt"), ("reschedule with dr lee", "appt")]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in rows) + "\n")
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["train-classifier", str(data), "-o", str(out),
                                 "--test-size", "0.25"])
    assert result.exit_code == 0, result.output
    assert "held-out accuracy" in result.stdout
    sidecar = json.loads((tmp_path / "m.onnx.json").read_text())
    assert sidecar["labels"] == ["appt", "billing"] and out.is_file()

    bad = tmp_path / "bad.jsonl"
    bad.write_text(data.read_text() + "not json\n" + '{"text": "no label"}\n')
    result = runner.invoke(app, ["train-classifier", str(bad), "-o", str(tmp_path / "b.onnx")])
    assert result.exit_code == 2
    assert f"{bad}:9: not valid JSON" in result.stderr
    assert f"{bad}:10: missing 'label'" in result.stderr
    assert not (tmp_path / "b.onnx").exists()


def test_models_lists_the_three_embedded_defaults():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for name in ("smollm2-135m-instruct", "gemma3-270m", "minilm-l6-int8"):
        line = next(line for line in result.stdout.splitlines() if name in line)
        assert "yes" in line, line


def test_audit_verify_names_the_changed_line(tmp_path: Path):
    from shoal.policies.audit import AuditCheck, audit_log

    path = tmp_path / "audit.jsonl"
    log = audit_log(path, fsync=False)
    for i in range(5):
        log.append(run_id=f"r{i}", record_id=f"id{i}", node="comply",
                   agent="compliance_checker", decision="pass",
                   checks=[AuditCheck(name="no_identifiers", passed=True)])
    ok = runner.invoke(app, ["audit", "verify", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "ok, 5 record(s)" in ok.stdout
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"pass"', '"fail"')
    path.write_text("\n".join(lines) + "\n")
    bad = runner.invoke(app, ["audit", "verify", str(path)])
    assert bad.exit_code == 1
    assert f"{path}:3:" in bad.stderr


@pytest.mark.slow
def test_mask_text_and_file(tmp_path: Path):
    note = "Patient Jane Canarysmith, MRN 88877766, phone 555-201-3344, email jc@example.org."
    result = runner.invoke(app, ["mask", "--text", note])
    assert result.exit_code == 0, result.output
    masked = json.loads(result.stdout.strip().splitlines()[-1])
    for canary in ("Canarysmith", "88877766", "555-201-3344", "jc@example.org"):
        assert canary not in masked["masked"]
    for entity in masked["entities"]:
        assert note[entity["start"]:entity["end"]] not in masked["masked"]

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": note}) + "\nnot json\n")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["mask", "--input", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["id"] == "a" and "Canarysmith" not in rows[0]["masked"]
    assert f"{src}:2" in rows[1]["error"]["message"]
