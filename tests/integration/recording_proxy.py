"""A recording reverse proxy on 127.0.0.1: forwards every request to a real server and keeps a copy
of each request body, so a test can prove what did (and did not) leave a graph."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx


class RecordingProxy:
    def __init__(self, upstream: str) -> None:
        url = httpx.URL(upstream)
        self.upstream = f"{url.scheme}://{url.host}:{url.port}"  # request paths carry /v1
        self.bodies: list[bytes] = []
        self.answered: list[bytes] = []
        """The bodies of requests the server answered with a 2xx (a request it refused, such as a
        response_format it does not support, was not answered)."""
        self.in_flight = 0
        self.max_in_flight = 0
        """The most requests the proxy was forwarding at one time."""
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.bodies.append(body)
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                try:
                    reply = httpx.request(self.command, proxy.upstream + self.path,
                                          content=body, headers=headers, timeout=120.0)
                finally:
                    with proxy._lock:
                        proxy.in_flight -= 1
                if reply.is_success:
                    with proxy._lock:
                        proxy.answered.append(body)
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                           "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            do_GET = _forward
            do_POST = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass  # the recorded bodies are the log

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def recorded(self) -> bytes:
        with self._lock:
            return b"\n".join(self.bodies)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
