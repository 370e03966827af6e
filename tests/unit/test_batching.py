"""The micro-batcher: concurrent calls run as one batch, and each caller still gets its own
result, its own error and its own time-out."""

from __future__ import annotations

import asyncio
import threading

import pytest

from shoal.errors import BackendTimeout
from shoal.models.batching import BatchSettings, MicroBatcher


class Recorder:
    """A blocking ``run`` that records every batch it was given (a fake model)."""

    def __init__(self, delay_s: float = 0.0, bad: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.delay_s = delay_s
        self.bad = bad
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items: list[str]) -> list[str]:
        self.release.wait(5)
        self.batches.append(list(items))
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        if self.bad is not None and self.bad in items:
            raise ValueError("bad row")
        return [item.upper() for item in items]


async def test_concurrent_calls_run_as_one_batch_and_each_gets_its_own_rows() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, backend="fake", settings=BatchSettings(max_wait_ms=20))
    results = await asyncio.gather(*(batcher.submit([f"a{i}", f"b{i}"]) for i in range(5)))
    assert results == [[f"A{i}", f"B{i}"] for i in range(5)]
    assert len(run.batches) == 1 and len(run.batches[0]) == 10


async def test_batches_never_exceed_max_size_but_a_larger_call_runs_whole() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, backend="fake", settings=BatchSettings(max_size=4))
    results = await asyncio.gather(*(batcher.submit([str(i)]) for i in range(10)),
                                   batcher.submit([f"big{i}" for i in range(6)]))
    assert [r[0] for r in results[:10]] == [str(i) for i in range(10)]
    assert results[10] == [f"BIG{i}" for i in range(6)]
    assert all(len(b) <= 4 for b in run.batches if not b[0].startswith("big"))
    assert [len(b) for b in run.batches if b[0].startswith("big")] == [6]
    assert sum(len(b) for b in run.batches) == 16


async def test_calls_made_while_the_model_is_busy_join_the_next_batch() -> None:
    run = Recorder()
    run.release.clear()  # the first batch holds the model
    batcher = MicroBatcher(run, backend="fake", settings=BatchSettings(max_wait_ms=0))
    first = asyncio.ensure_future(batcher.submit(["x"]))
    await asyncio.sleep(0.05)
    rest = [asyncio.ensure_future(batcher.submit([str(i)])) for i in range(6)]
    await asyncio.sleep(0.05)
    run.release.set()
    assert await first == ["X"]
    assert [await r for r in rest] == [[str(i)] for i in range(6)]
    assert [len(b) for b in run.batches] == [1, 6]


async def test_one_bad_input_fails_only_its_caller() -> None:
    run = Recorder(bad="poison")
    batcher = MicroBatcher(run, backend="fake", settings=BatchSettings(max_wait_ms=20))
    results = await asyncio.gather(batcher.submit(["ok1"]), batcher.submit(["poison"]),
                                   batcher.submit(["ok2"]), return_exceptions=True)
    assert results[0] == ["OK1"] and results[2] == ["OK2"]
    assert isinstance(results[1], ValueError)
    # One batched try, then each caller alone.
    assert run.batches[0] == ["ok1", "poison", "ok2"] and len(run.batches) == 4


async def test_a_caller_that_times_out_gets_backend_timeout_and_the_others_their_rows() -> None:
    run = Recorder(delay_s=0.3)
    batcher = MicroBatcher(run, backend="fake", settings=BatchSettings(max_wait_ms=10))
    results = await asyncio.gather(batcher.submit(["slow"], timeout_s=0.05),
                                   batcher.submit(["patient"], timeout_s=5),
                                   return_exceptions=True)
    assert isinstance(results[0], BackendTimeout) and results[0].backend == "fake"
    assert results[1] == ["PATIENT"]


async def test_a_caller_that_gives_up_before_its_batch_starts_is_left_out_of_it() -> None:
    run = Recorder()
    run.release.clear()
    batcher = MicroBatcher(run, backend="fake", settings=BatchSettings(max_wait_ms=0))
    busy = asyncio.ensure_future(batcher.submit(["first"]))
    await asyncio.sleep(0.05)
    gone = asyncio.ensure_future(batcher.submit(["gone"], timeout_s=0.01))
    kept = asyncio.ensure_future(batcher.submit(["kept"]))
    with pytest.raises(BackendTimeout):
        await gone
    run.release.set()
    assert await busy == ["FIRST"] and await kept == ["KEPT"]
    assert ["gone"] not in run.batches and all("gone" not in b for b in run.batches)


async def test_max_size_one_turns_batching_off() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, backend="fake", settings=BatchSettings(max_size=1))
    assert await asyncio.gather(*(batcher.submit([str(i)]) for i in range(3))) == [
        ["0"], ["1"], ["2"]]
    assert [len(b) for b in run.batches] == [1, 1, 1]


def test_one_batcher_serves_one_event_loop_after_another() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, backend="fake")
    for _ in range(2):
        assert asyncio.run(batcher.submit(["again"])) == ["AGAIN"]
    assert batcher.batches == 2 and batcher.rows == 2


def test_batch_settings_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_size"):
        BatchSettings(max_size=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        BatchSettings(max_wait_ms=-1)
