"""FHIR in and out with real models: `shoal run --input-format fhir --output-format fhir` on a
Bundle of healthcare test-split messages through the healthcare cascade (planner down, so
escalations queue in the outbox), and `shoal serve`'s `POST /fhir/Communication` through
FastAPI's TestClient. Every input comes back as a reply resource; a patient's name and phone
(the canary) appear only in the reply to that patient, never in the audit extension, the logs or
an error."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.operationoutcome import OperationOutcome
from typer.testing import CliRunner

import shoal
from shoal import AgentContext, AgentResult, extras
from shoal.cli import app
from shoal.fhir import EXTENSION_URL, record_id_of
from shoal.graphs.loader import load_spec
from shoal.models.local_server import free_port
from shoal.service import KeyStore, add_key, create_app
from tests.conftest import REPO

pytest.importorskip("presidio_analyzer")
pytestmark = [pytest.mark.integration, pytest.mark.slow]

HEALTH = REPO / "examples" / "healthcare"
NAME, PHONE = "Quillon Brackenthwaite", "555-014-2297"
CANARIES = (NAME, "Brackenthwaite", PHONE)
CANARY_TEXT = (f"Hi, this is {NAME}. Please renew my atorvastatin 20 mg once daily, you can call "
               f"me at {PHONE}.")
runner = CliRunner()


def messages(n: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for line in (HEALTH / "data" / "test.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if len(out) < n and row["text"] not in {m["text"] for m in out}:
            out.append({"id": row["id"], "text": row["text"]})
    return out


def communication(cid: str, text: str | None, patient: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "resourceType": "Communication", "id": cid, "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "sender": {"reference": f"Patient/{patient}"},
        "recipient": [{"reference": "Organization/clinic"}],
        **extra}
    if text is not None:
        data["payload"] = [{"contentString": text}]
    return data


def extensions(resource: dict[str, Any]) -> str:
    return json.dumps([e for e in resource.get("extension", []) if e["url"] == EXTENSION_URL])


def no_canary(text: str) -> bool:
    return not any(c in text for c in CANARIES)


# --- shoal run ----------------------------------------------------------------------------------


def test_a_bundle_through_the_cascade_comes_back_as_one_reply_per_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_PLANNER_URL", f"http://127.0.0.1:{free_port()}/v1")  # down
    monkeypatch.setenv("SHOAL_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    rows = messages(4)
    resources = [communication(r["id"], r["text"], f"p-{i}") for i, r in enumerate(rows)]
    resources.append(communication("canary", CANARY_TEXT, "p-canary"))
    resources.append(communication("photo", None, "p-photo", payload=[
        {"contentAttachment": {"contentType": "image/jpeg", "data": "AAAA"}}]))
    entries = [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}", "resource": r}
               for i, r in enumerate(resources)]
    source, out, log = tmp_path / "in.json", tmp_path / "out.json", tmp_path / "events.jsonl"
    source.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                  "entry": entries}, indent=2))
    ran = runner.invoke(app, ["run", str(HEALTH / "cascade.yaml"), "--input", str(source),
                              "--input-format", "fhir", "--output-format", "fhir",
                              "--output", str(out), "--no-progress", "--log-file", str(log)])
    assert ran.exit_code == 0, ran.output

    document = json.loads(out.read_text(encoding="utf-8"))
    written = Bundle.model_validate(document)  # every entry's resource validates too
    assert written.entry is not None and len(written.entry) == len(resources)
    replies = [e["resource"] for e in document["entry"]]
    for entry, resource in zip(entries, replies, strict=True):
        assert resource["resourceType"] == "Communication"
        Communication.model_validate(resource)
        assert resource["inResponseTo"][0]["reference"] == entry["fullUrl"]
        assert record_id_of(resource) == entry["resource"]["id"]
        assert resource["recipient"] == [entry["resource"]["sender"]]
        assert no_canary(extensions(resource))
        if entry["resource"]["id"] != "canary":
            assert no_canary(json.dumps(resource))
    by_id = {record_id_of(r): r for r in replies}
    canary = by_id["canary"]
    assert canary["status"] == "completed"
    facts = {p["url"]: p for p in json.loads(extensions(canary))[0]["extension"]}
    assert "[NAME_1]" in facts["maskedText"]["valueString"]
    assert "[PHONE_1]" in facts["maskedText"]["valueString"]
    photo = by_id["photo"]
    assert photo["status"] == "not-done"
    (message,) = [p["valueString"] for p in photo["extension"][0]["extension"]
                  if p["url"] == "errorMessage"]
    assert message == (f"{source}:Bundle.entry[5]: record 'photo': payload[0] is an attachment "
                       "(contentAttachment); only text (contentString) is supported")
    # The canary goes back to its own sender only: not in the logs, the summary or the audit.
    assert no_canary(log.read_text(encoding="utf-8"))
    assert no_canary(ran.output)
    audit = tmp_path / "audit.jsonl"
    assert not audit.exists() or no_canary(audit.read_text(encoding="utf-8"))


# --- shoal serve --------------------------------------------------------------------------------


@shoal.agent("t_fhir_greet")
async def greet(ctx: AgentContext) -> AgentResult:
    """Greets the sender by the pseudonyms the masker left (the reply un-masks them)."""
    names = [w.strip(".,") for w in ctx.text.split() if w.startswith("[NAME_")]
    return AgentResult(output={"answer": f"Hello {' '.join(names)}, we will call you back."})


GRAPH = """\
shoal: 1
name: fhir-served
nodes:
  mask: {agent: privacy_masker, pack: hipaa_safe_harbor}
  triage:
    agent: keyword_classifier
    labels: {emergency: [chest pain, collapsed], prescription_refill: [renew, refill]}
  answer: {agent: t_fhir_greet}
