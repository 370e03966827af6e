"""``shoal validate``, ``shoal run`` and ``shoal report``: check graphs, run them, summarize
their results."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console

from shoal.cli._common import _err, _fail, _graph_errors, _load
from shoal.errors import ShoalError, SpecError
from shoal.graphs.runtime import DEFAULT_CONCURRENCY, Graph
from shoal.observability.logging import configure_cli_logging, flush_repeats


def validate(
    graphs: Annotated[list[Path], typer.Argument(help="Graph YAML files to check.")],
) -> None:
    """Check graph files; print every mistake as FILE:LINE:COL, or a one-line summary each."""
    failed = False
    for path in graphs:
        try:
            graph = Graph.from_yaml(path)
        except SpecError as exc:
            failed = True
            for issue in exc.issues:
                _fail(str(issue))
            _fail(f"{path}: {len(exc.issues)} error(s)")
            continue
        except ShoalError as exc:  # a model that cannot be loaded or configured
            failed = True
            _fail(f"{path}: {exc.message}")
            continue
        spec = graph.spec
        typer.echo(f"ok: {path}: graph {spec.name!r}, {len(spec.nodes)} nodes, "
                   f"{len(spec.edges)} edges, {len(spec.models)} models")
    if failed:
        raise typer.Exit(2)


def run(
    graph_path: Annotated[Path, typer.Argument(metavar="GRAPH", help="Graph YAML file.")],
    text: Annotated[str | None, typer.Option("--text", "-t", help="One input text.")] = None,
    input_path: Annotated[
        Path | None, typer.Option("--input", "-i", help="JSONL of {\"id\", \"text\"} lines.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write results here (default stdout).")
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Runs in flight at once.")
    ] = DEFAULT_CONCURRENCY,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug|info|warning|error (default: warning on stderr, info with "
                          "--log-file)."),
    ] = None,
    log_file: Annotated[
        Path | None, typer.Option(help="Write JSON log events here, every one (on stderr "
                                       "repeated warnings are summarised).")
    ] = None,
    fail_on_error: Annotated[
        bool, typer.Option(help="Exit 1 if any record ends with status 'error'.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar for --input.")] = True,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Finish an interrupted --input run: keep the results already in "
                         "--output, run only the rest and append them.")] = False,
    engine: Annotated[str, typer.Option(
        help="local: this process. ray: a Ray Data pipeline of graph actors (--input only; "
             "needs the extra [ray]).")] = "local",
    address: Annotated[str | None, typer.Option(
        help="With --engine ray: the Ray cluster to join (host:6379 or ray://host:10001); "
             "default: start a local Ray for this run.")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="With --engine ray: graph actors, each loading every model once and "
                    "reserving --cpus-per-worker CPUs.")] = 1,
    cpus_per_worker: Annotated[float, typer.Option(
        min=0.01, help="With --engine ray: CPUs each graph actor reserves; its model threads "
                       "are pinned to as many.")] = 1.0,
    planner_concurrency: Annotated[int, typer.Option(
        min=1, help="With --engine ray: planner calls in flight at once, for all the actors "
                    "together.")] = 2,
    input_format: Annotated[str, typer.Option(
        help="jsonl: {\"id\", \"text\"} lines. fhir: a FHIR R4 Bundle of Communication "
             "resources or NDJSON of them (needs the extra [fhir]).")] = "jsonl",
    output_format: Annotated[str, typer.Option(
        help="jsonl: one result line per input. fhir (with --input-format fhir): per input "
             "the Communication that replies to it, as NDJSON, or a Bundle for a Bundle.")
    ] = "jsonl",
) -> None:
    """Run a graph on one text or a JSONL file; write one JSON result line per input."""
    if (text is None) == (input_path is None):
        _fail("give exactly one of --text or --input")
        raise typer.Exit(2)
    if engine not in {"local", "ray"}:
        _fail(f"unknown engine {engine!r}: local or ray")
        raise typer.Exit(2)
    if engine == "local" and (address is not None or workers != 1 or cpus_per_worker != 1.0
                              or planner_concurrency != 2):
        _fail("--address, --workers, --cpus-per-worker and --planner-concurrency need "
              "--engine ray")
        raise typer.Exit(2)
    if engine == "ray" and input_path is None:
        _fail("--engine ray runs --input files; a single --text runs locally")
        raise typer.Exit(2)
    if input_path is not None and not input_path.is_file():
        _fail(f"{input_path}: no such file")
        raise typer.Exit(2)
    if input_path is None and (input_format, output_format) != ("jsonl", "jsonl"):
        _fail("--input-format and --output-format go with --input")
        raise typer.Exit(2)
    if engine == "ray" and output_format == "fhir":
        # The reply holds the sender's own values, which never leave the graph's process.
        _fail("--output-format fhir runs locally: a reply is built where its run's values are")
        raise typer.Exit(2)
    from shoal.cli.batch import (  # startup: batches load only when `shoal run` runs
        JSONL,
        Done,
        Formats,
        formats,
        local_engine,
        ray_engine,
        read_done,
        run_file,
        write_one,
    )
    from shoal.engines import RayOptions, load_checked

    fmt: Formats = JSONL
    if input_path is not None:
        try:
            fmt = formats(input_path, input_format, output_format)
        except ValueError as exc:
            _fail(str(exc))
            raise typer.Exit(2) from None
        except ShoalError as exc:  # a FHIR file that cannot be read at all; a missing extra
            _fail(exc.message)
            raise typer.Exit(2) from None
    done: Done | None = None
    if resume:
        if input_path is None or output is None:
            _fail("--resume needs --input and --output")
            raise typer.Exit(2)
        if output.exists():
            try:
                done = read_done(output, fmt)
            except ShoalError as exc:
                _fail(exc.message)
                raise typer.Exit(2) from None
            except OSError as exc:
                _fail(f"{output}: cannot read: {exc.strerror or exc}")
                raise typer.Exit(2) from None
    elif output is not None and output.is_file() and output.stat().st_size > 0:
        _fail(f"note: overwriting {output} (not empty); --resume would continue it instead")
    level = log_level or ("info" if log_file is not None else "warning")
    if level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        _fail(f"unknown log level {level!r}")
        raise typer.Exit(2)
    log_stream: TextIO = (
        log_file.open("a", encoding="utf-8", buffering=1) if log_file else sys.stderr
    )
    try:
        # A log file is for programs: every event, in full. On stderr a planner outage would
        # print a warning per retry between the progress bar's updates.
        configure_cli_logging(level, stream=log_stream, summarise=log_file is None)
        if engine == "ray":
            assert input_path is not None
            with _graph_errors(graph_path):  # checked here: the actors load the models
                name = load_checked(graph_path)[0].name
            # Ray's notes (token authentication, deprecations) would print between the
            # progress bar and the report: the command's stderr shows Ray's errors only.
            options = RayOptions(address=address, workers=workers,
                                 cpus_per_worker=cpus_per_worker, concurrency=concurrency,
                                 planner_concurrency=planner_concurrency,
                                 ray_log_level=logging.ERROR)
            try:
                errors = asyncio.run(run_file(
                    name, ray_engine(graph_path, options), input_path, output,
                    show_progress=progress, console=_err, done=done, fmt=fmt))
            except ShoalError as exc:
                _fail(f"{graph_path}: {exc.message}")
                raise typer.Exit(1) from None
        else:
            graph = _load(graph_path)
            if text is not None:
                result = asyncio.run(graph.arun(text))
                write_one(result, output)
                errors = int(result.status == "error")
            else:
                assert input_path is not None
                errors = asyncio.run(run_file(
                    graph.name, local_engine(graph, concurrency), input_path, output,
                    show_progress=progress, console=_err, done=done, fmt=fmt))
    finally:
        flush_repeats()
        if log_file is not None:
            log_stream.close()
    if fail_on_error and errors:
        raise typer.Exit(1)


def report(
    results: Annotated[Path, typer.Argument(
        metavar="RESULTS", help="JSONL written by `shoal run --output`.")],
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object to stdout instead of tables.")] = False,
    html_path: Annotated[Path | None, typer.Option(
        "--html", help="Also write one self-contained HTML page (tables and plots, no "
                       "external assets) here.")] = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="With --html: gold labels, a JSONL of {\"id\", \"label\"} lines (the "
                         "labelled input file will do; its text is never read into the "
                         "page), for recall per class and confusion.")] = None,
    label_node: Annotated[str | None, typer.Option(
        help="With --labels: the node whose label is compared with the gold one (default: the "
             "node whose labels match the gold labels most often).")] = None,
) -> None:
    """Summarize a results file: statuses, escalation per node, latency, planner spend, saving.

    Exit codes: 0 done; 1 some lines were unreadable (each named as FILE:LINE on stderr);
    2 a file is missing or cannot be read or written. Never prints a result's output.
    """
    from shoal.graphs.report import (  # startup: loads only when `shoal report` runs
        Unreadable,
        render_summary,
        summarize_file,
    )
    from shoal.graphs.report_html import (  # startup: as above
        label_report,
        read_gold,
        read_run_labels,
        render_html,
    )

    if (labels is not None or label_node is not None) and html_path is None:
        _fail("--labels and --label-node go with --html")
        raise typer.Exit(2)
    if label_node is not None and labels is None:
        _fail("--label-node needs --labels")
        raise typer.Exit(2)
    for given in (results, labels):
        if given is not None and not given.is_file():
            _fail(f"{given}: no such file")
            raise typer.Exit(2)

    def named(bad: Unreadable) -> None:
        _fail(str(bad))

    try:
        summary = summarize_file(results, on_unreadable=named)
    except OSError as exc:
        _fail(f"{results}: cannot read: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    bad_gold = 0
    if html_path is not None:
        recall = None
        if labels is not None:
            try:
                gold, bad_gold = read_gold(labels, on_unreadable=named)
                runs = read_run_labels(results)
            except OSError as exc:
                _fail(f"{exc.filename or labels}: cannot read: {exc.strerror or exc}")
                raise typer.Exit(2) from None
            if label_node is not None and not any(label_node in r.labels
                                                  for r in runs.values()):
                _fail(f"{results}: no run has a node {label_node!r}")
                raise typer.Exit(2)
            # Critical labels the runs fired, after emergency: their recall comes first.
            recall = label_report(gold, runs, node=label_node,
                                  critical=("emergency", *sorted(summary.critical_labels)))
            if recall is None:
                _fail(f"note: {results}: no node ran, so no recall per class")
        page = render_html(summary, title=f"shoal report: {results.name}", labels=recall)
        try:
            html_path.write_text(page, encoding="utf-8")
        except OSError as exc:
            _fail(f"{html_path}: cannot write: {exc.strerror or exc}")
            raise typer.Exit(2) from None
        typer.echo(f"wrote {html_path}", err=True)  # stdout keeps the report (or its JSON)
    if as_json:
        typer.echo(json.dumps(summary.to_dict()))
    else:
        render_summary(summary, Console(), title=f"report: {results}")
    if summary.unreadable or bad_gold:
        raise typer.Exit(1)

