"""``shoal learn``, ``shoal versions``, ``shoal shadow``, ``shoal promote``, ``shoal rollback``:
the learning loop from the command line (:mod:`shoal.learning`).

Each reads the graph file (no model of the graph is loaded, only the node's own versions) and the
graph's store (outbox, ledger and model registry in one SQLite file, or in the Postgres database
of ``$SHOAL_DB``). A running ``shoal serve`` follows promotions, rollbacks and shadow changes
without a restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shoal.cli._common import _err, _fail, _spec_and_store
from shoal.errors import ShoalError
from shoal.learning import (
    NodeData,
    NodeSetup,
    concat_node_data,
    learn,
    node_data,
    node_setup,
    promote,
    rollback,
    shadow_stats,
    start_shadow,
    stop_shadow,
)
from shoal.policies.escalation import (
    BASE_VERSION,
    open_ledger,
    open_registry,
    review_audit_path,
)

shadow_app = typer.Typer(help="Run a candidate beside the champion; outputs never change.",
                         no_args_is_help=True)

_GRAPH = Annotated[Path, typer.Argument(metavar="GRAPH", help="The graph YAML.")]
_NODE = Annotated[str, typer.Option(help="The classifier node.")]
_AUDIT = Annotated[Path | None, typer.Option(
    "--audit-log", help="Audit JSONL (default: $SHOAL_AUDIT_LOG, else audit.jsonl beside the "
                        "store).")]


def _setup(graph_path: Path, node: str) -> tuple[NodeSetup, Path]:
    spec, store = _spec_and_store(graph_path)
    try:
        setup = node_setup(spec, graph_path.parent, node)
    except ShoalError as exc:
        _fail(f"{graph_path}: {exc.message}")
        raise typer.Exit(2) from None
    return setup, store


def _read(graph_path: Path, setup: NodeSetup, path: Path, what: str) -> NodeData:
    """``path``'s labelled records as the node reads them, with a progress bar."""
    from shoal.cli.batch import read_labelled  # startup: batches load only when needed
    from shoal.cli.train_router import _groups

    if not path.is_file():
        _fail(f"{graph_path}: learn.{what} {path}: no such file")
        raise typer.Exit(2)
    records, bad = read_labelled(path)
    if bad:
        _fail(f"{path}: {bad} bad line(s); fix them first (learning must see all its data)")
        raise typer.Exit(2)
    groups = _groups(path, setup.learn.group_key, [r.id for r in records]) \
        if setup.learn.group_key and what == "train" else None
    with Progress(console=_err, transient=True) as progress:
        task = progress.add_task(f"reading {path.name} as {setup.node!r} sees it",
                                 total=len(records))
        data = asyncio.run(node_data(graph_path, setup.node, records, file=path, groups=groups,
                                     on_result=lambda: progress.advance(task)))
    if data.skipped:
        _err.print(f"{path.name}: {data.skipped} record(s) never reached {setup.node!r} "
                   "(failed upstream) and are not used")
    return data


def learn_command(
    graph_path: _GRAPH,
    node: _NODE,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Folder for the version's files (default: models/NODE/ beside "
                               "the graph).")] = None,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
) -> None:
    """Build the node's next version from its base data (learn.train, one file or several) and
    the ledger's labels (a person's over the planner's), measure it and the champion on the
    frozen split (learn.eval), and register it. The running graph does not change: shadow it,
    then promote it."""
    setup, store = _setup(graph_path, node)
    try:
        base = concat_node_data([_read(graph_path, setup, path, "train")
                                 for path in setup.train_paths()])
    except ShoalError as exc:
        _fail(f"{graph_path}: learn.train: {exc.message}")
        raise typer.Exit(2) from None
    evaluation = _read(graph_path, setup, setup.eval_path(), "eval")
    out = output or graph_path.parent / "models" / node
    registry, ledger = open_registry(store), open_ledger(store)
    with Progress(console=_err, transient=True) as progress:
        task = progress.add_task("learning", total=None)
        try:
            candidate = learn(setup, base=base, evaluation=evaluation, ledger=ledger,
                              registry=registry, out_dir=out, seed=seed,
                              progress=lambda what: progress.update(task, description=what))
        except ShoalError as exc:
            _fail(f"{graph_path}: {exc.message}")
            raise typer.Exit(2) from None
    lineage = candidate.version.lineage
    table = Table(title=f"{candidate.version.version} of {node}: training rows",
                  title_justify="left")
    for col in ("label", "rows"):
        table.add_column(col)
    for label, n in candidate.balance.items():
        table.add_row(label, str(n))
    console = Console()
    console.print(table)
    led = lineage["data"]["ledger"]
    typer.echo(f"ledger: {led['planner']} planner and {led['human']} human label(s); "
               f"{led['duplicates']} duplicate(s) folded, {led['conflicts']} conflict(s), "
               f"{led['outside_labels']} outside the node's labels")
    typer.echo(candidate.summary())
    typer.echo(f"wrote {out / (candidate.version.version + '.onnx')} and its lineage; next: "
               f"shoal shadow start {graph_path} --node {node} --version "
               f"{candidate.version.version}")


