from __future__ import annotations

import io
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from shoal.observability import configure_logging

REPO = Path(__file__).resolve().parent.parent


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
