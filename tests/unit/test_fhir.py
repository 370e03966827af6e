"""FHIR R4 Communications in and out (shoal.fhir): reading Bundles and NDJSON into records (bad
resources become error records naming their place, never quoting them), building the reply
Communication (validated, inResponseTo, priority, parties swapped, the masked audit extension),
and `shoal run --input-format fhir --output-format fhir` on a graph without models, resumed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.operationoutcome import OperationOutcome
from typer.testing import CliRunner

from shoal import extras
from shoal.cli import app
from shoal.cli.batch import BadLine, Formats, fhir_resource, formats, read_done, read_records
from shoal.errors import ErrorCode, ShoalError
from shoal.fhir import (
    BUNDLE,
    BUNDLE_HEAD,
    EXTENSION_URL,
    LABEL_SYSTEM,
    NDJSON,
    STATUS_SYSTEM,
    Envelope,
    Message,
    Problem,
    open_input,
    operation_outcome,
    parse_communication,
    parse_json,
    record_id_of,
    reply,
    run_label,
)
from shoal.graphs.results import ErrorInfo, NodeTrace, RunResult
from tests.conftest import REPO

TEST_SPLIT = REPO / "examples" / "healthcare" / "data" / "test.jsonl"
NAME, PHONE = "Quillon Brackenthwaite", "555-014-2297"
CANARY_TEXT = f"Hi, this is {NAME}. Please renew my atorvastatin, call me at {PHONE}."
MASKED = "Hi, this is [NAME_1]. Please renew my atorvastatin, call me at [PHONE_1]."
runner = CliRunner()


def messages(n: int) -> list[dict[str, str]]:
    """The first ``n`` messages of the healthcare test split (distinct texts)."""
    out: list[dict[str, str]] = []
    for line in TEST_SPLIT.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if len(out) < n and row["text"] not in {m["text"] for m in out}:
            out.append({"id": row["id"], "text": row["text"], "label": row["label"]})
    return out


def communication(cid: str | None, text: str | None, *, patient: str = "p-1",
                  **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "resourceType": "Communication", "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "sender": {"reference": f"Patient/{patient}"},
        "recipient": [{"reference": "Organization/clinic"}],
    }
    if cid is not None:
        data["id"] = cid
    if text is not None:
        data["payload"] = [{"contentString": text}]
    data.update(extra)
    return data


def bundle(resources: list[dict[str, Any]], *, full_urls: bool = True) -> dict[str, Any]:
    entries = []
    for i, resource in enumerate(resources):
        entry: dict[str, Any] = {"resource": resource}
        if full_urls:
            entry["fullUrl"] = f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def write_ndjson(path: Path, items: list[Any]) -> Path:
    path.write_text("".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items),
                    encoding="utf-8")
    return path


def attachment_only(cid: str) -> dict[str, Any]:
    return communication(cid, None, payload=[
        {"contentAttachment": {"contentType": "image/jpeg", "data": "AAAA"}}])


# --- reading --------------------------------------------------------------------------------


def test_a_bundle_of_test_split_messages_becomes_their_records(tmp_path: Path) -> None:
    rows = messages(4)
    path = tmp_path / "in.json"
    path.write_text(json.dumps(bundle([communication(r["id"], r["text"]) for r in rows]),
                               indent=2))
    source = open_input(path)
    assert source.kind == BUNDLE and source.count() == 4
    items = list(source)
    assert all(isinstance(i, Message) for i in items)
    assert [(i.id, i.text) for i in items if isinstance(i, Message)] == [
        (r["id"], r["text"]) for r in rows]
    first = items[0]
    assert isinstance(first, Message)
    # Inside a Bundle the reply points at the entry's fullUrl, as references there resolve.
    assert first.envelope.reference == "urn:uuid:00000000-0000-4000-8000-000000000000"
    assert first.envelope.sender == {"reference": "Patient/p-1"}
    assert first.envelope.recipients == ({"reference": "Organization/clinic"},)
    assert "envelope" not in first.model_dump()


def test_ndjson_of_test_split_messages_and_the_text_of_several_payload_parts(
        tmp_path: Path) -> None:
    rows = messages(3)
    split = communication("two-parts", None, payload=[{"contentString": "First part."},
                                                      {"contentString": "Second part."}])
    path = write_ndjson(tmp_path / "in.ndjson",
                        [communication(r["id"], r["text"]) for r in rows] + [split])
    source = open_input(path)
    assert source.kind == NDJSON
    items = list(source)
    assert [i.id for i in items if isinstance(i, Message)] == [r["id"] for r in rows] + [
        "two-parts"]
    last = items[-1]
    assert isinstance(last, Message) and last.text == "First part.\nSecond part."
    assert last.envelope.reference == "Communication/two-parts"


def test_a_bundle_entry_without_an_id_runs_under_its_full_url(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(bundle([communication(None, "Can I move my visit?")])))
    (item,) = list(open_input(path))
    assert isinstance(item, Message)
    assert item.id == item.envelope.reference == "urn:uuid:00000000-0000-4000-8000-000000000000"


def test_an_attachment_only_payload_is_an_error_record_naming_its_entry(tmp_path: Path) -> None:
    rows = messages(2)
    path = tmp_path / "in.json"
    path.write_text(json.dumps(bundle([communication(rows[0]["id"], rows[0]["text"]),
                                       attachment_only("photo"),
                                       communication(rows[1]["id"], rows[1]["text"])])))
    items = list(read_records(path, fmt=formats(path, "fhir", "jsonl"), log=False))
    assert [type(i).__name__ for i in items] == ["Message", "BadLine", "Message"]
    bad = items[1]
    assert isinstance(bad, BadLine) and bad.result.status == "error"
    assert bad.result.id == "photo" and bad.result.error is not None
    assert bad.result.error.code == ErrorCode.INPUT_INVALID
    assert bad.result.error.message == (
        f"{path}:Bundle.entry[1]: record 'photo': payload[0] is an attachment "
        "(contentAttachment); only text (contentString) is supported")
    # A valid Communication: its reply can still say it was not answered.
    assert bad.problem is not None and bad.problem.issue == "not-supported"
    assert bad.problem.envelope is not None


def test_bad_ndjson_lines_are_error_records_naming_the_line_and_the_rest_runs(
        tmp_path: Path) -> None:
    rows = messages(2)
    invalid = communication("no-status", CANARY_TEXT)
    del invalid["status"]
    path = write_ndjson(tmp_path / "in.ndjson", [
        communication(rows[0]["id"], rows[0]["text"]),
        "not json {",
        {"resourceType": "Patient", "id": "pat-1", "name": [{"text": NAME}]},
        invalid,
        communication(None, rows[1]["text"]),
        communication("ref", None, payload=[{"contentReference": {"reference": "Media/1"}}]),
        communication("bogus", "hello", status="sent-ish"),
        communication(rows[0]["id"], rows[0]["text"]),
        communication("empty", "   "),
        communication(rows[1]["id"], rows[1]["text"]),
    ])
    items = list(read_records(path, fmt=formats(path, "fhir", "jsonl"), log=False))
    errors = {i.result.id: i.result.error.message for i in items
              if isinstance(i, BadLine) and i.result.error is not None}
    assert [i.id for i in items if not isinstance(i, BadLine)] == [rows[0]["id"], rows[1]["id"]]
    assert errors["line-2"] == f"{path}:2: not valid JSON: Expecting value (column 1)"
    assert errors["pat-1"] == (f"{path}:3: record 'pat-1': expected a Communication resource, "
                               "got a Patient")
    assert errors["no-status"].startswith(f"{path}:4: record 'no-status': not a valid FHIR R4 "
                                          "Communication: status: ")
    assert errors["line-5"] == (f"{path}:5: no 'id' (nor a Bundle entry 'fullUrl'): its reply "
                                "could not reference it")
    assert "contentReference" in errors["ref"]
    assert errors["bogus"].startswith(f"{path}:7: record 'bogus': status: not an R4 EventStatus")
    assert errors[rows[0]["id"]].endswith("duplicate id (first at line 1); ids must be unique")
    assert "no text" in errors["empty"]
    assert len(items) == 10  # nothing dropped
    for message in errors.values():
        assert NAME not in message and PHONE not in message


def test_a_file_that_is_no_bundle_nor_ndjson_is_refused_whole(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "resourceType": "Bundle",\n  "entry": [\n')
    with pytest.raises(ShoalError, match=r"broken\.json: not valid JSON: .* \(line 4"):
        open_input(broken)
    single = tmp_path / "single.json"
    single.write_text(json.dumps(communication("c1", CANARY_TEXT), indent=2))
    with pytest.raises(ShoalError, match="not a Bundle") as caught:
        open_input(single)
    assert NAME not in caught.value.message
    untyped = tmp_path / "untyped.json"
    untyped.write_text(json.dumps({"resourceType": "Bundle", "entry": []}, indent=2))
    with pytest.raises(ShoalError, match=r"not a valid FHIR R4 Bundle: type: "):
        open_input(untyped)
    empty = tmp_path / "empty.ndjson"
    empty.write_text("\n")
    assert open_input(empty).kind == NDJSON and list(open_input(empty)) == []
    one_line = tmp_path / "one.json"
    one_line.write_text(json.dumps(bundle([communication("c1", "hi")])))
    assert open_input(one_line).kind == BUNDLE


def test_a_resource_sent_alone_is_a_message_or_a_problem_never_quoting_it() -> None:
    parsed = parse_json(json.dumps(communication("m1", CANARY_TEXT)).encode())
    assert isinstance(parsed, Message) and parsed.text == CANARY_TEXT
    invalid = parse_json(json.dumps(communication("m2", CANARY_TEXT, sent=NAME)).encode())
    assert isinstance(invalid, Problem) and invalid.reason.startswith(
        "not a valid FHIR R4 Communication: sent: ")
    assert NAME not in invalid.reason
    wrong_type = parse_communication({**communication("m3", CANARY_TEXT),
                                      "payload": [{"contentString": 7}]})
    assert isinstance(wrong_type, Problem)
    assert "payload[0].contentString: Input should be a valid string" in wrong_type.reason
    assert isinstance(parse_json(b"\xff"), Problem)
    assert parse_json(b"[]") == Problem("communication", "expected a JSON object, got list",
                                        issue="structure", named=False)


# --- replies ----------------------------------------------------------------------------------


ENVELOPE = Envelope(reference="Communication/m1", sender={"reference": "Patient/p-1"},
                    recipients=({"reference": "Organization/clinic"},),
                    subject={"reference": "Patient/p-1"})


def trace(node: str, agent: str, **fields: Any) -> NodeTrace:
    return NodeTrace(node=node, agent=agent, latency_ms=1.0, **fields)


def result(status: str = "ok", *, label: str = "prescription_refill", masked: bool = True,
           reply_text: str | None = f"Hello {NAME}, we will renew it.", critical: str | None = None,
           **fields: Any) -> RunResult:
    nodes = [trace("guard", "input_guard", label="allow")]
    if masked:
        nodes.append(trace("mask", "privacy_masker", text=MASKED))
    nodes.append(trace("triage", "classifier", label=label, critical=critical))
    nodes.append(trace("comply", "compliance_checker", label="pass"))
    defaults: dict[str, Any] = {
        "id": "m1", "status": status, "run_id": "0123456789abcdef0123456789abcdef",
        "output": {"answer": "Hello [NAME_1], we will renew it."}, "nodes": nodes,
        "reply": reply_text}
    return RunResult(**{**defaults, **fields})


def audit(resource: dict[str, Any]) -> dict[str, Any]:
    (ext,) = [e for e in resource["extension"] if e["url"] == EXTENSION_URL]
    return {p["url"]: next(v for k, v in p.items() if k.startswith("value"))
            for p in ext["extension"]}


def test_the_reply_answers_its_input_back_to_the_sender_and_validates() -> None:
    made = reply(result(), ENVELOPE, graph="healthcare-cascade")
    Communication.model_validate(made)
    assert made["resourceType"] == "Communication"
    assert made["id"] == "01234567-89ab-cdef-0123-456789abcdef"
    assert made["inResponseTo"] == [{"reference": "Communication/m1", "type": "Communication"}]
    assert made["status"] == "completed" and "sent" in made
    assert made["recipient"] == [{"reference": "Patient/p-1"}]
    assert made["sender"] == {"reference": "Organization/clinic"}
    assert made["subject"] == {"reference": "Patient/p-1"}
    assert made["payload"] == [{"contentString": f"Hello {NAME}, we will renew it."}]
    assert made["priority"] == "routine"
    assert made["category"] == [{"coding": [{"system": LABEL_SYSTEM,
                                             "code": "prescription_refill"}],
                                 "text": "prescription_refill"}]
    assert audit(made) == {
        "recordId": "m1", "graph": "healthcare-cascade",
        "runId": "0123456789abcdef0123456789abcdef", "status": "ok",
        "label": "prescription_refill", "escalated": False, "maskedText": MASKED,
        "maskedReply": "Hello [NAME_1], we will renew it."}
    # The sender's own values are in the reply to them, and nowhere else in it.
    extension = json.dumps(made["extension"])
    assert NAME not in extension and PHONE not in extension
    assert record_id_of(made) == "m1"


def test_an_emergency_is_stat_and_a_critical_label_is_stat_whatever_the_label() -> None:
    assert reply(result(label="emergency"), ENVELOPE, graph="g")["priority"] == "stat"
    critical = reply(result(label="symptom_report", critical="self_harm"), ENVELOPE, graph="g")
    assert critical["priority"] == "stat" and audit(critical)["critical"] == "self_harm"
    assert reply(result(label="billing"), ENVELOPE, graph="g")["priority"] == "routine"


@pytest.mark.parametrize(("status", "reason"), [("refused", "refused"), ("error", "error")])
def test_a_refused_or_failed_run_is_a_not_done_reply_without_payload(status: str,
                                                                      reason: str) -> None:
    error = ErrorInfo(code="agent_failed", message="node 'triage': the model failed",
                      node="triage") if status == "error" else None
    made = reply(result(status, reply_text=None, error=error), ENVELOPE, graph="g")
    Communication.model_validate(made)
    assert made["status"] == "not-done" and "payload" not in made and "sent" not in made
    assert made["statusReason"]["coding"] == [{"system": STATUS_SYSTEM, "code": reason}]
    facts = audit(made)
    assert facts["status"] == status and "maskedReply" not in facts
    if error is not None:
        assert facts["errorCode"] == "agent_failed"
        assert facts["errorMessage"] == error.message


def test_without_a_masker_the_extension_carries_no_text_at_all() -> None:
    raw = result(masked=False, output={"answer": f"Hello {NAME}"}, reply_text=f"Hello {NAME}")
    made = reply(raw, ENVELOPE, graph="g")
    facts = audit(made)
    assert "maskedText" not in facts and "maskedReply" not in facts
    assert NAME not in json.dumps(made["extension"])


def test_a_classifier_only_graph_replies_with_its_label() -> None:
    only = RunResult(id="m1", status="ok", run_id="r1",
                     output={"label": "appointment", "probabilities": {"appointment": 0.9}},
                     nodes=[trace("triage", "classifier", label="appointment")])
    made = reply(only, ENVELOPE, graph="g")
    assert made["payload"] == [{"contentString": "appointment"}]
    assert run_label(only) == "appointment"
    assert made["id"] != "r1"  # not a uuid: a fresh one


def test_an_input_that_is_no_communication_gets_an_operation_outcome() -> None:
    problem = Problem("pat-1", "expected a Communication resource, got a Patient",
                      "Bundle.entry[2]", 2)
    failed = RunResult(id="pat-1", status="error", error=ErrorInfo(
        code=ErrorCode.INPUT_INVALID, message="in.json:Bundle.entry[2]: record 'pat-1': ..."))
    made = fhir_resource(failed, problem, "g")
    OperationOutcome.model_validate(made)
    assert made["issue"][0]["expression"] == ["Bundle.entry[2]"]
    assert made["issue"][0]["code"] == "invalid"
    assert record_id_of(made) == "pat-1"
    outcome = operation_outcome("request body is not valid JSON", issue="structure")
    assert outcome["issue"] == [{"severity": "error", "code": "structure",
                                 "diagnostics": "request body is not valid JSON"}]


# --- shoal run, end to end on a graph without models --------------------------------------------


TINY = """
shoal: 1
name: fhir-tiny
nodes:
  triage:
    agent: keyword_classifier
    labels: {emergency: [chest pain, collapsed], billing: [bill, charge, insurance]}
  answer:
    agent: template_reply
    templates: {emergency: "Call 911 now.", billing: "Our billing office will reply."}
    default: "A member of your care team will reply."
