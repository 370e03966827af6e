"""Per-model queues and quotas: an async queue in front of a model that runs one call at a time.

A llama.cpp model is not thread-safe, so calls into one file run one after another. Queueing
them in the model pool would hold a pool thread per waiting call (the issue measured concurrent
``score_labels`` at 0.74x sequential throughput: the waiting threads starved the others' work).
A :class:`ModelQueue` makes callers wait in the event loop instead, and hands the pool at most
``max_concurrency`` calls of its model at a time.

``max_queue`` bounds the callers waiting. What a full queue means depends on the caller: a batch
(``Graph.abatch``, ``shoal run``) is back-pressure, it waits for room, as its own concurrency
limit already bounds it; a server request (inside :func:`reject_when_full`, as ``shoal serve``
runs every request) gets :class:`shoal.BackendOverloaded` at once, with a ``retry_after_s``
estimated from the model's recent call times, which ``shoal serve`` answers as HTTP 429 with
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shoal.errors import BackendOverloaded, BackendTimeout
from shoal.models import pool

__all__ = ["ModelQueue", "Overload", "QueueSettings", "reject_when_full"]

T = TypeVar("T")

@dataclass(eq=False)
class Overload:
    """What :func:`reject_when_full` saw: the longest Retry-After of a refused model call (the
    run itself only carries the error code and message)."""

    retry_after_s: int | None = None


_reject: contextvars.ContextVar[Overload | None] = contextvars.ContextVar(
    "shoal_reject_when_full", default=None)


@contextlib.contextmanager
def reject_when_full() -> Iterator[Overload]:
    """Inside this block a full model queue raises :class:`shoal.BackendOverloaded` instead of
    waiting (``shoal serve`` runs each request so; batches wait). The yielded
    :class:`Overload` says how long to ask the client to wait."""
    seen = Overload()
    token = _reject.set(seen)
    try:
        yield seen
    finally:
        _reject.reset(token)


class QueueSettings(BaseModel):
    """A llama.cpp model's quota, from its YAML entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_concurrency: int = Field(default=1, ge=1, le=64)
    """Calls of this model handed to the pool at once (a llama.cpp file runs one at a time
    anyway: more only queues in its lock)."""
    max_queue: int = Field(default=64, ge=0, le=100_000)
    """Callers that may wait for it; past this a server request is refused (HTTP 429)."""


@dataclass(eq=False)
class _State:
    slots: asyncio.Semaphore
    waiting: int = 0


class ModelQueue:
    """The queue in front of one loaded model (shared by every node using it)."""

    def __init__(self, backend: str, settings: QueueSettings | None = None) -> None:
        self.backend = backend
        self.settings = settings or QueueSettings()
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _State] = (
            weakref.WeakKeyDictionary())
        self._mean_s = 1.0
        """Moving average of a call's time, for Retry-After."""

    def waiting(self) -> int:
        """Callers waiting in this event loop's queue."""
        state = self._states.get(asyncio.get_running_loop())
        return 0 if state is None else state.waiting

    def retry_after_s(self, waiting: int) -> int:
        """Seconds until the queue has likely drained by one caller's worth: whole, at least 1."""
        per = self._mean_s / self.settings.max_concurrency
        return max(1, math.ceil(per * (waiting + 1)))

    async def run(self, fn: Callable[..., T], *args: Any, timeout_s: float | None,
                  on_timeout: Callable[[], None] | None = None, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in the model pool once a slot is free; ``timeout_s`` bounds
        the wait and the call together."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _State(asyncio.Semaphore(self.settings.max_concurrency))
        rejecting = _reject.get()
        if (rejecting is not None and state.slots.locked()
                and state.waiting >= self.settings.max_queue):
            retry = self.retry_after_s(state.waiting)
            rejecting.retry_after_s = max(retry, rejecting.retry_after_s or 0)
            raise BackendOverloaded(backend=self.backend, waiting=state.waiting,
                                    retry_after_s=retry)
        deadline = None if timeout_s is None else loop.time() + timeout_s
        state.waiting += 1
        try:
            if timeout_s is None:
                await state.slots.acquire()
            else:
                await asyncio.wait_for(state.slots.acquire(), timeout_s)
        except TimeoutError:
            raise BackendTimeout(backend=self.backend, timeout_s=timeout_s or 0.0) from None
        finally:
            state.waiting -= 1
        started = time.perf_counter()
        try:
            remaining = None if deadline is None else max(0.001, deadline - loop.time())
            try:
                return await pool.run_blocking(fn, *args, backend=self.backend,
                                               timeout_s=remaining, on_timeout=on_timeout,
                                               **kwargs)
            except BackendTimeout:
                raise BackendTimeout(backend=self.backend, timeout_s=timeout_s or 0.0) from None
        finally:
            state.slots.release()
            self._mean_s = 0.8 * self._mean_s + 0.2 * (time.perf_counter() - started)
