"""A :class:`~shoal.models.base.Generator` behind any OpenAI-compatible chat completions API.

This is the backend the planner runs on, and the only one that sends anything off the machine,
so it is strict about what it repeats: no error message or log event carries the prompt, the
model's reply, the server's response body or the API key. Errors name the HTTP status and the
server's error ``type``/``code`` (short identifiers) only; the key is read once, from the
environment variable the spec *names*, and travels only in the ``Authorization`` header.

Time-outs and retries
    ``timeout_s`` is one deadline over the whole call, retries and back-off included, so a caller
    waits at most that long (then :class:`~shoal.BackendTimeout`). Failures that say nothing was
    answered are retried up to ``max_retries`` times with exponential back-off and full jitter:
    connection errors, 429 and 5xx. A ``Retry-After`` header is obeyed, up to
    ``retry_after_max_s``. Read time-outs are not retried: under one deadline a read that runs
    out of time has spent the caller's budget, and re-sending would make a planner that is still
    working on the first copy work on a second. Other 4xx are the request's fault and fail at
    once.

Structured output
    ``generate_json`` asks for ``response_format={"type": "json_schema", "json_schema": {...}}``,
    the form OpenAI, vLLM, llama.cpp's ``llama-server`` and Ollama accept. llama-cpp-python's
    ``llama_cpp.server`` (0.3.x) accepts only ``{"type": "json_object", "schema": {...}}`` and
    answers the standard form with HTTP 500 (a request validation error naming
    ``response_format``). With ``json_mode="auto"`` (the default) the first such rejection
    switches this instance to the llama-cpp form at once (no back-off, not counted as a retry)
    and it stays switched; ``"json_schema"`` or ``"json_object"`` pin one form. The reply is
    parsed and validated here whatever the server promised.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import copy
import email.utils
import json
import os
import random
import re
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import pydantic

from shoal.errors import BackendError, BackendTimeout, OutputValidationError
from shoal.models.base import (
    Generation,
    JsonGeneration,
    JsonSchema,
    Message,
    Usage,
    json_schema_of,
    validate_json,
)
from shoal.models.specs import OpenAIModelSpec, Price
from shoal.models.tokens import count_generated
from shoal.observability.logging import get_logger

JsonMode = Literal["auto", "json_schema", "json_object"]

_RETRYABLE_TRANSPORT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError,
                        httpx.WriteError, httpx.RemoteProtocolError)
"""Transport failures after which no answer arrived. The request may have reached the server,
but a chat completion has no side effects, so sending it again is safe."""
_CONNECT_TIMEOUT_S = 10.0
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
"""What an error ``type``/``code`` must look like to be quoted: some servers put prose there."""

_log = get_logger()


class OpenAICompatModel:
    """Chat completions over HTTP with retries, one deadline per call, and cost accounting.

    One ``httpx.AsyncClient`` per instance, made on first use; use the instance with
    ``async with`` or call :meth:`aclose` when done. An instance used from a new event loop (each
    ``Graph.run`` is one) makes a new client there; the old one was closed when its loop shut
    down.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        price: Price | None = None,
        name: str | None = None,
        json_mode: JsonMode = "auto",
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        retry_after_max_s: float = 30.0,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name or f"openai:{model}"
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.price = price
        self.json_mode: JsonMode = json_mode
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self._rng = rng or random.Random()
        self._transport = transport
        self._url = f"{self.base_url}/chat/completions"
        self._where = _origin(self.base_url)
        self._loopback = urlsplit(self.base_url).hostname in _LOOPBACK
        self._headers = {"Accept": "application/json"}
        if api_key_env is not None:
            key = os.environ.get(api_key_env)
            if not key:
                raise BackendError(
                    f"environment variable {api_key_env} is not set or empty; it must hold the "
                    f"API key for {self._where}", backend=self.name)
            self._headers["Authorization"] = f"Bearer {key}"
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._closer: AsyncGenerator[None, None] | None = None

    @classmethod
    def from_spec(cls, spec: OpenAIModelSpec, **kwargs: Any) -> OpenAICompatModel:
        """The backend for a ``kind: openai`` model entry; ``kwargs`` go to the constructor."""
        return cls(base_url=spec.base_url, model=spec.model, api_key_env=spec.api_key_env,
                   timeout_s=spec.timeout_s, max_retries=spec.max_retries, price=spec.price,
                   **kwargs)

    def __repr__(self) -> str:
        return (f"OpenAICompatModel(name={self.name!r}, base_url={self._where!r}, "
                f"model={self.model!r})")

    # --- Generator ----------------------------------------------------------------------------

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        timeout_s: float | None = None,
    ) -> Generation:
        payload = self._payload(messages, max_tokens=max_tokens, temperature=temperature)
        body, latency_ms = await self._complete(payload, None, timeout_s)
        text, usage, finish = self._parse(body)
        return Generation(text=text, model=self._served_model(body), usage=usage,
                          cost_usd=self._cost(usage), latency_ms=latency_ms,
                          finish_reason=finish)

    async def generate_json(
        self,
        messages: Sequence[Message],
        schema: JsonSchema,
        *,
        max_tokens: int = 512,
        timeout_s: float | None = None,
    ) -> JsonGeneration:
        payload = self._payload(messages, max_tokens=max_tokens, temperature=0.0)
        body, latency_ms = await self._complete(payload, _wire_schema(schema), timeout_s)
        text, usage, finish = self._parse(body)
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            # JSONDecodeError's message is a position only; the text stays out of it.
            raise OutputValidationError("reply is not valid JSON", node=self.name,
                                        attempts=1) from exc
        try:
            data = validate_json(schema, parsed)
        except pydantic.ValidationError as exc:
            where = ", ".join(f"{'.'.join(map(str, e['loc'])) or '$'}: {e['type']}"
                              for e in exc.errors(include_input=False)[:5])
            # Not chained: a user model without hide_input_in_errors quotes the reply in str().
            raise OutputValidationError(f"reply does not match the schema ({where})",
                                        node=self.name, attempts=1) from None
        except ValueError as exc:
            raise OutputValidationError(f"reply does not match the schema ({exc})",
                                        node=self.name, attempts=1) from exc
        return JsonGeneration(text=text, model=self._served_model(body), data=data,
                              usage=usage, cost_usd=self._cost(usage), latency_ms=latency_ms,
                              finish_reason=finish)

    # --- life cycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the HTTP client (its pooled connections). The instance may be used again."""
        client, closer, loop = self._client, self._closer, self._client_loop
        self._client = self._closer = self._client_loop = None
        if closer is not None and loop is asyncio.get_running_loop():
            await closer.aclose()
        elif client is not None and (loop is None or loop.is_closed()):
            # Its loop shut down and closed it (see _client_for_loop); this is a no-op for httpx.
            await client.aclose()

    async def __aenter__(self) -> OpenAICompatModel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _client_for_loop(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is loop:
            return self._client
        # Pooled connections belong to the loop that opened them, and ``Graph.run`` starts a new
        # loop per run: a client from an earlier loop fails with "Event loop is closed".
        client = httpx.AsyncClient(
            headers=self._headers, transport=self._transport,
            timeout=httpx.Timeout(None, connect=_CONNECT_TIMEOUT_S),
            # Environment proxies and CA bundles are needed to reach a remote planner from many
            # networks, but traffic to this machine must never be routed through a proxy.
            trust_env=not self._loopback,
        )
        closer = _close_with_loop(client)
        self._client, self._client_loop, self._closer = client, loop, closer
        # A started async generator is closed by the loop's shutdown_asyncgens() (asyncio.run,
        # asyncio.Runner, pytest-asyncio), so the client's sockets are closed on the loop that
        # owns them even when nobody calls aclose().
        await anext(closer)
        return client

    # --- the request --------------------------------------------------------------------------

    def _payload(
        self, messages: Sequence[Message], *, max_tokens: int, temperature: float
    ) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": False,
        }

    async def _complete(
        self, payload: dict[str, Any], schema: dict[str, Any] | None, timeout_s: float | None
    ) -> tuple[dict[str, Any], float]:
        budget = self.timeout_s if timeout_s is None else timeout_s
        started = time.perf_counter()
        try:
            async with asyncio.timeout(budget) as deadline:
                body = await self._send(payload, schema, deadline)
        except (TimeoutError, httpx.TimeoutException):
            raise BackendTimeout(backend=self.name, timeout_s=budget) from None
        return body, (time.perf_counter() - started) * 1000.0

    async def _send(
        self, payload: dict[str, Any], schema: dict[str, Any] | None, deadline: asyncio.Timeout
    ) -> dict[str, Any]:
        client = await self._client_for_loop()
        attempt = 0
        while True:
            attempt += 1
            mode = self.json_mode
            if schema is not None:
                payload["response_format"] = _response_format(mode, schema)
            try:
                response = await client.post(self._url, json=payload)
            except _RETRYABLE_TRANSPORT as exc:
                failure = _Failure(status=None, error=type(exc).__name__, exc=exc)
            except httpx.TimeoutException:
                raise  # the deadline: _complete turns it into BackendTimeout
            except httpx.HTTPError as exc:
                raise BackendError(f"{type(exc).__name__} talking to {self._where}",
                                   backend=self.name) from exc
            else:
                if response.is_success:
                    return self._json_body(response)
                if schema is not None and mode == "auto" and _rejects_json_schema(response):
                    self.json_mode = "json_object"
                    _log.info("json_mode_fallback", backend=self.name, status=response.status_code,
                              json_mode="json_object")
                    attempt -= 1
                    continue
                failure = _Failure(status=response.status_code, error=_error_ids(response),
                                   retry_after=_retry_after_s(response))
                if response.status_code != 429 and response.status_code < 500:
                    raise BackendError(f"{failure.describe()} from {self._where}",
                                       backend=self.name)
            if attempt > self.max_retries:
                raise BackendError(f"{failure.describe()} from {self._where}; gave up after "
                                   f"{attempt} attempt(s)", backend=self.name) from failure.exc
            backoff = self._backoff_s(attempt, failure.retry_after)
            when = deadline.when()
            if when is not None and asyncio.get_running_loop().time() + backoff >= when:
                raise BackendError(f"{failure.describe()} from {self._where}; gave up after "
                                   f"{attempt} attempt(s): the next would pass the "
                                   f"deadline", backend=self.name) from failure.exc
            _log.warning("planner_retry", backend=self.name, attempt=attempt,
                         status=failure.status, error=failure.error, backoff_s=round(backoff, 4))
            await asyncio.sleep(backoff)

    def _backoff_s(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max_s)
        # Full jitter (AWS architecture blog): clients that failed together retry apart.
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return self._rng.uniform(0.0, ceiling)

    # --- the response -------------------------------------------------------------------------

    def _json_body(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise BackendError(f"HTTP {response.status_code} from {self._where} with a body "
                               f"that is not JSON", backend=self.name) from None
        if not isinstance(body, dict):
            raise BackendError(f"response from {self._where} is not a JSON object",
                               backend=self.name)
        return body

    def _parse(self, body: Mapping[str, Any]) -> tuple[str, Usage, str | None]:
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise BackendError(f"response from {self._where} has no choices", backend=self.name)
        choice = choices[0]
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise BackendError(f"response from {self._where} has no message content",
                               backend=self.name)
        finish = choice.get("finish_reason")
        usage = _usage(body.get("usage"))
        count_generated(self.name, usage.completion_tokens)
        return content, usage, finish if isinstance(finish, str) else None

    def _served_model(self, body: Mapping[str, Any]) -> str:
        served = body.get("model")
        return served if isinstance(served, str) and served else self.model

    def _cost(self, usage: Usage) -> float | None:
        if self.price is None:
            return None
        return (usage.prompt_tokens * self.price.input_per_mtok
                + usage.completion_tokens * self.price.output_per_mtok) / 1e6


async def _close_with_loop(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.aclose()


@dataclass(frozen=True, slots=True)
class _Failure:
    """One attempt that got no answer: what the retry log and the final error may say."""

    status: int | None
    error: str | None
    retry_after: float | None = None
    exc: Exception | None = None

    def describe(self) -> str:
        if self.status is None:
            return self.error or "transport error"
        return f"HTTP {self.status}" + (f" ({self.error})" if self.error else "")


def _origin(base_url: str) -> str:
    """scheme://host:port of the server: what errors may name (no user-info, no path)."""
    parts = urlsplit(base_url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    return Usage(prompt_tokens=prompt if isinstance(prompt, int) else 0,
                 completion_tokens=completion if isinstance(completion, int) else 0)


def _error_payload(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _error_ids(response: httpx.Response) -> str | None:
    """``type, code`` from an OpenAI-style error body, identifiers only; the message and the rest
    of the body are never quoted (servers echo the request, prompt included)."""
    error = _error_payload(response)
    if error is None:
        return None
    parts = [v for v in (error.get("type"), error.get("code"))
             if isinstance(v, str) and _IDENTIFIER.match(v)]
    return ", ".join(parts) or None


def _rejects_json_schema(response: httpx.Response) -> bool:
    """Whether the server refused ``response_format`` itself (llama_cpp.server answers 500 with a
    validation error naming the field). Read here, never logged or raised."""
    if response.status_code not in (400, 422, 500):
        return False
    error = _error_payload(response)
    message = error.get("message") if error is not None else None
    return isinstance(message, str) and "response_format" in message


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _response_format(mode: JsonMode, schema: dict[str, Any]) -> dict[str, Any]:
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema",
            "json_schema": {"name": _schema_name(schema), "schema": schema,
                            "strict": _strict_compatible(schema)}}


def _wire_schema(schema: JsonSchema) -> dict[str, Any]:
    """The schema as sent: every object closed (``additionalProperties: false``) unless it says
    otherwise. Constrained decoding then cannot add keys, and OpenAI's strict mode needs it."""
    wire = copy.deepcopy(json_schema_of(schema))
    _close_objects(wire)
    return wire


def _close_objects(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _close_objects(value)
    elif isinstance(node, list):
        for value in node:
            _close_objects(value)


def _strict_compatible(node: Any) -> bool:
    """OpenAI's strict mode rejects a schema with an optional property (400); ask for strict only
    when every object lists all its properties as required."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and set(props) - set(node.get("required", ())):
            return False
        return all(_strict_compatible(v) for v in node.values())
    if isinstance(node, list):
        return all(_strict_compatible(v) for v in node)
    return True


def _schema_name(schema: Mapping[str, Any]) -> str:
    title = schema.get("title")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] if isinstance(title, str) else ""
    return name or "response"
