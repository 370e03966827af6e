"""The dashboard of ``shoal serve`` at ``/ui``: one HTML page, its script and style shipped in the
package (no CDN, no external font), a strict Content-Security-Policy (``'self'`` only).

Sign-in: ``/ui/login`` takes an API key (the same keys as the API); the server answers with an
HttpOnly, SameSite=Strict cookie holding a random token that maps, in this process's memory, to
the key's name and scopes until it expires (:data:`SESSION_TTL_S`) or the key is removed from the
keys file. Without auth (``--no-auth``, loopback only) the dashboard is open.

The numbers come from the same :class:`~shoal.service.metrics.Metrics` registry ``/metrics``
renders (never a second count), except the latency quantiles, which come from a ring of the last
:data:`RECENT_RUNS` run latencies kept by the app (:class:`RecentLatencies`). The review queue
shows each entry's masked text only and labels through the review API's own code.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from shoal.errors import StoreError
from shoal.graphs.results import RunResult
from shoal.graphs.runtime import Graph
from shoal.policies.escalation import open_registry
from shoal.service.gate import ApiError
from shoal.service.keys import SCOPE_REVIEW, ApiKey, KeyStore
from shoal.service.metrics import CIRCUIT_STATES, Metrics

__all__ = ["CSP", "PATHS", "RecentLatencies", "SESSION_COOKIE", "SESSION_TTL_S", "Sessions",
           "mount_ui", "summary"]

PAGE = "/ui"
LOGIN = "/ui/login"
LOGOUT = "/ui/logout"
SUMMARY = "/ui/api/summary"
REVIEW = "/ui/api/review"
LABEL = "/ui/api/label"
ASSETS = {"/ui/static/ui.js": ("ui.js", "text/javascript; charset=utf-8"),
          "/ui/static/ui.css": ("ui.css", "text/css; charset=utf-8"),
          "/ui/static/favicon.svg": ("favicon.svg", "image/svg+xml")}
PATHS = frozenset({PAGE, LOGIN, LOGOUT, SUMMARY, REVIEW, LABEL, *ASSETS})
"""The dashboard's routes: the Gate lets them through, they check the session cookie."""
SESSION_COOKIE = "shoal_ui"
SESSION_TTL_S = 8 * 3600
MAX_SESSIONS = 1000
RECENT_RUNS = 500
UI_HEADER = "x-shoal-ui"
"""The dashboard's script sends it with every JSON post: a cross-site form cannot."""
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; object-src 'none'")
_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer", "cache-control": "no-store",
            "x-frame-options": "DENY"}
_STATES = {v: k for k, v in CIRCUIT_STATES.items()}


@dataclass(frozen=True, slots=True)
class Session:
    name: str
    sha256: str
    scopes: tuple[str, ...]
    expires: float


class Sessions:
    """Random tokens (only their SHA-256 kept) mapped to the key that signed in."""

    def __init__(self, keys: KeyStore, graph: str, ttl_s: float = SESSION_TTL_S) -> None:
        self.keys = keys
        self.graph = graph
        self.ttl_s = ttl_s
        self._by_hash: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, key: ApiKey) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._by_hash = {h: s for h, s in self._by_hash.items() if s.expires > now}
            while len(self._by_hash) >= MAX_SESSIONS:  # the oldest goes
                del self._by_hash[min(self._by_hash, key=lambda h: self._by_hash[h].expires)]
            self._by_hash[_digest(token)] = Session(key.name, key.sha256, key.scopes,
                                                    now + self.ttl_s)
        return token

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token``: not expired, its key still in the keys file and
        still allowed the graph."""
        if not token:
            return None
        digest = _digest(token)
        with self._lock:
            session = self._by_hash.get(digest)
            if session is not None and session.expires <= time.monotonic():
                del self._by_hash[digest]
                session = None
        if session is None:
            return None
        listed = self.keys.keys()  # re-read when the keys file changes
        current = next((k for k in listed if k.sha256 == session.sha256), None)
        if current is None or not current.allows(self.graph):
            self.drop(token)
            return None
        return Session(current.name, current.sha256, current.scopes, session.expires)

    def drop(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._by_hash.pop(_digest(token), None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class RecentLatencies:
    """The last ``size`` run latencies (seconds), for the dashboard's p50 and p95."""

    def __init__(self, size: int = RECENT_RUNS) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, result: RunResult) -> None:
        if result.latency_ms is not None:
            self._values.append(result.latency_ms / 1000.0)

    def quantiles(self) -> dict[str, float | int | None]:
        values = sorted(self._values)
        return {"n": len(values), "p50": _quantile(values, 0.5), "p95": _quantile(values, 0.95)}


