"""JSONL batches for the CLI: read lazily, run with bounded concurrency, write in input order.

A line that cannot be a record (not UTF-8, not JSON, no string ``text``, an id seen before) turns
into an ``error`` result naming ``FILE:LINE`` and the rest of the file still runs.

Results reach the output file in input order and are handed to the OS as soon as they are
written, so a killed run leaves a prefix of the results plus at most one cut-off line;
:func:`read_done` reads such a file back and :func:`run_file` with ``done`` runs only the rest.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shoal.engines import RayOptions, connect, disconnect, run_on_ray
from shoal.errors import ErrorCode, ShoalError
from shoal.graphs.report import Summary, render_summary, summarize_file
from shoal.graphs.results import ErrorInfo, Record, RunResult
from shoal.graphs.runtime import Graph
from shoal.observability.logging import flush_repeats, get_logger

_log = get_logger()


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a runnable record, already turned into its error result."""

    result: RunResult
    line: int = 0


def _log_bad(bad: BadLine) -> None:
    message = bad.result.error.message if bad.result.error else ""
    _log.warning("record_invalid", record_id=bad.result.id, line=bad.line, error=message)


def _bad(path: Path, line: int, record_id: str, message: str) -> BadLine:
    # A line's own id is named; a made-up one (line-N) would only repeat the line number.
    who = "" if record_id == f"line-{line}" else f"record {record_id!r}: "
    info = ErrorInfo(code=ErrorCode.INPUT_INVALID, message=f"{path}:{line}: {who}{message}")
    return BadLine(RunResult(id=record_id, status="error", error=info), line)


def read_records(
    path: Path, *, require_label: bool = False, log: bool = True
) -> Iterator[Record | BadLine]:
    """Yield one Record or BadLine per non-blank line of a JSONL file, in order. With
    ``require_label`` (labelled data for calibration) a line needs a string ``label`` too.
    ``log=False`` leaves logging bad lines (``record_invalid``) to the caller."""
    for item in _records(path, require_label):
        if log and isinstance(item, BadLine):
            _log_bad(item)
        yield item


def read_labelled(path: Path) -> tuple[list[Record], int]:
    """The labelled records of a JSONL file and how many lines were bad (each one already
    printed on stderr as FILE:LINE: reason)."""
    records: list[Record] = []
    bad = 0
    for item in read_records(path, require_label=True):
        if isinstance(item, BadLine):
            bad += 1
            print(item.result.error.message if item.result.error else "bad line", file=sys.stderr)
        else:
            records.append(item)
    return records, bad


def _records(path: Path, require_label: bool) -> Iterator[Record | BadLine]:
    seen: dict[str, int] = {}
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            fallback_id = f"line-{line_no}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield _bad(path, line_no, fallback_id,
                           f"not valid UTF-8 (byte {exc.start}); the line was skipped")
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                yield _bad(path, line_no, fallback_id,
                           f"not valid JSON: {exc.msg} (column {exc.colno})")
                continue
            if not isinstance(data, dict):
                yield _bad(path, line_no, fallback_id,
                           f"expected a JSON object, got {type(data).__name__}")
                continue
            raw_id = data.get("id")
            if raw_id is not None and not isinstance(raw_id, str | int):
                yield _bad(path, line_no, fallback_id, "'id' must be a string or an integer")
                continue
            record_id = str(raw_id) if raw_id is not None else fallback_id
            if "text" not in data:
                yield _bad(path, line_no, record_id, "missing 'text'")
                continue
            if not isinstance(data["text"], str):
                yield _bad(path, line_no, record_id,
                           f"'text' must be a string, got {type(data['text']).__name__}")
                continue
            if not data["text"].strip():
                yield _bad(path, line_no, record_id, "'text' is empty")
                continue
            try:
                data["text"].encode("utf-8")
            except UnicodeEncodeError as exc:
                # JSON can escape a lone surrogate (\ud800) that no real text holds.
                yield _bad(path, line_no, record_id,
                           f"'text' holds an unpaired surrogate at character {exc.start}")
                continue
            if record_id in seen:
                yield _bad(path, line_no, record_id,
                           f"duplicate id (first at line {seen[record_id]}); ids must be unique")
                continue
            label = data.get("label")
            if require_label and (not isinstance(label, str) or not label):
                yield _bad(path, line_no, record_id, "missing 'label' (a non-empty string)")
                continue
            seen[record_id] = line_no
            yield Record(id=record_id, text=data["text"],
                         label=label if isinstance(label, str) else None)


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for raw in fh if raw.strip())


