"""The per-model queue: callers wait in the event loop (not in pool threads), a server request
finds a full queue refused with a Retry-After, a batch waits, and a time-out covers the wait."""

from __future__ import annotations

import asyncio
import threading

import pytest

from shoal.errors import BackendOverloaded, BackendTimeout, ErrorCode
from shoal.models.queue import ModelQueue, QueueSettings, reject_when_full


class Model:
    """A blocking fake model that counts the pool threads inside it at once."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds
        self.inside = 0
        self.most_inside = 0
        self.lock = threading.Lock()

    def __call__(self, text: str) -> str:
        with self.lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        threading.Event().wait(self.seconds)
        with self.lock:
            self.inside -= 1
        return text.upper()


async def test_waiting_callers_hold_no_pool_thread() -> None:
    model = Model()
    queue = ModelQueue("fake", QueueSettings(max_concurrency=1))
    results = await asyncio.gather(*(queue.run(model, f"t{i}", timeout_s=None)
                                     for i in range(8)))
    assert results == [f"T{i}" for i in range(8)]
    assert model.most_inside == 1


async def test_max_concurrency_lets_that_many_run_at_once() -> None:
    model = Model(0.1)
    queue = ModelQueue("fake", QueueSettings(max_concurrency=2))
    await asyncio.gather(*(queue.run(model, "x", timeout_s=None) for i in range(6)))
    assert model.most_inside == 2


async def test_a_server_request_finds_a_full_queue_refused_with_retry_after() -> None:
    model = Model(0.2)
    queue = ModelQueue("fake", QueueSettings(max_concurrency=1, max_queue=2))

    async def request() -> str:
        with reject_when_full():
            return await queue.run(model, "r", timeout_s=None)

    results = await asyncio.gather(*(request() for _ in range(6)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, BackendOverloaded)]
    # One runs, two wait, the other three are refused at once.
    assert len(refused) == 3 and results.count("R") == 3
    assert all(r.code == ErrorCode.BACKEND_OVERLOADED and r.retry_after_s >= 1
               and r.backend == "fake" for r in refused)


async def test_the_retry_after_of_a_refusal_reaches_the_request() -> None:
    model = Model(0.2)
    queue = ModelQueue("fake", QueueSettings(max_queue=0))
    busy = asyncio.ensure_future(queue.run(model, "busy", timeout_s=None))
    await asyncio.sleep(0.02)
    with reject_when_full() as overload, pytest.raises(BackendOverloaded):
        await queue.run(model, "late", timeout_s=None)
    assert overload.retry_after_s is not None and overload.retry_after_s >= 1
    assert await busy == "BUSY"


async def test_a_batch_waits_for_room_instead() -> None:
    model = Model(0.02)
    queue = ModelQueue("fake", QueueSettings(max_queue=0))
    results = await asyncio.gather(*(queue.run(model, "b", timeout_s=None) for _ in range(5)))
    assert results == ["B"] * 5


async def test_the_time_out_covers_the_wait() -> None:
    model = Model(0.3)
    queue = ModelQueue("fake")
    busy = asyncio.ensure_future(queue.run(model, "busy", timeout_s=None))
    await asyncio.sleep(0.02)
    with pytest.raises(BackendTimeout) as caught:
        await queue.run(model, "waits", timeout_s=0.05)
    assert caught.value.backend == "fake" and queue.waiting() == 0
    assert await busy == "BUSY"
