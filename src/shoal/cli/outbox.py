"""``shoal outbox``: the escalations waiting for the planner, listed or drained."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shoal.cli._common import _fail, _load
from shoal.graphs.runtime import Graph
from shoal.policies.escalation import Outbox, OutboxStore, default_outbox_path, open_outbox

outbox_app = typer.Typer(help="Escalations waiting for the planner.", no_args_is_help=True)


def _outbox(db: Path | None, graph_path: Path | None) -> tuple[OutboxStore, Graph | None]:
    """``--db`` (a file), else ``$SHOAL_DB`` (Postgres), else the graph's or the default file."""
    graph = _load(graph_path) if graph_path is not None else None
    if db is not None:
        return Outbox(db), graph
    return open_outbox(graph.outbox_path if graph is not None else default_outbox_path()), graph


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
    box, graph = _outbox(db, graph_path)
    if not box.exists():
        typer.echo(f"{box.where}: no outbox yet (nothing was ever queued)")
        return
    rows = box.rows(graph=graph.name if graph else None,
                    status=None if all_rows else "pending")
    table = Table(title=f"outbox {box.where}", title_justify="left")
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
    from shoal.cli.drain import (  # startup: loads only when `shoal outbox drain` runs
        DrainReport,
        apply_to_results,
        send_pending,
    )

    if results is not None and not results.is_file():
        _fail(f"{results}: no such file")
        raise typer.Exit(2)
    box, graph = _outbox(db, graph_path)
    assert graph is not None
    if not box.exists():
        typer.echo(f"{box.where}: no outbox yet (nothing was ever queued)")
        return
    report = DrainReport()
    try:
        asyncio.run(send_pending(graph, box, report))
    except ValueError as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    if results is not None:
        apply_to_results(results, box, graph.name, report)
    typer.echo(f"sent {report.sent}, failed {report.failed} ({report.gave_up} given up), "
               f"skipped {report.skipped} (another drain had them), applied {report.applied} "
               "to results")
    if report.stop_reason:
        typer.echo(report.stop_reason, err=True)
    if report.failed:
        raise typer.Exit(1)
