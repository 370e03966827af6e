"""The healthcare cascade's triage decision on the test split: five routings side by side, one run.

Graph: examples/healthcare/cascade.yaml cut after ``triage`` (guard -> mask -> triage, the path
without generation). Data: examples/healthcare/data/test.jsonl (635 messages, 7 classes, gold
``label``, ``hard`` flag), family-disjoint from the dev split every threshold was chosen on.

Modes. Every mode but local-only applies the node's critical labels as the real graph does
(``rules.decide``): a record whose P(critical label) reaches the policy's floor, or on whose
masked text a red flag of the label fires, while its local answer is another label, goes to the
planner whatever the router says (``action: route``, or a red flag fired while the rule's
``red_flags_hold``, the default: straight to the label, no planner call).
The modes differ only in what else escalates:
  confidence:  the policy's own rule, what the graph ships: confidence < ``below`` (the triage
               rule the graph resolves from its escalation policies; a router ``above`` in that
               rule counts too), plus the critical escalations;
  learned:     the learned deferral router's P(local answer wrong) >= a threshold chosen on the
               dev split the way ``shoal calibrate --router learned`` chooses it
               (``summarize(dev, target_share, router="learned", forced=<critical ids on dev>)``
               over every dev record, as ``shoal calibrate`` on triage.yaml saw them when it
               wrote the policy; rounded down to 4 decimals as a policy file would hold it),
               plus the critical escalations; never tuned on test. The same choice for the
               confidence router is recorded next to the policy's ``below`` as a check;
  random:      the critical escalations, then as many other records drawn at random (seeded) as
               make confidence's number of planner calls; its accuracy and recalls are the
               expectation over draws, its macro-F1, cost and latency those of one seeded draw;
  all-planner: every message that reaches triage goes to the planner (critical or not);
  local-only:  nothing escalates, not even a critical record: the raw triage model.
A message the guard refuses never reaches triage and never escalates (the guard does not): in
every mode its prediction is the guard's category (``jailbreak`` and ``attack`` count as
``injection``).

Planners, kept apart everywhere:
  live:   a real ``llama_cpp.server`` serving the embedded SmolLM2-135M (started here with
          ``serve_embedded`` unless SHOAL_PLANNER_URL is set), asked on a seeded stratified subset
          (``--live-n``): real answers, latency and tokens. It is a weak model. A critical record
          whose planner call failed, or whose answer is less sure than the rule's
          ``clear_confidence``, keeps the critical label, as the graph does.
  oracle: returns the gold label (the ceiling a strong LLM approaches), over all 635 messages;
          its cost and latency per call are the live planner's means (nothing is sent).

Curves (reporting only, on test, oracle planner): PGR vs planner share of each router's
threshold alone (no critical escalations), RouteLLM's APGR and CPT(50/80/90/95%) with bootstrap
intervals, AUROC and AUPRC of error detection (over the messages that reach triage), and the
floor 0.95 x local error rate no router can beat at CPT(95%).

Passes (the graph runs once per split; every mode is computed from the per-record outcomes, since
each routing is a deterministic function of them):
  1. dev, then test, through ``calibration_graph(cascade.yaml, "triage", "oracle", router=...)``:
     per record the local label, confidence, probabilities and the router's P(wrong); red flags
     are matched on the masked text as ``shoal calibrate`` matches them. Dev runs concurrently
     (it also warms the graph up); test runs one record at a time (per-message local latency,
     p50/p95), then ``--repeats`` timed ``Graph.abatch`` passes at ``--concurrency`` measure
     throughput (the router scores every record there; the shipped graph has no router).
  2. live: the subset through the same cut with triage forced to ask the planner on every record
     (as ``shoal calibrate --planner live`` does), one record at a time so that a call's latency
     is the call's and not a queue's; per record the planner's label (``failed`` when it did not
     answer: counted wrong), planner latency, tokens and USD at the cascade.yaml planner prices.
  3. the records the guard refused (dev and test) through triage.yaml's cut (mask -> triage):
     for the dev choice above and for the cross-check.
  4. cross-check: benchmarks/triage_oracle.py runs the real ``shoal run`` of
     examples/healthcare/triage.yaml (mask -> triage, no guard) against an always-right planner.
     The shipped mode is recomputed with that graph's resolved rule over all 635 messages (the
     guard-refused ones run through that graph's cut, the rest reuse pass 1) and compared with
     its results file, whose file hashes say whether it was made with the current models and
     policies. Neither the budget nor the privacy boundary's egress check is simulated: the
     records the real run wanted to escalate but kept local (its ``kept_local``: a name that
     survived masking blocks the call) are kept local in the recomputation too.

Run: python benchmarks/cascade.py [--router-model examples/healthcare/models/triage-router.onnx]
[--live-n 105] [--seed 42] [--concurrency 8] [--target-share 0.25];
writes benchmarks/results/cascade.json and cascade.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.metrics import f1_score

from shoal.cli.calibrate import forced_ids
from shoal.graphs.calibration import calibration_graph, example_of
from shoal.graphs.loader import load_spec
from shoal.graphs.results import RunResult
from shoal.graphs.runtime import Graph
from shoal.models.local_server import serve_embedded
from shoal.observability import configure_logging
from shoal.policies.escalation import NodeRule, load_policy, policy_path, resolve_rules
from shoal.policies.escalation.calibration import (
    CalibrationSummary,
    Example,
    Router,
    auprc,
    auroc,
    critical_fires,
    curve,
    escalates,
    summarize,
)

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "examples/healthcare/cascade.yaml"
TRIAGE_GRAPH = ROOT / "examples/healthcare/triage.yaml"
DATA = ROOT / "examples/healthcare/data/test.jsonl"
DEV = ROOT / "examples/healthcare/data/dev.jsonl"
ROUTER = ROOT / "examples/healthcare/models/triage-router.onnx"
RESULTS = ROOT / "benchmarks/results"
NODE = "triage"
FIRST_CLASS = "emergency"
GUARD_LABELS = {"jailbreak": "injection", "attack": "injection"}
"""The guard's categories that are a triage label under another name."""
TARGETS = {"emergency_recall_min": 0.99, "accuracy_min": 0.93, "planner_share_max": 0.25,
           "learned_cpt95_max": 0.30, "learned_cpt95_stretch": 0.20,
           "throughput_min_msgs_per_s": 50.0}
SHOWN_SHARES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
MODES = ("confidence", "learned", "random", "all_planner", "local_only")
MODE_NAMES = {"confidence": "confidence (shipped)", "learned": "learned router",
              "random": "random, same calls", "all_planner": "all-planner",
              "local_only": "local only"}
WITH_CRITICAL = ("confidence", "learned", "random")
"""Modes whose escalations include the critical ones (all-planner sends everything anyway)."""
DECIMALS = 10_000
"""A learned threshold is used as a policy file holds it: rounded down to 4 decimals."""


@dataclass(frozen=True)
class Msg:
    id: str
    text: str
    label: str
    hard: bool


@dataclass(frozen=True)
class Local:
    """One message through guard -> mask -> triage, escalation off; ``example`` carries the
    routing inputs (a guard-refused message is pinned at confidence 1.0, P(wrong) 0.0, with the
    planner no better than the guard: no threshold but escalate-everything sends it)."""

    pred: str
    refused: bool
    latency_ms: float
    example: Example


