"""The PHI-safe structlog processor: no raw input text reaches a log line.

Two layers. By name: fields whose name says they carry text (``text``, ``input``, ``prompt``...)
are dropped whatever they hold. By value: while a run is in progress its raw input is known
(a context variable set by the runtime), and any string field that quotes a piece of it, or that
it appears in, is dropped. A dropped field is listed in ``redacted`` so the loss is visible.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

TEXT_FIELDS = frozenset({
    "text", "input", "raw", "raw_text", "prompt", "messages", "content", "body", "note",
    "payload", "completion", "masked", "draft",
})
MIN_FRAGMENT = 8
"""A field at least this long that the input contains counts as quoting it; shorter strings
(labels, node names) would match any input by chance."""

_current_inputs: ContextVar[tuple[str, ...]] = ContextVar("shoal_current_inputs", default=())


def arm(text: str) -> Token[tuple[str, ...]]:
    """Mark ``text`` as raw input in this context (async-task local); undo with :func:`disarm`."""
    return _current_inputs.set((*_current_inputs.get(), text))


def disarm(token: Token[tuple[str, ...]]) -> None:
    try:
        _current_inputs.reset(token)
    except ValueError:
        # Reset from another context (an async generator closed elsewhere): drop ours only.
        current = _current_inputs.get()
        _current_inputs.set(current[:-1] if current else current)


@contextmanager
def guarding(text: str) -> Iterator[None]:
    """Mark ``text`` as raw input for every log call made in this block."""
    token = arm(text)
    try:
        yield
    finally:
        disarm(token)


def _quotes(value: str, inputs: tuple[str, ...]) -> bool:
    for raw in inputs:
        if not raw:
            continue
        if raw in value:
            return True
        if len(value) >= MIN_FRAGMENT and value in raw:
            return True
    return False


def _scrub(value: Any, inputs: tuple[str, ...]) -> tuple[Any, bool]:
    """Return the value with quoting strings removed, and whether anything was removed."""
    if isinstance(value, str):
        return (None, True) if _quotes(value, inputs) else (value, False)
    if isinstance(value, dict):
        out, hit = {}, False
        for k, v in value.items():
            if isinstance(k, str) and k in TEXT_FIELDS:
                hit = True
                continue
            v2, h = _scrub(v, inputs)
            hit |= h
            if not h or v2 is not None:
                out[k] = v2
        return out, hit
    if isinstance(value, list | tuple):
        items, hit = [], False
        for v in value:
            v2, h = _scrub(v, inputs)
            hit |= h
            if not h or v2 is not None:
                items.append(v2)
        return items, hit
    return value, False


def drop_raw_text(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor; put it before any renderer. Runs on every event, so it is written
    for the common case: a handful of short scalar fields and nothing to drop."""
    inputs = _current_inputs.get()
    redacted: list[str] | None = None
    if not inputs:
        # Outside a run only field names can give text away.
        for key in TEXT_FIELDS.intersection(event_dict):
            del event_dict[key]
            redacted = [*(redacted or ()), key]
        if redacted:
            event_dict["redacted"] = sorted(redacted)
        return event_dict
    for key, value in list(event_dict.items()):
        if key in TEXT_FIELDS:
            del event_dict[key]
            redacted = [*(redacted or ()), key]
        elif type(value) is str:
            if _quotes(value, inputs):
                if key == "event":
                    event_dict[key] = "redacted_event"
                else:
                    del event_dict[key]
                redacted = [*(redacted or ()), key]
        elif isinstance(value, dict | list | tuple):
            cleaned, hit = _scrub(value, inputs)
            if hit:
                event_dict[key] = cleaned
                redacted = [*(redacted or ()), key]
    if redacted:
        event_dict["redacted"] = sorted(redacted)
    return event_dict
