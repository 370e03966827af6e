"""The dashboard of `shoal serve` (/ui) against the app itself (FastAPI's TestClient): sign-in with
an API key and the session cookie, the CSP, local assets, the summary's numbers against /metrics,
labelling through the page's endpoint, and no identifier in what the page reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import shoal
from shoal.graphs.loader import load_spec
from shoal.graphs.results import NodeTrace, RunResult
from shoal.policies.escalation import SqliteLedger
from shoal.service import KeyStore, add_key, create_app
from shoal.service.ui import CSP, SESSION_COOKIE, SIGN_IN_FAILURES, RecentRuns, SignInLimit

GRAPH_YAML = """\
shoal: 1
name: dash
nodes:
  triage: {agent: keyword_classifier, labels: {appointment: [visit], billing: [bill]}}
  after: {agent: noop}
edges: [triage -> after]
"""
CANARY = "Zebulon Quarterfield"
MASKED = "can I move my visit, [NAME_1]?"


class Served:
    def __init__(self, tmp: Path, *, auth: bool = True) -> None:
        graph_file = tmp / "graph.yaml"
        graph_file.write_text(GRAPH_YAML)
        spec, source = load_spec(graph_file)
        self.graph = shoal.Graph(spec, base_dir=tmp, source=source, checked=True)
        self.ledger = SqliteLedger(self.graph.outbox_path)
        self.entry = self.ledger.append(
            graph="dash", node="triage", record_id="r1", run_id="run-1", text=MASKED,
            local_label="billing", local_confidence=0.3, p_wrong=0.6, planner_label="billing",
            planner_answer="billing", planner_confidence=0.6, model_version="triage@abc")
        keys_file = tmp / "keys.json"
        self.keys_file = keys_file
        self.run_key = add_key(keys_file, "runner")
        self.review_key = add_key(keys_file, "reviewer", scopes=["run", "review"])
        self.other_key = add_key(keys_file, "elsewhere", ["other-graph"], scopes=["review"])
        self.app = create_app(self.graph, keys=KeyStore(keys_file) if auth else None,
                              base_dir=tmp, warmup=False)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.delenv("SHOAL_AUDIT_LOG", raising=False)
    s = Served(tmp_path)
    yield s
    s.ledger.close()


@pytest.fixture
def client(served: Served) -> Iterator[TestClient]:
    with TestClient(served.app, follow_redirects=False) as c:
        yield c


def sign_in(client: TestClient, key: str) -> None:
    response = client.post("/ui/login", data={"key": key})
    assert response.status_code == 303 and response.headers["location"] == "/ui"


def test_without_a_session_the_page_redirects_to_the_login_form(client: TestClient):
    response = client.get("/ui")
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    form = client.get("/ui/login")
    assert form.status_code == 200 and '<form method="post" action="/ui/login">' in form.text
    for path in ("/ui/api/summary", "/ui/api/review"):
        assert client.get(path).status_code == 401
    assert client.post("/ui/api/label", json={"id": "x", "label": "billing"},
                       headers={"x-shoal-ui": "1"}).status_code == 401


def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(served: Served,
                                                                client: TestClient):
    response = client.post("/ui/login", data={"key": served.run_key})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and served.run_key not in cookie
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/ui" in lowered
    page = client.get("/ui")
    assert page.status_code == 200 and "runner" in page.text and "Sign out" in page.text
    assert client.get("/ui/api/summary").status_code == 200
    assert client.get("/ui/api/review").status_code == 403  # a key without the review scope
    assert client.post("/ui/logout").status_code == 303
    assert client.get("/ui").status_code == 303


@pytest.mark.parametrize("which", ["wrong", "empty", "other_graph"])
def test_a_wrong_key_is_refused(served: Served, client: TestClient, which: str):
    key = {"wrong": "sk-not-a-key", "empty": "", "other_graph": served.other_key}[which]
    response = client.post("/ui/login", data={"key": key})
    assert response.status_code == 401 and "not valid" in response.text
    assert "set-cookie" not in response.headers
    assert client.get("/ui").status_code == 303
    client.cookies.set(SESSION_COOKIE, "forged-token", path="/ui")
    assert client.get("/ui/api/summary").status_code == 401


def test_repeated_wrong_keys_lock_the_address_out_even_for_the_right_key(served: Served,
                                                                           client: TestClient):
    for _ in range(SIGN_IN_FAILURES):
        assert client.post("/ui/login", data={"key": "sk-guess"}).status_code == 401
    locked = client.post("/ui/login", data={"key": served.run_key})
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
    assert 1 <= int(locked.headers["retry-after"]) <= 60
    assert "set-cookie" not in locked.headers


def test_the_sign_in_limit_forgets_failures_after_its_window():
    now = [1000.0]
    limit = SignInLimit(failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):  # failures at 1000, 1005, 1010
        assert limit.retry_after("10.0.0.1") is None
        limit.failed("10.0.0.1")
        now[0] += 5
    assert limit.retry_after("10.0.0.1") == 45  # at 1015; the first leaves the window at 1060
    assert limit.retry_after("10.0.0.2") is None  # per address
    now[0] = 1060.5
    assert limit.retry_after("10.0.0.1") is None  # two failures left in the window


def _result(at_node: str | None, latency_ms: float = 10.0) -> RunResult:
    nodes = [NodeTrace(node=n, agent="a", latency_ms=1.0, escalated=n == at_node)
             for n in ("triage", "reply")]
    return RunResult(id="r", status="escalated" if at_node else "ok", nodes=nodes,
                     latency_ms=latency_ms)


def test_the_escalation_share_over_time_counts_each_minute_apart():
    now = [6000.0]  # a minute boundary
    recent = RecentRuns(clock=lambda: now[0])
    for node in ("triage", None, None, None):  # minute 1: 1 of 4 escalated at triage
        recent.add(_result(node))
    now[0] += 120  # minute 3: 2 of 2 at reply; minute 2 has no run
    recent.add(_result("reply"))
    recent.add(_result("reply", latency_ms=30.0))
    t = recent.timeline(bucket_s=60, buckets=5)
    assert t["runs"] == [0, 0, 4, 0, 2]
    assert t["share"] == {"triage": [None, None, 0.25, None, 0.0],
                          "reply": [None, None, 0.0, None, 1.0]}
    assert t["start"] == 6120 + 60 - 5 * 60
    assert recent.quantiles() == {"n": 6, "p50": 0.01, "p95": 0.03}
    now[0] += 3600  # an hour later the window is empty
    assert recent.timeline(bucket_s=60, buckets=5)["runs"] == [0] * 5


def test_a_removed_key_ends_its_session(served: Served, client: TestClient):
    sign_in(client, served.run_key)
    assert client.get("/ui/api/summary").status_code == 200
    shoal.service.keys.remove_key(served.keys_file, "runner")
    assert client.get("/ui/api/summary").status_code == 401


def test_the_page_and_its_assets_are_local_under_a_strict_csp(served: Served,
                                                              client: TestClient):
    sign_in(client, served.run_key)
    for path, kind in (("/ui", "text/html"), ("/ui/static/ui.js", "text/javascript"),
                       ("/ui/static/ui.css", "text/css"), ("/ui/login", "text/html"),
                       ("/ui/api/summary", "application/json")):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind)
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert "unsafe-inline" not in CSP and "http" not in CSP
    page = client.get("/ui").text + client.get("/ui/login").text
    assert '<script src="/ui/static/ui.js"' in page and 'href="/ui/static/ui.css"' in page
    for text in (page, client.get("/ui/static/ui.js").text, client.get("/ui/static/ui.css").text):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text and "<style" not in text and "onclick" not in text
    assert ".innerHTML" not in client.get("/ui/static/ui.js").text


def test_the_summary_numbers_equal_the_metrics(served: Served, client: TestClient):
    run = {"Authorization": f"Bearer {served.run_key}"}
    for text in ("a bill please", "my visit", "a bill again", "nothing matches"):
        assert client.post("/v1/runs", json={"text": text}, headers=run).status_code == 200
    sign_in(client, served.run_key)
    summary = client.get("/ui/api/summary").json()
    families = {f.name: f for f in text_string_to_metric_families(
        client.get("/metrics", headers=run).text)}
    by_status = {s.labels["status"]: s.value for s in families["shoal_runs"].samples
                 if s.name == "shoal_runs_total"}
    assert summary["runs"]["by_status"] == by_status
    assert summary["runs"]["total"] == sum(by_status.values()) == 4
    spend = [s.value for s in families["shoal_planner_spend_usd"].samples
             if s.name == "shoal_planner_spend_usd_total"]
    estimate = [s.value for s in families["shoal_all_planner_estimate_usd"].samples
                if s.name == "shoal_all_planner_estimate_usd_total"]
    assert [summary["planner"]["spend_usd"]] == spend
    assert [summary["planner"]["all_planner_estimate_usd"]] == estimate
    pending = [s.value for s in families["shoal_outbox_pending"].samples]
    assert [summary["outbox_pending"]] == pending
    count = [s.value for s in families["shoal_run_latency_seconds"].samples
             if s.name == "shoal_run_latency_seconds_count"]
    assert [summary["latency"]["count"]] == count == [4.0]
    recent = summary["latency"]["recent"]
    assert recent["n"] == 4 and 0 <= recent["p50"] <= recent["p95"]
    assert sum(summary["timeline"]["runs"]) == 4 and summary["timeline"]["share"] == {}
    assert summary["graph"] == "dash" and summary["shadow"] == []
    assert summary["escalations"] == {}  # no planner in this graph


def test_labelling_through_the_page_uses_the_review_api(served: Served, client: TestClient):
    sign_in(client, served.review_key)
    queue = client.get("/ui/api/review").json()
    assert [e["id"] for e in queue["data"]] == [served.entry]
    assert queue["labels"] == {"triage": ["appointment", "billing", "other"]}
    body = {"id": served.entry, "label": "appointment"}
    assert client.post("/ui/api/label", json=body).status_code == 403  # no x-shoal-ui header
    refused = client.post("/ui/api/label", json={**body, "label": "refill"},
                          headers={"x-shoal-ui": "1"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "label_not_allowed"
    done = client.post("/ui/api/label", json=body, headers={"x-shoal-ui": "1"})
    assert done.status_code == 200 and done.json()["human_label"] == "appointment"
    entry = served.ledger.entry(served.entry)
    assert entry is not None and entry.human_label == "appointment"
    assert client.get("/ui/api/review").json()["total"] == 0


def test_a_canary_in_a_request_never_reaches_what_the_page_reads(served: Served,
                                                                 client: TestClient):
    run = {"Authorization": f"Bearer {served.run_key}"}
    text = f"Hi, this is {CANARY}, can I pay my bill?"
    assert client.post("/v1/runs", json={"text": text, "id": "canary-1"},
                       headers=run).status_code == 200
    sign_in(client, served.review_key)
    shown = "".join(client.get(p).text for p in ("/ui", "/ui/api/summary", "/ui/api/review"))
    assert "[NAME_1]" in shown  # the masked queue text is shown
    for secret in (CANARY, "Quarterfield", "canary-1", "r1"):
        assert secret not in shown


def test_without_auth_the_dashboard_is_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SHOAL_AUDIT_LOG", raising=False)
    s = Served(tmp_path, auth=False)
    try:
        with TestClient(s.app, follow_redirects=False) as c:
            assert c.get("/ui").status_code == 200
            assert c.get("/ui/login").headers["location"] == "/ui"
            assert c.get("/ui/api/summary").json()["runs"]["total"] == 0
            assert c.get("/ui/api/review").json()["total"] == 1
            assert "Sign out" not in c.get("/ui").text
    finally:
        s.ledger.close()
