"""Running a graph for calibration: the graph cut after one node, run once per labelled record.

Calibration needs a node's local label and confidence, not a drafted reply, so the graph is cut
after the node (:func:`prefix_spec`, :func:`calibration_graph`). In ``live`` mode the node is
forced to escalate, so the planner's answer is on record next to the local one; in ``oracle``
mode nothing is sent anywhere and the planner is assumed right (the ceiling a strong model
approaches). :func:`collect` runs the records and turns each result into an
:class:`~shoal.policies.escalation.calibration.Example` (:func:`example_of`); the math on those
examples is :mod:`shoal.policies.escalation.calibration`.

``shoal calibrate`` is this module plus printing and writing the policy file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shoal.errors import SpecError
from shoal.graphs.compiler import check
from shoal.graphs.loader import load_spec, spec_issues
from shoal.graphs.results import Record, RunResult
from shoal.graphs.runtime import Graph
from shoal.graphs.spec import END, ChainEdge, GraphSpec, RouteEdge
from shoal.policies.escalation import NodeRule
from shoal.policies.escalation.budget import BudgetSpec
from shoal.policies.escalation.calibration import Example

PlannerMode = Literal["live", "oracle"]
"""``live``: the graph's planner answers every record; ``oracle``: it is assumed right and
nothing is sent."""


@dataclass
class Collected:
    """What :func:`collect` gathered: one example per record that reached the node."""

    examples: list[Example] = field(default_factory=list)
    """Sorted by record id."""
    skipped: dict[str, str] = field(default_factory=dict)
    """record id -> why it gave no example (did not reach the node, refused, error)."""
    planner_failed: int = 0
    """Examples whose planner call failed (counted as the planner being wrong)."""


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


def calibration_graph(path: str | Path, node: str, mode: PlannerMode) -> Graph:
    """The graph file at ``path`` cut after ``node`` (:func:`prefix_spec`), ready to calibrate.

    The whole graph is checked first: raises :class:`~shoal.errors.SpecError` with every
    mistake, and ``ValueError`` if there is no such node or, in ``live`` mode, no
    ``escalation:`` planner. Only ``node`` may call the planner, in ``live`` mode always (a
    threshold above any confidence) and without a budget, so the sweep is never cut short; in
    ``oracle`` mode escalation is off.
    """
    path = Path(path)
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
    """One record's result from a :func:`calibration_graph` as (example, why not, planner
    failed): no example when the run failed or never reached ``node``; a planner that did not
    answer (down, malformed, blocked) gets no credit for the record."""
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
                  concurrency: int, on_result: Callable[[], object] | None = None) -> Collected:
    """Run labelled ``records`` through ``graph`` (a :func:`calibration_graph`), at most
    ``concurrency`` at once, and gather one example per record (:func:`example_of`; a record
    without a ``label`` counts as labelled ``""``). ``on_result`` is called after each result,
    e.g. to advance a progress bar."""
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
