"""JSONL batches for the CLI: read lazily, run with bounded concurrency, write in input order.

A line that cannot be a record (not UTF-8, not JSON, no string ``text``, an id seen before) turns
into an ``error`` result naming ``FILE:LINE`` and the rest of the file still runs. FHIR input
(``--input-format fhir``, :mod:`shoal.fhir`) follows the same rules, naming ``FILE:LINE`` for
NDJSON and ``FILE:Bundle.entry[N]`` for a Bundle; with ``--output-format fhir`` each result is
written as the Communication that replies to its input (or, for an input that is no
Communication it can answer, an OperationOutcome), as NDJSON or, for a Bundle, a Bundle.

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

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shoal.engines import RayOptions, connect, disconnect, run_on_ray
from shoal.errors import ErrorCode, ShoalError
from shoal.fhir import (
    BUNDLE,
    BUNDLE_HEAD,
    BUNDLE_TAIL,
    Envelope,
    FhirInput,
    Message,
    Problem,
    bundle_entry,
    open_input,
    operation_outcome,
    problem_outcome,
    record_id_of,
    reply,
)
from shoal.fhir.read import describe_errors
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
    problem: Problem | None = None
    """FHIR input: what is wrong with the resource, where it is, and (a valid Communication whose
    content cannot run) what its reply needs."""


def _log_bad(bad: BadLine) -> None:
    message = bad.result.error.message if bad.result.error else ""
    if bad.problem is not None and bad.problem.place.startswith("Bundle."):
        _log.warning("record_invalid", record_id=bad.result.id, entry=bad.problem.index,
                     error=message)
        return
    _log.warning("record_invalid", record_id=bad.result.id, line=bad.line, error=message)


def _bad(path: Path, line: int, record_id: str, message: str) -> BadLine:
    # A line's own id is named; a made-up one (line-N) would only repeat the line number.
    who = "" if record_id == f"line-{line}" else f"record {record_id!r}: "
    info = ErrorInfo(code=ErrorCode.INPUT_INVALID, message=f"{path}:{line}: {who}{message}")
    return BadLine(RunResult(id=record_id, status="error", error=info), line)


def _bad_resource(path: Path, problem: Problem) -> BadLine:
    # As _bad: a made-up id (line-N, entry-N) would only repeat the place.
    who = f"record {problem.record_id!r}: " if problem.named else ""
    info = ErrorInfo(code=ErrorCode.INPUT_INVALID,
                     message=f"{path}:{problem.place}: {who}{problem.reason}")
    return BadLine(RunResult(id=problem.record_id, status="error", error=info), problem.index,
                   problem)


@dataclass(frozen=True, slots=True)
class Formats:
    """How a batch reads its input and writes its results (``--input-format``,
    ``--output-format``); the default is JSONL in and out."""

    fhir_input: FhirInput | None = None
    """The FHIR file (Bundle or NDJSON of Communications) when the input is FHIR."""
    fhir_output: bool = False
    """Write a reply Communication per result (needs FHIR input)."""

    @property
    def bundle(self) -> bool:
        """Results are written as a Bundle (FHIR output of a Bundle)."""
        return self.fhir_output and self.fhir_input is not None and self.fhir_input.kind == BUNDLE


JSONL = Formats()
INPUT_FORMATS = ("jsonl", "fhir")
OUTPUT_FORMATS = ("jsonl", "fhir")


def formats(path: Path, input_format: str, output_format: str) -> Formats:
    """The formats of ``shoal run --input PATH``. Raises :class:`ValueError` for an unknown or
    unsupported combination, :class:`~shoal.errors.ShoalError` for a FHIR file that cannot be
    read at all (naming it) and :class:`~shoal.errors.MissingExtra` without the extra
    ``[fhir]``."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"unknown input format {input_format!r}: jsonl or fhir")
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}: jsonl or fhir")
    if output_format == "fhir" and input_format != "fhir":
        raise ValueError("--output-format fhir needs --input-format fhir: each reply "
                         "references the Communication it answers")
    if input_format == "jsonl":
        return JSONL
    return Formats(fhir_input=open_input(path), fhir_output=output_format == "fhir")


def read_records(
    path: Path, *, require_label: bool = False, log: bool = True, fmt: Formats = JSONL
) -> Iterator[Record | BadLine]:
    """Yield one Record or BadLine per non-blank line of a JSONL file, in order (per resource
    of ``fmt``'s FHIR input, when it has one). With ``require_label`` (labelled data for
    calibration) a line needs a string ``label`` too. ``log=False`` leaves logging bad lines
    (``record_invalid``) to the caller."""
    items: Iterator[Record | BadLine]
    if fmt.fhir_input is not None:
        items = (_bad_resource(path, item) if isinstance(item, Problem) else item
                 for item in fmt.fhir_input)
    else:
        items = _records(path, require_label)
    for item in items:
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


