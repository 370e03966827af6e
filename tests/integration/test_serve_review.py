"""`shoal serve`'s review routes against the app itself (FastAPI's TestClient, no model server):
the queue with its masked text, a person's label (audited first, checked against the node's
labels), OpenAI-style errors, and the key scopes every route needs."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import shoal
from shoal.graphs.loader import load_spec
from shoal.policies.escalation import SqliteLedger
from shoal.service import KeyStore, add_key, create_app

pytestmark = pytest.mark.integration

GRAPH_YAML = """\
shoal: 1
name: reviewed
nodes:
  triage: {agent: keyword_classifier, labels: {appointment: [visit], billing: [bill]}}
  after: {agent: noop}
edges: [triage -> after]
"""
MASKED = "can I move my visit, [NAME_1]? call [PHONE_1]"


def add_entry(ledger: SqliteLedger, *, graph: str = "reviewed", node: str = "triage",
              planner_label: str | None = "billing", record_id: str = "r1") -> str:
    return ledger.append(graph=graph, node=node, record_id=record_id, run_id="run-1",
                         text=MASKED, local_label="billing", local_confidence=0.3, p_wrong=0.6,
                         planner_label=planner_label, planner_answer="billing",
                         planner_confidence=0.6, model_version="triage@abc")


class Served:
    def __init__(self, tmp: Path, *, auth: bool = True) -> None:
        graph_file = tmp / "graph.yaml"
        graph_file.write_text(GRAPH_YAML)
        spec, source = load_spec(graph_file)
        self.graph = shoal.Graph(spec, base_dir=tmp, source=source, checked=True)
        self.store = self.graph.outbox_path  # $SHOAL_OUTBOX: the test's own (conftest)
        self.ledger = SqliteLedger(self.store)
        self.first = add_entry(self.ledger)
        self.second = add_entry(self.ledger, node="after", planner_label=None, record_id="r2")
        self.reviewed = add_entry(self.ledger, record_id="r3")
        self.ledger.set_human_label(self.reviewed, "appointment")
        self.foreign = add_entry(self.ledger, graph="other-graph", record_id="r4")
        keys_file = tmp / "keys.json"
        self.run_key = add_key(keys_file, "runner")
        self.review_key = add_key(keys_file, "reviewer", scopes=["review"])
        self.both_key = add_key(keys_file, "both", scopes=["run", "review"])
        self.other_graph_key = add_key(keys_file, "elsewhere", ["other-graph"],
                                       scopes=["review"])
        self.app = create_app(self.graph, keys=KeyStore(keys_file) if auth else None,
                              base_dir=tmp, warmup=False)

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def human(self, entry_id: str) -> str | None:
        entry = self.ledger.entry(entry_id)
        assert entry is not None
        return entry.human_label


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.delenv("SHOAL_AUDIT_LOG", raising=False)
    s = Served(tmp_path)
    yield s
    s.ledger.close()


@pytest.fixture
def client(served: Served) -> Iterator[TestClient]:
    with TestClient(served.app) as c:
        yield c


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and set(error) >= {"message", "type", "param"}
    return error


def audit_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the queue ----------------------------------------------------------------------------------


def test_the_queue_lists_waiting_entries_with_their_masked_text(served: Served,
                                                                client: TestClient):
    response = client.get("/v1/review", headers=served.auth(served.review_key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["total"] == 2
    assert [e["id"] for e in body["data"]] == [served.first, served.second]
    first = body["data"][0]
    assert set(first) == {"id", "node", "local_label", "local_confidence", "planner_label",
                          "human_label", "text", "created"}
    assert first["text"] == MASKED and first["node"] == "triage"
    assert first["local_label"] == "billing" and first["local_confidence"] == pytest.approx(0.3)
    assert first["planner_label"] == "billing" and first["human_label"] is None
    assert isinstance(first["created"], float)

    everything = client.get("/v1/review", params={"all": "true"},
                            headers=served.auth(served.review_key)).json()
    assert everything["total"] == 3  # the other graph's entry is never shown
    assert {e["id"] for e in everything["data"]} == {served.first, served.second,
                                                     served.reviewed}
    by_node = client.get("/v1/review", params={"node": "after"},
                         headers=served.auth(served.review_key)).json()
    assert [e["id"] for e in by_node["data"]] == [served.second]
    limited = client.get("/v1/review", params={"limit": 1},
                         headers=served.auth(served.review_key)).json()
    assert len(limited["data"]) == 1 and limited["total"] == 2
    for bad in ({"limit": 0}, {"limit": 501}, {"limit": "many"}, {"all": "perhaps"}):
        assert_error(client.get("/v1/review", params=bad,
                                headers=served.auth(served.review_key)), 422, "invalid_request")


def test_an_empty_store_is_an_empty_queue_and_is_not_created(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SHOAL_OUTBOX", str(tmp_path / "nothing-yet.sqlite"))
    graph_file = tmp_path / "graph.yaml"
    graph_file.write_text(GRAPH_YAML)
    graph = shoal.Graph.from_yaml(graph_file)
    with TestClient(create_app(graph, keys=None, warmup=False)) as c:
        assert c.get("/v1/review").json() == {"object": "list", "data": [], "total": 0}
        assert_error(c.post("/v1/review/abc", json={"label": "billing"}), 404, "unknown_entry")
    assert not (tmp_path / "nothing-yet.sqlite").exists()


# --- scopes -------------------------------------------------------------------------------------


def test_review_routes_need_the_review_scope_and_run_routes_the_run_scope(
        served: Served, client: TestClient):
    for method, path, body in (("GET", "/v1/review", None),
                               ("POST", f"/v1/review/{served.first}", {"label": "billing"})):
        error = assert_error(client.request(method, path, json=body,
                                            headers=served.auth(served.run_key)),
                             403, "forbidden")
        assert "'review' scope" in error["message"]
        assert error["type"] == "permission_error"
        assert_error(client.request(method, path, json=body), 401, "missing_api_key")
        assert_error(client.request(method, path, json=body,
                                    headers=served.auth(served.other_graph_key)),
                     403, "graph_not_allowed")
    assert served.human(served.first) is None

    error = assert_error(client.post("/v1/runs", json={"text": "a bill"},
                                     headers=served.auth(served.review_key)), 403, "forbidden")
    assert "'run' scope" in error["message"]
    assert_error(client.post("/v1/chat/completions", headers=served.auth(served.review_key),
                             json={"model": "m", "messages": [{"role": "user",
                                                               "content": "a bill"}]}),
                 403, "forbidden")
    assert_error(client.get("/v1/models", headers=served.auth(served.review_key)), 403,
                 "forbidden")
    ran = client.post("/v1/runs", json={"text": "a bill"}, headers=served.auth(served.run_key))
    assert ran.status_code == 200 and ran.json()["status"] == "ok"
    for key in (served.both_key, served.review_key, served.run_key):  # any key of the graph
        assert client.get("/metrics", headers=served.auth(key)).status_code == 200
    both = served.auth(served.both_key)
    assert client.get("/v1/review", headers=both).status_code == 200
    assert client.post("/v1/runs", json={"text": "a visit"}, headers=both).status_code == 200


def test_without_auth_the_review_routes_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SHOAL_AUDIT_LOG", raising=False)
    s = Served(tmp_path, auth=False)
    try:
        with TestClient(s.app) as c:
            assert c.get("/v1/review").json()["total"] == 2
            done = c.post(f"/v1/review/{s.first}", json={"label": "appointment"})
            assert done.status_code == 200 and done.json()["human_label"] == "appointment"
    finally:
        s.ledger.close()


# --- a person's label ---------------------------------------------------------------------------


def test_a_label_is_audited_then_set_and_outranks_the_planner(
        served: Served, client: TestClient, log_stream: io.StringIO):
    response = client.post(f"/v1/review/{served.first}", json={"label": "appointment"},
                           headers=served.auth(served.review_key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == served.first and body["human_label"] == "appointment"
    assert body["planner_label"] == "billing" and body["text"] == MASKED
    entry = served.ledger.entry(served.first)
    assert entry is not None and entry.human_label == "appointment" and entry.human_at
    assert entry.label == "appointment" and entry.source == "human"
    audit = served.store.parent / "audit.jsonl"  # beside the store: no $SHOAL_AUDIT_LOG
    [record] = audit_records(audit)
    assert record["agent"] == "human_review" and record["decision"] == "appointment"
    assert record["record_id"] == "r1" and record["node"] == "triage"
    checks = {c["name"]: c["passed"] for c in record["checks"]}
    assert checks == {"agrees_with_planner": False, "agrees_with_local": False}
    assert "visit" not in audit.read_text()
    queue = client.get("/v1/review", headers=served.auth(served.review_key)).json()
    assert [e["id"] for e in queue["data"]] == [served.second]

    # A node whose labels are not known takes any well-formed label.
    other = client.post(f"/v1/review/{served.second}", json={"label": "follow_up"},
                        headers=served.auth(served.review_key))
    assert other.status_code == 200 and other.json()["human_label"] == "follow_up"
    assert len(audit_records(audit)) == 2

    log = log_stream.getvalue()
    assert "[NAME_1]" not in log and "move my visit" not in log
    access = [json.loads(line) for line in log.splitlines() if '"http_request"' in line]
    posts = [a for a in access if a["method"] == "POST"]
    assert {a["path"] for a in posts} == {"/v1/review/{entry_id}"}
    assert {a["key"] for a in posts} == {"reviewer"}
    assert served.first not in "".join(a["path"] for a in access)


def test_the_audit_log_is_shoal_audit_log_when_set(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    audit = tmp_path / "elsewhere" / "reviews.jsonl"
    audit.parent.mkdir()
    monkeypatch.setenv("SHOAL_AUDIT_LOG", str(audit))
    s = Served(tmp_path, auth=False)
    try:
        with TestClient(s.app) as c:
            assert c.post(f"/v1/review/{s.first}", json={"label": "billing"}).status_code == 200
    finally:
        s.ledger.close()
    [record] = audit_records(audit)
    assert record["decision"] == "billing"
    assert {c["name"]: c["passed"] for c in record["checks"]} == {
        "agrees_with_planner": True, "agrees_with_local": True}
    assert not (s.store.parent / "audit.jsonl").exists()


@pytest.mark.parametrize(("entry", "body", "status", "code"), [
    ("first", {"label": "not a label"}, 400, "invalid_label"),
    ("first", {"label": "-dash"}, 400, "invalid_label"),
    ("first", {"label": "x" * 65}, 400, "invalid_label"),
    ("first", {"label": "refill"}, 400, "label_not_allowed"),
    ("missing", {"label": "billing"}, 404, "unknown_entry"),
    ("foreign", {"label": "billing"}, 404, "unknown_entry"),
    ("first", {"label": 5}, 422, "invalid_request"),
    ("first", {}, 422, "invalid_request"),
    ("first", ["billing"], 422, "invalid_request"),
])
def test_a_wrong_label_or_entry_changes_nothing(served: Served, client: TestClient, entry: str,
                                               body: Any, status: int, code: str):
    entry_id = {"first": served.first, "foreign": served.foreign,
                "missing": "0" * 32}[entry]
    error = assert_error(client.post(f"/v1/review/{entry_id}", json=body,
                                     headers=served.auth(served.review_key)), status, code)
    if code == "label_not_allowed":
        assert error["message"] == ("the label is not one of node 'triage''s labels: "
                                    "appointment, billing, other")
    if code == "unknown_entry":
        assert error["message"] == "no ledger entry with this id for graph 'reviewed'"
    if isinstance(body, dict) and "label" in body:  # the request is never quoted
        assert str(body["label"]) not in error["message"] and entry_id not in error["message"]
    assert served.human(served.first) is None and served.human(served.foreign) is None
    assert audit_records(served.store.parent / "audit.jsonl") == []


def test_a_body_that_is_not_json_is_a_400(served: Served, client: TestClient):
    assert_error(client.post(f"/v1/review/{served.first}", content=b'{"label": ',
                             headers=served.auth(served.review_key)), 400, "invalid_json")
    assert_error(client.get(f"/v1/review/{served.first}",
                            headers=served.auth(served.review_key)), 405, "method_not_allowed")