@dataclass(frozen=True)
class Asked:
    """One live planner call (``answered`` false: it failed, ``label`` is ``failed``)."""

    label: str
    answered: bool
    planner_ms: float
    tokens: int
    usd: float
    why: str | None
    local_label: str
    local_confidence: float
    """The triage model's own answer in this pass (checked against the local pass)."""
    confidence: float = 1.0
    """The planner's stated confidence in its answer."""


@dataclass(frozen=True)
class Planner:
    """What the planner says, costs and takes, per message."""

    name: str
    label: dict[str, str]
    ms: dict[str, float]
    usd: dict[str, float]
    confidence: dict[str, float] = field(default_factory=dict)
    """The planner's stated confidence per answer (missing: 1.0, the oracle's)."""


@dataclass(frozen=True)
class Critical:
    """What the node's critical labels do on a set of messages (resolved rule, its floors)."""

    escalate: dict[str, str]
    """id -> critical label, for records sent to the planner past any budget."""
    route: dict[str, str]
    """id -> critical label, for ``action: route`` records (no planner call)."""
    clear: dict[str, float] = field(default_factory=dict)
    """id -> how sure the planner must be to replace the critical label (``clear_confidence``)."""


# --- graphs and passes ---------------------------------------------------------------------------


def node_rule(graph: Path) -> NodeRule | None:
    spec, _ = load_spec(graph)
    return resolve_rules(spec.nodes, spec.escalation, graph.parent).nodes.get(NODE)


def local_of(result: RunResult, msg: Msg, rule: NodeRule | None) -> Local:
    latency = float(result.latency_ms or 0.0)
    if result.status == "refused" and isinstance(result.output, dict):
        category = str(result.output.get("category", "refused"))
        pred = GUARD_LABELS.get(category, category)
        right = pred == msg.label
        return Local(pred, True, latency, Example(
            id=msg.id, confidence=1.0, p_wrong=0.0, local_correct=right, planner_correct=right,
            label=msg.label, local_label=pred))
    example, why, _ = example_of(result, NODE, msg.label, "oracle", msg.text, rule)
    if example is None or example.local_label is None:
        raise SystemExit(f"{msg.id}: no triage result ({why or result.status}); the benchmark "
                         "needs every message to reach triage or be refused by the guard")
    return Local(example.local_label, False, latency, example)


def local_passes(graph: Graph, dev: Sequence[Msg], test: Sequence[Msg], rule: NodeRule | None,
                 *, concurrency: int, repeats: int
                 ) -> tuple[dict[str, Local], dict[str, Local], dict[str, Any]]:
    async def go() -> tuple[list[RunResult], list[RunResult], list[float], list[RunResult]]:
        # Dev first, concurrently: it also loads the models and warms the graph up.
        dev_results = await graph.abatch([(m.id, m.text) for m in dev], concurrency=concurrency)
        sequential = [await graph.arun(m.text, id=m.id) for m in test]
        walls: list[float] = []
        batch: list[RunResult] = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            batch = await graph.abatch([(m.id, m.text) for m in test], concurrency=concurrency)
            walls.append(time.perf_counter() - t0)
        return dev_results, sequential, walls, batch

    t0 = time.perf_counter()
    dev_results, sequential, walls, batch = asyncio.run(go())
    wall = time.perf_counter() - t0
    by_id = {m.id: m for m in (*dev, *test)}
    dev_out = {r.id: local_of(r, by_id[r.id], rule) for r in dev_results}
    out = {r.id: local_of(r, by_id[r.id], rule) for r in sequential}
    concurrent = {r.id: local_of(r, by_id[r.id], rule) for r in batch}
    differ = sum(concurrent[i].pred != out[i].pred
                 or concurrent[i].example.confidence != out[i].example.confidence
                 or concurrent[i].example.p_wrong != out[i].example.p_wrong for i in concurrent)
    rates = [len(test) / w for w in walls]
    latencies = [o.latency_ms for o in out.values()]
    info = {
        "graph": "examples/healthcare/cascade.yaml cut after triage: guard -> mask -> triage, "
                 "escalation off, the learned router scoring every record",
        "messages": len(test),
        "dev_messages": len(dev),
        "concurrency": concurrency,
        "warmup": f"the dev pass ({len(dev)} messages, concurrent)",
        "throughput_runs_msgs_per_s": [round(r, 1) for r in rates],
        "throughput_msgs_per_s": round(statistics.median(rates), 1) if rates else None,
        "sequential_throughput_msgs_per_s": round(len(test) / (sum(latencies) / 1000), 1),
        "latency_ms": {"p50": round(_pct(latencies, 50), 2), "p95": round(_pct(latencies, 95), 2)},
        "refused_by_guard": sum(o.refused for o in out.values()),
        "dev_refused_by_guard": sum(o.refused for o in dev_out.values()),
        "concurrent_vs_sequential_differences": differ if batch else None,
        "wall_s": round(wall, 1),
    }
    return dev_out, out, info


def extra_pass(graph_path: Path, msgs: Sequence[Msg], rule: NodeRule | None,
               router: Path | None, concurrency: int) -> dict[str, Local]:
    """``msgs`` through another graph's cut (oracle mode): the records the guard refused in
    cascade.yaml, as triage.yaml (no guard) sees them."""
    if not msgs:
        return {}
    graph = calibration_graph(graph_path, NODE, "oracle", router=router)
    results = asyncio.run(graph.abatch([(m.id, m.text) for m in msgs], concurrency=concurrency))
    by_id = {m.id: m for m in msgs}
    return {r.id: local_of(r, by_id[r.id], rule) for r in results}


def live_outcome(result: RunResult) -> Asked | None:
    trace = next((t for t in result.nodes if t.node == NODE), None)
    if trace is None:
        return None  # refused by the guard: never asked
    cost = result.cost
    output: Any = result.output
    local = output.get("local") if isinstance(output, dict) else None
    if trace.escalated and trace.label is not None and isinstance(local, dict):
        return Asked(trace.label, True, cost.planner_ms if cost else 0.0,
                     cost.planner_tokens if cost else 0, cost.planner_usd if cost else 0.0, None,
                     str(local["label"]), float(local["confidence"]), trace.confidence)
    # Not answered: "planner failed (CODE: message); local answer kept" -> "planner failed: CODE"
    why = (trace.reason or "not escalated").split(";", 1)[0]
    if " (" in why:
        head, rest = why.split(" (", 1)
        why = f"{head}: {rest.split(':', 1)[0].rstrip(')')}"
    return Asked("failed", False, cost.planner_ms if cost else 0.0, 0, 0.0, why,
                 trace.label or "", trace.confidence)


