"""JSONL batches for the CLI: read lazily, run with bounded concurrency, write in input order.

A line that cannot be a record (not UTF-8, not JSON, no string ``text``, an id seen before) turns
into an ``error`` result naming ``FILE:LINE`` and the rest of the file still runs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shoal.errors import ErrorCode
from shoal.graphs.results import ErrorInfo, Record, RunResult
from shoal.graphs.runtime import Graph
from shoal.observability.logging import get_logger
from shoal.observability.report import Summary, render_summary

_log = get_logger()


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a runnable record, already turned into its error result."""

    result: RunResult


def _bad(path: Path, line: int, record_id: str, message: str) -> BadLine:
    info = ErrorInfo(code=ErrorCode.INPUT_INVALID, message=f"{path}:{line}: {message}")
    _log.warning("record_invalid", record_id=record_id, line=line, error=info.message)
    return BadLine(RunResult(id=record_id, status="error", error=info))


def read_records(path: Path, *, require_label: bool = False) -> Iterator[Record | BadLine]:
    """Yield one Record or BadLine per non-blank line of a JSONL file, in order. With
    ``require_label`` (labelled data for calibration) a line needs a string ``label`` too."""
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


class _OrderedWriter:
    """Writes results in input order as soon as every earlier one is in."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.next = 0
        self.waiting: dict[int, RunResult] = {}

    def put(self, index: int, result: RunResult) -> None:
        self.waiting[index] = result
        while self.next in self.waiting:
            self.out.write(_dump(self.waiting.pop(self.next)) + "\n")
            self.next += 1
        self.out.flush()


def write_one(result: RunResult, output: Path | None) -> None:
    line = _dump(result) + "\n"
    if output is None:
        print(line, end="")
    else:
        output.write_text(line, encoding="utf-8")


async def run_file(
    graph: Graph,
    path: Path,
    output: Path | None,
    *,
    concurrency: int,
    show_progress: bool,
    console: Console,
) -> int:
    """Run every line of ``path``; return how many records ended in ``error``."""
    total = count_lines(path)
    summary = Summary()
    index_of: dict[str, int] = {}
    pending_bad: list[tuple[int, RunResult]] = []

    async def runnable() -> AsyncIterator[Record]:
        for i, item in enumerate(read_records(path)):
            if isinstance(item, BadLine):
                pending_bad.append((i, item.result))
                continue
            index_of[item.id] = i
            yield item

    out: IO[str] = output.open("w", encoding="utf-8") if output else _stdout()
    writer = _OrderedWriter(out)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, disable=not show_progress, transient=False,
    )
    try:
        with progress:
            task = progress.add_task(graph.name, total=total)

            def done(index: int, result: RunResult) -> None:
                summary.add(result)
                writer.put(index, result)
                progress.advance(task)

            async for result in graph.astream_batch(runnable(), concurrency=concurrency):
                while pending_bad:
                    done(*pending_bad.pop(0))
                done(index_of.pop(result.id), result)
            while pending_bad:
                done(*pending_bad.pop(0))
    finally:
        if output is not None:
            out.close()
    render_summary(summary, console, title=f"{graph.name}: {path.name}")
    if output is not None:
        console.print(f"results: {output}", markup=False, highlight=False)
    return summary.statuses.get("error", 0)


def _stdout() -> IO[str]:
    import sys

    return sys.stdout
