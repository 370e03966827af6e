"""The dashboard of ``shoal serve`` at ``/ui``: one HTML page, its script and style shipped in the
package (no CDN, no external font), a strict Content-Security-Policy (``'self'`` only).

Sign-in: ``/ui/login`` takes an API key (the same keys as the API); the server answers with an
HttpOnly, SameSite=Strict cookie holding a random token that maps, in this process's memory, to
the key's name and scopes until it expires (:data:`SESSION_TTL_S`) or the key is removed from the
keys file. Sign-in is limited per client address (:class:`SignInLimit`). Sessions live in one
process: replicas behind a load balancer need sticky sessions for ``/ui``. Without auth
(``--no-auth``, loopback only) the dashboard is open.

The numbers come from the same :class:`~shoal.service.metrics.Metrics` registry ``/metrics``
renders (never a second count), except the latency quantiles, which come from a ring of the last
:data:`RECENT_RUNS` runs kept by the app (:class:`RecentRuns`), which also gives the escalation
share per node over the last half hour, minute by minute. The review queue shows each entry's
masked text only and labels through the review API's own code.

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

__all__ = ["CSP", "PATHS", "RecentRuns", "SESSION_COOKIE", "SESSION_TTL_S", "Sessions",
           "SignInLimit", "mount_ui", "summary"]

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
SIGN_IN_FAILURES = 10
SIGN_IN_WINDOW_S = 60.0
SESSION_COOKIE = "shoal_ui"
SESSION_TTL_S = 8 * 3600
MAX_SESSIONS = 1000
RECENT_RUNS = 500
TIMELINE_BUCKET_S = 60.0
TIMELINE_BUCKETS = 30
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


class SignInLimit:
    """At most ``failures`` failed sign-ins per client address in any ``window_s`` seconds; past
    that, every sign-in from the address (right key or not) is refused until the oldest failure
    leaves the window, so a key cannot be guessed at the speed of the server."""

    def __init__(self, failures: int = SIGN_IN_FAILURES, window_s: float = SIGN_IN_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.window_s = window_s
        self._clock = clock
        self._by_client: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it may now."""
        now = self._clock()
        with self._lock:
            seen = self._by_client.get(client)
            if seen is None:
                return None
            while seen and seen[0] <= now - self.window_s:
                seen.popleft()
            if not seen:
                del self._by_client[client]
                return None
            if len(seen) < self.failures:
                return None
            return max(1, math.ceil(seen[0] + self.window_s - now))

    def failed(self, client: str) -> None:
        with self._lock:
            if client not in self._by_client and len(self._by_client) >= MAX_SESSIONS:
                self._by_client.pop(next(iter(self._by_client)))  # bounded memory
            self._by_client.setdefault(client, deque()).append(self._clock())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class RecentRuns:
    """The last ``size`` runs, for the dashboard's latency p50/p95 and its escalation share
    over time: per run its wall-clock time, latency and the nodes that escalated (names only,
    nothing the sender wrote)."""

    def __init__(self, size: int = RECENT_RUNS, clock: Callable[[], float] = time.time) -> None:
        self._runs: deque[tuple[float, float | None, tuple[str, ...]]] = deque(maxlen=size)
        self._clock = clock

    def add(self, result: RunResult) -> None:
        escalated = tuple(n.node for n in result.nodes if n.escalated or n.pending)
        latency = result.latency_ms / 1000.0 if result.latency_ms is not None else None
        self._runs.append((self._clock(), latency, escalated))

    def quantiles(self) -> dict[str, float | int | None]:
        values = sorted(lat for _, lat, _ in self._runs if lat is not None)
        return {"n": len(values), "p50": _quantile(values, 0.5), "p95": _quantile(values, 0.95)}

    def timeline(self, bucket_s: float = TIMELINE_BUCKET_S,
                 buckets: int = TIMELINE_BUCKETS) -> dict[str, Any]:
        """Runs and escalation share per node in each of the last ``buckets`` windows of
        ``bucket_s`` seconds, oldest first; a window with no run has share None. The share of a
        node is the fraction of the window's runs in which that node escalated."""
        now = self._clock()
        end = math.floor(now / bucket_s) * bucket_s + bucket_s
        start = end - buckets * bucket_s
        runs = [0] * buckets
        by_node: dict[str, list[int]] = {}
        for at, _, escalated in self._runs:
            if at < start:
                continue
            i = min(buckets - 1, int((at - start) // bucket_s))
            runs[i] += 1
            for node in set(escalated):
                by_node.setdefault(node, [0] * buckets)[i] += 1
        return {"bucket_s": bucket_s, "start": start, "runs": runs,
                "share": {node: [c / r if r else None for c, r in zip(counts, runs, strict=True)]
                          for node, counts in sorted(by_node.items())}}


def _quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted ``values``."""
    if not values:
        return None
    return values[max(0, math.ceil(q * len(values)) - 1)]


def summary(metrics: Metrics, graph: Graph, recent: RecentRuns) -> dict[str, Any]:
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
        "timeline": recent.timeline(),
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
             recent: RecentRuns, review_page: ReviewPage, label_entry: LabelEntry) -> None:
    """Add the dashboard's routes to ``app``. ``review_page`` and ``label_entry`` are the review
    API's own list and label functions."""
    sessions = Sessions(keys, graph.name) if keys is not None else None
    limit = SignInLimit()

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
        client = request.client.host if request.client is not None else "unknown"
        wait = limit.retry_after(client)
        if wait is not None:
            return HTMLResponse(_login(f"Too many failed sign-ins; try again in {wait} s."),
                                status_code=429, headers={**_HEADERS, "Retry-After": str(wait)})
        form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
        token = (form.get("key") or [""])[0].strip()
        key = keys.lookup(token) if token else None
        if key is None or not key.allows(graph.name):
            limit.failed(client)
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