edges: [triage -> answer]
"""


def test_shoal_run_fhir_in_and_out_resumes_and_answers_every_entry(
        tmp_path: Path, write_yaml: Any) -> None:
    graph = write_yaml(TINY)
    rows = messages(3)
    resources = [communication(r["id"], r["text"], patient=f"p-{i}") for i, r in enumerate(rows)]
    resources += [communication("er", "My father collapsed with chest pain"),
                  attachment_only("photo"), {"resourceType": "Patient", "id": "pat"}]
    source = tmp_path / "in.json"
    source.write_text(json.dumps(bundle(resources), indent=2))
    out = tmp_path / "out.json"
    args = ["run", str(graph), "--input", str(source), "--input-format", "fhir",
            "--output-format", "fhir", "--output", str(out), "--no-progress"]
    ran = runner.invoke(app, args)
    assert ran.exit_code == 0, ran.output
    written = Bundle.model_validate(json.loads(out.read_text()))
    assert written.entry is not None and len(written.entry) == len(resources)
    by_record = {record_id_of(e.resource.model_dump(mode="json")): e.resource
                 for e in written.entry}
    assert list(by_record) == [r["id"] for r in rows] + ["er", "photo", "pat"]
    for i, resource in enumerate(resources[:5]):
        answer = by_record[resource["id"]]
        assert answer.get_resource_type() == "Communication"
        assert answer.inResponseTo[0].reference == f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
    assert by_record["er"].priority == "stat"
    assert by_record["er"].payload[0].contentString == "Call 911 now."
    assert by_record["photo"].status == "not-done"
    assert by_record["pat"].get_resource_type() == "OperationOutcome"

    # A killed run: the head and two entries, then half a line. --resume finishes it.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:40])
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "2 already done, 4 to run" in resumed.stderr
    again = Bundle.model_validate(json.loads(out.read_text()))
    assert again.entry is not None
    assert [record_id_of(e.resource.model_dump(mode="json")) for e in again.entry] == list(
        by_record)


def test_ndjson_output_resumes_by_the_record_id_in_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    fmt = Formats(fhir_input=None, fhir_output=True)
    made = [reply(result(id=f"m{i}"), ENVELOPE, graph="g") for i in range(3)]
    path.write_text("".join(json.dumps(m) + "\n" for m in made[:2]) + json.dumps(made[2])[:30])
    done = read_done(path, fmt)
    assert dict(done.ids) == {"m0": 1, "m1": 1} and done.dropped_line == 3
    # A JSONL result file is not a FHIR one: resuming it as such would lose results.
    path.write_text(result().model_dump_json() + "\n" + json.dumps(made[0]) + "\n")
    with pytest.raises(ShoalError, match=r"out\.ndjson:1: not a result: no shoal-run extension"):
        read_done(path, fmt)
    path.write_text(BUNDLE_HEAD + "\n" + json.dumps(made[0]) + "\n")
    with pytest.raises(ShoalError, match=r"out\.ndjson:1: not valid JSON"):
        read_done(path, fmt)


def test_the_formats_say_what_goes_with_what(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "in.ndjson", [communication("c1", "hi")])
    with pytest.raises(ValueError, match="needs --input-format fhir"):
        formats(path, "jsonl", "fhir")
    with pytest.raises(ValueError, match="unknown input format 'xml'"):
        formats(path, "xml", "jsonl")
    assert not formats(path, "fhir", "fhir").bundle
    usage = runner.invoke(app, ["run", "g.yaml", "--text", "hi", "--input-format", "fhir"])
    assert usage.exit_code == 2 and "go with --input" in usage.stderr
    ray = runner.invoke(app, ["run", "g.yaml", "--input", str(path), "--engine", "ray",
                              "--input-format", "fhir", "--output-format", "fhir"])
    assert ray.exit_code == 2 and "--output-format fhir runs locally" in ray.stderr


def test_importing_shoal_fhir_or_the_server_does_not_load_fhir_resources() -> None:
    code = ("import sys, shoal.fhir, shoal.cli.batch, shoal.service; "
            "print(sorted(m for m in sys.modules if m == 'fhir' or m.startswith('fhir.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_without_the_extra_fhir_input_names_it(tmp_path: Path, write_yaml: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(extras.EXTRAS, "fhir", ("shoal_no_such_module",))
    path = write_ndjson(tmp_path / "in.ndjson", [communication("c1", "hi")])
    ran = runner.invoke(app, ["run", str(write_yaml(TINY)), "--input", str(path),
                              "--input-format", "fhir"])
    assert ran.exit_code == 2
    assert "--input-format fhir needs the extra [fhir]" in ran.stderr
    assert "pip install 'shoal[fhir]'" in ran.stderr
