"""``shoal calibrate``: choose a node's escalation threshold and critical floors from labelled data.

The graph runs cut after the node, once per labelled record (:mod:`shoal.graphs.calibration`);
the math is :mod:`shoal.policies.escalation.calibration`. This module prints the routers side by
side (the confidence threshold always, a learned deferral router with ``--router learned``), the
metrics and each critical label's floor, and writes them to an escalation policy file.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shoal.agents.base import get_agent
from shoal.agents.classifier import ClassifierAgent
from shoal.cli._common import _err, _fail, _load
from shoal.errors import ShoalError
from shoal.graphs.calibration import Collected, PlannerMode, calibration_graph, collect
from shoal.graphs.results import Record
from shoal.graphs.runtime import Graph
from shoal.models.base import Classifier
from shoal.models.router import read_router_sidecar
from shoal.policies.escalation import CriticalRule, EscalationPolicy, NodeRule
from shoal.policies.escalation.calibration import (
    CPT_TARGETS,
    CalibrationSummary,
    Example,
    FloorChoice,
    Interval,
    Router,
    choose_floor,
    critical_at,
    critical_ids,
    curve,
    random_baseline,
    summarize,
)

SHOWN_SHARES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
"""The planner shares the printed table has a row for."""
DECIMALS = 10_000
"""Thresholds and floors are written with 4 decimals, rounded the way that escalates more."""


_SHORT: dict[Router, str] = {"confidence": "conf.", "learned": "learn"}
"""Router names in table headers."""


class PlannerChoice(StrEnum):
    live = "live"
    oracle = "oracle"


class RouterChoice(StrEnum):
    confidence = "confidence"
    learned = "learned"


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
    router: Annotated[RouterChoice, typer.Option(
        help="The router whose threshold is written: confidence (the node's own confidence) "
             "or learned (a deferral router from `shoal train-router`, compared side by side "
             "with the confidence one).")] = RouterChoice.confidence,
    router_model: Annotated[Path | None, typer.Option(
        "--router-model", metavar="ROUTER.onnx",
        help="The learned router file (`shoal train-router`): required with --router learned; "
             "with --router confidence it is compared side by side, not written. Its "
             "out-of-fold rows also count when critical floors are chosen.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Escalation policy file to write (default: "
                               "GRAPH-calibrated.yaml next to the graph). An existing policy "
                               "keeps its other keys and nodes.")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write the whole curve and metrics as JSON here.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1)] = 8,
) -> None:
    """Sweep a node's escalation threshold on labelled data: quality vs planner share, PGR,
    APGR and CPT as RouteLLM defines them next to random routing, AUROC and AUPRC of error
    detection and per-label recall; choose each critical label's floor for its min_recall; and
    write the threshold that is best within --target-share, with the floors, to an escalation
    policy file."""
    from shoal.cli.batch import (  # startup: batches load only when a command reads JSONL
        read_labelled,
    )

    if router is RouterChoice.learned and router_model is None:
        _fail("--router learned needs --router-model ROUTER.onnx (made by `shoal train-router`)")
        raise typer.Exit(2)
    if router_model is not None and not router_model.is_file():
        _fail(f"{router_model}: no such file")
        raise typer.Exit(2)
    if not data.is_file():
        _fail(f"{data}: no such file")
        raise typer.Exit(2)
    graph = _load(graph_path)
    target = node or _labelled_node(graph)
    rule = graph.rules.nodes.get(target)  # the whole graph's: critical labels, red flags
    records, bad = read_labelled(data)
    if not records:
        _fail(f"{data}: no labelled records")
        raise typer.Exit(2)
    console = Console()
    policy = output or graph_path.with_name(f"{graph_path.stem}-calibrated.yaml")
    try:
        collected = _sweep(graph_path, node=target, mode=planner.value, concurrency=concurrency,
                           records=records, console=_err, router=router_model, rule=rule)
        first = list(rule.critical) if rule is not None else []
        floors = choose_floors(collected.examples, rule, oof_evidence(router_model))
        forced = forced_ids(collected.examples, rule, floors)
        summaries: dict[Router, CalibrationSummary] = {
            "confidence": summarize(collected.examples, target_share, first=first,
                                    forced=forced)}
        if router_model is not None:  # both side by side; --router says which is written
            summaries["learned"] = summarize(collected.examples, target_share,
                                             router="learned", first=first, forced=forced)
        if forced:
            _err.print(f"{len(forced)} record(s) ({len(forced) / len(collected.examples):.3f})"
                       " are critical with another local label: they escalate whatever the "
                       "threshold, and the chosen thresholds count them in the target share")
        render(summaries, collected, console, node=target, mode=planner.value, floors=floors,
               written=router.value)
        write_policy(policy, graph=graph.name, node=target, summary=summaries[router.value],
                     mode=planner.value, data=data, router_model=router_model,
                     critical=rule.critical if rule is not None else {}, floors=floors)
    except (ValueError, ShoalError) as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    console.print(f"wrote {policy} (add it to the graph's 'policies:' to use it)")
    if json_out is not None:
        json_out.write_text(summary_json(summaries[router.value], collected, routers=summaries,
                                         critical=floors) + "\n", encoding="utf-8")
    if bad:
        raise typer.Exit(1)


def node_labels(graph: Graph, name: str) -> frozenset[str] | None:
    """The labels node ``name`` answers with: its agent's (the YAML's ``labels:``), else, for a
    classifier node on a trained classifier, the model's own (an ``onnx-classifier`` reads them
    from its sidecar when the graph loads). None: open-ended."""
    spec = graph.spec.nodes[name]
    cls = get_agent(spec.agent)
    if cls is None:
        return None
    labels = cls.labels(cls.Config.model_validate(spec.agent_config))
    if labels:
        return labels
    model = graph.models.get(spec.model) if spec.model is not None else None
    if issubclass(cls, ClassifierAgent) and isinstance(model, Classifier):
        return frozenset(model.labels)
    return None


def _labelled_node(graph: Graph) -> str:
    found = [name for name in graph.spec.nodes if node_labels(graph, name)]
    if len(found) != 1:
        _fail(f"say which node to calibrate with --node (labelled nodes: "
              f"{', '.join(found) or 'none'})")
        raise typer.Exit(2)
    return found[0]


def _sweep(graph_path: Path, *, node: str, mode: PlannerMode, concurrency: int,
           records: Sequence[Record], console: Console, router: Path | None = None,
           rule: NodeRule | None = None) -> Collected:
    """Run the records through the graph cut after ``node`` (scored by ``router`` if given)
    with a progress bar on ``console``."""
    graph = calibration_graph(graph_path, node, mode, router=router)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("calibrating", total=len(records))
        collected = asyncio.run(collect(
            graph, node, records, mode, concurrency=concurrency,
            on_result=lambda: progress.advance(task), rule=rule))
    if not collected.examples:
        raise ValueError(f"no record reached node {node!r}")
    return collected


def choose_floors(examples: Sequence[Example], rule: NodeRule | None,
                  evidence: Sequence[Example] = ()) -> dict[str, FloorChoice]:
    """Per critical label of ``rule`` with a ``min_recall``: the largest floor reaching it,
    rounded down to 4 decimals (a lower floor only catches more), and what it does on
    ``examples``.

    The floor is chosen from the model alone, on ``examples`` plus ``evidence`` (a router's
    out-of-fold rows, :func:`oof_evidence`): red flags do not count towards it. They are rules
    written by people who have read such messages, very likely these ones, so on the data they
    were written from they catch everything and would lift the floor to 1; at run time they are
    a safety net on top of the floor, not a reason to lower it. A handful of examples of a rare
    label cannot show a 0.99 recall either; the out-of-fold rows add examples no model saw."""
    floors: dict[str, FloorChoice] = {}
    pooled = [*examples, *evidence]
    for label, crit in (rule.critical if rule is not None else {}).items():
        if crit.min_recall is None:
            continue  # nothing to choose for: the floor stays as written
        flags = crit.red_flags is not None
        chosen = choose_floor(pooled, label, crit.min_recall, red_flags=False)
        if chosen.floor is None:
            floors[label] = critical_at(examples, label, None, min_recall=crit.min_recall,
                                        red_flags=flags)
            continue
        floor = math.floor(chosen.floor * DECIMALS) / DECIMALS
        pooled_at = critical_at(pooled, label, floor, min_recall=crit.min_recall,
                                red_flags=False)
        choice = critical_at(examples, label, floor, min_recall=crit.min_recall,
                             red_flags=flags)
        floors[label] = choice.model_copy(update={
            "chosen_on": pooled_at.n, "chosen_recall": pooled_at.recall,
            "met": pooled_at.met and bool(choice.met or not choice.n)})
    return floors


def forced_ids(examples: Sequence[Example], rule: NodeRule | None,
               floors: Mapping[str, FloorChoice]) -> set[str]:
    """Ids the node's critical labels escalate past any budget, with the chosen floors (the
    written ones where none was chosen)."""
    out: set[str] = set()
    for label, crit in (rule.critical if rule is not None else {}).items():
        choice = floors.get(label)
        floor = choice.floor if choice is not None and choice.floor is not None else crit.floor
        out |= critical_ids(examples, label, floor, red_flags=crit.red_flags is not None)
    return out


def oof_evidence(router_model: Path | None) -> list[Example]:
    """A router's out-of-fold training rows (its sidecar's ``oof_rows``) as examples for
    :func:`choose_floors`; none without a router or rows."""
    if router_model is None:
        return []
    side = read_router_sidecar(router_model)
    rows = side.oof_rows
    if rows is None:
        return []
    labels = side.labels
    return [Example(id=f"oof-{i}", confidence=max(probs), local_correct=gold == pred,
                    planner_correct=True, label=labels[gold], local_label=labels[pred],
                    probabilities=dict(zip(labels, probs, strict=True)))
            for i, (gold, pred, probs) in enumerate(
                zip(rows.gold, rows.predicted, rows.probabilities, strict=True))]


def render(summaries: Mapping[Router, CalibrationSummary], collected: Collected,
           console: Console, *, node: str, mode: PlannerMode,
           floors: Mapping[str, FloorChoice] | None = None, written: Router = "confidence"
           ) -> None:
    """Print the sweep: accuracies, the quality-vs-share table of each router next to random
    routing, the metrics side by side, the CPT floor, per-label recall, the critical floors and
    the chosen thresholds."""
    base = next(iter(summaries.values()))
    planner = "oracle planner (gold labels)" if mode == "oracle" else "live planner"
    console.print(f"node {node!r}: {base.n} labelled records, {planner}; local accuracy "
                  f"{base.local_quality:.3f}, all-planner accuracy {base.planner_quality:.3f}")
    if collected.skipped:
        console.print(f"{len(collected.skipped)} record(s) never reached {node!r} "
                      "(refused or failed upstream) and are not counted")
    if collected.planner_failed:
        console.print(f"{collected.planner_failed} planner call(s) failed; counted as wrong")
    examples = collected.examples
    # No vertical rules: two routers side by side still fit in 80 columns.
    table = Table(title="quality vs planner share", title_justify="left", box=box.SIMPLE_HEAD,
                  padding=(0, 0, 0, 1), pad_edge=False,
                  caption="per router: share reached, threshold, accuracy, PGR",
                  caption_justify="left")
    table.add_column("share", justify="right")
    for name in summaries:
        for col in ("share", "thr.", "acc.", "PGR"):
            table.add_column(f"{_SHORT[name]}\n{col}", justify="right")
    for col in ("acc.", "PGR"):
        table.add_column(f"random\n{col}", justify="right")
    curves = [curve(examples, SHOWN_SHARES, router=name) for name in summaries]
    random = random_baseline(examples, SHOWN_SHARES)
    for i, (want, rnd) in enumerate(zip(SHOWN_SHARES, random, strict=True)):
        row = [f"{want:.2f}"]
        for points in curves:
            p = points[i]
            row += [f"{p.share:.2f}", f"{p.threshold:.3f}", f"{p.quality:.3f}", _f(p.pgr)]
        table.add_row(*row, _f(rnd.quality), _f(rnd.pgr))
    console.print(table)
    console.print(_metrics(summaries))
    if not base.pgr_defined:
        console.print("the planner is not better than the local node on this data: PGR, "
                      "APGR and CPT are undefined")
    else:
        console.print(f"floor: no router reaches CPT(95%) below 0.95 x gap = "
                      f"{_f(base.cpt_floor)} (the gap is the local error rate "
                      f"{1 - base.local_quality:.3f} when the planner is always right)")
    if base.per_class_recall:
        console.print(_recall_table(summaries, set(floors or {})))
    for choice in (floors or {}).values():
        console.print(_floor_line(choice))
    for name, summary in summaries.items():
        rule = (f"below {_threshold(summary.chosen_threshold):.4f}" if name == "confidence"
                else f"above {_above_text(summary.chosen_threshold)}")
        mark = " (written)" if name == written else ""
        console.print(f"chosen{mark}, {name}: {rule} -> share {summary.chosen_share:.3f}, "
                      f"accuracy {summary.chosen_quality:.3f} (target share "
                      f"{summary.target_share:g})")


def _metrics(summaries: Mapping[Router, CalibrationSummary]) -> Table:
    """APGR, CPTs with their intervals, AUROC and AUPRC: one column per router, then random."""
    base = next(iter(summaries.values()))
    table = Table(title="routers (CPT: bootstrap 95% interval)", title_justify="left")
    table.add_column("metric")
    for name in summaries:
        table.add_column(name, justify="right")
    table.add_column("random", justify="right")
    defined = base.pgr_defined
    table.add_row("APGR", *(_f(s.apgr) for s in summaries.values()), _f(base.random_apgr))
    for key, target in CPT_TARGETS.items():
        # Random routing's PGR at share s is s itself: its CPT(x%) is x.
        table.add_row(f"CPT({target:.0%})",
                      *(_cpt(getattr(s, key), s.cpt_ci.get(key)) for s in summaries.values()),
                      _f(target if defined else None))
    error_rate = 1 - base.local_quality
    table.add_row("AUROC", *(_f(s.auroc) for s in summaries.values()),
                  _f(0.5 if 0 < error_rate < 1 else None))
    table.add_row("AUPRC", *(_f(s.auprc) for s in summaries.values()),
                  _f(error_rate if error_rate > 0 else None))
    return table


def _recall_table(summaries: Mapping[Router, CalibrationSummary], critical: set[str]) -> Table:
    """Recall per gold label, critical labels first: local only, and routed by each router at
    its chosen threshold."""
    base = next(iter(summaries.values()))
    table = Table(title="recall per label (critical first; routed: at the chosen threshold)",
                  title_justify="left")
    for col in ("label", "n", "local"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for name in summaries:
        table.add_column(f"{name} routed", justify="right")
    for label, rec in base.per_class_recall.items():
        shown = f"{label} (critical)" if label in critical else label
        table.add_row(shown, str(rec.n), f"{rec.local:.3f}",
                      *(f"{s.per_class_recall[label].routed:.3f}" for s in summaries.values()))
    return table


def _floor_line(choice: FloorChoice) -> str:
    name = f"critical {choice.label!r}"
    if choice.floor is None:
        return f"{name}: no record of it in the data; its floor is kept as it was"
    recall = f"recall {_f(choice.recall)} ({choice.caught}/{choice.n})"
    if not choice.met:
        return (f"{name}: no floor reaches min_recall {choice.min_recall:g}; floor "
                f"{choice.floor:g} catches the most: {recall}, share {choice.share:.3f}")
    chosen = (f"chosen on {choice.chosen_on} examples of it (model alone, recall "
              f"{_f(choice.chosen_recall)}); " if choice.chosen_on else "")
    return (f"{name}: floor {choice.floor:g} (min_recall {choice.min_recall:g}), {chosen}"
            f"here {recall} with red flags, {_f(choice.recall_without_floor)} from the local "
            f"label and red flags alone; share {choice.share:.3f} made critical past any "
            "budget")


def _cpt(value: float | None, interval: Interval | None) -> str:
    if interval is None:
        return _f(value)
    return f"{_f(value)} [{interval.low:.3f}, {interval.high:.3f}]"


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _threshold(value: float) -> float:
    # The sweep's top threshold sits just above the largest confidence; a rule caps at 1.
    return min(1.0, value)


def _above(value: float) -> float | None:
    """A learned threshold as written: rounded down (P(wrong) >= it escalates, so a lower one
    only escalates more); None when it escalates nothing (above any P(wrong) there is)."""
    return None if value > 1.0 else math.floor(value * DECIMALS) / DECIMALS


def _above_text(value: float) -> str:
    above = _above(value)
    return "none (score only)" if above is None else f"{above:.4f}"


def _relative(target: Path, start: Path) -> str:
    """``target`` relative to the folder ``start`` (a policy names files relative to itself)."""
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def _existing(path: Path) -> dict[str, Any]:
    """The escalation policy already at ``path``, as plain YAML data; empty when there is none
    (or it is something else, which is overwritten as before)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return doc if isinstance(doc, dict) and doc.get("escalation") == 1 else {}


