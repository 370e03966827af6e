"""``shoal models``, ``shoal agents``, ``shoal train-classifier`` and ``shoal planner-server``:
what this installation can run, and making or serving models for it."""

from __future__ import annotations

import contextlib
import signal
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shoal.agents.base import agent_names, get_agent
from shoal.cli._common import _fail
from shoal.errors import ShoalError


def planner_server(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8765,
    model: Annotated[str, typer.Option(help="Embedded GGUF chat model.")] = (
        "smollm2-135m-instruct"),
) -> None:
    """Serve an embedded model as an OpenAI-compatible planner on 127.0.0.1 until Ctrl-C (a
    stand-in for a real planner: llama_cpp.server, nothing leaves the machine)."""
    from shoal.models.local_server import (  # startup: loads only for `shoal planner-server`
        serve_embedded,
    )

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


def agents() -> None:
    """List the agents this installation knows (built-ins and plugins)."""
    for name in agent_names():
        cls = get_agent(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls and cls.__doc__ else ""
        typer.echo(f"{name}\t{doc}")


def models() -> None:
    """List the embedded default models: name, kind, installed, size, licence, path."""
    from shoal.models.catalog import rows  # startup: loads only when `shoal models` runs

    table = Table(title="embedded models", title_justify="left")
    for column in ("name", "kind", "installed", "size", "license", "path"):
        table.add_column(column, overflow="fold")
    for row in rows():
        size = f"{row.size_mb:.0f} MB" if row.size_mb is not None else "-"
        table.add_row(row.name, row.kind, "yes" if row.installed else "no", size, row.license,
                      row.path or "-")
    Console(width=200).print(table)


class ClassifierKind(StrEnum):
    tfidf = "tfidf"
    embedding = "embedding"


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
    from shoal.models.train import (  # startup: training loads only for `shoal train-classifier`
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
