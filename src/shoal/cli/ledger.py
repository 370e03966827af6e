"""``shoal ledger``: the escalations the planner answered, counted or exported as training data.

Reading the ledger needs only the graph's name and where its store is, so the graph file is read
and checked, but no model is loaded.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shoal.cli._common import _fail, _ledger, _spec_and_store
from shoal.policies.escalation import open_ledger, training_lines

ledger_app = typer.Typer(help="Escalations the planner answered: training data.",
                         no_args_is_help=True)


def _since(value: str | None) -> float | None:
    """Epoch seconds from an ISO date or date-time (UTC when no zone is given)."""
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--since {value!r}: expected an ISO date or date-time, such as 2026-12-01 or "
              "2026-12-01T09:30")
        raise typer.Exit(2) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


@ledger_app.command("list")
def ledger_list(
    graph_path: Annotated[Path, typer.Argument(metavar="GRAPH", help="The graph YAML.")],
) -> None:
    """Answered escalations of the graph, counted by node, label and source (never the text)."""
    spec, ledger = _ledger(graph_path)
    if ledger is None:
        return
    counts = ledger.counts(graph=spec.name)
    table = Table(title=f"ledger of {spec.name} ({ledger.where})", title_justify="left")
    for col in ("node", "label", "source", "entries"):
        table.add_column(col, justify="right" if col == "entries" else "left")
    for (node, label, source), n in sorted(counts.items()):
        table.add_row(node, label, source, str(n))
    Console().print(table)
    typer.echo(f"{sum(counts.values())} answered escalation(s)")


@ledger_app.command("export")
def ledger_export(
    graph_path: Annotated[Path, typer.Argument(metavar="GRAPH", help="The graph YAML.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Training JSONL to write.")],
    node: Annotated[str | None, typer.Option(help="Only this node's escalations.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only escalations from this ISO date or date-time on (UTC by default).")] = None,
) -> None:
    """Training lines ``{"id", "text", "label", "source"}`` (masked text; a person's label over
    the planner's), one per answered escalation with a label."""
    spec, path = _spec_and_store(graph_path)
    if node is not None and node not in spec.nodes:
        _fail(f"{graph_path}: no node {node!r} (nodes: {', '.join(spec.nodes)})")
        raise typer.Exit(2)
    ledger = open_ledger(path)
    entries = (ledger.entries(graph=spec.name, node=node, since=_since(since))
               if ledger.exists() else [])
    lines = training_lines(entries)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(output)  # a reader never sees half a file
    sources: dict[str, int] = {}
    for line in lines:
        sources[line["source"]] = sources.get(line["source"], 0) + 1
    by = ", ".join(f"{k} {v}" for k, v in sorted(sources.items())) or "none"
    typer.echo(f"{output}: {len(lines)} training line(s) ({by}) of {len(entries)} ledger entries")