def _critical_entries(path: Path, raw: Mapping[str, Any], critical: Mapping[str, CriticalRule],
                      floors: Mapping[str, FloorChoice]) -> dict[str, Any]:
    """The node's ``critical:`` block: the file's own labels, then each critical label of the
    graph's resolved rule with its chosen floor (the rest of its keys kept)."""
    out: dict[str, Any] = {k: v for k, v in raw.items()}
    for label, crit in critical.items():
        choice = floors.get(label)
        floor = choice.floor if choice is not None and choice.floor is not None else crit.floor
        entry: dict[str, Any] = {"floor": floor, "min_recall": crit.min_recall,
                                 "action": crit.action, "red_flags": crit.red_flags}
        if crit.red_flags is not None and (crit.red_flags.endswith((".yaml", ".yml"))
                                           or "/" in crit.red_flags):
            # The resolved rule holds the pack's path as the graph found it; the policy file
            # names it relative to itself.
            entry["red_flags"] = _relative(Path(crit.red_flags), path.parent)
        out[label] = {k: v for k, v in entry.items() if v is not None}
    return out


def write_policy(path: Path, *, graph: str, node: str, summary: CalibrationSummary,
                 mode: PlannerMode, data: Path, router_model: Path | None = None,
                 critical: Mapping[str, CriticalRule] | None = None,
                 floors: Mapping[str, FloorChoice] | None = None) -> None:
    """Write the chosen threshold, and each critical label's floor, as an escalation policy
    for ``node``. An escalation policy already at ``path`` keeps its other nodes and keys, and
    the node its other keys (its comments are not kept). ``critical`` is the node's resolved
    rule's (every critical label of the graph's policies is written, so rewriting the file that
    holds them never drops one); ``floors`` replaces their floors."""
    existing = _existing(path)
    nodes = dict(existing.get("nodes") or {})
    entry = dict(nodes.get(node) or {})
    if summary.router == "confidence":
        # Rounded up to 4 decimals: every example below the chosen threshold still escalates.
        entry["below"] = math.ceil(_threshold(summary.chosen_threshold) * DECIMALS) / DECIMALS
        entry.pop("router", None)  # the threshold was chosen for the confidence alone
    else:
        if router_model is None:
            raise ValueError("a learned router's policy needs the router file")
        # below: null overrides a threshold from an earlier policy: the router decides alone.
        entry["below"] = None
        entry["router"] = {"model": _relative(router_model, path.parent),
                           "above": _above(summary.chosen_threshold)}
    if critical:
        entry["critical"] = _critical_entries(path, dict(entry.get("critical") or {}), critical,
                                              floors or {})
    nodes[node] = entry
    router = "" if summary.router == "confidence" else f", {summary.router} router"
    doc: dict[str, Any] = {
        "escalation": 1,
        "name": existing.get("name") or f"{graph}-calibrated",
        "description": (f"shoal calibrate on {data.name} ({summary.n} records, {mode} "
                        f"planner{router}): share {summary.chosen_share:.3f}, accuracy "
                        f"{summary.chosen_quality:.3f}, APGR {_f(summary.apgr)}"),
        "nodes": nodes,
    }
    doc.update({k: v for k, v in existing.items() if k not in doc})
    EscalationPolicy.model_validate(doc)  # never write a policy the graph would refuse
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def summary_json(summary: CalibrationSummary, collected: Collected, *,
                 routers: Mapping[Router, CalibrationSummary] | None = None,
                 critical: Mapping[str, FloorChoice] | None = None) -> str:
    """The summary of the router asked for (curve and metrics) with the skipped and failed
    counts, every router's full summary under ``routers`` and the critical floors, as one JSON
    object."""
    data = summary.model_dump(mode="json")
    data["skipped"] = len(collected.skipped)
    data["planner_failed"] = collected.planner_failed
    data["routers"] = {name: s.model_dump(mode="json")
                       for name, s in (routers or {summary.router: summary}).items()}
    data["critical"] = {label: c.model_dump(mode="json") for label, c in (critical or {}).items()}
    return json.dumps(data)
