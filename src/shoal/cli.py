"""The ``shoal`` command: a thin typer layer over the SDK that maps outcomes to exit codes.

Exit codes: 0 done; 1 a run failed (or, with --fail-on-error, some record did); 2 bad spec or usage.
"""

from __future__ import annotations

import asyncio
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console

from shoal.errors import ShoalError, SpecError
from shoal.graphs.runtime import DEFAULT_CONCURRENCY, Graph
from shoal.observability.logging import configure_logging

app = typer.Typer(
    name="shoal",
    help="Run a shoal of small local models as a graph; escalate only the hard nodes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_err = Console(stderr=True)


def _fail(message: str) -> None:
    # Plain text, never wrapped: error lines are FILE:LINE:COL for editors and scripts.
    typer.echo(message, err=True)


def _load(path: Path) -> Graph:
    try:
        return Graph.from_yaml(path)
    except SpecError as exc:
        for issue in exc.issues:
            _fail(str(issue))
        _fail(f"{len(exc.issues)} error(s)")
        raise typer.Exit(2) from None
    except ShoalError as exc:  # a model that cannot be loaded
        _fail(f"{path}: {exc.message}")
        raise typer.Exit(2) from None


@app.command()
def validate(
    graphs: Annotated[list[Path], typer.Argument(help="Graph YAML files to check.")],
) -> None:
    """Check graph files; print every mistake as FILE:LINE:COL, or a one-line summary each."""
    configure_logging("warning", stream=sys.stderr)
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


@app.command()
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
        typer.Option(help="debug|info|warning|error (default: info for --text, "
                          "warning for --input, info with --log-file)."),
    ] = None,
    log_file: Annotated[
        Path | None, typer.Option(help="Write JSON log events here instead of stderr.")
    ] = None,
    fail_on_error: Annotated[
        bool, typer.Option(help="Exit 1 if any record ends with status 'error'.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar for --input.")] = True,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Finish an interrupted --input run: keep the results already in "
                         "--output, run only the rest and append them.")] = False,
) -> None:
    """Run a graph on one text or a JSONL file; write one JSON result line per input."""
    if (text is None) == (input_path is None):
        _fail("give exactly one of --text or --input")
        raise typer.Exit(2)
    if input_path is not None and not input_path.is_file():
        _fail(f"{input_path}: no such file")
        raise typer.Exit(2)
    from shoal._batch import Done, read_done

    done: Done | None = None
    if resume:
        if input_path is None or output is None:
            _fail("--resume needs --input and --output")
            raise typer.Exit(2)
        if output.exists():
            try:
                done = read_done(output)
            except ShoalError as exc:
                _fail(exc.message)
                raise typer.Exit(2) from None
            except OSError as exc:
                _fail(f"{output}: cannot read: {exc.strerror or exc}")
                raise typer.Exit(2) from None
    elif output is not None and output.is_file() and output.stat().st_size > 0:
        _fail(f"note: overwriting {output} (not empty); --resume would continue it instead")
    level = log_level or ("info" if text is not None or log_file is not None else "warning")
    if level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        _fail(f"unknown log level {level!r}")
        raise typer.Exit(2)
    log_stream: TextIO = (
        log_file.open("a", encoding="utf-8", buffering=1) if log_file else sys.stderr
    )
    try:
        configure_logging(level, stream=log_stream)
        graph = _load(graph_path)
        from shoal._batch import run_file, write_one

        if text is not None:
            result = asyncio.run(graph.arun(text))
            write_one(result, output)
            errors = int(result.status == "error")
        else:
            assert input_path is not None
            errors = asyncio.run(run_file(graph, input_path, output, concurrency=concurrency,
                                          show_progress=progress, console=_err, done=done))
    finally:
        if log_file is not None:
            log_stream.close()
    if fail_on_error and errors:
        raise typer.Exit(1)