def live_pass(msgs: Sequence[Msg]) -> tuple[dict[str, Asked | None], dict[str, Any]]:
    env = dict(os.environ)
    server_cm: contextlib.AbstractContextManager[Any]
    if env.get("SHOAL_PLANNER_URL"):
        server_cm = contextlib.nullcontext(None)
    else:
        server_cm = serve_embedded(warmup=True)
    with server_cm as server:
        if server is not None:
            env["SHOAL_PLANNER_URL"] = server.base_url
            env["SHOAL_PLANNER_MODEL"] = server.model_id
        spec = load_spec(GRAPH, env)[0]

        async def go() -> list[RunResult]:
            # One at a time: the server answers one request at a time, and a queued request's
            # wait is not the planner's latency.
            return [await graph.arun(m.text, id=m.id) for m in msgs]

        # calibration_graph reads the planner's address from the environment when it loads the
        # graph file, as `shoal calibrate --planner live` does.
        with _environ(env):
            graph = calibration_graph(GRAPH, NODE, "live")
            t0 = time.perf_counter()
            results = asyncio.run(go())
            wall = time.perf_counter() - t0
        startup = None if server is None else round(server.startup_s or 0.0, 2)
    out = {r.id: live_outcome(r) for r in results}
    asked = [a for a in out.values() if a is not None]
    answered = [a for a in asked if a.answered]
    info = {
        "planner": ("embedded SmolLM2-135M-Instruct (Q4_1) behind a real llama_cpp.server on "
                    "127.0.0.1, started by this benchmark" if server is not None
                    else "the server at SHOAL_PLANNER_URL"),
        "model": spec.models[spec.escalation.planner].model if spec.escalation else None,
        "server_startup_s": startup,
        "messages": len(msgs),
        "asked": len(asked),
        "answered": len(answered),
        "failed": dict(Counter(a.why or "?" for a in asked if not a.answered)),
        "wall_s": round(wall, 1),
        "planner_ms": {"mean": round(statistics.mean([a.planner_ms for a in answered]), 1),
                       "p50": round(_pct([a.planner_ms for a in answered], 50), 1),
                       "p95": round(_pct([a.planner_ms for a in answered], 95), 1)}
        if answered else None,
        "tokens_per_call_mean": round(statistics.mean([a.tokens for a in answered]), 1)
        if answered else None,
        "usd_per_call_mean": statistics.mean([a.usd for a in answered]) if answered else None,
    }
    return out, info


@contextlib.contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --- routing -------------------------------------------------------------------------------------


def critical_of(examples: Sequence[Example], rule: NodeRule | None) -> Critical:
    """The records the rule's critical labels take, as ``rules.decide`` does: the first label
    that fires wins; a record on which a red flag fired is routed with no planner call while
    ``red_flags_hold`` (the default), whatever the rule's ``action``; a record already answered
    with the label escalates only as the router says, unless it would be routed."""
    escalate: dict[str, str] = {}
    route: dict[str, str] = {}
    clear: dict[str, float] = {}
    for label, crit in (rule.critical if rule is not None else {}).items():
        flags = crit.red_flags is not None
        for e in sorted(examples, key=lambda e: e.id):
            if (e.id in escalate or e.id in route
                    or not critical_fires(e, label, crit.floor, red_flags=flags)):
                continue
            routed = crit.action == "route" or (flags and crit.red_flags_hold and e.red_flag)
            if e.local_label != label:
                (route if routed else escalate)[e.id] = label
                clear[e.id] = crit.clear_confidence
            elif routed:
                # Already answered with the label: kept with no planner call even when the
                # router is unsure (``rules.decide`` routes it); otherwise the router decides.
                route[e.id] = label
    return Critical(escalate, route, clear)


def class_order(labels: Collection[str], rule: NodeRule | None) -> list[str]:
    """Emergency first, then the other critical labels, then the rest alphabetically."""
    crit = list(rule.critical) if rule is not None else []
    first = [x for x in (FIRST_CLASS, *crit) if x in labels]
    first = list(dict.fromkeys(first))
    return first + sorted(set(labels) - set(first))


def learned_threshold(dev: Sequence[Example], rule: NodeRule | None, target_share: float
                      ) -> tuple[float | None, dict[str, Any]]:
    """The learned router's threshold chosen on dev as ``shoal calibrate --router learned``
    chooses it (critical escalations counted in the share), rounded down to 4 decimals; None
    when the best choice escalates nothing by the router. Also what the same choice gives for
    the confidence router, next to the policy's ``below``."""
    # As shoal calibrate counts them, routed records too (an upper bound on the planner's calls).
    forced = forced_ids(dev, rule, {})
    first = class_order({e.label for e in dev if e.label}, rule)
    learned = summarize(dev, target_share, router="learned", forced=forced, first=first,
                        resamples=200)
    confidence = summarize(dev, target_share, router="confidence", forced=forced, first=first,
                           resamples=200)
    raw = learned.chosen_threshold
    above = None if raw > 1.0 else math.floor(raw * DECIMALS) / DECIMALS
    info = {
        "data": "examples/healthcare/data/dev.jsonl",
        "examples": len(dev),
        "note": "every dev record through triage (the policy's threshold is `shoal calibrate` "
                "on triage.yaml, where all of them reach it; the guard-refused ones of "
                "cascade.yaml run through triage.yaml's cut); the target share counts the "
                "critical escalations",
        "target_share": target_share,
        "critical_escalations": len(forced),
        "learned": {"above": above, "raw_threshold": raw if raw <= 1.0 else None,
                    "share": round(learned.chosen_share, 4),
                    "accuracy": round(learned.chosen_quality, 4),
                    "apgr": _r(learned.apgr), "cpt95": _r(learned.cpt95),
                    "auroc": _r(learned.auroc)},
        "confidence_same_choice": {"below": math.ceil(min(confidence.chosen_threshold, 1.0)
                                                      * DECIMALS) / DECIMALS,
                                   "share": round(confidence.chosen_share, 4),
                                   "accuracy": round(confidence.chosen_quality, 4),
                                   "apgr": _r(confidence.apgr), "cpt95": _r(confidence.cpt95),
                                   "auroc": _r(confidence.auroc)},
    }
    return above, info


def routed_sets(msgs: Sequence[Msg], local: Mapping[str, Local], rule: NodeRule | None,
                below: float | None, above: float | None, *, seed: int
                ) -> tuple[dict[str, set[str]], Critical, dict[str, set[str]], list[str], int]:
    """Per mode the ids sent to the planner; the critical records; per router the ids its
    threshold alone sends; random's pool and how many it draws from it."""
    eligible = [m.id for m in msgs if not local[m.id].refused]
    crit = critical_of([local[i].example for i in eligible], rule)
    forced, routed = set(crit.escalate), set(crit.route)
    policy_above = rule.router.above if rule is not None and rule.router is not None else None
    alone = {
        "confidence": {i for i in eligible
                       if (below is not None and escalates(local[i].example, "confidence", below))
                       or (policy_above is not None
                           and escalates(local[i].example, "learned", policy_above))},
        "learned": ({i for i in eligible if escalates(local[i].example, "learned", above)}
                    if above is not None else set()),
    }
    sets = {name: (forced | ids) - routed for name, ids in alone.items()}
    pool = sorted(set(eligible) - forced - routed)
    k = min(len(pool), max(0, len(sets["confidence"]) - len(forced)))
    sets["random"] = forced | set(random.Random(seed).sample(pool, k))
    sets["all_planner"] = set(eligible)
    sets["local_only"] = set()
    return sets, crit, alone, pool, k


def predictions(msgs: Sequence[Msg], local: Mapping[str, Local], planner: Planner,
                escalated: Collection[str], crit: Critical | None) -> list[str]:
    """Per message the routed answer: the planner's where escalated (a failed call on a critical
    record keeps the critical label, as the graph does), the critical label where routed, else
    the local one."""
    out = []
    for m in msgs:
        if m.id in escalated:
            answer = planner.label[m.id]
            if crit is not None and m.id in crit.escalate and answer != crit.escalate[m.id] and (
                    answer == "failed"
                    or planner.confidence.get(m.id, 1.0) < crit.clear.get(m.id, 0.0)):
                # As the graph does: a failed call, or an answer less sure than the rule's
                # clear_confidence, leaves the critical label standing.
                answer = crit.escalate[m.id]
            out.append(answer)
        elif crit is not None and m.id in crit.route:
            out.append(crit.route[m.id])
        else:
            out.append(local[m.id].pred)
    return out