def versions_command(
    graph_path: _GRAPH,
    node: Annotated[str | None, typer.Option(help="Only this node.")] = None,
) -> None:
    """The learned versions of the graph's nodes: lineage, frozen-split numbers, which one is
    the champion and which one shadows it."""
    spec, store = _spec_and_store(graph_path)
    registry = open_registry(store)
    if not registry.exists():
        typer.echo(f"{store}: no store yet (every node runs {BASE_VERSION})")
        return
    table = Table(title=f"model versions of {spec.name}", title_justify="left")
    for col in ("node", "version", "parent", "created", "rows (base/planner/human)",
                "accuracy", "share", "critical recall", "status"):
        table.add_column(col)
    rows = registry.versions(spec.name, node)
    champions = registry.champions(spec.name)
    nodes = sorted({v.node for v in rows} | set(champions))
    for name in nodes:
        champion = champions.get(name, [BASE_VERSION])[-1]
        shadow = registry.shadow(spec.name, name)
        table.add_row(name, BASE_VERSION, "-", "-", "graph file", "-", "-", "-",
                      "champion" if champion == BASE_VERSION else "")
        for v in (r for r in rows if r.node == name):
            data, metrics = v.lineage["data"], v.lineage["metrics"]["candidate"]
            crit = ", ".join(f"{k} {x:.3f}" for k, x in metrics["critical_recall"].items()
                             if x is not None)
            status = "champion" if v.version == champion else (
                "shadow" if v.version == shadow else "")
            table.add_row(
                name, v.version, v.parent,
                dt.datetime.fromtimestamp(v.created, dt.UTC).strftime("%Y-%m-%d %H:%M"),
                f"{data['base']['n']}/{data['ledger']['planner']}/{data['ledger']['human']}",
                f"{metrics['accuracy']:.3f}", f"{metrics['share']:.3f}", crit or "-", status)
    Console().print(table)


@shadow_app.command("start")
def shadow_start(
    graph_path: _GRAPH, node: _NODE,
    version: Annotated[str, typer.Option(help="The candidate version (shoal versions).")],
) -> None:
    """Run VERSION beside the node's champion from now on (a running shoal serve follows)."""
    setup, store = _setup(graph_path, node)
    try:
        start_shadow(setup, version, registry=open_registry(store))
    except ShoalError as exc:
        _fail(f"{graph_path}: {exc.message}")
        raise typer.Exit(2) from None
    typer.echo(f"{node}: {version} shadows the champion; see `shoal shadow report "
               f"{graph_path} --node {node}`")


@shadow_app.command("stop")
def shadow_stop(graph_path: _GRAPH, node: _NODE) -> None:
    """Stop the node's shadow."""
    setup, store = _setup(graph_path, node)
    stopped = stop_shadow(setup, registry=open_registry(store))
    typer.echo(f"{node}: " + (f"{stopped} no longer shadows" if stopped else "had no shadow"))


@shadow_app.command("report")
def shadow_report(
    graph_path: _GRAPH, node: _NODE,
    version: Annotated[str | None, typer.Option(help="The shadow version (default: the "
                                                     "current one).")] = None,
) -> None:
    """Agreement of shadow and champion, and each one's accuracy on the shadowed records a
    planner or a person labelled."""
    setup, store = _setup(graph_path, node)
    registry = open_registry(store)
    which = version or registry.shadow(setup.graph, node)
    if which is None:
        _fail(f"{graph_path}: node {node!r} has no shadow; name one with --version")
        raise typer.Exit(2)
    stats = shadow_stats(registry, open_ledger(store), setup.graph, node, which)

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    typer.echo(f"{node}: shadow {which} beside {', '.join(stats.champions) or '-'}: "
               f"{stats.n} run(s), agreement {f(stats.agreement)}; on {stats.labelled} "
               f"labelled ({stats.human} by a person): champion accuracy "
               f"{f(stats.champion_accuracy)}, shadow accuracy {f(stats.candidate_accuracy)}")


def promote_command(
    graph_path: _GRAPH, node: _NODE,
    version: Annotated[str, typer.Option(help="The candidate version.")],
    audit: _AUDIT = None,
) -> None:
    """Make VERSION the node's champion if it passes the gate: not worse on the frozen split
    (accuracy, every critical label's recall), better on labelled shadow records, the node's
    share and accuracy targets met. Otherwise refuse (exit 1) and print the failing numbers."""
    setup, store = _setup(graph_path, node)
    evaluation = _read(graph_path, setup, setup.eval_path(), "eval")
    try:
        done = promote(setup, version, evaluation=evaluation,
                       registry=open_registry(store), ledger=open_ledger(store),
                       audit_path=review_audit_path(store, audit))
    except ShoalError as exc:
        _fail(f"{graph_path}: {exc.message}")
        raise typer.Exit(2) from None
    for check in done.result.checks:
        typer.echo(check.line())
    if not done.promoted:
        _fail(f"{node}: {version} refused; {done.champion} stays the champion "
              f"({len(done.result.failed)} check(s) failed)")
        raise typer.Exit(1)
    typer.echo(f"{node}: {version} is the champion (was {done.champion}); a running shoal "
               "serve switches on its next request")


def rollback_command(graph_path: _GRAPH, node: _NODE, audit: _AUDIT = None) -> None:
    """Make the champion before the current one the champion again."""
    setup, store = _setup(graph_path, node)
    try:
        current, previous = rollback(setup, registry=open_registry(store),
                                     audit_path=review_audit_path(store, audit))
    except ShoalError as exc:
        _fail(f"{graph_path}: {exc.message}")
        raise typer.Exit(2) from None
    typer.echo(f"{node}: rolled back from {current} to {previous}")