@app.command()
def report(
    results: Annotated[Path, typer.Argument(
        metavar="RESULTS", help="JSONL written by `shoal run --output`.")],
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object to stdout instead of tables.")] = False,
) -> None:
    """Summarize a results file: statuses, escalation per node, latency, planner spend, saving.

    Exit codes: 0 done; 1 some lines were unreadable (each named as FILE:LINE on stderr);
    2 the file is missing or cannot be read. Never prints a result's output.
    """
    import json

    from shoal.graphs.report import Unreadable, render_summary, summarize_file

    if not results.is_file():
        _fail(f"{results}: no such file")
        raise typer.Exit(2)

    def named(bad: Unreadable) -> None:
        _fail(str(bad))

    try:
        summary = summarize_file(results, on_unreadable=named)
    except OSError as exc:
        _fail(f"{results}: cannot read: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(summary.to_dict()))
    else:
        render_summary(summary, Console(), title=f"report: {results}")
    if summary.unreadable:
        raise typer.Exit(1)


class PlannerChoice(StrEnum):
    live = "live"
    oracle = "oracle"


@app.command()
def calibrate(
    graph_path: Annotated[Path, typer.Argument(metavar="GRAPH", help="Graph YAML file.")],
    data: Annotated[Path, typer.Option("--data", "-d",
                                       help="JSONL of {\"id\", \"text\", \"label\"} lines.")],
    node: Annotated[str | None, typer.Option(
        help="The node to calibrate (default: the only node whose agent has labels).")] = None,
    target_share: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Largest share of records the planner may get.")] = 0.2,
    planner: Annotated[PlannerChoice, typer.Option(
        help="live: ask the graph's planner for every record; oracle: assume it is right "
             "(nothing is sent).")] = PlannerChoice.live,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Escalation policy file to write (default: "
                               "GRAPH-calibrated.yaml next to the graph).")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write the whole curve and metrics as JSON here.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1)] = 8,
) -> None:
    """Sweep a node's escalation threshold on labelled data: quality vs planner share, PGR,
    APGR and CPT as RouteLLM defines them next to random routing, and write the threshold that
    is best within --target-share to an escalation policy file."""
    from shoal import _calibrate
    from shoal._batch import BadLine, read_records
    from shoal.graphs.results import Record

    configure_logging("warning", stream=sys.stderr)
    if not data.is_file():
        _fail(f"{data}: no such file")
        raise typer.Exit(2)
    try:
        graph = _load(graph_path)
    except typer.Exit:
        raise
    target = node or _labelled_node(graph)
    records: list[Record] = []
    bad = 0
    for item in read_records(data, require_label=True):
        if isinstance(item, BadLine):
            bad += 1
            _fail(item.result.error.message if item.result.error else "bad line")
        else:
            records.append(item)
    if not records:
        _fail(f"{data}: no labelled records")
        raise typer.Exit(2)
    console = Console()
    try:
        summary, collected = _calibrate.run(
            graph_path, node=target, mode=planner.value, concurrency=concurrency,
            records=records, target_share=target_share, console=_err)
    except (ValueError, ShoalError) as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    _calibrate.render(summary, collected, console, node=target, mode=planner.value)
    policy = output or graph_path.with_name(f"{graph_path.stem}-calibrated.yaml")
    _calibrate.write_policy(policy, graph=graph.name, node=target, summary=summary,
                            mode=planner.value, data=data)
    console.print(f"wrote {policy} (add it to the graph's 'policies:' to use it)")
    if json_out is not None:
        json_out.write_text(_calibrate.summary_json(summary, collected) + "\n",
                            encoding="utf-8")
    if bad:
        raise typer.Exit(1)


def _labelled_node(graph: Graph) -> str:
    from shoal.agents.base import get_agent

    found = []
    for name, spec in graph.spec.nodes.items():
        cls = get_agent(spec.agent)
        if cls is not None and cls.labels(cls.Config.model_validate(spec.agent_config)):
            found.append(name)
    if len(found) != 1:
        _fail(f"say which node to calibrate with --node (labelled nodes: "
              f"{', '.join(found) or 'none'})")
        raise typer.Exit(2)
    return found[0]


@app.command("planner-server")
def planner_server(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8765,
    model: Annotated[str, typer.Option(help="Embedded GGUF chat model.")] = (
        "smollm2-135m-instruct"),
) -> None:
    """Serve an embedded model as an OpenAI-compatible planner on 127.0.0.1 until Ctrl-C (a
    stand-in for a real planner: llama_cpp.server, nothing leaves the machine)."""
    import contextlib
    import signal
    import threading

    from shoal.models.local_server import serve_embedded

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with serve_embedded(model, port=port, warmup=True) as server:
            typer.echo(f"planner: {server.base_url} (model {server.model_id!r}); Ctrl-C stops it",
                       err=True)
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
    except ShoalError as exc:
        _fail(exc.message)
        raise typer.Exit(2) from None


