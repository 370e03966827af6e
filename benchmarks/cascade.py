"""The healthcare cascade's triage decision on the test split: four routings side by side, one run.

Graph: examples/healthcare/cascade.yaml cut after ``triage`` (guard -> mask -> triage, the path
without generation). Data: examples/healthcare/data/test.jsonl (635 messages, 7 classes, gold
``label``, ``hard`` flag), family-disjoint from the dev split the threshold was calibrated on.

Modes (the routing is the triage node's: escalate iff its confidence < threshold):
  (a) all-planner: every message that reaches triage goes to the planner;
  (b) cascade: only those under the calibrated threshold (the triage ``below`` the graph resolves
      from its escalation policy files: cascade-escalation.yaml, then triage-calibrated.yaml);
  (c) random: the same number of planner calls as (b), spent on messages drawn at random;
  (d) local only: the triage model's answer everywhere.
A message the guard refuses never reaches triage and never escalates (the guard does not): in
every mode its prediction is the guard's category (``jailbreak`` and ``attack`` count as
``injection``).

Planners, kept apart everywhere:
  live:   a real ``llama_cpp.server`` serving the embedded SmolLM2-135M (started here with
          ``serve_embedded`` unless SHOAL_PLANNER_URL is set), asked on a seeded stratified subset
          (``--live-n``): real answers, latency and tokens. It is a weak model.
  oracle: returns the gold label (the ceiling a strong LLM approaches), over all 635 messages;
          its cost and latency per call are the live planner's means (nothing is sent).

Passes (the graph runs once per pass; every mode is computed from the per-record outcomes, since
the routing is a deterministic function of the triage confidence):
  1. local, escalation off: a warm-up, then ``--repeats`` timed ``Graph.abatch`` passes over all
     messages at ``--concurrency`` (throughput of the path without generation), then one
     sequential pass (per-message local latency, p50/p95; predictions and confidences).
  2. live: the subset through the same cut with triage forced to ask the planner on every record
     (as ``shoal calibrate --planner live`` does), one record at a time so that a call's latency
     is the call's and not a queue's; per record the planner's label (``failed`` when it did not
     answer: counted wrong), planner latency, tokens and USD at the cascade.yaml planner prices.

Run: python benchmarks/cascade.py [--live-n 105] [--seed 42] [--concurrency 8];
writes benchmarks/results/cascade.json and cascade.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.metrics import f1_score

from shoal.graphs.calibration import calibration_graph
from shoal.graphs.loader import load_spec
from shoal.graphs.results import RunResult
from shoal.graphs.runtime import Graph
from shoal.graphs.spec import GraphSpec
from shoal.models.local_server import serve_embedded
from shoal.observability import configure_logging
from shoal.policies.escalation import load_policy, policy_path, resolve_rules
from shoal.policies.escalation.calibration import (
    APGR_GRID,
    CalibrationSummary,
    Example,
    RoutingPoint,
    apgr,
    curve,
    random_baseline,
    summarize,
)

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "examples/healthcare/cascade.yaml"
DATA = ROOT / "examples/healthcare/data/test.jsonl"
RESULTS = ROOT / "benchmarks/results"
NODE = "triage"
GUARD_LABELS = {"jailbreak": "injection", "attack": "injection"}
"""The guard's categories that are a triage label under another name."""
TARGETS = {"oracle_cpt95_max": 0.20, "throughput_min_msgs_per_s": 50.0}
SHOWN_SHARES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
MODES = ("all_planner", "cascade", "random", "local_only")
MODE_NAMES = {"all_planner": "(a) all-planner", "cascade": "(b) cascade",
              "random": "(c) random, same share", "local_only": "(d) local only"}


@dataclass(frozen=True)
class Msg:
    id: str
    text: str
    label: str
    hard: bool


@dataclass(frozen=True)
class Local:
    """One message through guard -> mask -> triage, escalation off."""

    pred: str
    confidence: float | None
    """Triage confidence; None when the guard refused (the message never reaches triage)."""
    refused: bool
    latency_ms: float


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


# --- graphs ------------------------------------------------------------------------------------


