"""A real ``llama_cpp.server`` in a subprocess: an OpenAI-compatible endpoint on this machine.

Tests, the conformance suite and ``make demo`` use it to put a real planner-shaped server in front
of :class:`shoal.models.openai_compat.OpenAICompatModel` without leaving the machine::

    with serve_embedded() as server:
        model = OpenAICompatModel(base_url=server.base_url, model=server.model_id)

The server only ever binds 127.0.0.1. Its stdout and stderr go to a temporary log file, whose tail
is quoted when it fails to start (only start-up output: no request has been served by then).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from shoal.errors import BackendError
from shoal.models import catalog

HOST = "127.0.0.1"
_BACKEND = "llama_cpp.server"
_POLL_S = 0.05
_PORT_ATTEMPTS = 3
"""Attempts with a fresh free port when another process takes ours between probe and bind."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _settings_env_names() -> frozenset[str]:
    """Environment variables ``llama_cpp.server`` reads as settings (pydantic-settings, no prefix,
    case-insensitive). Inherited ones would silently change the server: an ``API_KEY`` would make
    it demand a key we do not send, a ``CONFIG_FILE`` would replace our arguments."""
    names = {"config_file", "api_key", "host", "port", "ssl_keyfile", "ssl_certfile", "root_path"}
    try:
        from llama_cpp.server.settings import ModelSettings, ServerSettings
    except ImportError:  # pragma: no cover - the [server] extra is a dependency of shoal
        return frozenset(names)
    names.update(ServerSettings.model_fields)
    names.update(ModelSettings.model_fields)
    return frozenset(names)