def _count(path: Path, fmt: Formats) -> int:
    return fmt.fhir_input.count() if fmt.fhir_input is not None else count_lines(path)


def _dump(result: RunResult) -> str:
    data: dict[str, Any] = result.model_dump(mode="json")
    return json.dumps(data, ensure_ascii=False)


Source = Envelope | Problem | None
"""What a FHIR result's reply is built from: the input's envelope, or its problem."""


def fhir_resource(result: RunResult, source: Source, graph: str) -> dict[str, Any]:
    """The resource written for ``result``: the reply Communication when its input was one
    (``Problem.envelope`` for one whose content cannot run), else an OperationOutcome; a reply
    that does not validate becomes an OperationOutcome too, naming why without values."""
    envelope = source if isinstance(source, Envelope) else (
        source.envelope if isinstance(source, Problem) else None)
    if envelope is not None:
        try:
            return reply(result, envelope, graph=graph)
        except ValidationError as exc:
            why = f"the reply is not a valid Communication: {describe_errors(exc)}"
            failed = result.model_copy(update={"status": "error", "error": ErrorInfo(
                code=ErrorCode.OUTPUT_INVALID, message=f"record {result.id!r}: {why}")})
            return problem_outcome(failed, Problem(result.id, why, issue="invalid"),
                                   graph=graph)
    if isinstance(source, Problem):
        return problem_outcome(result, source, graph=graph)
    message = result.error.message if result.error is not None else "no input resource"
    return operation_outcome(message, issue="processing")


class _FhirRender:
    """One line per result: its FHIR resource (NDJSON), or its Bundle entry, each after the
    first with a leading comma (the Bundle's head and tail are written around them)."""

    def __init__(self, graph: str, *, bundle: bool, written: int = 0) -> None:
        self.graph = graph
        self.bundle = bundle
        self.written = written
        self.sources: dict[int, Source] = {}

    def __call__(self, index: int, result: RunResult) -> str:
        resource = fhir_resource(result, self.sources.pop(index, None), self.graph)
        if not self.bundle:
            line = json.dumps(resource, ensure_ascii=False)
        else:
            line = ("," if self.written else "") + json.dumps(bundle_entry(resource),
                                                               ensure_ascii=False)
        self.written += 1
        return line


FSYNC_EVERY_S = 0.5
"""How often at most the output file is fsynced while a batch runs (and once more at the end).
Every line is flushed to the OS as soon as it is written, which is all a killed process needs;
fsync only bounds what a crash of the machine itself can lose."""


class _OrderedWriter:
    """Writes results in input order as soon as every earlier one is in, flushing each group of
    ready lines to the OS at once; with ``durable`` also fsyncs at most every ``fsync_every_s``
    and on :meth:`close`."""

    def __init__(
        self, out: IO[str], *, durable: bool = False, fsync_every_s: float = FSYNC_EVERY_S,
        render: Callable[[int, RunResult], str] | None = None,
    ) -> None:
        self.out = out
        self.render = render or (lambda _, result: _dump(result))
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
            self.out.write(self.render(self.next, self.waiting.pop(self.next)) + "\n")
            self.next += 1
        self.out.flush()
        self._unsynced = True
        if self.durable and time.monotonic() - self._synced_at >= self.fsync_every_s:
            self._sync()

    def finish(self, text: str) -> None:
        """Write ``text`` after every result (a Bundle's tail); synced by :meth:`close`."""
        self.out.write(text)
        self._unsynced = True

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


def _why_not_result(raw: bytes, fmt: Formats = JSONL) -> tuple[str | None, str]:
    """The id of a complete result line, or None and why it is not one (never quoting it).
    A FHIR line's id is the input record id in its audit extension."""
    if not raw.endswith(b"\n"):
        return None, "cut off (no newline at the end)"
    try:
        text = raw.decode("utf-8")
        if fmt.bundle:
            text = text.lstrip().removeprefix(",")
        data = json.loads(text)
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 (byte {exc.start})"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} (column {exc.colno})"
    if not isinstance(data, dict):
        return None, f"expected a JSON object, got {type(data).__name__}"
    if fmt.fhir_output:
        resource = data.get("resource") if fmt.bundle else data
        found = record_id_of(resource)
        if found is None:
            return None, "not a result: no shoal-run extension with a 'recordId'"
        return found, ""
    record_id, status = data.get("id"), data.get("status")
    if not isinstance(record_id, str) or not isinstance(status, str):
        return None, "not a result: needs a string 'id' and 'status'"
    return record_id, ""