def _quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted ``values``."""
    if not values:
        return None
    return values[max(0, math.ceil(q * len(values)) - 1)]


def summary(metrics: Metrics, graph: Graph, recent: RecentLatencies) -> dict[str, Any]:
    """The dashboard's numbers, read from ``metrics``' registry as ``/metrics`` renders it."""
    runs: dict[str, float] = {}
    escalations: dict[str, dict[str, float]] = {}
    circuits: dict[str, str] = {}
    versions: dict[str, str] = {}
    single: dict[str, float] = {}
    for family in metrics.registry.collect():
        for s in family.samples:
            if s.name == "shoal_runs_total":
                runs[s.labels["status"]] = s.value
            elif s.name == "shoal_escalations_total":
                escalations.setdefault(s.labels["node"], {})[s.labels["outcome"]] = s.value
            elif s.name == "shoal_circuit_state":
                circuits[s.labels["backend"]] = _STATES.get(int(s.value), "unknown")
            elif s.name == "shoal_model_version_info":
                versions[s.labels["node"]] = s.labels["version"]
            elif s.name in {"shoal_planner_spend_usd_total", "shoal_all_planner_estimate_usd_total",
                            "shoal_planner_calls_total", "shoal_outbox_pending",
                            "shoal_run_latency_seconds_count", "shoal_run_latency_seconds_sum"}:
                single[s.name] = s.value
    total = sum(runs.values())
    calls = single.get("shoal_planner_calls_total", 0.0)
    pending = single.get("shoal_outbox_pending", 0.0)
    count = single.get("shoal_run_latency_seconds_count", 0.0)
    return {
        "graph": graph.name,
        "runs": {"total": total, "by_status": runs},
        "escalations": escalations,
        "planner": {"calls": calls, "share": calls / total if total else None,
                    "spend_usd": single.get("shoal_planner_spend_usd_total", 0.0),
                    "all_planner_estimate_usd": single.get(
                        "shoal_all_planner_estimate_usd_total", 0.0)},
        "latency": {"recent": recent.quantiles(), "count": count,
                    "mean": (single.get("shoal_run_latency_seconds_sum", 0.0) / count
                             if count else None)},
        "circuits": circuits,
        "outbox_pending": None if math.isnan(pending) else pending,
        "model_versions": versions,
        "shadow": _shadows(graph),
    }


def _shadows(graph: Graph) -> list[dict[str, Any]]:
    """Per learnable node with a shadow: its version, runs compared, agreement with the
    champion (labels only; accuracy against people's labels is ``shoal shadow``'s)."""
    if not graph.learnable_nodes:
        return []
    try:
        registry = open_registry(graph.outbox_path)
        if not registry.exists():
            return []
        shown = []
        for node in graph.learnable_nodes:
            version = registry.shadow(graph.name, node)
            if version is None:
                continue
            records = registry.shadow_records(graph.name, node, version)
            agree = sum(r.champion_label == r.candidate_label for r in records)
            shown.append({"node": node, "version": version, "n": len(records),
                          "agreement": agree / len(records) if records else None})
        return shown
    except StoreError:
        return []


ReviewPage = Callable[[str | None, bool, int], dict[str, Any]]
LabelEntry = Callable[[str, str], Awaitable[dict[str, Any]]]


def mount_ui(app: FastAPI, *, graph: Graph, metrics: Metrics, keys: KeyStore | None,
             recent: RecentLatencies, review_page: ReviewPage, label_entry: LabelEntry) -> None:
    """Add the dashboard's routes to ``app``. ``review_page`` and ``label_entry`` are the review
    API's own list and label functions."""
    sessions = Sessions(keys, graph.name) if keys is not None else None

    def session_of(request: Request) -> Session | None:
        if sessions is None:
            return Session("no-auth", "", ("run", "review"), math.inf)
        return sessions.get(request.cookies.get(SESSION_COOKIE))

    def need(request: Request, scope: str | None = None) -> Session:
        session = session_of(request)
        if session is None:
            raise ApiError(401, "sign in at /ui/login", "not_signed_in")
        if scope is not None and scope not in session.scopes:
            raise ApiError(403, f"this key lacks the {scope!r} scope", "forbidden")
        return session

    @app.get(PAGE)
    def page(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse(LOGIN, status_code=303, headers=_HEADERS)
        html = _asset("index.html").replace("{{graph}}", _escape(graph.name)).replace(
            "{{user}}", _escape(session.name)).replace(
            "{{logout}}", "" if sessions is None else _LOGOUT_FORM)
        return HTMLResponse(html, headers=_HEADERS)

    @app.get(LOGIN)
    def login_form() -> Response:
        if sessions is None:
            return RedirectResponse(PAGE, status_code=303, headers=_HEADERS)
        return HTMLResponse(_login(""), headers=_HEADERS)

    @app.post(LOGIN)
    async def login(request: Request) -> Response:
        if sessions is None or keys is None:
            return RedirectResponse(PAGE, status_code=303, headers=_HEADERS)
        form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
        token = (form.get("key") or [""])[0].strip()
        key = keys.lookup(token) if token else None
        if key is None or not key.allows(graph.name):
            return HTMLResponse(_login("That key is not valid for this graph."),
                                status_code=401, headers=_HEADERS)
        response = RedirectResponse(PAGE, status_code=303, headers=_HEADERS)
        response.set_cookie(SESSION_COOKIE, sessions.create(key), max_age=SESSION_TTL_S,
                            path="/ui", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    @app.post(LOGOUT)
    def logout(request: Request) -> Response:
        if sessions is not None:
            sessions.drop(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse(LOGIN, status_code=303, headers=_HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")
        return response

    for path, (name, media) in ASSETS.items():
        def asset(name: str = name, media: str = media) -> Response:
            return Response(_asset(name), media_type=media, headers=_HEADERS)
        app.add_api_route(path, asset, methods=["GET"])

    @app.get(SUMMARY)
    def summary_json(request: Request) -> Response:  # sync: the outbox count reads a file
        need(request)
        return JSONResponse(summary(metrics, graph, recent), headers=_HEADERS)

    @app.get(REVIEW)
    def review_json(request: Request) -> Response:
        need(request, SCOPE_REVIEW)
        body = review_page(None, False, 50)
        nodes = {e["node"] for e in body["data"]}
        body["labels"] = {n: sorted(graph.node_labels(n) or ()) for n in sorted(nodes)}
        return JSONResponse(body, headers=_HEADERS)

    @app.post(LABEL)
    async def label(request: Request) -> Response:
        need(request, SCOPE_REVIEW)
        if request.headers.get(UI_HEADER) != "1":
            raise ApiError(403, f"the dashboard's posts carry {UI_HEADER}: 1", "forbidden")
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "request body is not valid JSON", "invalid_json") from None
        if not (isinstance(body, dict) and isinstance(body.get("id"), str)
                and isinstance(body.get("label"), str)):
            raise ApiError(422, "the body needs 'id' and 'label' strings", "invalid_request")
        return JSONResponse(await label_entry(body["id"], body["label"]), headers=_HEADERS)


_LOGOUT_FORM = ('<form method="post" action="/ui/logout" class="logout">'
                '<button type="submit">Sign out</button></form>')


def _login(message: str) -> str:
    error = f'<p class="error" role="alert">{_escape(message)}</p>' if message else ""
    return _asset("login.html").replace("{{error}}", error)


def _asset(name: str) -> str:
    return resources.files("shoal.service").joinpath("ui_static", name).read_text("utf-8")


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))
