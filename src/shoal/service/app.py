"""The FastAPI app of ``shoal serve``: one graph, loaded once, behind bearer keys.

Routes: ``POST /v1/runs`` (the RunResult as ``shoal run`` writes it), ``POST /v1/runs/stream``
(server-sent events: ``node`` per finished node, then ``result``), ``POST /v1/chat/completions``
and ``GET /v1/models`` (OpenAI-compatible, see :mod:`shoal.service.openai_api`), ``GET /metrics``
(Prometheus), ``GET /v1/review`` and ``POST /v1/review/{entry_id}`` (the escalation ledger's
review queue and a person's label, see :mod:`shoal.policies.escalation.review`),
``POST /fhir/Communication`` (a FHIR R4 Communication in, the Communication that replies to it
out, see :mod:`shoal.fhir`; extra ``[fhir]``), and, without a key, ``GET /healthz`` (the process
is up) and ``GET /readyz`` (200 once the start-up warm-up went through the graph, 503 before).
The run, chat and FHIR routes need a key with the ``run`` scope, the review routes one with
``review``. The dashboard under ``/ui`` (:mod:`shoal.service.ui`) checks its own session cookie.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from shoal.errors import ErrorCode, ShoalError
from shoal.extras import missing
from shoal.fhir import Problem, operation_outcome, parse_json
from shoal.fhir import reply as fhir_reply
from shoal.graphs.results import RunResult
from shoal.graphs.runtime import DEFAULT_CONCURRENCY, Graph
from shoal.models.queue import reject_when_full
from shoal.observability.logging import get_logger
from shoal.policies.escalation import (
    LedgerEntry,
    ReviewError,
    open_ledger,
    review_audit_path,
    review_label,
    review_queue,
)
from shoal.service import openai_api, ui
from shoal.service.gate import ApiError, Gate, error_body
from shoal.service.keys import SCOPE_REVIEW, SCOPE_RUN, KeyStore
from shoal.service.metrics import Metrics

__all__ = ["WARMUP_TEXT", "ReviewRequest", "RunRequest", "create_app"]

WARMUP_TEXT = "Hello, I would like to book an appointment for next week, please."
"""Sent once through the graph at start-up (with escalation off) so that lazily loaded models and
dictionaries are in memory before /readyz says 200."""
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
REVIEW_ITEM = "/v1/review/{entry_id}"
FHIR_COMMUNICATION = "/fhir/Communication"
FHIR_JSON = "application/fhir+json"
RUN_ROUTES = frozenset({"/v1/runs", "/v1/runs/stream", "/v1/chat/completions", "/v1/models",
                        FHIR_COMMUNICATION})
REVIEW_ROUTES = frozenset({"/v1/review", REVIEW_ITEM})
ROUTES = frozenset({*RUN_ROUTES, *REVIEW_ROUTES, "/metrics", *OPEN_PATHS, *ui.PATHS})
SCOPES = {**dict.fromkeys(RUN_ROUTES, SCOPE_RUN), **dict.fromkeys(REVIEW_ROUTES, SCOPE_REVIEW)}
"""The scope a key needs per route; ``/metrics`` takes any key of the graph."""
MAX_REVIEW_LIMIT = 500
REFRESH_S = 1.0
"""How often at most a request checks the store for promotions and rollbacks."""
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_log = get_logger()
_M = TypeVar("_M", bound=BaseModel)


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)
    text: str
    id: str | None = Field(default=None, min_length=1, max_length=256)


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)
    label: str


def create_app(
    graph: Graph,
    *,
    keys: KeyStore | None,
    max_body: int = 1 << 20,
    concurrency: int = DEFAULT_CONCURRENCY,
    base_dir: Path | None = None,
    warmup: bool = True,
) -> FastAPI:
    """The app serving ``graph``. ``keys`` None serves without auth (the CLI allows that only on
    loopback). ``concurrency`` bounds runs in flight (more requests wait). ``base_dir`` is the
    graph file's folder, needed to build the warm-up copy of the graph when its policies or
    outbox are relative paths."""
    if concurrency < 1 or max_body < 1:
        raise ValueError("concurrency and max_body must be at least 1")
    slots = asyncio.Semaphore(concurrency)
    metrics = Metrics(outbox=graph.escalator.outbox if graph.escalator is not None else None,
                      versions=graph.model_versions, graph=graph.name)
    recent = ui.RecentRuns()  # the dashboard's p50/p95 and escalation share over time
    refreshed = [0.0]
    refresh_lock = asyncio.Lock()

    async def follow_models() -> None:
        """Promotions, rollbacks and shadow changes (``shoal promote`` in another process) are
        picked up before a request: one small store query at most every REFRESH_S."""
        if time.monotonic() - refreshed[0] < REFRESH_S:
            return
        async with refresh_lock:
            if time.monotonic() - refreshed[0] < REFRESH_S:
                return
            try:
                await asyncio.to_thread(graph.refresh_models)
            except ShoalError as exc:  # a version whose files are gone: keep what runs
                _log.warning("models_not_refreshed", graph=graph.name, code=str(exc.code),
                             error=exc.message)
            refreshed[0] = time.monotonic()
    ready = asyncio.Event()

    ledger = open_ledger(graph.outbox_path)  # opened on first use
    audit_path = review_audit_path(graph.outbox_path)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_warm_up(graph, base_dir, ready, enabled=warmup))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        ledger.close()

    app = FastAPI(title="shoal", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.add_middleware(Gate, keys=keys, graph=graph.name, max_body=max_body, routes=ROUTES,
                       open_paths=OPEN_PATHS | ui.PATHS, scopes=SCOPES)  # /ui: its cookie
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        if ready.is_set():
            return JSONResponse({"status": "ready", "graph": graph.name})
        return JSONResponse({"status": "starting", "graph": graph.name}, status_code=503)

    @app.get("/metrics")
    def metrics_text() -> Response:  # sync: reading the outbox file must not block the loop
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def run(text: str, record_id: str | None) -> RunResult:
        await follow_models()
        async with slots:
            with reject_when_full() as overload:
                result = await graph.arun(text, id=record_id)
        metrics.observe(result)
        recent.add(result)
        if (result.status == "error" and result.error is not None
                and result.error.code == ErrorCode.BACKEND_OVERLOADED):
            # A model's queue was full: the client should come back, not treat it as a failure.
            wait = overload.retry_after_s or 1
            raise ApiError(429, f"a model of graph {graph.name!r} is at capacity; retry in "
                           f"{wait} s", "rate_limit_exceeded", headers={"Retry-After": str(wait)})
        return result

    @app.post("/v1/runs")
    async def runs(request: Request) -> Response:
        body = await _parse(request, RunRequest)
        result = await run(body.text, body.id)
        return JSONResponse(result.model_dump(mode="json"))

    @app.post("/v1/runs/stream")
    async def runs_stream(request: Request) -> Response:
        body = await _parse(request, RunRequest)

        async def events() -> AsyncIterator[str]:
            await follow_models()
            async with slots:
                async for item in graph.astream(body.text, id=body.id):
                    if isinstance(item, RunResult):
                        metrics.observe(item)
                        recent.add(item)
                        yield _sse(item.model_dump_json(), event="result")
                    else:
                        yield _sse(item.model_dump_json(), event="node")

        return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)

    @app.get("/v1/models")
    async def models() -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": graph.name, "object": "model", "created": 0, "owned_by": "shoal"}]})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await _parse(request, openai_api.ChatRequest)
        text = openai_api.last_user_text(body)
        if text is None or not text.strip():
            raise ApiError(400, "the request needs a non-empty 'user' message", "no_user_message")
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        ids: dict[str, Any] = {"completion_id": completion_id, "created": int(time.time()),
                               "model": graph.name}
        if not body.stream:
            result = await run(text, completion_id)
            return JSONResponse(openai_api.completion(result, **ids))
        usage = body.stream_options is not None and body.stream_options.include_usage

        async def events() -> AsyncIterator[str]:
            yield _sse(_json(openai_api.first_chunk(**ids)))
            result = await run(text, completion_id)
            for chunk in openai_api.chunks(result, include_usage=usage, **ids):
                yield _sse(_json(chunk))
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)

    @app.post(FHIR_COMMUNICATION)
    async def fhir_communication(request: Request) -> Response:
        """One Communication runs through the graph; the answer is the Communication that
        replies to it (:func:`shoal.fhir.reply`). A body that is no valid Communication is a 400
        (422 for a payload that is not text) with an OperationOutcome that names the problem
        and never quotes the resource."""
        absent = missing("fhir")
        if absent is not None:
            return _outcome(501, f"FHIR {absent}", "not-supported", validate=False)
        try:
            parsed = parse_json(await request.body())
            if isinstance(parsed, Problem):
                status = 422 if parsed.issue == "not-supported" else 400
                return _outcome(status, f"Communication: {parsed.reason}", parsed.issue)
            result = await run(parsed.text, parsed.id)
        except ApiError as exc:  # a body over --max-body, a model at capacity
            issue = "throttled" if exc.status_code == 429 else (
                "too-costly" if exc.status_code == 413 else "exception")
            return _outcome(exc.status_code, str(exc.detail), issue, exc.headers)
        return JSONResponse(fhir_reply(result, parsed.envelope, graph=graph.name),
                            media_type=FHIR_JSON)

    def review_page(node: str | None, include_reviewed: bool, limit: int) -> dict[str, Any]:
        entries = review_queue(ledger, graph=graph.name, node=node,
                               include_reviewed=include_reviewed)
        return {"object": "list", "data": [_entry(e) for e in entries[:limit]],
                "total": len(entries)}

    @app.get("/v1/review")
    def review_list(  # sync: FastAPI runs it in a thread, off the loop (SQLite blocks)
        node: str | None = None,
        include_reviewed: bool = Query(False, alias="all"),
        limit: int = Query(50, ge=1, le=MAX_REVIEW_LIMIT),
    ) -> Response:
        return JSONResponse(review_page(node, include_reviewed, limit))

    @app.post(REVIEW_ITEM)
    async def review_one(entry_id: str, request: Request) -> Response:
        body = await _parse(request, ReviewRequest)
        return JSONResponse(await label_entry(entry_id, body.label))

    async def label_entry(entry_id: str, human_label: str) -> dict[str, Any]:
        """A person's label on one entry (the review API's and the dashboard's)."""

        def label() -> LedgerEntry:
            entry = ledger.entry(entry_id) if ledger.exists() else None
            known = graph.node_labels(entry.node) if entry is not None else None
            return review_label(ledger, entry_id, human_label, graph=graph.name,
                                known_labels=known, audit_path=audit_path)

        try:
            updated = await asyncio.to_thread(label)
        except ReviewError as exc:
            status = 404 if exc.reason == "unknown_entry" else 400
            raise ApiError(status, exc.plain, exc.reason) from None
        _log.info("review_labelled", entry_id=updated.id, node=updated.node,
                  label=updated.human_label, agrees_with_planner=(
                      updated.human_label == updated.planner_label))
        return _entry(updated)

    ui.mount_ui(app, graph=graph, metrics=metrics, keys=keys, recent=recent,
                review_page=review_page, label_entry=label_entry)
    return app


