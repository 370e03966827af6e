"""Running a graph for calibration: the graph cut after one node, run once per labelled record.

Calibration needs a node's local label and confidence, not a drafted reply, so the graph is cut
after the node (:func:`prefix_spec`, :func:`calibration_graph`). In ``live`` mode the node is
forced to escalate, so the planner's answer is on record next to the local one; in ``oracle``
mode nothing is sent anywhere and the planner is assumed right (the ceiling a strong model
approaches). With a learned deferral router (``router=``), the node scores every record with it,
so its P(wrong) is on record too. :func:`collect` runs the records and turns each result into an
:class:`~shoal.policies.escalation.calibration.Example` (:func:`example_of`): the local answer
and probabilities, the router's score, and whether a red flag of the node's critical labels
fired on its working text. The math on those examples is
:mod:`shoal.policies.escalation.calibration`.

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
from shoal.graphs.results import NodeTrace, Record, RunResult
from shoal.graphs.runtime import Graph
from shoal.graphs.spec import END, ChainEdge, GraphSpec, RouteEdge
from shoal.policies.escalation import NodeRule, RouterRule
from shoal.policies.escalation.budget import BudgetSpec
from shoal.policies.escalation.calibration import Example
from shoal.policies.escalation.red_flags import matcher_for

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


def calibration_graph(path: str | Path, node: str, mode: PlannerMode,
                      router: Path | None = None) -> Graph:
    """The graph file at ``path`` cut after ``node`` (:func:`prefix_spec`), ready to calibrate.

    The whole graph is checked first: raises :class:`~shoal.errors.SpecError` with every
    mistake, and ``ValueError`` if there is no such node or, in ``live`` mode, no
    ``escalation:`` planner. Only ``node`` may call the planner, in ``live`` mode always (a
    threshold above any confidence) and without a budget, so the sweep is never cut short; in
    ``oracle`` mode escalation is off. ``router`` is a learned deferral router file: the node
    scores every record with it (the trace's ``p_wrong``) and never escalates because of it.
    The node's critical labels are off: the sweep measures the routing alone, and
    :func:`example_of` records what the critical rules need.
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
    rules: dict[str, NodeRule | None] = {name: None for name in cut.nodes}
    live = mode == "live"
    if live or router is not None:
        # Only the calibrated node may call the planner, and in live mode it always does (a
        # threshold above any confidence); the budget must not cut the sweep short. A router
        # without 'above' only scores; in oracle mode there is no planner to escalate to.
        rules[node] = NodeRule.model_construct(
            below=1.01 if live else None, on_flag=live, task=None, critical={}, attach=False,
            router=(RouterRule(model=str(router.resolve()), above=None)
                    if router is not None else None))
    return Graph(cut, base_dir=path.parent, rules=rules, budget=BudgetSpec(), checked=True,
                 shadows=False)


def working_text(result: RunResult, node: str, text: str) -> str:
    """The text ``node`` ran on: ``text`` (the input) as rewritten by the last node before it
    that rewrote it (a masker's masked text). Held in memory only: never log it."""
    for trace in result.nodes:
        if trace.node == node:
            break
        if trace.text is not None:
            text = trace.text
    return text


def red_flagged(rule: NodeRule | None, text: str) -> bool:
    """Whether a red flag of one of ``rule``'s critical labels fires on ``text``."""
    if rule is None or not text:
        return False
    return any(crit.red_flags is not None and matcher_for(crit.red_flags).fired(text)
               for crit in rule.critical.values())


def _local(trace: NodeTrace, escalated: bool) -> tuple[str | None, float, Any]:
    """(label, confidence, output) of the node's own answer: an escalated trace keeps it under
    ``output["local"]`` (see the escalator), any other trace is it."""
    output: Any = trace.output
    if escalated:
        local = output["local"]
        return local["label"], float(local["confidence"]), local.get("output")
    return trace.label, trace.confidence, output


def _probabilities(output: Any) -> dict[str, float] | None:
    # Read as the node runner reads them for critical labels (graphs/node.py).
    probs = output.get("probabilities") if isinstance(output, dict) else None
    if not isinstance(probs, dict):
        return None
    return {str(k): float(v) for k, v in probs.items() if isinstance(v, int | float)}


def example_of(result: RunResult, node: str, gold: str, mode: PlannerMode,
               text: str | None = None, rule: NodeRule | None = None
               ) -> tuple[Example | None, str | None, bool]:
    """One record's result from a :func:`calibration_graph` as (example, why not, planner
    failed): no example when the run failed or never reached ``node``; a planner that did not
    answer (down, malformed, blocked) gets no credit for the record.

    The example carries the local answer and its probabilities, the router's P(wrong) when the
    node has one, and, given the record's input ``text`` and the node's resolved ``rule``,
    whether a red flag of its critical labels fired on the node's working text
    (:func:`working_text`)."""
    trace = next((t for t in result.nodes if t.node == node), None)
    if result.status in ("error", "refused") or trace is None:
        return None, result.status if trace is None else f"{result.status} at {node}", False
    # In live mode an answered escalation keeps the local answer under output["local"].
    escalated = (mode == "live" and trace.escalated and isinstance(trace.output, dict)
                 and isinstance(trace.output.get("local"), dict))
    label, confidence, output = _local(trace, escalated)
    failed = mode == "live" and not escalated
    # Oracle: the planner is right by assumption. Live: its answer is the trace's label; one
    # that did not answer (down, malformed, blocked) gets no credit for this record.
    planner_correct = mode == "oracle" or (escalated and trace.label == gold)
    flagged = text is not None and red_flagged(rule, working_text(result, node, text))
    example = Example(id=result.id, confidence=confidence, local_correct=label == gold,
                      planner_correct=planner_correct, p_wrong=trace.p_wrong, label=gold,
                      local_label=label, probabilities=_probabilities(output), red_flag=flagged)
    return example, None, failed


async def collect(graph: Graph, node: str, records: Sequence[Record], mode: PlannerMode, *,
                  concurrency: int, on_result: Callable[[], object] | None = None,
                  rule: NodeRule | None = None) -> Collected:
    """Run labelled ``records`` through ``graph`` (a :func:`calibration_graph`), at most
    ``concurrency`` at once, and gather one example per record (:func:`example_of`; a record
    without a ``label`` counts as labelled ``""``). ``rule`` is the node's escalation rule in
    the whole graph, whose critical labels' red flags the examples record (the calibration
    graph turns them off). ``on_result`` is called after each result, e.g. to advance a
    progress bar."""
    gold = {r.id: r.label or "" for r in records}
    texts = {r.id: r.text for r in records}
    out = Collected()
    async for result in graph.astream_batch(((r.id, r.text) for r in records),
                                            concurrency=concurrency):
        # Positional: tests wrap example_of with a spy taking (result, *args).
        example, why, failed = example_of(result, node, gold[result.id], mode,
                                          texts.get(result.id), rule)
        if example is None:
            out.skipped[result.id] = why or "no result"
        else:
            out.examples.append(example)
            out.planner_failed += int(failed)
        if on_result is not None:
            on_result()
    out.examples.sort(key=lambda e: e.id)
    return out