def _dump(result: RunResult) -> str:
    data: dict[str, Any] = result.model_dump(mode="json")
    return json.dumps(data, ensure_ascii=False)


FSYNC_EVERY_S = 0.5
"""How often at most the output file is fsynced while a batch runs (and once more at the end).
Every line is flushed to the OS as soon as it is written, which is all a killed process needs;
fsync only bounds what a crash of the machine itself can lose."""


class _OrderedWriter:
    """Writes results in input order as soon as every earlier one is in, flushing each group of
    ready lines to the OS at once; with ``durable`` also fsyncs at most every ``fsync_every_s``
    and on :meth:`close`."""

    def __init__(
        self, out: IO[str], *, durable: bool = False, fsync_every_s: float = FSYNC_EVERY_S
    ) -> None:
        self.out = out
        self.next = 0
        self.waiting: dict[int, RunResult] = {}
        self.durable = durable
        self.fsync_every_s = fsync_every_s
        self._synced_at = time.monotonic()
        self._unsynced = False

    def put(self, index: int, result: RunResult) -> None:
        self.waiting[index] = result
        if self.next not in self.waiting:
            return
        while self.next in self.waiting:
            self.out.write(_dump(self.waiting.pop(self.next)) + "\n")
            self.next += 1
        self.out.flush()
        self._unsynced = True
        if self.durable and time.monotonic() - self._synced_at >= self.fsync_every_s:
            self._sync()

    def _sync(self) -> None:
        os.fsync(self.out.fileno())
        self._synced_at = time.monotonic()
        self._unsynced = False

    def close(self) -> None:
        """Flush and, when durable, fsync what is left; the caller closes the stream."""
        self.out.flush()
        if self.durable and self._unsynced:
            self._sync()


@dataclass(frozen=True, slots=True)
class Done:
    """What an earlier, interrupted run already wrote to an output file (see :func:`read_done`)."""

    ids: Counter[str]
    """Ids of the complete result lines, with how often each occurs (a duplicate input id's
    error result shares the id of the first record)."""
    lines: int
    """Complete result lines kept."""
    keep_bytes: int
    """The file is cut to this size before appending: the end of the last complete line."""
    dropped_line: int | None = None
    """The number of a cut-off or unreadable last line that will be dropped, if any."""


def _why_not_result(raw: bytes) -> tuple[str | None, str]:
    """The id of a complete result line, or None and why it is not one (never quoting it)."""
    if not raw.endswith(b"\n"):
        return None, "cut off (no newline at the end)"
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 (byte {exc.start})"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} (column {exc.colno})"
    if not isinstance(data, dict):
        return None, f"expected a JSON object, got {type(data).__name__}"
    record_id, status = data.get("id"), data.get("status")
    if not isinstance(record_id, str) or not isinstance(status, str):
        return None, "not a result: needs a string 'id' and 'status'"
    return record_id, ""


def read_done(path: Path) -> Done:
    """Read the results an interrupted ``shoal run --output PATH`` left behind. Changes nothing.

    Only the last non-blank line may be cut off or unreadable (a process killed mid-write); it
    is reported in ``dropped_line`` and left out of ``keep_bytes``. An unreadable line before
    another result raises :class:`~shoal.errors.ShoalError` naming ``FILE:LINE``: such a file
    was not written by an interrupted run, and resuming it could lose or duplicate results.
    Raises ``OSError`` if the file cannot be read.
    """
    ids: Counter[str] = Counter()
    lines = keep = offset = 0
    bad: tuple[int, str] | None = None
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            offset += len(raw)
            if not raw.strip():
                continue
            if bad is not None:
                raise ShoalError(
                    f"{path}:{bad[0]}: {bad[1]}; only the last line of an interrupted run can "
                    "be incomplete, so this file cannot be resumed (nothing was changed)",
                    code=ErrorCode.INPUT_INVALID)
            record_id, why = _why_not_result(raw)
            if record_id is None:
                bad = (line_no, why)
                continue
            ids[record_id] += 1
            lines += 1
            keep = offset
    return Done(ids=ids, lines=lines, keep_bytes=keep,
                dropped_line=bad[0] if bad is not None else None)


def _left_to_run(path: Path, done: Done | None) -> Iterator[Record | BadLine]:
    """The input's records and bad lines whose result is not in ``done`` yet, in input order.
    Each result line in ``done`` accounts for one input line with its id."""
    left = Counter(done.ids) if done is not None else Counter[str]()
    for item in read_records(path, log=False):
        record_id = item.result.id if isinstance(item, BadLine) else item.id
        if left[record_id] > 0:
            left[record_id] -= 1
            continue
        yield item


