"""Quiet by default: shoal the library prints nothing unless the application configured logging;
the CLI logs warnings to stderr, readable on a terminal, repeats summarised."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

import shoal
from shoal.cli import app
from shoal.observability import get_logger
from shoal.observability.logging import configure_cli_logging, flush_repeats
from shoal.observability.repeats import RepeatSummary

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart" / "graph.yaml"
CANARY = "Jane Canary-Doe 555-0199"

EMBEDDED = f"""
import asyncio, sys
import shoal
graph = shoal.Graph.from_yaml({str(QUICKSTART)!r})
results = asyncio.run(graph.abatch([
    {{"id": "a", "text": "my bill"}},
    {{"id": "b", "text": ""}},
    {{"id": "c", "text": "chest pain"}},
]))
sys.exit(0 if [r.status for r in results] == ["ok", "error", "ok"] else 3)
"""
"""An application embedding shoal; record b is invalid, so a warning is logged too (which
logging.lastResort would print to stderr if shoal's logger had no handler)."""


def test_an_embedding_application_sees_nothing_on_stdout_or_stderr() -> None:
    done = subprocess.run([sys.executable, "-c", EMBEDDED], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr == ""


@pytest.fixture
def unconfigured() -> Iterator[None]:
    # The autouse fixture configured shoal's logging; an application that did not is wanted.
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@shoal.agent("t_quiet_leaky")
async def leaky(ctx: shoal.AgentContext) -> shoal.AgentResult:
    get_logger().info("leaky_agent", text=ctx.text, detail=f"saw {ctx.text}", kept="fine")
    return shoal.AgentResult(output="done", confidence=0.9)


def test_stdlib_logging_gets_the_events_phi_filtered(
        unconfigured: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shoal")
    spec = shoal.GraphSpec(name="g", nodes={"a": shoal.NodeSpec(agent="t_quiet_leaky")})
    result = shoal.Graph(spec).run(CANARY, id="rec-1")
    assert result.status == "ok"
    records = [r for r in caplog.records if r.name == "shoal"]
    events = [json.loads(r.getMessage()) for r in records]
    assert [e["event"] for e in events] == ["leaky_agent", "node_finished", "run_finished"]
    leaky_event = events[0]
    assert leaky_event["kept"] == "fine" and leaky_event["redacted"] == ["detail", "text"]
    assert all(r.levelno == logging.INFO for r in records)
    assert events[1]["record_id"] == "rec-1" and events[1]["level"] == "info"
    assert "Canary" not in caplog.text and "555-0199" not in caplog.text
    # The record names the code that logged, not shoal's logging module.
    assert records[0].funcName == "leaky"


def test_a_disabled_level_builds_nothing(
        unconfigured: None, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.WARNING, logger="shoal")

    def must_not_run(*_: Any) -> Any:
        raise AssertionError("an event below the logger's level was built")

    monkeypatch.setattr("shoal.observability.logging._STDLIB_CHAIN", [must_not_run])
    get_logger().info("node_finished", node="a")
    assert not caplog.records


def test_an_application_structlog_configuration_is_used(unconfigured: None) -> None:
    seen: list[dict[str, Any]] = []

    def keep(logger: Any, method: str, event_dict: Any) -> Any:
        seen.append(dict(event_dict))
        raise structlog.DropEvent

    structlog.configure(processors=[keep])
    get_logger().warning("planner_retry", backend="planner", attempt=1)
    assert seen == [{"event": "planner_retry", "backend": "planner", "attempt": 1}]


# --- the repeat summariser ------------------------------------------------------------------


def _warning(event: str, n: int, **kw: Any) -> dict[str, Any]:
    return {"event": event, "level": "warning", "timestamp": f"t{n}", **kw}


def _feed(summary: RepeatSummary, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What reaches the renderer, summaries included, in order."""
    out: list[dict[str, Any]] = []
    summary.emit = out.append
    for event in events:
        with contextlib.suppress(structlog.DropEvent):  # a counted repeat
            out.append(dict(summary(None, event["level"], dict(event))))
    return out


def test_fifty_identical_warnings_are_the_first_and_one_summary() -> None:
    summary = RepeatSummary(emit=lambda _: None)
    retries = [_warning("planner_retry", n, backend="planner", attempt=n) for n in range(50)]
    other = _warning("escalation_queued", 50, node="triage")
    out = _feed(summary, [*retries, other])
    assert out == [
        retries[0],
        {"event": "planner_retry", "backend": "planner", "repeated": 49, "first": "t1",
         "last": "t49", "level": "warning"},
        other,
    ]
    summary.flush()
    assert len(out) == 3  # nothing was left to count


def test_interleaved_warnings_stay_summarised_until_the_flush() -> None:
    summary = RepeatSummary(emit=lambda _: None)
    events = []
    for n in range(0, 40, 2):
        events += [_warning("planner_retry", n, backend="planner"),
                   _warning("escalation_queued", n + 1, node="triage")]
    out = _feed(summary, events)
    assert [e["event"] for e in out] == ["planner_retry", "escalation_queued"]
    summary.flush()
    assert [(e["event"], e["repeated"]) for e in out[2:]] == [
        ("planner_retry", 19), ("escalation_queued", 19)]


def test_other_backends_nodes_and_levels_are_not_repeats() -> None:
    summary = RepeatSummary(emit=lambda _: None)
    events = [_warning("planner_retry", 0, backend="a"), _warning("planner_retry", 1, backend="b"),
              _warning("node_failed", 2, node="x"), _warning("node_failed", 3, node="y"),
              {"event": "node_finished", "level": "info"},
              {"event": "node_finished", "level": "info"}]
    assert _feed(summary, events) == events


def test_a_long_outage_is_summarised_once_per_interval() -> None:
    now = [0.0]
    summary = RepeatSummary(emit=lambda _: None, interval_s=60.0, clock=lambda: now[0])
    events = []
    for n in range(10):
        events.append(_warning("planner_retry", n, backend="planner"))
    out = _feed(summary, events[:5])
    now[0] = 61.0
    out_later = _feed(summary, events[5:])
    assert [e["event"] for e in out] == ["planner_retry"]
    # t1 counted at 0 s; the repeat at 61 s closes the burst (5 repeats) and the next is shown.
    assert out_later[0] == {"event": "planner_retry", "backend": "planner", "repeated": 5,
                            "first": "t1", "last": "t5", "level": "warning"}
    assert out_later[1] == events[6]


# --- the CLI ----------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_renders_readably_on_a_terminal() -> None:
    stream = FakeTerminal()
    configure_cli_logging("warning", stream=stream)
    log = get_logger()
    log.info("node_finished", node="a")  # below the level
    log.warning("node_failed", node="triage", code="agent_failed", text=CANARY)
    for attempt in range(1, 4):
        log.warning("planner_retry", backend="planner", attempt=attempt)
    flush_repeats()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert not lines[0].startswith("{")
    assert "node_failed" in lines[0] and "node=triage" in lines[0]
    assert "[warning" in lines[0] and "redacted=['text']" in lines[0]
    assert "planner_retry" in lines[1] and "attempt=1" in lines[1]
    assert "planner_retry" in lines[2] and "repeated=2" in lines[2]
    assert "Canary" not in stream.getvalue()


def test_cli_writes_json_elsewhere_and_flushes_the_summary() -> None:
    stream = io.StringIO()
    configure_cli_logging("warning", stream=stream)
    for attempt in range(1, 51):
        get_logger().warning("planner_retry", backend="planner", attempt=attempt)
    flush_repeats()
    first, summary = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "planner_retry" and first["attempt"] == 1
    assert summary["event"] == "planner_retry" and summary["repeated"] == 49
    assert summary["backend"] == "planner" and summary["level"] == "warning"
    assert summary["first"] <= summary["last"]


def test_shoal_run_prints_only_the_result_by_default() -> None:
    ran = CliRunner().invoke(app, ["run", str(QUICKSTART), "--text", "my bill"])
    assert ran.exit_code == 0, ran.output
    assert ran.stderr == ""
    assert json.loads(ran.stdout)["status"] == "ok"
