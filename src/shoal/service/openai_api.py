"""The OpenAI-compatible face of ``shoal serve``: ``POST /v1/chat/completions``.

The last ``user`` message is the input of one run; earlier messages are not sent anywhere (the
graph has no notion of a conversation). The reply's ``content`` is the graph's answer for its
sender (``RunResult.reply``: the output, or ``output["answer"]``, with the sender's own values
back in place of their pseudonyms), else a short fixed text (refused, held for review, failed,
or an output with no answer in it): never the input itself. shoal's
own details ride along in an extension field ``shoal`` (id, run id, status, nodes, cost, error).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shoal.graphs.results import RunResult

__all__ = ["ChatRequest", "answer_text", "chunks", "completion", "last_user_text"]

REFUSED_TEXT = "This message cannot be answered automatically."
ERROR_TEXT = "This message could not be processed. Please try again later."
NO_ANSWER_TEXT = "No answer was produced for this message."


class _Lenient(BaseModel):
    # Clients send many fields shoal does not use (temperature, tools, ...): ignore them.
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class ChatMessage(_Lenient):
    role: str
    content: str | list[ContentPart] | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatRequest(_Lenient):
    model: str | None = None
    """Accepted and ignored: the server runs its one graph, and names it in the reply."""
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


def last_user_text(request: ChatRequest) -> str | None:
    """The text of the last ``user`` message (its text parts joined), None if there is none."""
    for message in reversed(request.messages):
        if message.role != "user":
            continue
        if isinstance(message.content, str):
            return message.content
        if message.content is None:
            return None
        return "\n".join(p.text for p in message.content if p.type == "text" and p.text)
    return None


def answer_text(result: RunResult) -> str:
    if result.status == "refused":
        return REFUSED_TEXT
    if result.status == "error":
        return ERROR_TEXT
    if result.reply:
        return result.reply  # the sender's own values back in place of their pseudonyms
    output = result.output
    if isinstance(output, str) and output:
        return output
    if isinstance(output, dict) and isinstance(output.get("answer"), str):
        return str(output["answer"])
    return NO_ANSWER_TEXT


def _finish_reason(result: RunResult) -> Literal["stop", "content_filter"]:
    return "content_filter" if result.status == "refused" else "stop"


def extension(result: RunResult) -> dict[str, Any]:
    """The ``shoal`` field: everything about the run except its output."""
    return result.model_dump(mode="json", include={"id", "run_id", "status", "nodes", "cost",
                                                   "error", "latency_ms"})


USAGE_ZERO = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
"""shoal does not count the local models' tokens; the planner's are in ``shoal.cost``."""


def completion(result: RunResult, *, completion_id: str, created: int, model: str
               ) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0,
                     "message": {"role": "assistant", "content": answer_text(result)},
                     "logprobs": None,
                     "finish_reason": _finish_reason(result)}],
        "usage": dict(USAGE_ZERO),
        "shoal": extension(result),
    }


def _chunk(completion_id: str, created: int, model: str, delta: dict[str, Any],
           finish_reason: str | None) -> dict[str, Any]:
    return {"id": completion_id, "object": "chat.completion.chunk", "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish_reason}]}


def first_chunk(*, completion_id: str, created: int, model: str) -> dict[str, Any]:
    """Sent at once, before the run: the assistant's role."""
    return _chunk(completion_id, created, model, {"role": "assistant", "content": ""}, None)


def chunks(result: RunResult, *, completion_id: str, created: int, model: str,
           include_usage: bool = False) -> Iterator[dict[str, Any]]:
    """After the run: the answer in one chunk, then the finish reason with the ``shoal`` field,
    then (with ``stream_options.include_usage``) the usage chunk OpenAI sends last."""
    yield _chunk(completion_id, created, model, {"content": answer_text(result)}, None)
    final = _chunk(completion_id, created, model, {}, _finish_reason(result))
    final["shoal"] = extension(result)
    yield final
    if include_usage:
        usage = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                 "model": model, "choices": [], "usage": dict(USAGE_ZERO)}
        yield usage