@app.command()
def agents() -> None:
    """List the agents this installation knows (built-ins and plugins)."""
    from shoal.agents.base import agent_names, get_agent

    for name in agent_names():
        cls = get_agent(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls and cls.__doc__ else ""
        typer.echo(f"{name}\t{doc}")


@app.command()
def models() -> None:
    """List the embedded default models: name, kind, installed, size, licence, path."""
    from rich.table import Table

    from shoal.models.catalog import rows

    table = Table(title="embedded models", title_justify="left")
    for column in ("name", "kind", "installed", "size", "license", "path"):
        table.add_column(column, overflow="fold")
    for row in rows():
        size = f"{row.size_mb:.0f} MB" if row.size_mb is not None else "-"
        table.add_row(row.name, row.kind, "yes" if row.installed else "no", size, row.license,
                      row.path or "-")
    Console(width=200).print(table)


class MaskMode(StrEnum):
    pseudonymize = "pseudonymize"
    redact = "redact"
    hash = "hash"


@app.command()
def mask(
    text: Annotated[str | None, typer.Option("--text", "-t", help="One text to mask.")] = None,
    input_path: Annotated[
        Path | None, typer.Option("--input", "-i", help="JSONL of {\"id\", \"text\"} lines.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write masked JSONL.")
    ] = None,
    pack: Annotated[str, typer.Option(help="Policy pack: a built-in name or a YAML path.")]
    = "hipaa_safe_harbor",
    mode: Annotated[MaskMode, typer.Option(help="Replacement style.")] = MaskMode.pseudonymize,
) -> None:
    """Mask personal data: prints/writes {"id", "masked", "entities"} per input."""
    import json

    from shoal.agents.masker import mask_records, mask_text

    if (text is None) == (input_path is None):
        _fail("give exactly one of --text or --input")
        raise typer.Exit(2)
    if input_path is not None and output is None:
        _fail("--input needs --output")
        raise typer.Exit(2)
    if input_path is not None and not input_path.is_file():
        _fail(f"{input_path}: no such file")
        raise typer.Exit(2)
    try:
        if text is not None:
            typer.echo(json.dumps(mask_text(text, pack, mode.value), ensure_ascii=False))
            return
        assert input_path is not None
        assert output is not None
        counts = mask_records(input_path, output, pack, mode.value)
    except ShoalError as exc:
        _fail(exc.message)
        raise typer.Exit(2) from None
    _fail(f"{counts['records']} record(s): {counts['masked']} masked, {counts['errors']} "
          f"error(s); results: {output}")


outbox_app = typer.Typer(help="Escalations waiting for the planner.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


def _outbox(db: Path | None, graph_path: Path | None) -> tuple[Path, Graph | None]:
    from shoal.policies.escalation.outbox import default_outbox_path

    graph = _load(graph_path) if graph_path is not None else None
    if db is not None:
        return db, graph
    if graph is not None:
        return graph.outbox_path, graph
    return default_outbox_path(), graph


@outbox_app.command("list")
def outbox_list(
    db: Annotated[Path | None, typer.Option(help="Outbox file (default: $SHOAL_OUTBOX or "
                                                 ".shoal/outbox.sqlite).")] = None,
    graph_path: Annotated[Path | None, typer.Option(
        "--graph", help="Use this graph's outbox and show only its escalations.")] = None,
    all_rows: Annotated[bool, typer.Option("--all", help="Also drained ones.")] = False,
) -> None:
    """One line per queued escalation: id, age, graph, node, record id, attempts, last error
    (never the text)."""
    from rich.table import Table

    from shoal.policies.escalation.outbox import Outbox

    configure_logging("warning", stream=sys.stderr)
    path, graph = _outbox(db, graph_path)
    if not path.is_file():
        typer.echo(f"{path}: no outbox yet (nothing was ever queued)")
        return
    box = Outbox(path)
    rows = box.rows(graph=graph.name if graph else None,
                    status=None if all_rows else "pending")
    table = Table(title=f"outbox {path}", title_justify="left")
    for col in ("id", "queued", "graph", "node", "record", "status", "attempts", "last error"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.id, f"{(time.time() - r.created) / 60:.1f} min ago", r.graph, r.node,
                      r.record_id, r.status + (" (applied)" if r.applied else ""),
                      str(r.attempts), (r.last_error or "")[:60])
    Console().print(table)
    counts = box.counts()
    typer.echo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "empty")


@outbox_app.command("drain")
def outbox_drain(
    graph_path: Annotated[Path, typer.Argument(metavar="GRAPH", help="The graph whose planner "
                                                                      "takes the escalations.")],
    results: Annotated[Path | None, typer.Option(
        help="A `shoal run --output` file to update with the answers.")] = None,
    db: Annotated[Path | None, typer.Option(help="Outbox file (default: the graph's).")] = None,
) -> None:
    """Send queued escalations to the planner (each at most once) and write the answers into
    the stored results. Safe to run again after an interruption."""
    from shoal import _drain
    from shoal.policies.escalation.outbox import Outbox

    configure_logging("warning", stream=sys.stderr)
    if results is not None and not results.is_file():
        _fail(f"{results}: no such file")
        raise typer.Exit(2)
    path, graph = _outbox(db, graph_path)
    assert graph is not None
    if not path.is_file():
        typer.echo(f"{path}: no outbox yet (nothing was ever queued)")
        return
    box = Outbox(path)
    report = _drain.DrainReport()
    try:
        asyncio.run(_drain.send_pending(graph, box, report))
    except ValueError as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    if results is not None:
        _drain.apply_to_results(results, box, graph.name, report)
    typer.echo(f"sent {report.sent}, failed {report.failed} ({report.gave_up} given up), "
               f"skipped {report.skipped} (another drain had them), applied {report.applied} "
               "to results")
    if report.stop_reason:
        typer.echo(report.stop_reason, err=True)
    if report.failed:
        raise typer.Exit(1)


audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    path: Annotated[Path, typer.Argument(help="An audit log (JSONL) written by shoal.")],
    expect_head: Annotated[str | None, typer.Option(
        help="The last record's hash, kept elsewhere: also catches lines cut from the end.")]
    = None,
) -> None:
    """Check every record's hash, chain and sequence; exit 1 naming the first bad line."""
    from shoal.policies.audit import verify

    if not path.is_file():
        _fail(f"{path}: no such file")
        raise typer.Exit(2)
    report = verify(path, expect_head=expect_head)
    if report.ok:
        typer.echo(str(report))
        return
    _fail(str(report))
    raise typer.Exit(1)