edges: [mask -> triage -> answer]
"""


class Served:
    def __init__(self, tmp: Path) -> None:
        path = tmp / "graph.yaml"
        path.write_text(GRAPH)
        spec, source = load_spec(path)
        graph = shoal.Graph(spec, base_dir=tmp, source=source, checked=True)
        keys = tmp / "keys.json"
        self.run_key = add_key(keys, "runner")
        self.review_key = add_key(keys, "reviewer", scopes=["review"])
        self.app = create_app(graph, keys=KeyStore(keys), base_dir=tmp, warmup=False)

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.run_key}"}


@pytest.fixture
def served(tmp_path: Path) -> Served:
    return Served(tmp_path)


@pytest.fixture
def client(served: Served) -> Iterator[TestClient]:
    with TestClient(served.app) as c:
        yield c


def test_serve_replies_to_a_communication_with_the_senders_values_for_them_only(
        served: Served, client: TestClient, log_stream: io.StringIO) -> None:
    sent = communication("m1", CANARY_TEXT, "p-1")
    response = client.post("/fhir/Communication", json=sent, headers=served.headers())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    Communication.model_validate(body)
    assert body["inResponseTo"] == [{"reference": "Communication/m1", "type": "Communication"}]
    assert body["status"] == "completed" and body["priority"] == "routine"
    assert body["recipient"] == [{"reference": "Patient/p-1"}]
    assert body["sender"] == {"reference": "Organization/clinic"}
    # The graph un-masks the sender's name in the reply to them; the audit keeps the pseudonym.
    assert NAME in body["payload"][0]["contentString"]
    assert no_canary(extensions(body)) and "[NAME_1]" in extensions(body)
    emergency = client.post("/fhir/Communication", headers=served.headers(), json=communication(
        "m2", "My father collapsed with chest pain", "p-2"))
    assert emergency.status_code == 200 and emergency.json()["priority"] == "stat"
    assert no_canary(log_stream.getvalue())


@pytest.mark.parametrize(("body", "status", "issue", "says"), [
    ({"resourceType": "Communication", "id": "x",
      "payload": [{"contentString": CANARY_TEXT}]}, 400, "invalid", "status: "),
    ({"resourceType": "Patient", "id": "x", "name": [{"text": NAME}]}, 400, "invalid",
     "expected a Communication resource, got a Patient"),
    (communication("x", None, "p", payload=[{"contentAttachment": {"data": "AAAA"}}]), 422,
     "not-supported", "payload[0] is an attachment"),
    (communication("x", "   ", "p"), 400, "required", "no text"),
    ("not json " + NAME, 400, "structure", "not valid JSON"),
])
def test_serve_answers_a_bad_resource_with_an_operation_outcome_that_never_quotes_it(
        served: Served, client: TestClient, log_stream: io.StringIO, body: Any, status: int,
        issue: str, says: str) -> None:
    if isinstance(body, str):
        response = client.post("/fhir/Communication", content=body.encode(),
                               headers=served.headers())
    else:
        response = client.post("/fhir/Communication", json=body, headers=served.headers())
    assert response.status_code == status, response.text
    outcome = response.json()
    OperationOutcome.model_validate(outcome)
    (found,) = outcome["issue"]
    assert found["code"] == issue and says in found["diagnostics"]
    assert no_canary(response.text) and no_canary(log_stream.getvalue())


def test_serve_keeps_the_fhir_route_behind_the_run_scope(served: Served,
                                                         client: TestClient) -> None:
    sent = communication("m1", "Can I move my visit?", "p-1")
    assert client.post("/fhir/Communication", json=sent).status_code == 401
    denied = client.post("/fhir/Communication", json=sent,
                         headers=served.headers(served.review_key))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"


def test_serve_without_the_extra_says_so_in_an_operation_outcome(
        served: Served, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(extras.EXTRAS, "fhir", ("shoal_no_such_module",))
    response = client.post("/fhir/Communication", headers=served.headers(),
                           json=communication("m1", "Can I move my visit?", "p-1"))
    assert response.status_code == 501
    (issue,) = response.json()["issue"]
    assert issue["code"] == "not-supported" and "shoal[fhir]" in issue["diagnostics"]