def cut_graph(spec: GraphSpec, *, live: bool) -> Graph:
    """The cascade cut after triage, as ``shoal calibrate`` builds it: only triage may call the
    planner, always in the live pass; no budget. A run the guard refused returns the guard's
    output, so it still says its category."""
    del spec  # calibration_graph reads and checks the whole graph file itself
    return calibration_graph(GRAPH, NODE, "live" if live else "oracle")


def local_outcome(result: RunResult) -> Local:
    trace = next((t for t in result.nodes if t.node == NODE), None)
    latency = float(result.latency_ms or 0.0)
    if result.status == "refused" and isinstance(result.output, dict):
        category = str(result.output.get("category", "refused"))
        return Local(GUARD_LABELS.get(category, category), None, True, latency)
    if trace is None or trace.label is None or result.status == "error":
        return Local(f"error:{result.status}", None, True, latency)
    return Local(trace.label, trace.confidence, False, latency)


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
                     str(local["label"]), float(local["confidence"]))
    # Not answered: "planner failed (CODE: message); local answer kept" -> "planner failed: CODE"
    why = (trace.reason or "not escalated").split(";", 1)[0]
    if " (" in why:
        head, rest = why.split(" (", 1)
        why = f"{head}: {rest.split(':', 1)[0].rstrip(')')}"
    return Asked("failed", False, cost.planner_ms if cost else 0.0, 0, 0.0, why,
                 trace.label or "", trace.confidence)


# --- passes --------------------------------------------------------------------------------------


def local_pass(msgs: Sequence[Msg], *, concurrency: int, repeats: int
               ) -> tuple[dict[str, Local], dict[str, Any]]:
    graph = cut_graph(load_spec(GRAPH)[0], live=False)
    items = [(m.id, m.text) for m in msgs]

    async def go() -> tuple[list[float], list[RunResult], list[RunResult]]:
        await graph.abatch(items[:64], concurrency=concurrency)  # warm-up: loads, first calls
        walls = []
        batch: list[RunResult] = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            batch = await graph.abatch(items, concurrency=concurrency)
            walls.append(time.perf_counter() - t0)
        sequential = [await graph.arun(text, id=i) for i, text in items]
        return walls, batch, sequential

    walls, batch, sequential = asyncio.run(go())
    out = {r.id: local_outcome(r) for r in sequential}
    concurrent = {r.id: local_outcome(r) for r in batch}
    differ = sum(concurrent[i].pred != out[i].pred or concurrent[i].confidence != out[i].confidence
                 for i in out)
    rates = [len(msgs) / w for w in walls]
    info = {
        "graph": "examples/healthcare/cascade.yaml cut after triage: guard -> mask -> triage, "
                 "escalation off",
        "messages": len(msgs),
        "concurrency": concurrency,
        "warmup_messages": min(64, len(msgs)),
        "throughput_runs_msgs_per_s": [round(r, 1) for r in rates],
        "throughput_msgs_per_s": round(statistics.median(rates), 1),
        "sequential_throughput_msgs_per_s": round(
            len(msgs) / (sum(o.latency_ms for o in out.values()) / 1000), 1),
        "latency_ms": {"p50": round(_pct([o.latency_ms for o in out.values()], 50), 2),
                       "p95": round(_pct([o.latency_ms for o in out.values()], 95), 2)},
        "refused_by_guard": sum(o.refused for o in out.values()),
        "concurrent_vs_sequential_differences": differ,
    }
    return out, info


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
        graph = cut_graph(spec, live=True)

        async def go() -> list[RunResult]:
            # One at a time: the server answers one request at a time, and a queued request's
            # wait is not the planner's latency.
            return [await graph.arun(m.text, id=m.id) for m in msgs]

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


# --- modes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planner:
    """What the planner says, costs and takes, per message."""

    name: str
    label: dict[str, str]
    ms: dict[str, float]
    usd: dict[str, float]