def recall_block(msgs: Sequence[Msg], right: Sequence[float], order: Sequence[str]
                 ) -> dict[str, float]:
    """Per gold label the (expected) share answered right, in ``order``."""
    out: dict[str, float] = {}
    for label in order:
        of = [r for m, r in zip(msgs, right, strict=True) if m.label == label]
        out[label] = round(sum(of) / len(of), 4)
    return out


def mode_metrics(msgs: Sequence[Msg], local: Mapping[str, Local], planner: Planner,
                 escalated: set[str], crit: Critical | None, order: Sequence[str]
                 ) -> dict[str, Any]:
    gold = [m.label for m in msgs]
    pred = predictions(msgs, local, planner, escalated, crit)
    right = [float(g == p) for g, p in zip(gold, pred, strict=True)]
    latency = [local[m.id].latency_ms + (planner.ms[m.id] if m.id in escalated else 0.0)
               for m in msgs]
    usd = sum(planner.usd[m.id] for m in msgs if m.id in escalated)
    hard = [i for i, m in enumerate(msgs) if m.hard]
    emergencies = [m for m, p in zip(msgs, pred, strict=True) if m.label == FIRST_CLASS]
    missed = sorted(m.id for m, p in zip(msgs, pred, strict=True)
                    if m.label == FIRST_CLASS and p != FIRST_CLASS)
    critical_calls = len(escalated & set(crit.escalate)) if crit is not None else 0
    return {
        "n": len(msgs),
        "accuracy": _acc(gold, pred),
        "macro_f1": round(float(f1_score(gold, pred, labels=sorted(set(gold)), average="macro",
                                         zero_division=0)), 4),
        "hard_accuracy": _acc([gold[i] for i in hard], [pred[i] for i in hard]),
        "planner_calls": len(escalated),
        "critical_calls": critical_calls,
        "critical_routed": len(crit.route) if crit is not None else 0,
        "planner_share": round(len(escalated) / len(msgs), 4),
        "planner_usd": usd,
        "usd_per_1000_messages": round(usd / len(msgs) * 1000, 4),
        "latency_ms_p50": round(_pct(latency, 50), 2),
        "latency_ms_p95": round(_pct(latency, 95), 2),
        "emergency_recall": round((len(emergencies) - len(missed)) / len(emergencies), 4)
        if emergencies else None,
        "missed_emergencies": len(missed),
        "missed_emergency_ids": missed,
        "missed_emergencies_escalated": sum(i in escalated for i in missed),
        "per_class_recall": recall_block(msgs, right, order),
    }


def evaluate(msgs: Sequence[Msg], local: Mapping[str, Local], planner: Planner,
             rule: NodeRule | None, below: float | None, above: float | None, *, seed: int,
             order: Sequence[str]) -> dict[str, Any]:
    sets, crit, alone, pool, k = routed_sets(msgs, local, rule, below, above, seed=seed)
    ex = examples(msgs, local, planner)
    modes = {name: mode_metrics(msgs, local, planner, sets[name],
                                crit if name in WITH_CRITICAL else None, order)
             for name in MODES}
    for name in ("confidence", "learned"):  # what the critical rule adds to each router
        without = mode_metrics(msgs, local, planner, alone[name], None, order)
        modes[name]["without_critical"] = {key: without[key] for key in (
            "accuracy", "planner_share", "emergency_recall", "missed_emergencies")}
    # Random: the expectation over draws of k records from the pool (critical ones always go).
    by_id = {e.id: e for e in ex}
    p = k / len(pool) if pool else 0.0
    pooled = set(pool)
    forced_pred = predictions(msgs, local, planner, set(crit.escalate), crit)
    expected = [(p * by_id[m.id].planner_correct + (1 - p) * by_id[m.id].local_correct)
                if m.id in pooled else float(m.label == fp)
                for m, fp in zip(msgs, forced_pred, strict=True)]
    rnd = modes["random"]
    rnd["sampled"] = {key: rnd[key] for key in (
        "accuracy", "emergency_recall", "missed_emergencies", "missed_emergency_ids",
        "per_class_recall")}
    rnd["accuracy"] = round(sum(expected) / len(msgs), 4)
    rnd["per_class_recall"] = recall_block(msgs, expected, order)
    emerg = [x for m, x in zip(msgs, expected, strict=True) if m.label == FIRST_CLASS]
    rnd["emergency_recall"] = round(sum(emerg) / len(emerg), 4) if emerg else None
    rnd["missed_emergencies"] = round(len(emerg) - sum(emerg), 2)
    del rnd["missed_emergency_ids"], rnd["missed_emergencies_escalated"]
    rnd["note"] = (f"the {len(crit.escalate)} critical escalations plus {k} of the {len(pool)} "
                   "other messages reaching triage drawn at random: accuracy, recalls and "
                   "missed emergencies are the expectation over draws; macro-F1, cost, latency "
                   f"and 'sampled' are one draw (seed {seed})")
    q_local = modes["local_only"]["accuracy"]
    q_planner = modes["all_planner"]["accuracy"]
    gap = q_planner - q_local
    for name in ("confidence", "learned", "random"):
        modes[name]["pgr"] = None if gap <= 0 else round(
            (modes[name]["accuracy"] - q_local) / gap, 4)

    reach = [e for e in ex if not local[e.id].refused]
    routers: tuple[Router, ...] = ("confidence", "learned")
    summaries = {router: _summary(ex, reach, router, order) for router in routers}
    return {
        "planner": planner.name,
        "n": len(msgs),
        "reach_triage": len(reach),
        "refused_by_guard": len(msgs) - len(reach),
        "guard_refusals_gold_to_category": dict(sorted(Counter(
            f"{m.label} -> {local[m.id].pred}" for m in msgs if local[m.id].refused).items())),
        "threshold": below,
        "learned_threshold": above,
        "critical": {"escalated": len(crit.escalate), "routed": len(crit.route),
                     "by_label": dict(Counter(crit.escalate.values())
                                      + Counter(crit.route.values())),
                     "gold_of_escalated": dict(sorted(Counter(
                         by_id[i].label for i in crit.escalate).items()))},
        "modes": modes,
        "routers": {router: _summary_dict(s) for router, s in summaries.items()},
        "shown": {router: [p.model_dump() for p in curve(ex, SHOWN_SHARES, router=router)]
                  for router in routers},
        "above_random": {router: _above_random(s) for router, s in summaries.items()},
        # Pre-issue-13 key: the confidence router's summary under its old name.
        "summary": _summary_dict(summaries["confidence"]),
    }


def examples(msgs: Sequence[Msg], local: Mapping[str, Local], planner: Planner
             ) -> list[Example]:
    """One Example per message with this planner's correctness (a refused message keeps the
    planner no better than the guard)."""
    out = []
    for m in msgs:
        base = local[m.id].example
        if local[m.id].refused:
            out.append(base)
        else:
            out.append(base.model_copy(update={"planner_correct": planner.label[m.id]
                                               == m.label}))
    return out


def _summary(ex: Sequence[Example], reach: Sequence[Example], router: Router,
             order: Sequence[str]) -> CalibrationSummary:
    """The router's curve and metrics on test, for reporting (no threshold is chosen here);
    AUROC and AUPRC over the records that reach triage (the ones the router scores)."""
    s = summarize(ex, 0.25, router=router, first=order)
    return s.model_copy(update={"auroc": auroc(reach, router), "auprc": auprc(reach, router)})


