"""Helpers for users' unit tests and our own fault injection.

``FakeBackend`` is a fake: it answers from a script or a handler, with injected delays and
failures. Use it to test your graph's wiring and error paths, never to show that a model works.
:mod:`shoal.testing.conformance` is the contract every model backend keeps, as checks a model
plugin's tests can run against its backend. :func:`split_numbers` compares two runs' outputs
word for word and number by number.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

import structlog

from shoal.errors import BackendError, BackendTimeout, OutputValidationError
from shoal.models.base import (
    Generation,
    JsonGeneration,
    JsonSchema,
    Message,
    Usage,
    validate_json,
)
from shoal.testing import conformance
from shoal.testing.compare import split_numbers

__all__ = ["FakeBackend", "Handler", "capture_events", "conformance", "split_numbers"]

Handler = Callable[[Sequence[Message]], str]


class FakeBackend:
    """A scripted stand-in for any backend protocol (Generator, LabelScorer, Classifier,
    Embedder).

    ``replies`` are returned in turn by ``generate``/``generate_json`` (an Exception in the list
    is raised instead); ``handler`` computes a reply from the messages. ``delay_s`` sleeps before
    answering so time-outs can be exercised; ``fail_times`` makes the first N calls raise
    BackendError.
    """

    def __init__(
        self,
        *,
        name: str = "fake",
        replies: Sequence[str | Exception] = (),
        handler: Handler | None = None,
        label_scores: dict[str, float] | None = None,
        labels: Sequence[str] = ("a", "b"),
        dim: int = 8,
        delay_s: float = 0.0,
        fail_times: int = 0,
    ) -> None:
        self.name = name
        self._replies = list(replies)
        self._handler = handler
        self._label_scores = label_scores
        self._labels = tuple(labels)
        self._dim = dim
        self.delay_s = delay_s
        self.fail_times = fail_times
        self.calls: list[tuple[str, Any]] = []

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def dim(self) -> int:
        return self._dim

    async def _enter(self, op: str, payload: Any, timeout_s: float | None) -> None:
        self.calls.append((op, payload))
        if self.delay_s:
            try:
                await asyncio.wait_for(asyncio.sleep(self.delay_s), timeout_s)
            except TimeoutError:
                raise BackendTimeout(backend=self.name, timeout_s=timeout_s or 0.0) from None
        if self.fail_times > 0:
            self.fail_times -= 1
            raise BackendError("injected failure", backend=self.name)

    def _reply(self, messages: Sequence[Message]) -> str:
        if self._handler is not None:
            return self._handler(messages)
        if not self._replies:
            raise BackendError("script exhausted", backend=self.name)
        reply = self._replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        timeout_s: float | None = None,
    ) -> Generation:
        await self._enter("generate", list(messages), timeout_s)
        text = self._reply(messages)
        return Generation(text=text, model=self.name,
                          usage=Usage(prompt_tokens=_words(messages), completion_tokens=len(
                              text.split())))

    async def generate_json(
        self,
        messages: Sequence[Message],
        schema: JsonSchema,
        *,
        max_tokens: int = 512,
        timeout_s: float | None = None,
    ) -> JsonGeneration:
        await self._enter("generate_json", list(messages), timeout_s)
        text = self._reply(messages)
        try:
            data = validate_json(schema, json.loads(text))
        except (ValueError, TypeError) as exc:
            raise OutputValidationError(f"reply is not valid JSON for the schema "
                                        f"({type(exc).__name__})", node=self.name,
                                        attempts=1) from exc
        return JsonGeneration(text=text, model=self.name, data=data,
                              usage=Usage(prompt_tokens=_words(messages),
                                          completion_tokens=len(text.split())))

    async def score_labels(
        self, prompt: str, labels: Sequence[str], *, timeout_s: float | None = None
    ) -> dict[str, float]:
        await self._enter("score_labels", list(labels), timeout_s)
        raw = {label: (self._label_scores or {}).get(label, 1.0) for label in labels}
        total = sum(raw.values())
        return {label: value / total for label, value in raw.items()}

    async def classify(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[dict[str, float]]:
        await self._enter("classify", len(texts), timeout_s)
        scores = self._label_scores or {label: 1.0 for label in self._labels}
        total = sum(scores.get(label, 0.0) for label in self._labels) or 1.0
        return [{label: scores.get(label, 0.0) / total for label in self._labels} for _ in texts]

    async def embed(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[list[float]]:
        await self._enter("embed", len(texts), timeout_s)
        out = []
        for text in texts:
            vec = [float((hash((text, i)) % 1000) - 500) for i in range(self._dim)]
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            out.append([v / norm for v in vec])
        return out


def _words(messages: Sequence[Message]) -> int:
    return sum(len(m["content"].split()) for m in messages)


@contextmanager
def capture_events() -> Iterator[list[MutableMapping[str, Any]]]:
    """Collect shoal's log events (as dicts) emitted inside the block."""
    with structlog.testing.capture_logs() as events:
        yield events
