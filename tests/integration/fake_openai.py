"""FakeOpenAIServer: a fake OpenAI-compatible endpoint for fault injection, and only for that.

It answers ``POST /v1/chat/completions`` from a script (503, 429 with ``Retry-After``, a body that
is not JSON, a dropped connection...) and records every request it gets (headers, parsed body,
arrival time), so a test can check what the client sent and how long it waited between tries.
Whether the backend really works is shown against the real ``llama_cpp.server``, never here.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class FakeResponse:
    status: int = 200
    body: Any = None
    """A dict/list is sent as JSON, str/bytes as they are, None as an empty body."""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False
    """Close the connection without answering."""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: Any
    """Parsed JSON, or the raw bytes when the body is not JSON."""
    at: float
    """time.monotonic() on arrival."""


def completion(content: str = "ok", *, prompt_tokens: int = 12, completion_tokens: int = 3,
               model: str = "fake-model", finish_reason: str = "stop") -> FakeResponse:
    """A 200 chat completion in OpenAI's shape."""
    return FakeResponse(200, {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    })


def error(status: int, *, type_: str | None = None, code: str | None = None,
          message: str = "", headers: Mapping[str, str] | None = None) -> FakeResponse:
    """An error in OpenAI's shape (``{"error": {"message", "type", "code"}}``)."""
    return FakeResponse(status, {"error": {"message": message, "type": type_, "code": code,
                                           "param": None}}, headers=dict(headers or {}))


class FakeOpenAIServer:
    """``http.server`` in a thread on 127.0.0.1, answering from ``script`` in order, then with
    ``default`` (a plain completion unless given)."""

    def __init__(self, script: Sequence[FakeResponse] = (), *,
                 default: FakeResponse | None = None) -> None:
        self._script = list(script)
        self._default = default or completion()
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _next(self, request: RecordedRequest) -> FakeResponse:
        with self._lock:
            self.requests.append(request)
            return self._script.pop(0) if self._script else self._default

    def start(self) -> FakeOpenAIServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
            timeout = 10

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw
                reply = fake._next(RecordedRequest(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                    body, time.monotonic()))
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = reply.body
                if isinstance(payload, dict | list):
                    data = json.dumps(payload).encode()
                elif isinstance(payload, str):
                    data = payload.encode()
                else:
                    data = payload or b""
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (time-out tests) breaks the pipe; that is expected

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests' arrivals."""
        return [b.at - a.at for a, b in zip(self.requests, self.requests[1:], strict=False)]


@contextmanager
def fake_openai(*script: FakeResponse, default: FakeResponse | None = None
                ) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(script, default=default) as server:
        yield server


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
