"""``shoal review``: a person confirms or corrects the label of an answered escalation.

``list`` shows the ledger entries still waiting for a person, with their masked text (the
ledger holds nothing else; a reviewer has to read the message to label it). ``label`` sets a
person's label, which outranks the planner's in ``shoal ledger export``, and writes one record to
the hash-chained audit log (``--audit-log``, else ``$SHOAL_AUDIT_LOG``, else ``audit.jsonl``
beside the ledger). Both go through :mod:`shoal.policies.escalation.review`, as ``shoal serve``'s
``/v1/review`` routes do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shoal.agents import get_agent
from shoal.cli._common import _fail, _ledger, _spec_and_store
from shoal.graphs.spec import GraphSpec
from shoal.policies.escalation import (
    ReviewError,
    open_ledger,
    review_audit_path,
    review_label,
    review_queue,
)

review_app = typer.Typer(help="A person's labels for answered escalations.",
                         no_args_is_help=True)


def _node_labels(spec: GraphSpec, name: str) -> frozenset[str] | None:
    """The labels a node can give, from its agent and config (no model is loaded); None when
    only its model knows them and the YAML does not list them."""
    node = spec.nodes.get(name)
    if node is None:
        return None
    cls = get_agent(node.agent)
    if cls is not None:
        try:
            labels = cls.labels(cls.Config.model_validate(node.agent_config))
        except ValueError:
            labels = None
        if labels is not None:
            return labels
    listed = node.agent_config.get("labels")
    return frozenset(map(str, listed)) if isinstance(listed, list) else None


@review_app.command("list")
def review_list(
    graph_path: Annotated[Path, typer.Argument(metavar="GRAPH", help="The graph YAML.")],
    node: Annotated[str | None, typer.Option(help="Only this node's escalations.")] = None,
    all_entries: Annotated[bool, typer.Option("--all", help="Also those already "
                                                            "reviewed.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 50,
) -> None:
    """Entries waiting for a person: id, node, local and planner labels, masked text."""
    spec, ledger = _ledger(graph_path)
    if ledger is None:
        return
    entries = review_queue(ledger, graph=spec.name, node=node, include_reviewed=all_entries)
    table = Table(title=f"review queue of {spec.name}", title_justify="left")
    table.add_column("id", no_wrap=True)  # copied into `shoal review label`: never folded
    for col in ("node", "local", "planner", "person", "text (masked)"):
        table.add_column(col, overflow="fold")
    for e in entries[:limit]:
        local = f"{e.local_label or '-'} ({e.local_confidence:.2f})" if (
            e.local_confidence is not None) else (e.local_label or "-")
        table.add_row(e.id, e.node, local, e.planner_label or "-", e.human_label or "",
                      escape(e.text[:160]))
    Console().print(table)
    typer.echo(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
               + (f" (showing {limit})" if len(entries) > limit else ""))


@review_app.command("label")
def review_label_command(
    graph_path: Annotated[Path, typer.Argument(metavar="GRAPH", help="The graph YAML.")],
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="A ledger entry id.")],
    label: Annotated[str, typer.Argument(metavar="LABEL", help="The right label.")],
    audit: Annotated[Path | None, typer.Option(
        "--audit-log", help="Audit JSONL (default: $SHOAL_AUDIT_LOG, else audit.jsonl beside "
                            "the ledger).")] = None,
) -> None:
    """Confirm or correct one entry's label; it outranks the planner's. One audit record."""
    spec, path = _spec_and_store(graph_path)
    ledger = open_ledger(path)
    log_path = review_audit_path(path, audit)
    entry = ledger.entry(entry_id) if ledger.exists() else None
    known = _node_labels(spec, entry.node) if entry is not None else None
    try:
        updated = review_label(ledger, entry_id, label, graph=spec.name, known_labels=known,
                               audit_path=log_path)
    except ReviewError as exc:
        _fail(f"{path}: {exc.message}" if exc.reason == "unknown_entry" else exc.message)
        raise typer.Exit(2) from None
    was = updated.planner_label or "-"
    typer.echo(f"{entry_id}: {updated.node} labelled {label!r} by a person (planner said "
               f"{was!r}); audit: {log_path}")