def _above_random(summary: CalibrationSummary) -> dict[str, Any]:
    margins = [p.quality - ((1 - p.share) * summary.local_quality
                            + p.share * summary.planner_quality)
               for p in summary.points if 0 < p.share < 1]
    return {"points_checked": len(margins), "points_not_above": sum(m <= 0 for m in margins),
            "min_margin": round(min(margins), 4) if margins else None}


def _summary_dict(summary: CalibrationSummary) -> dict[str, Any]:
    data = summary.model_dump(mode="json", exclude={
        # Chosen on test: never used; the thresholds come from the policy and from dev.
        "target_share", "chosen_threshold", "chosen_share", "chosen_quality",
        "per_class_recall"})
    data["points"] = [{"share": round(p.share, 5), "quality": round(p.quality, 5),
                       "pgr": None if p.pgr is None else round(p.pgr, 5),
                       "threshold": round(min(p.threshold, 1.0), 6)} for p in summary.points]
    return data


# --- cross-check ---------------------------------------------------------------------------------


def triage_oracle_results(path: Path, rerun: str, console: Console
                          ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """benchmarks/triage_oracle.py's results and where they come from: the file at ``path``,
    or (``rerun`` ``always``, or ``auto`` when the file is missing or was made with other
    versions of the files it names) a fresh run into a temporary file, so the comparison is
    with the models and policies of this run. The file at ``path`` is never written."""
    source: dict[str, Any] = {"file": _shown(path)}
    theirs = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if theirs is not None:
        stale = sorted(name for name, digest in theirs.get("files_sha256_16", {}).items()
                       if _sha16(ROOT / name) != digest)
        source["file_made_with_other_versions_of"] = stale
    if rerun == "never" or (rerun == "auto" and theirs is not None
                            and not source["file_made_with_other_versions_of"]):
        source["ran"] = False
        return theirs, source
    with tempfile.TemporaryDirectory(prefix="shoal-cascade-") as tmp, \
            timed(console, "benchmarks/triage_oracle.py (the real shoal run, oracle planner)"):
        out = Path(tmp) / "triage_oracle.json"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/triage_oracle.py"),
                               "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                              check=False)
        source.update(ran=True, run_s=round(time.perf_counter() - t0, 1),
                      command="python benchmarks/triage_oracle.py --out <tmp>/triage_oracle.json",
                      exit_code=proc.returncode)
        fresh = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else None
    if fresh is None:
        console.print(f"[red]triage_oracle.py exited {proc.returncode}[/]\n"
                      + "\n".join(proc.stderr.splitlines()[-10:]))
    return fresh, source


def cross_check(test: Sequence[Msg], local: Mapping[str, Local], extra: Mapping[str, Local],
                rule: NodeRule | None, theirs: Mapping[str, Any] | None,
                source: Mapping[str, Any]) -> dict[str, Any]:
    """The shipped mode with triage.yaml's rule over all messages (no guard; ``extra`` holds
    the guard-refused ones through triage.yaml's cut), next to the real ``shoal run`` of
    benchmarks/triage_oracle.py."""
    refused = [m for m in test if local[m.id].refused]
    merged = {**local, **{m.id: extra[m.id] for m in refused}}
    planner = Planner("oracle", {m.id: m.label for m in test}, dict.fromkeys(local, 0.0),
                      dict.fromkeys(local, 0.0))
    order = class_order({m.label for m in test}, rule)
    sets, crit, _, _, _ = routed_sets(test, merged, rule, rule.below if rule else None, None,
                                      seed=0)
    # The simulation runs neither the budget nor the privacy boundary's egress check: a record
    # the real run wanted to escalate but kept (a name survived masking, say) stays local here
    # too, with its critical label standing as the graph leaves it (escalator._kept).
    kept = {k["id"]: k["why"] for k in (theirs or {}).get("kept_local", [])}
    held = set(kept) & sets["confidence"]
    crit = Critical(crit.escalate, {**crit.route, **{i: crit.escalate[i] for i in held
                                                     if i in crit.escalate}}, crit.clear)
    mine = mode_metrics(test, merged, planner, sets["confidence"] - held, crit, order)
    local_only = _acc([m.label for m in test], [merged[m.id].pred for m in test])
    ours = {"graph": "examples/healthcare/triage.yaml", "rule": _rule_dict(rule),
            "accuracy": mine["accuracy"], "planner_share": mine["planner_share"],
            "emergency_recall": mine["emergency_recall"],
            "missed_emergencies": mine["missed_emergencies"],
            "missed_emergency_ids": mine["missed_emergency_ids"],
            "per_class_recall": mine["per_class_recall"], "local_only_accuracy": local_only,
            "critical_escalations": len(crit.escalate),
            "records_run_through_triage_yaml_cut": len(refused),
            "kept_local_as_in_the_real_run": dict(sorted(kept.items()))}
    out: dict[str, Any] = {"this_benchmark": ours, "triage_oracle_source": dict(source)}
    if theirs is None:
        out.update(agree=None, note="no triage_oracle results: benchmarks/triage_oracle.py "
                                    "failed or was not run")
        return out
    hashes = theirs.get("files_sha256_16", {})
    stale = sorted(name for name, digest in hashes.items()
                   if _sha16(ROOT / name) != digest)
    their_missed = sorted(m["id"] for m in theirs.get("missed_emergency_list", []))
    compared = {
        "accuracy": (ours["accuracy"], theirs.get("accuracy")),
        "planner_share": (ours["planner_share"], theirs.get("planner_share")),
        "emergency_recall": (ours["emergency_recall"], theirs.get("emergency_recall")),
        "missed_emergency_ids": (ours["missed_emergency_ids"], their_missed),
        "per_class_recall": (ours["per_class_recall"], theirs.get("per_class_recall")),
        "local_only_accuracy": (local_only, theirs.get("local_only_accuracy")),
    }
    differences = {k: {"this_benchmark": a, "triage_oracle": b}
                   for k, (a, b) in compared.items() if a != b}
    esc = theirs.get("escalations", {})
    out["triage_oracle"] = {
        "date": theirs.get("machine", {}).get("date"), "git": theirs.get("git"),
        "accuracy": theirs.get("accuracy"), "planner_share": theirs.get("planner_share"),
        "emergency_recall": theirs.get("emergency_recall"),
        "missed_emergencies": theirs.get("missed_emergencies"),
        "budget_blocked": esc.get("budget_blocked"),
        "node_rule": theirs.get("node_rule"),
        "files_sha256_16": hashes,
        "files_changed_since": stale,
    }
    out["agree"] = not differences
    out["differences"] = differences
    out["note"] = ("agree: the same numbers and the same missed emergencies from the real "
                   "`shoal run` and from this benchmark's per-record simulation, once the "
                   "records the real run kept local (egress blocked, budget) are kept local in "
                   "the simulation too"
                   + ("" if not stale else "; the triage_oracle file was made with other "
                      f"versions of {', '.join(stale)}: rerun with --triage-oracle-rerun "
                      "always before reading the comparison"))
    return out


def _rule_dict(rule: NodeRule | None) -> dict[str, Any] | None:
    if rule is None:
        return None
    data = rule.model_dump(mode="json", exclude_defaults=True)
    if isinstance(data.get("router"), dict):
        data["router"]["model"] = _shown(Path(data["router"]["model"]))
    for crit in data.get("critical", {}).values():
        flags = crit.get("red_flags")
        if isinstance(flags, str) and Path(flags).is_absolute():
            crit["red_flags"] = _shown(Path(flags))
    return data


def _sha16(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def _shown(path: Path) -> str:
    """A path as the results may show it: relative to the checkout, else its name only."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return f"<elsewhere>/{path.name}"


# --- output --------------------------------------------------------------------------------------


def plot(path: Path, oracle: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.6), dpi=100)
    styles = {"confidence": ("tab:blue", "confidence router"),
              "learned": ("tab:green", "learned router")}
    for router, (color, name) in styles.items():
        s = oracle["routers"][router]
        pts = s["points"]
        ax.step([p["share"] for p in pts], [p["pgr"] for p in pts], where="post", color=color,
                lw=1.6, label=f"{name}: APGR {_f(s['apgr'])}, CPT(95%) {_f(s['cpt95'])}, "
                              f"AUROC {_f(s['auroc'])}")
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1, label="random routing (APGR 0.500)")
    floor = oracle["routers"]["confidence"]["cpt_floor"]
    if floor is not None:
        ax.axvline(floor, color="black", ls=":", lw=1,
                   label=f"CPT(95%) floor 0.95 x local error rate = {floor:.3f}")
    ax.axhline(0.95, color="gray", ls=":", lw=0.8)
    ops = (("confidence", "tab:blue", "o",
            f"shipped: confidence < {oracle['threshold']}"),
           ("learned", "tab:green", "D",
            f"learned: P(wrong) >= {oracle['learned_threshold']} (chosen on dev)"),
           ("random", "gray", "s", "random, same calls"))
    for mode, color, marker, name in ops:
        m = oracle["modes"][mode]
        if m.get("pgr") is None:
            continue
        ax.plot(m["planner_share"], m["pgr"], marker=marker, color=color, ms=9, ls="none",
                mec="black", label=f"{name} + critical: share {m['planner_share']:.3f}, "
                                   f"accuracy {m['accuracy']:.3f}")
    crit = oracle["critical"]
    emergencies = crit["gold_of_escalated"].get(FIRST_CLASS, 0)
    ax.text(0.38, 0.80, "curves: each router's threshold alone\nmarkers: each mode as run, "
            f"with {crit['escalated']} critical\nescalations ({emergencies} of them "
            "emergencies): they cost\nshare and recover little of the gap", fontsize=7.5,
            va="top", color="dimgray")
    ax.set_xlabel("planner share (messages sent to the planner)")
    ax.set_ylabel("PGR (share of the local-to-planner accuracy gap recovered)")
    ax.set_title(f"Healthcare triage, test split ({oracle['n']} messages), always-right planner")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower right", frameon=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def tables(console: Console, oracle: dict[str, Any], live: dict[str, Any] | None) -> None:
    t = Table(title=f"triage decision: confidence below {oracle['threshold']} "
                    f"({oracle['threshold_source']}), learned above "
                    f"{oracle['learned_threshold']} (dev); critical labels in every mode but "
                    "local only", title_justify="left")
    for col in ("planner", "mode", "n", "accuracy", "macro-F1", "share", "calls (critical)",
                "emerg. recall", "missed", "USD / 1000", "p50 ms", "p95 ms", "PGR"):
        t.add_column(col, justify="left" if col in ("planner", "mode") else "right")
    for mode in MODES:
        for res in (oracle, live):
            if res is None:
                continue
            m = res["modes"][mode]
            t.add_row(res["planner"], MODE_NAMES[mode], str(m["n"]), f"{m['accuracy']:.3f}",
                      f"{m['macro_f1']:.3f}", f"{m['planner_share']:.3f}",
                      f"{m['planner_calls']} ({m['critical_calls']})",
                      _f(m["emergency_recall"]), str(m["missed_emergencies"]),
                      f"{m['usd_per_1000_messages']:.3f}", f"{m['latency_ms_p50']:.1f}",
                      f"{m['latency_ms_p95']:.1f}", _f(m.get("pgr")))
    console.print(t)
    pc = Table(title="per-class recall, oracle planner", title_justify="left")
    pc.add_column("class")
    pc.add_column("n", justify="right")
    for mode in MODES:
        pc.add_column(MODE_NAMES[mode], justify="right")
    counts = oracle["class_counts"]
    for label in oracle["modes"]["confidence"]["per_class_recall"]:
        pc.add_row(label, str(counts[label]),
                   *(f"{oracle['modes'][m]['per_class_recall'][label]:.3f}" for m in MODES))
    console.print(pc)
    rt = Table(title="routers on test, oracle planner (threshold alone; CPT: bootstrap 95% "
                     "interval)", title_justify="left")
    rt.add_column("metric")
    for router in ("confidence", "learned"):
        rt.add_column(router, justify="right")
    rt.add_column("random", justify="right")
    rs = oracle["routers"]
    rt.add_row("APGR", _f(rs["confidence"]["apgr"]), _f(rs["learned"]["apgr"]),
               _f(rs["confidence"]["random_apgr"]))
    for key, target in (("cpt50", 0.5), ("cpt80", 0.8), ("cpt90", 0.9), ("cpt95", 0.95)):
        rt.add_row(f"CPT({target:.0%})", *(_ci(rs[r][key], rs[r]["cpt_ci"].get(key))
                                           for r in ("confidence", "learned")), _f(target))
    rt.add_row("AUROC", _f(rs["confidence"]["auroc"]), _f(rs["learned"]["auroc"]), "0.500")
    rt.add_row("AUPRC", _f(rs["confidence"]["auprc"]), _f(rs["learned"]["auprc"]), "")
    rt.add_row("CPT(95%) floor", _f(rs["confidence"]["cpt_floor"]), "", "")
    console.print(rt)


def _ci(value: float | None, interval: Mapping[str, float] | None) -> str:
    if interval is None:
        return _f(value)
    return f"{_f(value)} [{interval['low']:.3f}, {interval['high']:.3f}]"


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _acc(gold: Sequence[str], pred: Sequence[str]) -> float:
    return round(sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold), 4) \
        if gold else float("nan")


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def stratified(msgs: Sequence[Msg], n: int, seed: int) -> list[Msg]:
    by_label: dict[str, list[Msg]] = {}
    for m in msgs:
        by_label.setdefault(m.label, []).append(m)
    labels = sorted(by_label)
    rng = random.Random(seed)
    picked: list[Msg] = []
    for k, label in enumerate(labels):
        want = n // len(labels) + (k < n % len(labels))
        picked += rng.sample(by_label[label], min(want, len(by_label[label])))
    return sorted(picked, key=lambda m: m.id)


def read_msgs(path: Path) -> list[Msg]:
    return [Msg(d["id"], d["text"], d["label"], bool(d.get("hard")))
            for d in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if d]


@contextlib.contextmanager
def timed(console: Console, what: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    console.print(f"{what}: {time.perf_counter() - t0:.1f} s")


def threshold_source(rule: NodeRule | None) -> tuple[float, str]:
    if rule is None or rule.below is None:
        raise SystemExit(f"{GRAPH.name}: node {NODE!r} has no escalation threshold")
    spec, _ = load_spec(GRAPH)
    source = f"{GRAPH.name} (escalate_below)"
    for entry in spec.escalation.policies if spec.escalation else []:  # later files win
        rule_in = load_policy(policy_path(entry, GRAPH.parent), entry).nodes.get(NODE)
        if rule_in is not None and "below" in rule_in.model_fields_set:
            source = entry
    return rule.below, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--router-model", type=Path, default=ROUTER,
                        help="the triage's learned deferral router (shoal train-router)")
    parser.add_argument("--live-n", type=int, default=105,
                        help="messages in the live planner's stratified subset (>= 7; 0 skips "
                             "the live planner, for development only)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1, help="timed throughput passes")
    parser.add_argument("--target-share", type=float, default=0.25,
                        help="share cap for the learned threshold chosen on dev")
    parser.add_argument("--triage-oracle", type=Path, default=RESULTS / "triage_oracle.json",
                        help="benchmarks/triage_oracle.py's results, for the cross-check "
                             "(read, never written)")
    parser.add_argument("--triage-oracle-rerun", choices=("auto", "always", "never"),
                        default="auto",
                        help="run benchmarks/triage_oracle.py afresh (into a temporary file): "
                             "auto when the results file is missing or was made with other "
                             "versions of its models and policies")
    parser.add_argument("--output", type=Path, default=RESULTS / "cascade.json")
    args = parser.parse_args()
    if 0 < args.live_n < 7:
        parser.error("--live-n must be 0 or at least 7 (one per class)")
    if args.live_n == 0 and args.output.resolve() == (RESULTS / "cascade.json").resolve():
        parser.error("--live-n 0 is for development: give another --output")
    router_path: Path = args.router_model.resolve()
    if not router_path.is_file():
        parser.error(f"no router file {_shown(router_path)}: run `make healthcare-data` or "
                     "`shoal train-router` and pass --router-model")
    configure_logging("warning")
    console = Console(width=None if sys.stdout.isatty() else 160)
    started = time.perf_counter()

    msgs, dev_msgs = read_msgs(DATA), read_msgs(DEV)
    rule = node_rule(GRAPH)
    below, source = threshold_source(rule)
    if rule is not None and rule.router is not None \
            and Path(rule.router.model).resolve() != router_path:
        parser.error(f"the triage policy names the router {_shown(Path(rule.router.model))}; "
                     "pass it as --router-model")
    spec, _ = load_spec(GRAPH)
    price = spec.models[spec.escalation.planner].price if spec.escalation else None  # type: ignore[union-attr]
    files = [GRAPH, TRIAGE_GRAPH,
             *(policy_path(p, GRAPH.parent) for p in (spec.escalation.policies
                                                      if spec.escalation else [])),
             ROOT / "examples/healthcare/models/guard.onnx",
             ROOT / "examples/healthcare/models/triage.onnx",
             ROOT / "examples/healthcare/models/triage.onnx.json", router_path,
             router_path.with_name(f"{router_path.name}.json")]
    hashes_at_start = {_shown(f): _sha16(f) for f in files}
    graph = calibration_graph(GRAPH, NODE, "oracle", router=router_path)

    with timed(console, "local passes (dev, test sequential, test concurrent)"):
        dev_local, local, local_info = local_passes(graph, dev_msgs, msgs, rule,
                                                    concurrency=args.concurrency,
                                                    repeats=args.repeats)
    triage_rule = node_rule(TRIAGE_GRAPH)
    # The guard-refused records through triage.yaml's cut (mask -> triage): dev ones so the
    # learned threshold is chosen on the same dev records as the policy's (`shoal calibrate`
    # on triage.yaml sees all of them), test ones for the cross-check.
    refused = [m for m in (*dev_msgs, *msgs) if (dev_local.get(m.id) or local[m.id]).refused]
    with timed(console, f"guard-refused records through triage.yaml ({len(refused)})"):
        extra = extra_pass(TRIAGE_GRAPH, refused, triage_rule, router_path, args.concurrency)
    dev_examples = sorted(((extra[m.id] if dev_local[m.id].refused else dev_local[m.id]).example
                           for m in dev_msgs), key=lambda e: e.id)
    above, dev_info = learned_threshold(dev_examples, rule, args.target_share)
    theirs, oracle_source = triage_oracle_results(args.triage_oracle, args.triage_oracle_rerun,
                                                  console)
    check = cross_check(msgs, local, extra, triage_rule, theirs, oracle_source)

    subset = stratified(msgs, args.live_n, args.seed) if args.live_n else []
    asked: dict[str, Asked | None] = {}
    live_info: dict[str, Any] | None = None
    if subset:
        with timed(console, f"live planner pass ({len(subset)} messages)"):
            asked, live_info = live_pass(subset)
        live_info["local_differences_vs_local_pass"] = sum(
            a.local_label != local[i].pred or a.local_confidence != local[i].example.confidence
            for i, a in asked.items() if a is not None)

    answered = [a for a in asked.values() if a is not None and a.answered]
    mean_ms = statistics.mean([a.planner_ms for a in answered]) if answered else 0.0
    mean_usd = statistics.mean([a.usd for a in answered]) if answered else 0.0
    oracle_planner = Planner("oracle", {m.id: m.label for m in msgs},
                             dict.fromkeys((m.id for m in msgs), mean_ms),
                             dict.fromkeys((m.id for m in msgs), mean_usd))
    order = class_order({m.label for m in msgs}, rule)
    oracle = evaluate(msgs, local, oracle_planner, rule, below, above, seed=args.seed,
                      order=order)
    oracle["class_counts"] = {label: sum(m.label == label for m in msgs) for label in order}
    live: dict[str, Any] | None = None
    if subset:
        live_planner = Planner(
            "live", {i: (a.label if a else "refused") for i, a in asked.items()},
            {i: (a.planner_ms if a else 0.0) for i, a in asked.items()},
            {i: (a.usd if a else 0.0) for i, a in asked.items()},
            {i: (a.confidence if a else 1.0) for i, a in asked.items()})
        live = evaluate(subset, local, live_planner, rule, below, above, seed=args.seed,
                        order=order)
    machine = {"cpu_count": os.cpu_count(), "python": platform.python_version(),
               "platform": platform.platform(),
               "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "loadavg_1min_end": round(os.getloadavg()[0], 2)
               if hasattr(os, "getloadavg") else None}
    measured = {
        "local": "triage label, confidence, probabilities, the router's P(wrong), red flags on "
                 "the masked text, and per-message latency (RunResult.latency_ms) from one "
                 "sequential pass over the test split after the dev pass; throughput: the median "
                 "of the timed concurrent passes (Graph.abatch)",
        "routing": "computed from the per-record outcomes, not re-run: each mode's escalations "
                   "as rules.decide makes them (critical labels via calibration.critical_fires "
                   "with the policy's floors and red flags)",
        "thresholds": f"confidence: below {below} from {source}; learned: above {above}, chosen "
                      "on dev (see dev_choice); nothing is chosen on test",
        "latency": "per message: local latency, plus the planner latency if escalated (live: "
                   "measured per call; oracle: the live mean per answered call)",
        "cost": "planner USD at the cascade.yaml planner prices (live: the call's measured "
                "tokens; oracle: the live mean per answered call)",
        "macro_f1": "sklearn f1_score, average='macro', over the 7 gold classes; 'failed' and "
                    "guard categories outside them count as wrong",
        "curves": "calibration.summarize per router over all messages (threshold alone, no "
                  "critical escalations); a guard-refused message is pinned at confidence 1.0, "
                  "P(wrong) 0.0 with planner_correct = local_correct; AUROC and AUPRC over the "
                  "messages reaching triage",
    }
    hashes = {_shown(f): _sha16(f) for f in files}
    changed = sorted(k for k, v in hashes.items() if hashes_at_start[k] != v)
    common = {"threshold_source": source, "router_model": _shown(router_path),
              "machine": machine, "local_pass": local_info, "measured": measured,
              "planner_price_usd_per_mtok": price.model_dump() if price else None}
    oracle.update(common | {"node_rule": _rule_dict(rule), "dev_choice": dev_info,
                            "files_sha256_16": hashes_at_start,
                            "files_changed_during_run": changed,
                            "note": "the oracle returns the gold label: the ceiling a strong "
                                    "LLM approaches; nothing is sent"})
    if live is not None and live_info is not None:
        live.update(common | {"planner_pass": live_info, "seed": args.seed,
                              "note": "a real llama_cpp.server with the embedded 135M model: "
                                      "real latency and answers; a weak planner"})
    o_modes, o_routers = oracle["modes"], oracle["routers"]
    shipped = o_modes["confidence"]
    runtime = time.perf_counter() - started
    wanted = TARGETS
    met = {
        "emergency_recall": (shipped["emergency_recall"] is not None
                             and shipped["emergency_recall"] >= wanted["emergency_recall_min"]),
        "accuracy_at_share": (shipped["accuracy"] >= wanted["accuracy_min"]
                              and shipped["planner_share"] <= wanted["planner_share_max"]),
        "learned_cpt95": (o_routers["learned"]["cpt95"] is not None
                          and o_routers["learned"]["cpt95"] <= wanted["learned_cpt95_max"]),
        "learned_cpt95_stretch": (o_routers["learned"]["cpt95"] is not None
                                  and o_routers["learned"]["cpt95"]
                                  <= wanted["learned_cpt95_stretch"]),
        "throughput": (local_info["throughput_msgs_per_s"] is not None
                       and local_info["throughput_msgs_per_s"]
                       >= wanted["throughput_min_msgs_per_s"]),
    }
    learned_mode = o_modes["learned"]
    targets = {
        "wanted": wanted,
        "met": met,
        "measured_on": "the confidence mode (the shipped policy, critical labels included) "
                       "with the oracle planner, except learned_cpt95 (the learned router's "
                       "curve) and throughput",
        "learned_mode_would_meet": {
            "emergency_recall": (learned_mode["emergency_recall"] is not None
                                 and learned_mode["emergency_recall"]
                                 >= wanted["emergency_recall_min"]),
            "accuracy_at_share": (learned_mode["accuracy"] >= wanted["accuracy_min"]
                                  and learned_mode["planner_share"]
                                  <= wanted["planner_share_max"])},
    }
    oracle["targets"] = targets
    oracle["runtime_s"] = round(runtime, 1)
    results: dict[str, Any] = {
        # Pre-issue-13 keys: the confidence router (oracle_*) and the shipped mode (cascade_*).
        "oracle_cpt95": o_routers["confidence"]["cpt95"],
        "oracle_apgr": o_routers["confidence"]["apgr"],
        "random_apgr": o_routers["confidence"]["random_apgr"],
        "local_only_accuracy": o_modes["local_only"]["accuracy"],
        "all_planner_accuracy": o_modes["all_planner"]["accuracy"],
        "cascade_accuracy": shipped["accuracy"],
        "cascade_planner_share": shipped["planner_share"],
        "throughput_msgs_per_s": local_info["throughput_msgs_per_s"],
        # Issue 13.
        "learned_cpt95": o_routers["learned"]["cpt95"],
        "learned_apgr": o_routers["learned"]["apgr"],
        "confidence_cpt90": o_routers["confidence"]["cpt90"],
        "learned_cpt90": o_routers["learned"]["cpt90"],
        "confidence_auroc": o_routers["confidence"]["auroc"],
        "learned_auroc": o_routers["learned"]["auroc"],
        "cpt95_floor": o_routers["confidence"]["cpt_floor"],
        "confidence_threshold": below,
        "learned_threshold": above,
        "learned_accuracy": learned_mode["accuracy"],
        "learned_planner_share": learned_mode["planner_share"],
        "emergency_recall": shipped["emergency_recall"],
        "missed_emergencies": shipped["missed_emergencies"],
        "missed_emergency_ids": shipped["missed_emergency_ids"],
        "per_class_recall": {mode: o_modes[mode]["per_class_recall"] for mode in MODES},
        "targets": targets,
        "cross_check_triage_oracle": check,
        "runtime_s": round(runtime, 1),
        "oracle": oracle,
        "live": live,
    }

    tables(console, oracle, live)
    for name, res in (("oracle", oracle), ("live", live)):
        if res is None:
            continue
        c, lr = res["routers"]["confidence"], res["routers"]["learned"]
        console.print(
            f"{name} ({res['n']}; {res['refused_by_guard']} refused by the guard): local "
            f"{c['local_quality']:.3f}, all-planner {c['planner_quality']:.3f}; APGR confidence "
            f"{_f(c['apgr'])} learned {_f(lr['apgr'])} (random {_f(c['random_apgr'])}); "
            f"CPT(95%) confidence {_f(c['cpt95'])} learned {_f(lr['cpt95'])} (floor "
            f"{_f(c['cpt_floor'])})"
            + ("" if c["pgr_defined"] else " (PGR undefined: the planner is not better than "
                                           "the local triage here)"))
    if live_info is not None:
        console.print(f"live planner: {live_info['answered']}/{live_info['asked']} answered, "
                      f"failed {live_info['failed'] or 0}; per call {live_info['planner_ms']} "
                      f"ms, {live_info['tokens_per_call_mean']} tokens")
    console.print(f"dev choice: learned above {above} (dev share "
                  f"{dev_info['learned']['share']}, accuracy {dev_info['learned']['accuracy']});"
                  f" confidence would choose below {dev_info['confidence_same_choice']['below']}"
                  f" (policy: {below})")
    console.print(f"missed emergencies (shipped): {shipped['missed_emergencies']} "
                  f"{shipped['missed_emergency_ids']}")
    tt = Table(title="targets (issue 13; oracle planner, shipped mode)", title_justify="left")
    for col in ("target", "wanted", "measured", "met"):
        tt.add_column(col)
    rows = [
        ("emergency recall", f">= {wanted['emergency_recall_min']}",
         f"{_f(shipped['emergency_recall'])} ({shipped['missed_emergencies']} missed)",
         met["emergency_recall"]),
        ("accuracy at planner share", f">= {wanted['accuracy_min']} at <= "
         f"{wanted['planner_share_max']}",
         f"{shipped['accuracy']:.3f} at {shipped['planner_share']:.3f}",
         met["accuracy_at_share"]),
        ("learned CPT(95%)", f"<= {wanted['learned_cpt95_max']} (stretch "
         f"{wanted['learned_cpt95_stretch']})", _f(o_routers["learned"]["cpt95"]),
         met["learned_cpt95"]),
        ("throughput, path without generation", f">= {wanted['throughput_min_msgs_per_s']} "
         "msgs/s", f"{local_info['throughput_msgs_per_s']} msgs/s", met["throughput"]),
    ]
    for name, want, got, ok in rows:
        tt.add_row(name, want, got, "yes" if ok else "NO")
    console.print(tt)
    against = "a fresh run" if oracle_source.get("ran") else oracle_source["file"]
    console.print(f"cross-check with triage_oracle.py ({against}): agree {check.get('agree')}; "
                  f"{json.dumps(check.get('differences', {}))[:600]}")

    if changed:
        console.print(f"[yellow]files changed while the benchmark ran: {', '.join(changed)}; "
                      "the numbers may mix versions: run it again[/]")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot(out.with_suffix(".png"), oracle)
    console.print(f"wrote {_shown(out)} and {out.with_suffix('.png').name}; runtime "
                  f"{runtime:.1f} s")


if __name__ == "__main__":
    main()