def _stop_process(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class LlamaServer:
    """``python -m llama_cpp.server`` on 127.0.0.1, started and stopped by this object.

    ``start()`` blocks until ``GET /v1/models`` answers, then :attr:`base_url` and
    :attr:`model_id` (what the server calls its model: send it as ``model``) are known.
    ``stop()`` sends SIGTERM, then SIGKILL after ``stop_grace_s``. Use it as a context manager,
    sync or async; an object dropped while running is stopped when collected or at exit.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        port: int | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        model_alias: str | None = None,
        chat_format: str | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout_s: float = 60.0,
        stop_grace_s: float = 5.0,
        warmup: bool = False,
    ) -> None:
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        """None keeps the server's default, half the cores: on 2 cores all threads is faster alone
        (p50 0.21 s vs 0.37 s for 16 tokens) but degrades badly when another llama.cpp process is
        busy at the same time, which is how shoal runs it (small models in-process, this server
        as the planner)."""
        self.model_alias = model_alias
        self.chat_format = chat_format
        self.extra_args = tuple(extra_args)
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.warmup = warmup
        """Send one 1-token completion before start() returns. A fresh server's first request
        is several times slower than the next ones (seconds on a busy 2-core machine); with
        this, that cost lands in start-up instead of in the first caller's latency."""
        self._fixed_port = port
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_path: Path | None = None
        self._model_id: str | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._started_at = 0.0
        self.startup_s: float | None = None
        """Seconds from spawning the process to the first answer of ``/v1/models``."""
        self.warmup_s: float | None = None
        """Seconds the warm-up completion took (when ``warmup`` is set)."""

    # --- what callers read ------------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the ``base_url`` of an OpenAI-compatible client."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def model_id(self) -> str:
        """The model's id as ``/v1/models`` reports it."""
        if self._model_id is None:
            raise RuntimeError("the server has not been started")
        return self._model_id

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        """The server's log file while it runs (deleted by :meth:`stop`)."""
        return self._log_path

    def log_tail(self, lines: int = 20) -> str:
        if self._log_path is None or not self._log_path.is_file():
            return ""
        text = self._log_path.read_bytes()[-16_384:].decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        state = f"pid={self.pid}, base_url={self.base_url!r}" if self.running else "stopped"
        return f"LlamaServer({self.model_path.name!r}, {state})"

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> LlamaServer:
        """Spawn the server and wait until it answers. Idempotent while running."""
        if self.running:
            return self
        if not self.model_path.is_file():
            raise BackendError(f"model file not found: {self.model_path}", backend=_BACKEND)
        attempts = 1 if self._fixed_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._fixed_port if self._fixed_port is not None else free_port()
            try:
                self._spawn(port)
                self._wait_ready()
                return self
            except _PortTaken:
                self.stop()
                if attempt == attempts:
                    raise BackendError(f"port {port} on {HOST} is in use",
                                       backend=_BACKEND) from None
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_grace_s``; removes the log file. Idempotent."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._proc is not None:
            _stop_process(self._proc, self.stop_grace_s)
        self._cleanup()

    def _spawn(self, port: int) -> None:
        self._port = port
        fd, name = tempfile.mkstemp(prefix="shoal-llama-server-", suffix=".log")
        self._log_path = Path(name)
        self._log = os.fdopen(fd, "wb")
        args = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--host", HOST,
            "--port", str(port),
            "--n_ctx", str(self.n_ctx),
        ]
        if self.n_threads is not None:
            args += ["--n_threads", str(self.n_threads)]
        if self.model_alias is not None:
            args += ["--model_alias", self.model_alias]
        if self.chat_format is not None:
            args += ["--chat_format", self.chat_format]
        args += self.extra_args
        blocked = _settings_env_names()
        env = {k: v for k, v in os.environ.items() if k.lower() not in blocked}
        self._started_at = time.monotonic()
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )
        self._finalizer = weakref.finalize(self, _stop_process, self._proc, self.stop_grace_s)

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = self._started_at + self.startup_timeout_s
        url = f"http://{HOST}:{self._port}/v1/models"
        # trust_env=False: a proxy from the environment must not see (or break) local traffic.
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    tail = self.log_tail()
                    if self._fixed_port is None and "address already in use" in tail.lower():
                        raise _PortTaken
                    raise BackendError(
                        f"server exited with code {code} while starting; log tail:\n{tail}",
                        backend=_BACKEND)
                try:
                    response = client.get(url)
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code == 200:
                    self._model_id = _first_model_id(response)
                    self.startup_s = time.monotonic() - self._started_at
                    if self.warmup:
                        self._warm_up(client, deadline)
                    return
                if time.monotonic() >= deadline:
                    status = "no answer" if response is None else f"HTTP {response.status_code}"
                    raise BackendError(
                        f"server not ready after {self.startup_timeout_s:g} s ({status} from "
                        f"/v1/models); log tail:\n{self.log_tail()}", backend=_BACKEND)
                time.sleep(_POLL_S)

    def _warm_up(self, client: httpx.Client, deadline: float) -> None:
        started = time.monotonic()
        try:
            response = client.post(
                f"http://{HOST}:{self._port}/v1/chat/completions",
                json={"model": self._model_id, "max_tokens": 1,
                      "messages": [{"role": "user", "content": "Hello"}]},
                timeout=max(deadline - started, 1.0))
        except httpx.TransportError as exc:
            raise BackendError(f"warm-up request failed ({type(exc).__name__}); log tail:\n"
                               f"{self.log_tail()}", backend=_BACKEND) from exc
        if response.status_code != 200:
            raise BackendError(f"warm-up request got HTTP {response.status_code}; log tail:\n"
                               f"{self.log_tail()}", backend=_BACKEND)
        self.warmup_s = time.monotonic() - started

    def _cleanup(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._log_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._log_path.unlink()
            self._log_path = None
        self._model_id = None

    # --- context managers -------------------------------------------------------------------

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LlamaServer:
        # Start-up blocks for a second or more: keep the event loop free meanwhile.
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


class _PortTaken(Exception):
    pass


def _first_model_id(response: httpx.Response) -> str:
    try:
        models = response.json()["data"]
        model_id = models[0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise BackendError("/v1/models answered without a model id", backend=_BACKEND) from None
    if not isinstance(model_id, str):
        raise BackendError("/v1/models answered without a model id", backend=_BACKEND)
    return model_id


def serve_embedded(model: str = "smollm2-135m-instruct", **kwargs: Any) -> LlamaServer:
    """A (not yet started) :class:`LlamaServer` for an embedded catalog model, aliased to its
    catalog name, so that ``model_id`` is ``"smollm2-135m-instruct"`` rather than a file path.
    Start it with ``with`` / ``async with`` or :meth:`LlamaServer.start`."""
    entry = catalog.entry(model)
    if entry.kind not in ("gguf-instruct", "gguf-base"):
        raise BackendError(f"embedded model {model!r} is not a GGUF chat model",
                           backend=_BACKEND)
    kwargs.setdefault("model_alias", entry.name)
    if entry.chat_format is not None:
        kwargs.setdefault("chat_format", entry.chat_format)
    return LlamaServer(catalog.resolve(model), **kwargs)
