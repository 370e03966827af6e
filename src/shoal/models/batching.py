"""Micro-batching: concurrent calls to one model within a short window run as one batch.

A graph run asks each model about one message, so a batch of thousands would otherwise make
thousands of one-row calls: ONNX Runtime and spaCy pay their per-call overhead on each, where one
call over 32 rows costs little more than one over a single row. As Ray Serve's ``@serve.batch``
and Triton's dynamic batcher do, a :class:`MicroBatcher` collects the calls that arrive while its
model is busy, or within ``max_wait_ms`` of the first, and runs them as one call in the model
pool. Each caller still gets its own result, its own error and its own time-out:

- results are split back per caller, in the caller's order;
- when the batched call raises, each caller's rows are run again on their own, so one bad input
  fails only its caller;
- a caller that times out or is cancelled before its batch starts is taken out of it; one whose
  batch already runs gets :class:`shoal.BackendTimeout` at its deadline, and the batch goes on for
  the others.

At most ``max_inflight`` batches of one model run at a time (default one): the next batch
gathers while the current one runs, so a busy model is fed full batches and an idle one answers at
once (after ``max_wait_ms``). Batching never changes a result: each row is computed as it would be
alone (the models' exports are padding-safe, and tests compare batched with unbatched runs).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shoal.errors import BackendTimeout
from shoal.models import pool

__all__ = ["BatchSettings", "MicroBatcher"]

I = TypeVar("I")  # noqa: E741  (one item of a batch, e.g. a text)
O = TypeVar("O")  # noqa: E741  (one item's result)


class BatchSettings(BaseModel):
    """``batch:`` of a model in the graph YAML: how concurrent calls are combined."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_size: int = Field(default=32, ge=1, le=4096)
    """Rows in one batch at most (a single call with more rows runs alone, whole). 1 turns
    batching off: every call runs on its own."""
    max_wait_ms: float = Field(default=2.0, ge=0.0, le=1000.0)
    """How long an idle model waits for more calls after the first before it runs them. While
    the model is busy, calls wait for it anyway and join the next batch."""
    max_inflight: int = Field(default=1, ge=1, le=64)
    """Batches of this model that may run at the same time."""


@dataclass(eq=False)
class _Call(Generic[I, O]):
    items: list[I]
    future: asyncio.Future[list[O]]
    taken: bool = False


@dataclass(eq=False)
class _State(Generic[I, O]):
    pending: list[_Call[I, O]] = field(default_factory=list)
    rows: int = 0
    running: int = 0
    timer: asyncio.TimerHandle | None = None


class MicroBatcher(Generic[I, O]):
    """Combines concurrent :meth:`submit` calls into batched calls of ``run``.

    ``run`` is blocking (it runs in the model pool) and returns one result per item, in order.
    One batcher may serve several event loops (each ``asyncio.run`` is its own): its queues are
    kept per loop.
    """

    def __init__(self, run: Callable[[list[I]], Sequence[O]], *, backend: str,
                 settings: BatchSettings | None = None) -> None:
        self._run = run
        self.backend = backend
        self.settings = settings or BatchSettings()
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _State[I, O]] = (
            weakref.WeakKeyDictionary())
        self.batches = 0
        """Batched calls made so far (for tests and benchmarks)."""
        self.rows = 0
        """Rows those calls held."""

    async def submit(self, items: Sequence[I], *, timeout_s: float | None = None) -> list[O]:
        """``run(items)``, batched with whatever else is asked of this model meanwhile."""
        batch = list(items)
        if not batch:
            return []
        if self.settings.max_size <= 1:
            return list(await pool.run_blocking(self._run, batch, backend=self.backend,
                                                timeout_s=timeout_s))
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _State()
        call: _Call[I, O] = _Call(batch, loop.create_future())
        state.pending.append(call)
        state.rows += len(batch)
        self._schedule(state, loop)
        try:
            # shield: a caller giving up must not cancel the future the batch will set.
            return await asyncio.wait_for(asyncio.shield(call.future), timeout_s)
        except TimeoutError:
            self._withdraw(state, call)
            raise BackendTimeout(backend=self.backend, timeout_s=timeout_s or 0.0) from None
        except asyncio.CancelledError:
            self._withdraw(state, call)
            raise

    # --- scheduling --------------------------------------------------------------------------

    def _withdraw(self, state: _State[I, O], call: _Call[I, O]) -> None:
        if not call.taken:
            state.pending.remove(call)
            state.rows -= len(call.items)
        if not call.future.done():
            call.future.cancel()

    def _schedule(self, state: _State[I, O], loop: asyncio.AbstractEventLoop) -> None:
        if not state.pending or state.running >= self.settings.max_inflight:
            return  # a running batch reschedules when it ends
        if state.rows >= self.settings.max_size:
            self._start(state, loop)
        elif state.timer is None:
            state.timer = loop.call_later(self.settings.max_wait_ms / 1000.0, self._start,
                                          state, loop)

    def _start(self, state: _State[I, O], loop: asyncio.AbstractEventLoop) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if not state.pending or state.running >= self.settings.max_inflight:
            return
        calls: list[_Call[I, O]] = []
        rows = 0
        while state.pending and (not calls or
                                 rows + len(state.pending[0].items) <= self.settings.max_size):
            call = state.pending.pop(0)
            call.taken = True
            calls.append(call)
            rows += len(call.items)
        state.rows -= rows
        state.running += 1
        task = loop.create_task(self._execute(state, loop, calls))
        task.add_done_callback(_retrieve)
        # More than one batch may wait: start the next at once when another may run.
        self._schedule(state, loop)

    async def _execute(self, state: _State[I, O], loop: asyncio.AbstractEventLoop,
                       calls: list[_Call[I, O]]) -> None:
        try:
            live = [c for c in calls if not c.future.done()]
            if live:
                outcomes = await loop.run_in_executor(
                    pool.executor(), self._run_calls, [c.items for c in live])
                for call, outcome in zip(live, outcomes, strict=True):
                    if call.future.done():
                        continue  # its caller gave up
                    if isinstance(outcome, BaseException):
                        call.future.set_exception(outcome)
                    else:
                        call.future.set_result(outcome)
        except BaseException as exc:  # the pool itself failed (shut down): every caller hears it
            for call in calls:
                if not call.future.done():
                    call.future.set_exception(exc)
            raise
        finally:
            state.running -= 1
            self._schedule(state, loop)

    def _run_calls(self, calls: list[list[I]]) -> list[list[O] | BaseException]:
        """In a pool thread: one call over every row; if it fails, each caller's rows alone."""
        rows = [item for items in calls for item in items]
        self.batches += 1
        self.rows += len(rows)
        try:
            results = list(self._run(rows))
        except Exception as exc:
            if len(calls) == 1:
                return [exc]
            return [self._alone(items) for items in calls]
        if len(results) != len(rows):
            raise RuntimeError(f"{self.backend}: batch returned {len(results)} results for "
                               f"{len(rows)} rows")
        out: list[list[O] | BaseException] = []
        start = 0
        for items in calls:
            out.append(results[start:start + len(items)])
            start += len(items)
        return out

    def _alone(self, items: list[I]) -> list[O] | BaseException:
        try:
            return list(self._run(items))
        except Exception as exc:
            return exc


def _retrieve(task: asyncio.Task[None]) -> None:
    # The callers already got the exception; reading it here keeps asyncio from logging
    # "Task exception was never retrieved".
    if not task.cancelled():
        task.exception()