def write_one(result: RunResult, output: Path | None) -> None:
    line = _dump(result) + "\n"
    if output is None:
        print(line, end="")
    else:
        output.write_text(line, encoding="utf-8")


Engine = Callable[[Iterator[tuple[int, Record]]], AsyncIterator[tuple[int, RunResult]]]
"""Runs ``(index, record)`` pairs and yields ``(index, result)`` as each finishes."""


def local_engine(graph: Graph, concurrency: int) -> Engine:
    """This process: :meth:`Graph.astream_batch` with at most ``concurrency`` runs at once."""

    async def run(items: Iterator[tuple[int, Record]]) -> AsyncIterator[tuple[int, RunResult]]:
        index_of: dict[str, int] = {}

        async def records() -> AsyncIterator[Record]:
            for index, record in items:
                index_of[record.id] = index
                yield record

        async for result in graph.astream_batch(records(), concurrency=concurrency):
            yield index_of.pop(result.id), result

    return run


def ray_engine(graph_path: Path, options: RayOptions) -> Engine:
    """A Ray Data pipeline (:func:`shoal.engines.run_on_ray`), driven from a thread so the event
    loop (and the progress bar) keep going while Ray works."""

    async def run(items: Iterator[tuple[int, Record]]) -> AsyncIterator[tuple[int, RunResult]]:
        started = connect(options)  # here, in the main thread: Ray sets signal handlers
        results = run_on_ray(graph_path, items, options)
        end = object()
        try:
            while (item := await asyncio.to_thread(next, results, end)) is not end:
                yield item  # type: ignore[misc]
        finally:
            await asyncio.to_thread(results.close)
            if started:
                disconnect()

    return run


async def run_file(
    name: str,
    engine: Engine,
    path: Path,
    output: Path | None,
    *,
    show_progress: bool,
    console: Console,
    done: Done | None = None,
) -> int:
    """Run every line of ``path`` on ``engine`` (graph ``name``); return how many records ended
    in ``error``.

    With ``done`` (from :func:`read_done` on ``output``) the run resumes: ``output`` is cut to
    its last complete line, only the inputs without a result there run, and their results are
    appended in input order; the count and the summary then cover the whole file.
    """
    summary = Summary()
    pending_bad: list[tuple[int, RunResult]] = []
    if done is None:
        total = count_lines(path)
        if total == 0:
            console.print(f"{path}: no records (the file is empty or blank)", markup=False,
                          highlight=False, soft_wrap=True)
    else:
        assert output is not None, "resuming needs an output file"
        total = sum(1 for _ in _left_to_run(path, done))
        matched = count_lines(path) - total
        note = functools.partial(console.print, markup=False, highlight=False, soft_wrap=True)
        note(f"resuming {output}: {matched} already done, {total} to run")
        if done.dropped_line is not None:
            note(f"{output}:{done.dropped_line}: dropped an incomplete last line; its record "
                 "runs again")
        if done.lines > matched:
            note(f"note: {done.lines - matched} result(s) in {output} match no line of {path}")

    def runnable() -> Iterator[tuple[int, Record]]:
        for i, item in enumerate(_left_to_run(path, done)):
            if isinstance(item, BadLine):
                _log_bad(item)
                pending_bad.append((i, item.result))
                continue
            yield i, item

    out: IO[str]
    if output is None:
        out = sys.stdout
    elif done is None:
        out = output.open("w", encoding="utf-8")
    else:
        with output.open("r+b") as fh:
            fh.truncate(done.keep_bytes)
        out = output.open("a", encoding="utf-8")
    writer = _OrderedWriter(out, durable=output is not None)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, disable=not show_progress, transient=False,
    )
    try:
        with progress:
            task = progress.add_task(name, total=total)

            def finished(index: int, result: RunResult) -> None:
                summary.add(result)
                writer.put(index, result)
                progress.advance(task)

            async for index, result in engine(runnable()):
                while pending_bad:
                    finished(*pending_bad.pop(0))
                finished(index, result)
            while pending_bad:
                finished(*pending_bad.pop(0))
    finally:
        writer.close()
        if output is not None:
            out.close()
    # The batch's repeated warnings are summed up under its progress bar, above its report.
    flush_repeats()
    if done is not None and output is not None:
        summary = summarize_file(output)
        render_summary(summary, console, title=f"{name}: {path.name} (resumed)")
    else:
        render_summary(summary, console, title=f"{name}: {path.name}")
    if output is not None:
        console.print(f"results: {output}", markup=False, highlight=False)
    return summary.statuses.get("error", 0)