class ClassifierKind(StrEnum):
    tfidf = "tfidf"
    embedding = "embedding"


@app.command("train-classifier")
def train_classifier(
    data: Annotated[Path, typer.Argument(help='JSONL of {"text": ..., "label": ...} lines.')],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write MODEL.onnx.")],
    kind: Annotated[ClassifierKind, typer.Option(help="tfidf: TF-IDF + logistic regression; "
                                                      "embedding: MiniLM nearest-centroid.")]
    = ClassifierKind.tfidf,
    test_size: Annotated[float, typer.Option(min=0.05, max=0.5,
                                             help="Held-out share for the metrics.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Split seed.")] = 0,
) -> None:
    """Train a text classifier, export it to ONNX with a sidecar of labels and held-out metrics."""
    from shoal.models.train import (
        TrainingDataError,
        build_embedding_classifier,
        train_text_classifier,
    )

    if not data.is_file():
        _fail(f"{data}: no such file")
        raise typer.Exit(2)
    try:
        if kind is ClassifierKind.tfidf:
            report = train_text_classifier(data, output, test_size=test_size, seed=seed)
        else:
            report = build_embedding_classifier(data, output, test_size=test_size, seed=seed)
    except TrainingDataError as exc:
        for issue in exc.issues:
            _fail(str(issue))
        _fail(f"{len(exc.issues)} problem(s) in {data}; nothing was written")
        raise typer.Exit(2) from None
    except ShoalError as exc:
        _fail(exc.message)
        raise typer.Exit(1) from None
    typer.echo(report.summary())


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    graph_path: Annotated[Path, typer.Argument(metavar="GRAPH", help="Graph YAML file.")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
    keys: Annotated[Path | None, typer.Option(
        help="Keys file from `shoal keys add` (default: $SHOAL_KEYS, else .shoal/keys.json).")]
    = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Serve without API keys; allowed only on a loopback address.")] = False,
    max_body: Annotated[int, typer.Option(min=1, help="Largest request body in bytes (413 "
                                                       "above).")] = 1_048_576,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", "-c", min=1, help="Runs in flight at once; more requests wait.")]
    = DEFAULT_CONCURRENCY,
    graceful_timeout: Annotated[int, typer.Option(
        min=0, help="Seconds SIGTERM waits for requests in flight.")] = 30,
    log_level: Annotated[str, typer.Option(help="debug|info|warning|error.")] = "info",
) -> None:
    """Serve one graph over HTTP: /v1/runs, /v1/runs/stream, OpenAI-compatible
    /v1/chat/completions, /metrics, /healthz, /readyz. Every route but the health checks needs
    'Authorization: Bearer KEY'. Logs one JSON event per request (never a body) on stderr."""
    import signal

    from shoal.service.keys import KeysFileError, KeyStore, default_keys_path

    if log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        _fail(f"unknown log level {log_level!r}")
        raise typer.Exit(2)
    configure_logging(log_level, stream=sys.stderr)
    store: KeyStore | None = None
    if no_auth:
        if not _loopback(host):
            _fail(f"--no-auth is allowed only on a loopback address such as 127.0.0.1, "
                  f"not {host!r}")
            raise typer.Exit(2)
    else:
        path = keys or default_keys_path()
        if not path.is_file():
            _fail(f"{path}: no keys file; create one with `shoal keys add NAME --keys {path}` "
                  "(or serve on 127.0.0.1 with --no-auth)")
            raise typer.Exit(2)
        try:
            store = KeyStore(path)
        except KeysFileError as exc:
            _fail(exc.message)
            raise typer.Exit(2) from None
        if not store.keys():
            _fail(f"{path}: holds no keys; add one with `shoal keys add NAME --keys {path}`")
            raise typer.Exit(2)
    graph = _load(graph_path)

    import uvicorn

    from shoal.service.app import create_app

    api = create_app(graph, keys=store, max_body=max_body, concurrency=concurrency,
                     base_dir=graph_path.parent)
    server = uvicorn.Server(uvicorn.Config(
        api, host=host, port=port, access_log=False, log_level="warning", server_header=False,
        timeout_graceful_shutdown=graceful_timeout))
    from shoal.observability.logging import get_logger

    log = get_logger()
    log.info("serve_starting", graph=graph.name, host=host, port=port,
                      auth=store is not None, max_body=max_body, concurrency=concurrency)
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; a handler
    # of ours takes it, so that a SIGTERM ends the command with exit code 0.
    previous = {sig: signal.signal(sig, lambda *_: None)
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise typer.Exit(1)
    log.info("serve_stopped", graph=graph.name)


keys_app = typer.Typer(help="API keys of `shoal serve` (only their SHA-256 is stored).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
_KeysOption = Annotated[Path | None, typer.Option(
    "--keys", help="Keys file (default: $SHOAL_KEYS, else .shoal/keys.json).")]


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="Who or what the key is for (shown in logs).")],
    graphs: Annotated[list[str] | None, typer.Option(
        "--graph", help="A graph name (the YAML's name:) the key may call; repeat for more. "
                        "Default: any graph (*).")] = None,
    keys: _KeysOption = None,
) -> None:
    """Make a random key, store only its hash (mode 0600) and print the key once on stdout."""
    from shoal.service.keys import ANY_GRAPH, KeysFileError, add_key, default_keys_path

    path = keys or default_keys_path()
    try:
        key = add_key(path, name, graphs)
    except KeysFileError as exc:
        _fail(exc.message)
        raise typer.Exit(2) from None
    except ValueError as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    _fail(f"added key {name!r} for graphs {', '.join(graphs or [ANY_GRAPH])} to {path}; it is "
          "shown only now:")
    typer.echo(key)


@keys_app.command("list")
def keys_list(keys: _KeysOption = None) -> None:
    """One line per key: name, graphs, created (never the hash)."""
    from shoal.service.keys import KeysFileError, default_keys_path, read_keys

    path = keys or default_keys_path()
    if not path.exists():
        _fail(f"{path}: no keys file yet")
        return
    try:
        found = read_keys(path)
    except KeysFileError as exc:
        _fail(exc.message)
        raise typer.Exit(2) from None
    for key in found:
        typer.echo(f"{key.name}\t{','.join(key.graphs)}\t{key.created}")
    if not found:
        _fail(f"{path}: no keys")


@keys_app.command("remove")
def keys_remove(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    keys: _KeysOption = None,
) -> None:
    """Revoke a key (a running server stops accepting it at its next request)."""
    from shoal.service.keys import KeysFileError, default_keys_path, remove_key

    path = keys or default_keys_path()
    try:
        removed = remove_key(path, name)
    except KeysFileError as exc:
        _fail(exc.message)
        raise typer.Exit(2) from None
    if not removed:
        _fail(f"{path}: no key named {name!r}")
        raise typer.Exit(1)
    _fail(f"removed key {name!r} from {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