def mode_metrics(msgs: Sequence[Msg], local: dict[str, Local], planner: Planner,
                 escalated: set[str]) -> dict[str, Any]:
    gold = [m.label for m in msgs]
    pred = [planner.label[m.id] if m.id in escalated else local[m.id].pred for m in msgs]
    latency = [local[m.id].latency_ms + (planner.ms[m.id] if m.id in escalated else 0.0)
               for m in msgs]
    usd = sum(planner.usd[m.id] for m in msgs if m.id in escalated)
    hard = [i for i, m in enumerate(msgs) if m.hard]
    labels = sorted(set(gold))
    return {
        "n": len(msgs),
        "accuracy": _acc(gold, pred),
        "macro_f1": round(float(f1_score(gold, pred, labels=labels, average="macro",
                                         zero_division=0)), 4),
        "hard_accuracy": _acc([gold[i] for i in hard], [pred[i] for i in hard]),
        "planner_calls": len(escalated),
        "planner_share": round(len(escalated) / len(msgs), 4),
        "planner_usd": usd,
        "usd_per_1000_messages": round(usd / len(msgs) * 1000, 4),
        "latency_ms_p50": round(_pct(latency, 50), 2),
        "latency_ms_p95": round(_pct(latency, 95), 2),
    }


def examples(msgs: Sequence[Msg], local: dict[str, Local], planner: Planner) -> list[Example]:
    """One Example per message. A refused message sits at confidence 1.0 with the planner no
    better than the guard: it counts in every quality and no threshold below 1 escalates it (only
    the curve's last point, share 1.0, does, at no gain: its quality equals all-planner's)."""
    out = []
    for m in msgs:
        lo = local[m.id]
        right = lo.pred == m.label
        if lo.refused or lo.confidence is None:
            out.append(Example(id=m.id, confidence=1.0, local_correct=right,
                               planner_correct=right))
        else:
            out.append(Example(id=m.id, confidence=lo.confidence, local_correct=right,
                               planner_correct=planner.label[m.id] == m.label))
    return out


def evaluate(msgs: Sequence[Msg], local: dict[str, Local], planner: Planner, threshold: float,
             *, seed: int, target_share: float) -> dict[str, Any]:
    eligible = [m.id for m in msgs if not local[m.id].refused]
    cascade = {i for i in eligible if (local[i].confidence or 0.0) < threshold}
    rng = random.Random(seed)
    drawn = set(rng.sample(eligible, len(cascade)))
    modes = {
        "all_planner": mode_metrics(msgs, local, planner, set(eligible)),
        "cascade": mode_metrics(msgs, local, planner, cascade),
        "random": mode_metrics(msgs, local, planner, drawn),
        "local_only": mode_metrics(msgs, local, planner, set()),
    }
    ex = examples(msgs, local, planner)
    summary = summarize(ex, target_share)
    q_local, q_planner = summary.local_quality, summary.planner_quality
    s = modes["cascade"]["planner_share"]
    e = len(eligible) / len(msgs)
    modes["random"]["sampled_accuracy"] = modes["random"]["accuracy"]
    modes["random"]["accuracy"] = round(random_baseline(ex, [s])[0].quality, 4)
    modes["random"]["expected_accuracy_eligible_only"] = round(
        q_local + min(1.0, s / e) * (q_planner - q_local), 4)
    modes["random"]["note"] = (
        "accuracy: expected (1-s)*local + s*planner at the cascade's share s; "
        "sampled_accuracy (and macro-F1, latency, cost): one seeded draw of the same number of "
        "calls among the messages that reach triage; expected_accuracy_eligible_only: the "
        "expectation of that draw (refused messages cannot be picked, so it is a little above "
        "the straight line)")
    modes["cascade"]["apgr"] = summary.apgr
    modes["random"]["apgr"] = summary.random_apgr
    gap = q_planner - q_local
    modes["cascade"]["pgr"] = (None if gap <= 0 else
                               round((modes["cascade"]["accuracy"] - q_local) / gap, 4))
    # The cascade against random routing at every share the threshold router can reach.
    margins = [p.quality - ((1 - p.share) * q_local + p.share * q_planner)
               for p in summary.points if 0 < p.share < 1]
    rand_elig = [RoutingPoint(share=x, quality=q_local + min(1.0, x / e) * gap,
                              pgr=min(1.0, x / e) if gap > 0 else None) for x in APGR_GRID]
    margins_elig = [p.quality - (q_local + min(1.0, p.share / e) * gap)
                    for p in summary.points if 0 < p.share < 1]
    return {
        "planner": planner.name,
        "n": len(msgs),
        "reach_triage": len(eligible),
        "refused_by_guard": len(msgs) - len(eligible),
        "guard_refusals_gold_to_category": dict(sorted(Counter(
            f"{m.label} -> {local[m.id].pred}" for m in msgs if local[m.id].refused).items())),
        "threshold": threshold,
        "modes": modes,
        "summary": _summary_dict(summary),
        "shown": [p.model_dump() for p in curve(ex, SHOWN_SHARES)],
        "above_random": {
            "points_checked": len(margins),
            "points_not_above": sum(m <= 0 for m in margins),
            "min_margin": round(min(margins), 4) if margins else None,
            "points_not_above_eligible_only_random": sum(m <= 0 for m in margins_elig),
            "min_margin_eligible_only_random": round(min(margins_elig), 4)
            if margins_elig else None,
            "random_apgr_eligible_only": apgr(rand_elig),
        },
    }


