"""``shoal calibrate``: choose a node's escalation threshold from labelled data.

The graph runs up to the node (the nodes after it are cut off: calibration needs the node's local
label and confidence, not a drafted reply), once per labelled record, with the node forced to
escalate so the planner's answer is on record next to the local one. With ``--planner oracle``
nothing is sent anywhere: the planner is assumed right (the ceiling a strong model approaches).
The math is :mod:`shoal.policies.escalation.calibration`; this module runs the graph and writes
the policy.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from rich.console import Console
from rich.table import Table

from shoal.errors import SpecError
from shoal.graphs.compiler import check
from shoal.graphs.loader import load_spec, spec_issues
from shoal.graphs.results import Record, RunResult
from shoal.graphs.runtime import Graph
from shoal.graphs.spec import END, ChainEdge, GraphSpec, RouteEdge
from shoal.policies.escalation import NodeRule
from shoal.policies.escalation.budget import BudgetSpec
from shoal.policies.escalation.calibration import (
    CalibrationSummary,
    Example,
    curve,
    random_baseline,
    summarize,
)

PlannerMode = Literal["live", "oracle"]
SHOWN_SHARES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


@dataclass
class Collected:
    examples: list[Example] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """record id -> why it gave no example (did not reach the node, refused, error)."""
    planner_failed: int = 0


def prefix_spec(spec: GraphSpec, node: str) -> GraphSpec:
    """``spec`` cut after ``node``: only the nodes that lead to it, and it becomes the output."""
    parents: dict[str, set[str]] = {n: set() for n in spec.nodes}
    for edge in spec.edges:
        if isinstance(edge, ChainEdge):
            for srcs, dsts in edge.pairs():
                for dst in dsts:
                    if dst in parents:
                        parents[dst].update(s for s in srcs if s != END)
        else:
            for dst in edge.route.values():
                if dst in parents:
                    parents[dst].add(edge.source)
    keep, todo = {node}, [node]
    while todo:
        for p in parents[todo.pop()]:
            if p not in keep:
                keep.add(p)
                todo.append(p)
    edges: list[ChainEdge | RouteEdge] = []
    for edge in spec.edges:
        if isinstance(edge, ChainEdge):
            for srcs, dsts in edge.pairs():
                kept_dsts = [d for d in dsts if d in keep]
                if all(s in keep for s in srcs) and kept_dsts:
                    edges.extend(ChainEdge(steps=[srcs, [d]]) for d in kept_dsts)
        elif edge.source in keep and edge.source != node:
            route = {k: (v if v in keep else END) for k, v in edge.route.items()}
            edges.append(RouteEdge.model_validate({"from": edge.source, "route": route}))
    return spec.model_copy(update={
        "nodes": {n: s for n, s in spec.nodes.items() if n in keep},
        "edges": edges, "output": node})


def calibration_graph(path: Path, node: str, mode: PlannerMode) -> Graph:
    spec, source = load_spec(path)
    if node not in spec.nodes:
        raise ValueError(f"graph {spec.name!r} has no node {node!r}")
    problems = check(spec, base_dir=path.parent)
    if problems:  # the whole graph must be sound; the cut below is checked through it
        raise SpecError(spec_issues(problems, source, spec.name))
    cut = prefix_spec(spec, node)
    if mode == "oracle":
        cut = cut.model_copy(update={"escalation": None})
    elif cut.escalation is None:
        raise ValueError("the graph has no 'escalation:' planner; use --planner oracle")
    rules: dict[str, NodeRule | None] = {}
    for name in cut.nodes:
        # Only the calibrated node may call the planner, and in live mode it always does (a
        # threshold above any confidence); the budget must not cut the sweep short.
        rules[name] = (NodeRule.model_construct(below=1.01, on_flag=True, task=None)
                       if name == node and mode == "live" else None)
    return Graph(cut, base_dir=path.parent, rules=rules, budget=BudgetSpec(), checked=True)


def example_of(result: RunResult, node: str, gold: str, mode: PlannerMode
               ) -> tuple[Example | None, str | None, bool]:
    """(example, why not, planner failed) for one record's result."""
    trace = next((t for t in result.nodes if t.node == node), None)
    if result.status in ("error", "refused") or trace is None:
        return None, result.status if trace is None else f"{result.status} at {node}", False
    if mode == "oracle":
        return Example(id=result.id, confidence=trace.confidence,
                       local_correct=trace.label == gold, planner_correct=True), None, False
    output: Any = result.output
    if trace.escalated and isinstance(output, dict) and isinstance(output.get("local"), dict):
        local = output["local"]
        return Example(id=result.id, confidence=float(local["confidence"]),
                       local_correct=local["label"] == gold,
                       planner_correct=trace.label == gold), None, False
    # The planner did not answer (down, malformed, blocked): it gets no credit for this one.
    return Example(id=result.id, confidence=trace.confidence,
                   local_correct=trace.label == gold, planner_correct=False), None, True


async def collect(graph: Graph, node: str, records: Sequence[Record], mode: PlannerMode, *,
                  concurrency: int, on_result: Any = None) -> Collected:
    gold = {r.id: r.label or "" for r in records}
    out = Collected()
    async for result in graph.astream_batch(((r.id, r.text) for r in records),
                                            concurrency=concurrency):
        example, why, failed = example_of(result, node, gold[result.id], mode)
        if example is None:
            out.skipped[result.id] = why or "no result"
        else:
            out.examples.append(example)
            out.planner_failed += int(failed)
        if on_result is not None:
            on_result()
    out.examples.sort(key=lambda e: e.id)
    return out


def render(summary: CalibrationSummary, collected: Collected, console: Console, *,
           node: str, mode: PlannerMode) -> None:
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
    data = summary.model_dump(mode="json")
    data["skipped"] = len(collected.skipped)
    data["planner_failed"] = collected.planner_failed
    return json.dumps(data)


def run(graph_path: Path, *, node: str, mode: PlannerMode, concurrency: int,
        records: Sequence[Record], target_share: float, console: Console
        ) -> tuple[CalibrationSummary, Collected]:
    from rich.progress import Progress

    graph = calibration_graph(graph_path, node, mode)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("calibrating", total=len(records))
        collected = asyncio.run(collect(
            graph, node, records, mode, concurrency=concurrency,
            on_result=lambda: progress.advance(task)))
    if not collected.examples:
        raise ValueError(f"no record reached node {node!r}")
    return summarize(collected.examples, target_share), collected
