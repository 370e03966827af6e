"""``shoal calibrate``: choose a node's escalation threshold from labelled data.

The graph runs cut after the node, once per labelled record (:mod:`shoal.graphs.calibration`);
the math is :mod:`shoal.policies.escalation.calibration`. This module prints the curve and the
metrics, and writes the chosen threshold to an escalation policy file.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shoal.agents.base import get_agent
from shoal.cli._common import _err, _fail, _load
from shoal.errors import ShoalError
from shoal.graphs.calibration import Collected, PlannerMode, calibration_graph, collect
from shoal.graphs.results import Record
from shoal.graphs.runtime import Graph
from shoal.observability.logging import configure_logging
from shoal.policies.escalation.calibration import (
    CalibrationSummary,
    curve,
    random_baseline,
    summarize,
)

SHOWN_SHARES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
"""The planner shares the printed table has a row for."""


class PlannerChoice(StrEnum):
    live = "live"
    oracle = "oracle"


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
    from shoal.cli.batch import (  # startup: batches load only when a command reads JSONL
        BadLine,
        read_records,
    )

    configure_logging("warning", stream=sys.stderr)
    if not data.is_file():
        _fail(f"{data}: no such file")
        raise typer.Exit(2)
    graph = _load(graph_path)
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
        summary, collected = _sweep(
            graph_path, node=target, mode=planner.value, concurrency=concurrency,
            records=records, target_share=target_share, console=_err)
    except (ValueError, ShoalError) as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    render(summary, collected, console, node=target, mode=planner.value)
    policy = output or graph_path.with_name(f"{graph_path.stem}-calibrated.yaml")
    write_policy(policy, graph=graph.name, node=target, summary=summary, mode=planner.value,
                 data=data)
    console.print(f"wrote {policy} (add it to the graph's 'policies:' to use it)")
    if json_out is not None:
        json_out.write_text(summary_json(summary, collected) + "\n", encoding="utf-8")
    if bad:
        raise typer.Exit(1)


def _labelled_node(graph: Graph) -> str:
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


def _sweep(graph_path: Path, *, node: str, mode: PlannerMode, concurrency: int,
           records: Sequence[Record], target_share: float, console: Console
           ) -> tuple[CalibrationSummary, Collected]:
    """Run the records through the graph cut after ``node`` with a progress bar on
    ``console``, and summarize the sweep."""
    graph = calibration_graph(graph_path, node, mode)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("calibrating", total=len(records))
        collected = asyncio.run(collect(
            graph, node, records, mode, concurrency=concurrency,
            on_result=lambda: progress.advance(task)))
    if not collected.examples:
        raise ValueError(f"no record reached node {node!r}")
    return summarize(collected.examples, target_share), collected


def render(summary: CalibrationSummary, collected: Collected, console: Console, *,
           node: str, mode: PlannerMode) -> None:
    """Print the sweep: accuracies, the quality-vs-share table next to random routing, APGR,
    CPT and the chosen threshold."""
    planner = "oracle planner (gold labels)" if mode == "oracle" else "live planner"
    console.print(f"node {node!r}: {summary.n} labelled records, {planner}; local accuracy "
                  f"{summary.local_quality:.3f}, all-planner accuracy "
                  f"{summary.planner_quality:.3f}")
    if collected.skipped:
        console.print(f"{len(collected.skipped)} record(s) never reached {node!r} "
                      "(refused or failed upstream) and are not counted")
    if collected.planner_failed:
        console.print(f"{collected.planner_failed} planner call(s) failed; counted as wrong")
    points = curve(collected.examples, SHOWN_SHARES)
    random = random_baseline(collected.examples, SHOWN_SHARES)
    table = Table(title="quality vs planner share", title_justify="left")
    for col in ("share", "threshold", "accuracy", "PGR", "random accuracy", "random PGR"):
        table.add_column(col, justify="right")
    for want, p, rnd in zip(SHOWN_SHARES, points, random, strict=True):
        table.add_row(f"{want:.2f} ({p.share:.2f})", f"{p.threshold:.3f}", f"{p.quality:.3f}",
                      _f(p.pgr), _f(rnd.quality), _f(rnd.pgr))
    console.print(table)
    console.print(f"APGR {_f(summary.apgr)} (random {_f(summary.random_apgr)});  "
                  f"CPT(50%) {_f(summary.cpt50)}  CPT(80%) {_f(summary.cpt80)}  "
                  f"CPT(95%) {_f(summary.cpt95)}")
    if not summary.pgr_defined:
        console.print("the planner is not better than the local node on this data: PGR, "
                      "APGR and CPT are undefined")
    console.print(f"chosen: below {_threshold(summary.chosen_threshold):.4f} -> share "
                  f"{summary.chosen_share:.3f}, accuracy {summary.chosen_quality:.3f} "
                  f"(target share {summary.target_share:g})")


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _threshold(value: float) -> float:
    # The sweep's top threshold sits just above the largest confidence; a rule caps at 1.
    return min(1.0, value)


def write_policy(path: Path, *, graph: str, node: str, summary: CalibrationSummary,
                 mode: PlannerMode, data: Path) -> None:
    """Write the chosen threshold as an escalation policy file for ``node``."""
    # Rounded up to 4 decimals: every example below the chosen threshold still escalates.
    threshold = math.ceil(_threshold(summary.chosen_threshold) * 10_000) / 10_000
    doc = {
        "escalation": 1,
        "name": f"{graph}-calibrated",
        "description": (f"shoal calibrate on {data.name} ({summary.n} records, {mode} planner): "
                        f"share {summary.chosen_share:.3f}, accuracy "
                        f"{summary.chosen_quality:.3f}, APGR {_f(summary.apgr)}"),
        "nodes": {node: {"below": threshold}},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def summary_json(summary: CalibrationSummary, collected: Collected) -> str:
    """The summary (curve and metrics) with the skipped and failed counts, as one JSON object."""
    data = summary.model_dump(mode="json")
    data["skipped"] = len(collected.skipped)
    data["planner_failed"] = collected.planner_failed
    return json.dumps(data)
