from __future__ import annotations

import importlib.util
import io
import sys
import textwrap
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import structlog

from shoal.observability import configure_logging
from shoal.store import close_pools

REPO = Path(__file__).resolve().parent.parent


def import_script(path: Path, name: str) -> ModuleType:
    """A script outside the package (examples/, benchmarks/ are no packages), imported from its
    path under ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a dedented YAML file and return its path."""

    def write(text: str, name: str = "graph.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """shoal's production logging chain, writing JSON lines into a buffer."""
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    yield stream
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _own_outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A test whose planner is down queues escalations; never into the checkout's .shoal/.
    monkeypatch.setenv("SHOAL_OUTBOX", str(tmp_path / "outbox.sqlite"))
    # Nor into a database the developer's shell points at: a test that wants one says so.
    monkeypatch.delenv("SHOAL_DB", raising=False)


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    # Tests that do not ask for log_stream should not print node events.
    configure_logging("critical", stream=io.StringIO())
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def planner_server() -> Iterator[Any]:
    """A real llama_cpp.server on 127.0.0.1 serving the embedded instruct model (the stand-in
    planner), stopped by pid at the end of the session."""
    from shoal.models.local_server import serve_embedded

    with serve_embedded(warmup=True) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Postgres (binaries from the ``pgserver`` wheel) on a Unix socket in a temporary
    directory, started for the session and stopped at its end; its admin URL."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); nothing is wrong.
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        close_pools()
        server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's Postgres, for one test."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_server.replace("/postgres?", f"/{name}?", 1)
    close_pools()
