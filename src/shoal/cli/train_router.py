"""``shoal train-router``: learn when a classifier node's local answer is wrong.

The node's inputs come from running the graph up to the node (:mod:`shoal.graphs.node_inputs`:
the masked text in the healthcare graphs); training is :mod:`shoal.models.train_router`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from shoal.cli._common import _err, _fail
from shoal.errors import ShoalError, SpecError
from shoal.graphs.loader import load_spec
from shoal.graphs.node_inputs import node_inputs
from shoal.models.specs import OnnxClassifierModelSpec, resolve_path
from shoal.models.train_router import DEFAULT_FOLDS, DEFAULT_K, train_router


def _groups(data: Path, key: str | None, ids: list[str]) -> list[str]:
    """Each record's fold group: its ``key`` field when every line has one, else its id."""
    if key is None:
        return ids
    found: dict[str, str] = {}
    for line in data.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # read_records already reported the line
            if isinstance(row, dict) and isinstance(row.get(key), str | int):
                found[str(row.get("id"))] = str(row[key])
    missing = [i for i in ids if i not in found]
    if missing:
        _fail(f"{data}: {len(missing)} record(s) have no {key!r} field (first: {missing[0]}); "
              f"every record needs one for --group-key, or pass --group-key ''")
        raise typer.Exit(2)
    return [found[i] for i in ids]


def train_router_command(
    graph_path: Annotated[Path, typer.Argument(metavar="GRAPH", help="Graph YAML file.")],
    node: Annotated[str, typer.Option(help="The classifier node the router is for.")],
    data: Annotated[Path, typer.Option("--data", "-d", help=(
        'Labelled JSONL ({"id", "text", "label"} lines): the data the node\'s model was '
        "trained on."))],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write ROUTER.onnx.")],
    folds: Annotated[int, typer.Option(min=2, max=20)] = DEFAULT_FOLDS,
    seed: Annotated[int, typer.Option(help="Fold and model seed.")] = 0,
    neighbours: Annotated[int, typer.Option(min=0, max=100, help=(
        "Nearest labelled neighbours per message (0: no neighbour features)."))] = DEFAULT_K,
    group_key: Annotated[str, typer.Option(help=(
        "Field that groups near-duplicate records into the same fold ('' for none)."))]
    = "family",
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1)] = 8,
) -> None:
    """Train a learned deferral router for a classifier node: the node's model is retrained
    out of fold, a logistic regression learns P(local answer wrong) from what the model knows
    (probabilities, member disagreement, nearest neighbours, unseen words), isotonic regression
    calibrates it, and ROUTER.onnx is written with a sidecar of features, data hashes and fold
    metrics. Use it with `router: {model: ROUTER.onnx}` in the node's escalation rule and choose
    the threshold with `shoal calibrate --router learned`."""
    from shoal.cli.batch import (  # startup: batches load only when a command reads JSONL
        read_labelled,
    )

    if not data.is_file():
        _fail(f"{data}: no such file")
        raise typer.Exit(2)
    try:
        spec, _ = load_spec(graph_path)
    except SpecError as exc:
        for issue in exc.issues:
            _fail(str(issue))
        raise typer.Exit(2) from None
    spec_node = spec.nodes.get(node)
    if spec_node is None:
        _fail(f"{graph_path}: no node {node!r} (nodes: {', '.join(spec.nodes)})")
        raise typer.Exit(2)
    model_spec = spec.models.get(spec_node.model or "")
    if not isinstance(model_spec, OnnxClassifierModelSpec):
        _fail(f"{graph_path}: node {node!r} needs a trained classifier model (kind "
              "onnx-classifier) for a learned router")
        raise typer.Exit(2)
    model_path = resolve_path(model_spec.path, graph_path.parent)
    records, bad = read_labelled(data)
    if bad:
        _fail(f"{data}: {bad} bad line(s); fix them first (a router must see all its data)")
        raise typer.Exit(2)
    try:
        with Progress(console=_err, transient=True) as progress:
            task = progress.add_task("reading the node's inputs", total=len(records))
            inputs = asyncio.run(node_inputs(graph_path, node, records, concurrency=concurrency,
                                             on_result=lambda: progress.advance(task)))
        kept = [r for r in records if r.id in inputs.texts]
        if inputs.skipped:
            _err.print(f"{len(inputs.skipped)} record(s) never reached {node!r} and are not "
                       "used")
        texts = [inputs.texts[r.id] for r in kept]
        labels = [r.label or "" for r in kept]
        groups = _groups(data, group_key or None, [r.id for r in kept])
        with Progress(console=_err, transient=True) as progress:
            task = progress.add_task("training", total=folds + 2)

            def step(what: str) -> None:
                progress.update(task, description=what, advance=1)

            report = train_router(
                texts, labels, groups, model_path, output,
                data_sha256=hashlib.sha256(data.read_bytes()).hexdigest(), folds=folds,
                seed=seed, k=neighbours, progress=step)
    except (ValueError, ShoalError) as exc:
        _fail(exc.message if isinstance(exc, ShoalError) else str(exc))
        raise typer.Exit(2) from None
    typer.echo(report.summary())
    typer.echo(f"wrote {output} and {output.name}.json; use it with "
               f"`router: {{model: {output.name}}}` in {node!r}'s escalation rule")