def read_done(path: Path, fmt: Formats = JSONL) -> Done:
    """Read the results an interrupted ``shoal run --output PATH`` left behind. Changes nothing.

    With FHIR output (``fmt``) a line's id is its audit extension's ``recordId``; a Bundle's
    first line is its head and a last ``]}`` its tail, neither of them a result (the tail is
    cut before appending).

    Only the last non-blank line may be cut off or unreadable (a process killed mid-write); it
    is reported in ``dropped_line`` and left out of ``keep_bytes``. An unreadable line before
    another result raises :class:`~shoal.errors.ShoalError` naming ``FILE:LINE``: such a file
    was not written by an interrupted run, and resuming it could lose or duplicate results.
    Raises ``OSError`` if the file cannot be read.
    """
    ids: Counter[str] = Counter()
    lines = keep = offset = 0
    bad: tuple[int, str] | None = None
    head = not fmt.bundle
    closed = False
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            offset += len(raw)
            if not raw.strip():
                continue
            if bad is not None or closed:
                line, why = bad if bad is not None else (line_no, "a line after the Bundle's end")
                raise ShoalError(
                    f"{path}:{line}: {why}; only the last line of an interrupted run can "
                    "be incomplete, so this file cannot be resumed (nothing was changed)",
                    code=ErrorCode.INPUT_INVALID)
            if not head:
                if raw.endswith(b"\n") and raw.strip() == BUNDLE_HEAD.encode():
                    head = True
                    keep = offset
                else:
                    bad = (line_no, "not the first line of a reply Bundle")
                continue
            if fmt.bundle and raw.strip() == BUNDLE_TAIL.encode():
                closed = True
                continue
            record_id, why = _why_not_result(raw, fmt)
            if record_id is None:
                bad = (line_no, why)
                continue
            ids[record_id] += 1
            lines += 1
            keep = offset
    return Done(ids=ids, lines=lines, keep_bytes=keep,
                dropped_line=bad[0] if bad is not None else None)


def _left_to_run(path: Path, done: Done | None, fmt: Formats = JSONL
                 ) -> Iterator[Record | BadLine]:
    """The input's records and bad lines whose result is not in ``done`` yet, in input order.
    Each result line in ``done`` accounts for one input line with its id."""
    left = Counter(done.ids) if done is not None else Counter[str]()
    for item in read_records(path, log=False, fmt=fmt):
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
    fmt: Formats = JSONL,
) -> int:
    """Run every line of ``path`` on ``engine`` (graph ``name``); return how many records ended
    in ``error``.

    With ``done`` (from :func:`read_done` on ``output``) the run resumes: ``output`` is cut to
    its last complete line, only the inputs without a result there run, and their results are
    appended in input order; the count and the summary then cover the whole file (with FHIR
    output, whose file holds no traces, the summary covers this run's records).
    """
    summary = Summary()
    pending_bad: list[tuple[int, RunResult]] = []
    if done is None:
        total = _count(path, fmt)
        if total == 0:
            console.print(f"{path}: no records (the file is empty or blank)", markup=False,
                          highlight=False, soft_wrap=True)
    else:
        assert output is not None, "resuming needs an output file"
        total = sum(1 for _ in _left_to_run(path, done, fmt))
        matched = _count(path, fmt) - total
        note = functools.partial(console.print, markup=False, highlight=False, soft_wrap=True)
        note(f"resuming {output}: {matched} already done, {total} to run")
        if done.dropped_line is not None:
            note(f"{output}:{done.dropped_line}: dropped an incomplete last line; its record "
                 "runs again")
        if done.lines > matched:
            note(f"note: {done.lines - matched} result(s) in {output} match no line of {path}")

    render = (_FhirRender(name, bundle=fmt.bundle, written=done.lines if done else 0)
              if fmt.fhir_output else None)

    def runnable() -> Iterator[tuple[int, Record]]:
        for i, item in enumerate(_left_to_run(path, done, fmt)):
            if render is not None:
                render.sources[i] = (item.problem if isinstance(item, BadLine) else
                                     item.envelope if isinstance(item, Message) else None)
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
    if fmt.bundle and (done is None or done.keep_bytes == 0):
        out.write(BUNDLE_HEAD + "\n")
    writer = _OrderedWriter(out, durable=output is not None, render=render)
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
        if fmt.bundle:
            # Only a run that finished closes its Bundle; a cut-off one is left to --resume.
            writer.finish(BUNDLE_TAIL + "\n")
    finally:
        writer.close()
        if output is not None:
            out.close()
    # The batch's repeated warnings are summed up under its progress bar, above its report.
    flush_repeats()
    if done is not None and output is not None and not fmt.fhir_output:
        summary = summarize_file(output)
        render_summary(summary, console, title=f"{name}: {path.name} (resumed)")
    elif done is not None:
        render_summary(summary, console, title=f"{name}: {path.name} (resumed: this run)")
    else:
        render_summary(summary, console, title=f"{name}: {path.name}")
    if output is not None:
        console.print(f"results: {output}", markup=False, highlight=False)
    return summary.statuses.get("error", 0)