def _summary_dict(summary: CalibrationSummary) -> dict[str, Any]:
    data = summary.model_dump(mode="json")
    data["points"] = [{"share": round(p.share, 5), "quality": round(p.quality, 5),
                       "pgr": None if p.pgr is None else round(p.pgr, 5),
                       "threshold": round(min(p.threshold, 1.0), 6)} for p in summary.points]
    return data


# --- output --------------------------------------------------------------------------------------


def plot(path: Path, oracle: dict[str, Any], live: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    for res, color, name in ((oracle, "tab:blue", f"oracle planner, all {oracle['n']}"),
                             (live, "tab:orange", f"live SmolLM2-135M, subset of {live['n']}")):
        pts = res["summary"]["points"]
        ax.step([p["share"] for p in pts], [p["quality"] for p in pts], where="post",
                color=color, label=f"cascade curve, {name}")
        s = res["summary"]
        ax.plot([0, 1], [s["local_quality"], s["planner_quality"]], color=color, ls="--",
                lw=1, label=f"random routing, {name.split(',')[0]}")
        for mode, marker in zip(MODES, ("^", "o", "s", "v"), strict=True):
            m = res["modes"][mode]
            ax.plot(m["planner_share"], m["accuracy"], marker=marker, color=color, ms=8,
                    mfc="white" if res is live else color, ls="none")
    for mode, marker in zip(MODES, ("^", "o", "s", "v"), strict=True):
        ax.plot([], [], marker=marker, color="gray", ls="none", label=MODE_NAMES[mode])
    ax.plot([], [], ls="none", label="filled: oracle, hollow: live")
    ax.set_xlabel("planner share (messages sent to the planner)")
    ax.set_ylabel("triage accuracy")
    ax.set_title("Healthcare cascade, test split: triage accuracy vs planner share")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3,
              frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def table(console: Console, oracle: dict[str, Any], live: dict[str, Any]) -> None:
    t = Table(title=f"triage decision, threshold below {oracle['threshold']} "
                    f"({oracle['threshold_source']})",
              title_justify="left")
    for col in ("planner", "mode", "n", "accuracy", "macro-F1", "share", "USD / 1000 msgs",
                "p50 ms", "p95 ms", "APGR"):
        t.add_column(col, justify="left" if col in ("planner", "mode") else "right")
    for mode in MODES:
        for res, name in ((oracle, "oracle"), (live, "live")):
            m = res["modes"][mode]
            t.add_row(name, MODE_NAMES[mode], str(m["n"]), f"{m['accuracy']:.3f}",
                      f"{m['macro_f1']:.3f}", f"{m['planner_share']:.3f}",
                      f"{m['usd_per_1000_messages']:.3f}", f"{m['latency_ms_p50']:.1f}",
                      f"{m['latency_ms_p95']:.1f}", _f(m.get("apgr")))
    console.print(t)


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _acc(gold: Sequence[str], pred: Sequence[str]) -> float:
    return round(sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold), 4) \
        if gold else float("nan")


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


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


