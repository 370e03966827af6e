"""Per-node JSON events, and no raw input text in any log line (canary values)."""

from __future__ import annotations

import io
import json

import structlog

import shoal
from shoal.observability import drop_raw_text, get_logger, guarding

CANARY = "Jane Canary-Doe 555-0199 MRN 99887766"
FRAGMENT = "Canary-Doe 555-0199"


@shoal.agent("t_leaky")
async def leaky(ctx: shoal.AgentContext) -> shoal.AgentResult:
    """An agent that tries every way we know to put the input into a log line."""
    log = structlog.get_logger("user.agent")
    log.info("user_event", text=ctx.text)
    log.info("user_event", detail=f"saw {ctx.text}")
    log.info("user_event", snippet=ctx.text[5:30])
    log.info("user_event", nested={"ok": "fine", "deep": [ctx.text]})
    log.info(f"about {ctx.text}")
    log.info("user_event", prompt="harmless-looking prompt field")
    return shoal.AgentResult(output="done", confidence=0.4, reason=f"looked at {ctx.text}")


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_node_events_are_json_with_the_audit_fields(log_stream: io.StringIO):
    spec = shoal.GraphSpec(name="g", nodes={
        "triage": shoal.NodeSpec(agent="keyword_classifier", labels={"bill": ["bill"]},
                                 escalate_below=0.9)})
    result = shoal.Graph(spec).run("a bill", id="rec-1")
    events = [e for e in lines(log_stream) if e["event"] == "node_finished"]
    assert len(events) == 1
    event = events[0]
    for key in ("run_id", "node", "agent", "model", "latency_ms", "confidence", "escalated",
                "escalate", "reason", "timestamp", "level"):
        assert key in event, key
    assert event["run_id"] == result.run_id and event["record_id"] == "rec-1"
    assert event["node"] == "triage" and event["escalate"] is True
    finished = [e for e in lines(log_stream) if e["event"] == "run_finished"]
    assert finished and finished[0]["status"] == "ok"


def test_canary_never_reaches_the_log(log_stream: io.StringIO):
    spec = shoal.GraphSpec(name="g", nodes={"a": shoal.NodeSpec(agent="t_leaky")})
    result = shoal.Graph(spec).run(CANARY, id="rec-2")
    assert result.status == "ok"
    text = log_stream.getvalue()
    assert "Canary" not in text and "555-0199" not in text and "99887766" not in text
    events = lines(log_stream)
    user = [e for e in events if e["event"] in ("user_event", "redacted_event")]
    assert len(user) == 6  # every call still logged, with the offending fields dropped
    assert {"ok": "fine", "deep": []} in [e.get("nested") for e in user]
    assert all("redacted" in e for e in user)
    # the agent's own reason quoted the input; the node event drops it rather than leak it
    node = next(e for e in events if e["event"] == "node_finished")
    assert "reason" not in node and node["redacted"] == ["reason"]


def test_agent_error_with_input_in_its_message_does_not_leak(log_stream: io.StringIO):
    @shoal.agent("t_raises_with_input")
    async def raises(ctx: shoal.AgentContext) -> shoal.AgentResult:
        raise KeyError(ctx.text)

    spec = shoal.GraphSpec(name="g", nodes={"a": shoal.NodeSpec(agent="t_raises_with_input")})
    result = shoal.Graph(spec).run(CANARY)
    assert result.status == "error"
    assert "Canary" not in log_stream.getvalue()
    assert result.error is not None and "Canary" not in result.error.message


def test_processor_alone():
    stream = io.StringIO()
    structlog.configure(processors=[drop_raw_text, structlog.processors.JSONRenderer()],
                        logger_factory=structlog.WriteLoggerFactory(file=stream),
                        wrapper_class=structlog.make_filtering_bound_logger(0))
    log = get_logger()
    with guarding(CANARY):
        log.info("x", a=FRAGMENT, b="short", c=42, text="anything")
    log.info("y", a=FRAGMENT)  # outside a run the value is not known to be input
    first, second = lines(stream)
    assert first == {"b": "short", "c": 42, "event": "x", "redacted": ["a", "text"]}
    assert second["a"] == FRAGMENT


def test_logged_exceptions_carry_no_locals_and_no_input(log_stream: io.StringIO):
    log = get_logger()

    def fails(note_text: str) -> None:
        secret_local = note_text  # noqa: F841  (a local that must not be rendered)
        raise ValueError(f"could not parse {note_text}")

    with guarding(CANARY):
        try:
            fails(CANARY)
        except ValueError:
            log.error("parse_failed", exc_info=True)
    text = log_stream.getvalue()
    assert "parse_failed" in text
    assert "secret_local" not in text
    assert "Canary" not in text