def _entry(e: LedgerEntry) -> dict[str, Any]:
    """A ledger entry as the review routes show it; ``text`` is the masked text the planner
    was sent (the ledger holds nothing else)."""
    return {"id": e.id, "node": e.node, "local_label": e.local_label,
            "local_confidence": e.local_confidence, "planner_label": e.planner_label,
            "human_label": e.human_label, "text": e.text, "created": e.created}


def _outcome(status: int, message: str, issue: str,
             headers: Mapping[str, str] | None = None, *, validate: bool = True) -> Response:
    """An OperationOutcome response (FHIR routes); ``message`` never quotes the request."""
    return JSONResponse(operation_outcome(message, issue=issue, validate=validate),
                        status_code=status, media_type=FHIR_JSON,
                        headers=dict(headers) if headers else None)


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _sse(data: str, *, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n"


async def _warm_up(graph: Graph, base_dir: Path | None, ready: asyncio.Event, *,
                   enabled: bool) -> None:
    """One run through a copy of the graph that shares its models but never escalates, so
    that start-up sends nothing to the planner and queues nothing in the outbox; then ready."""
    started = time.perf_counter()
    status: str | None = None
    if enabled:
        try:
            twin = await asyncio.to_thread(
                Graph, graph.spec, base_dir=base_dir, source=graph.source, models=graph.models,
                checked=True, rules=dict.fromkeys(graph.spec.nodes))
            result = await twin.arun(WARMUP_TEXT, id="shoal-serve-warmup")
            status = result.status
        except Exception as exc:  # the graph itself was built; serve it anyway
            _log.warning("serve_warmup_failed", error_type=type(exc).__name__)
    ready.set()
    _log.info("serve_ready", graph=graph.name, warmup_status=status,
              warmup_ms=round((time.perf_counter() - started) * 1000.0, 1))


async def _http_error(_: Request, exc: HTTPException) -> Response:
    code = exc.code if isinstance(exc, ApiError) else None
    message = str(exc.detail) if isinstance(exc, ApiError) else _plain(exc.status_code)
    return JSONResponse(error_body(exc.status_code, message, code), status_code=exc.status_code,
                        headers=exc.headers)


def _plain(status: int) -> str:
    return {404: "no such route", 405: "method not allowed"}.get(status, f"HTTP {status}")


async def _parse(request: Request, model: type[_M]) -> _M:
    """The JSON body as ``model``, whatever the Content-Type says. Errors name field paths and
    pydantic's messages only, never the input."""
    raw = await request.body()  # the Gate's cap applies: BodyTooLarge is a 413
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, "request body is not valid JSON", "invalid_json") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, _describe(exc.errors(include_input=False)),
                       "invalid_request") from None


def _describe(errors: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for e in errors[:10]:
        loc = ".".join(str(p) for p in e.get("loc", ())) or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
    # Not raised by shoal's routes (they parse bodies themselves); kept so that no FastAPI
    # default, which echoes the input, can answer.
    return JSONResponse(error_body(422, _describe(exc.errors()), "invalid_request"),
                        status_code=422)