@contextlib.contextmanager
def timed(console: Console, what: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    console.print(f"{what}: {time.perf_counter() - t0:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--live-n", type=int, default=105,
                        help="messages in the live planner's stratified subset (>= 7)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed throughput passes")
    parser.add_argument("--target-share", type=float, default=0.25,
                        help="share cap for the threshold summarize() would choose (reported)")
    parser.add_argument("--output", default=str(RESULTS / "cascade.json"))
    args = parser.parse_args()
    if args.live_n < 7:
        parser.error("--live-n must be at least 7 (one per class)")
    configure_logging("warning")
    console = Console(width=None if sys.stdout.isatty() else 150)
    started = time.perf_counter()

    msgs = [Msg(d["id"], d["text"], d["label"], bool(d.get("hard")))
            for d in map(json.loads, DATA.read_text(encoding="utf-8").splitlines()) if d]
    spec, _ = load_spec(GRAPH)
    rule = resolve_rules(spec.nodes, spec.escalation, GRAPH.parent).nodes[NODE]
    if rule is None or rule.below is None:
        raise SystemExit(f"{GRAPH.name}: node {NODE!r} has no escalation threshold")
    threshold = rule.below
    source = f"{GRAPH.name} (escalate_below)"
    for entry in spec.escalation.policies if spec.escalation else []:  # later files win
        node_rule = load_policy(policy_path(entry, GRAPH.parent), entry).nodes.get(NODE)
        if node_rule is not None and "below" in node_rule.model_fields_set:
            source = entry
    price = spec.models[spec.escalation.planner].price if spec.escalation else None  # type: ignore[union-attr]

    with timed(console, "local pass"):
        local, local_info = local_pass(msgs, concurrency=args.concurrency, repeats=args.repeats)
    subset = stratified(msgs, args.live_n, args.seed)
    with timed(console, f"live planner pass ({len(subset)} messages)"):
        asked, live_info = live_pass(subset)
    live_info["local_differences_vs_local_pass"] = sum(
        a.local_label != local[i].pred or a.local_confidence != local[i].confidence
        for i, a in asked.items() if a is not None)

    answered = [a for a in asked.values() if a is not None and a.answered]
    mean_ms = statistics.mean([a.planner_ms for a in answered]) if answered else 0.0
    mean_usd = statistics.mean([a.usd for a in answered]) if answered else 0.0
    oracle_planner = Planner("oracle", {m.id: m.label for m in msgs},
                             dict.fromkeys((m.id for m in msgs), mean_ms),
                             dict.fromkeys((m.id for m in msgs), mean_usd))
    live_planner = Planner(
        "live", {i: (a.label if a else "refused") for i, a in asked.items()},
        {i: (a.planner_ms if a else 0.0) for i, a in asked.items()},
        {i: (a.usd if a else 0.0) for i, a in asked.items()})
    oracle = evaluate(msgs, local, oracle_planner, threshold, seed=args.seed,
                      target_share=args.target_share)
    live = evaluate(subset, local, live_planner, threshold, seed=args.seed,
                    target_share=args.target_share)
    machine = {"cpu_count": os.cpu_count(), "python": platform.python_version(),
               "platform": platform.platform(),
               "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    measured = {
        "local": "triage label and confidence, and per-message latency (RunResult.latency_ms) "
                 "from one sequential pass over all messages after warm-up; throughput is the "
                 "median of the timed concurrent passes (Graph.abatch)",
        "routing": f"escalate iff the message reaches triage and its confidence < {threshold} "
                   "(the triage rule resolve_rules gives the full graph); computed from the "
                   "per-record outcomes, not re-run",
        "latency": "per message: local latency, plus the planner latency if escalated (live: "
                   "measured per call; oracle: the live mean per answered call)",
        "cost": "planner USD at the cascade.yaml planner prices (live: the call's measured "
                "tokens; oracle: the live mean per answered call)",
        "macro_f1": "sklearn f1_score, average='macro', over the 7 gold classes; 'failed' and "
                    "guard categories outside them count as wrong",
        "curve": "shoal.policies.escalation.calibration.summarize over the messages; a "
                 "guard-refused "
                 "message is pinned at confidence 1.0 with planner_correct = local_correct",
    }
    for res in (oracle, live):
        res["threshold_source"] = source
    oracle.update({"machine": machine, "local_pass": local_info, "measured": measured,
                   "planner_price_usd_per_mtok": price.model_dump() if price else None,
                   "note": "the oracle returns the gold label: the ceiling a strong LLM "
                           "approaches; nothing is sent"})
    live.update({"machine": machine, "local_pass": local_info, "measured": measured,
                 "planner_price_usd_per_mtok": price.model_dump() if price else None,
                 "planner_pass": live_info, "seed": args.seed,
                 "note": "a real llama_cpp.server with the embedded 135M model: real latency "
                         "and answers; a weak planner"})
    o_modes = oracle["modes"]
    runtime = time.perf_counter() - started
    results = {
        "oracle_cpt95": oracle["summary"]["cpt95"],
        "oracle_apgr": oracle["summary"]["apgr"],
        "random_apgr": oracle["summary"]["random_apgr"],
        "local_only_accuracy": o_modes["local_only"]["accuracy"],
        "all_planner_accuracy": o_modes["all_planner"]["accuracy"],
        "cascade_accuracy": o_modes["cascade"]["accuracy"],
        "cascade_planner_share": o_modes["cascade"]["planner_share"],
        "throughput_msgs_per_s": local_info["throughput_msgs_per_s"],
        "oracle": oracle,
        "live": live,
    }
    targets = {
        "oracle_cpt95": (results["oracle_cpt95"] is not None
                         and results["oracle_cpt95"] <= TARGETS["oracle_cpt95_max"]),
        "oracle_above_random_at_every_share": oracle["above_random"]["points_not_above"] == 0,
        "throughput": results["throughput_msgs_per_s"] >= TARGETS["throughput_min_msgs_per_s"],
    }
    oracle["targets"] = {"wanted": TARGETS | {"oracle_above_random": "at every share in (0, 1)"},
                         "met": targets}
    oracle["runtime_s"] = round(runtime, 1)

    table(console, oracle, live)
    o_sum, l_sum = oracle["summary"], live["summary"]
    console.print(
        f"oracle (all {oracle['n']}; {oracle['refused_by_guard']} refused by the guard): APGR "
        f"{_f(o_sum['apgr'])} vs random {_f(o_sum['random_apgr'])}; CPT(50%) "
        f"{_f(o_sum['cpt50'])} CPT(80%) {_f(o_sum['cpt80'])} CPT(95%) {_f(o_sum['cpt95'])}")
    console.print(
        f"live (subset {live['n']}): local {l_sum['local_quality']:.3f}, all-planner "
        f"{l_sum['planner_quality']:.3f}; APGR {_f(l_sum['apgr'])}"
        + ("" if l_sum["pgr_defined"] else " (PGR undefined: the planner is not better than "
                                           "the local triage on this subset)"))
    pi = live_info
    console.print(f"live planner: {pi['answered']}/{pi['asked']} answered, failed "
                  f"{pi['failed'] or 0}; per call {pi['planner_ms']} ms, "
                  f"{pi['tokens_per_call_mean']} tokens")
    rows = [("oracle CPT(95%)", f"<= {TARGETS['oracle_cpt95_max']}",
             _f(results["oracle_cpt95"]), targets["oracle_cpt95"]),
            ("oracle cascade above random at every share", "all points",
             f"{oracle['above_random']['points_not_above']} of "
             f"{oracle['above_random']['points_checked']} not above (min margin "
             f"{oracle['above_random']['min_margin']})",
             targets["oracle_above_random_at_every_share"]),
            ("throughput, path without generation", f">= {TARGETS['throughput_min_msgs_per_s']}"
             " msgs/s", f"{results['throughput_msgs_per_s']} msgs/s", targets["throughput"])]
    tt = Table(title="targets", title_justify="left")
    for col in ("target", "wanted", "measured", "met"):
        tt.add_column(col)
    for name, want, got, ok in rows:
        tt.add_row(name, want, got, "yes" if ok else "NO")
    console.print(tt)

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot(out.with_suffix(".png"), oracle, live)
    console.print(f"wrote {out} and {out.with_suffix('.png').name}; runtime {runtime:.1f} s")


if __name__ == "__main__":
    main()
