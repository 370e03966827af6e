"""The learning loop on a stream: does the shoal need the planner less as it learns, without
losing accuracy or a single emergency?

    python benchmarks/learning.py [--rounds 6] [--order-seed 20261202] [--wrong-share 0.1]

Setup: the healthcare cascade cut after ``triage`` (guard -> mask -> triage, as the cascade runs
them, with its escalation policy and budget), the test split (family-disjoint from the training
data) shuffled with ``--order-seed`` and cut into ``--rounds`` rounds, and an ORACLE planner
(``benchmarks/oracle_planner.py``: it answers with the gold label) for what escalates.

After each round, with the same code as the CLI (:mod:`shoal.learning`):

1. the shadow candidate (if any; it ran beside the champion during the round) goes through the
   promotion gate (``promote``): frozen dev split, labelled shadow records, the node's targets;
2. a new candidate is learned from the training split plus every ledger label so far
   (``learn``), and shadows the champion in the next round (``start_shadow``).

The running graph follows promotions with ``Graph.refresh_models`` (as ``shoal serve`` does).
Per round: planner share (records triage sent to the planner), accuracy of triage's final label
(the planner's when it answered), emergency recall over every gold emergency of the round (a
record the guard refused counts as missed), the champion version, and the gate's verdict.

A second run does the same with a NOISY oracle that answers ``--wrong-share`` of the records
with a wrong label: the gate must refuse a candidate that got worse; the run counts how often it
refused, and why.

Writes ``benchmarks/results/learning.json`` (``rounds``: the oracle run; ``noisy``: the second)
and ``learning.png`` (share and accuracy per round, both runs). About 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle_planner import (  # the sibling test double, whether run as a script or imported
    read_records,
    serve_oracle,
)
from shoal.graphs.calibration import prefix_spec
from shoal.graphs.loader import load_spec
from shoal.graphs.results import Record, RunResult
from shoal.graphs.runtime import Graph
from shoal.learning import (
    NodeData,
    NodeSetup,
    concat_node_data,
    learn,
    node_data,
    node_setup,
    promote,
    start_shadow,
)
from shoal.observability.logging import configure_logging
from shoal.policies.escalation import SqliteLedger, SqliteModelRegistry

ROOT = Path(__file__).resolve().parents[1]
GRAPH = ROOT / "examples" / "healthcare" / "cascade.yaml"
DATA = ROOT / "examples" / "healthcare" / "data"
RESULTS = ROOT / "benchmarks" / "results"
NODE = "triage"
CRITICAL = "emergency"
TARGET_RECALL = 0.99

console = Console(stderr=True)


def _rounds(records: Sequence[Record], n: int, seed: int) -> list[list[Record]]:
    order = list(records)
    random.Random(seed).shuffle(order)
    size = -(-len(order) // n)
    return [order[i:i + size] for i in range(0, len(order), size)]


def _measure(results: Sequence[RunResult], gold: dict[str, str]) -> dict[str, Any]:
    reached = escalated = right = 0
    emergencies = caught = 0
    shadowed = critical = 0
    why: Counter[str] = Counter()
    for r in results:
        trace = next((t for t in r.nodes if t.node == NODE), None)
        truth = gold[r.id]
        final = trace.label if trace is not None else None
        if truth == CRITICAL:
            emergencies += 1
            caught += final == CRITICAL
        if trace is None:
            continue  # refused by the guard: never reached triage
        reached += 1
        escalated += bool(trace.escalated or trace.pending)
        critical += bool((trace.escalated or trace.pending) and trace.critical)
        if trace.escalated or trace.pending:
            why[f"{'critical' if trace.critical else 'unsure'}:{truth}"] += 1
        right += final == truth
        shadowed += trace.shadow is not None
    return {"n": len(results), "reached_triage": reached,
            "planner_share": escalated / reached if reached else 0.0,
            "accuracy": right / reached if reached else 0.0,
            "emergency_recall": caught / emergencies if emergencies else None,
            "critical_escalations": critical, "escalated_by_gold": dict(why.most_common()),
            "emergencies": emergencies,
            "shadowed": shadowed}


def run_stream(setup: NodeSetup, base: NodeData, evaluation: NodeData,
               rounds: list[list[Record]], *, store: Path, models: Path,
               wrong_share: float, label: str) -> dict[str, Any]:
    """One stream through the loop; the per-round rows and the gate's verdicts."""
    gold = {r.id: r.label or "" for rnd in rounds for r in rnd}
    registry, ledger = SqliteModelRegistry(store), SqliteLedger(store)
    audit = store.parent / "audit.jsonl"
    records = read_records(DATA / "test.jsonl")
    out: list[dict[str, Any]] = []
    refusals: list[dict[str, Any]] = []
    with serve_oracle(records, wrong_share=wrong_share, seed=7) as oracle:
        os.environ["SHOAL_PLANNER_URL"] = oracle.base_url  # read when the graph file is
        spec, _ = load_spec(GRAPH)
        cut = prefix_spec(spec, NODE)
        # The whole graph was checked when it was loaded; the cut keeps its escalation policy
        # (whose rules for the later nodes simply go unused).
        graph = Graph(cut, base_dir=GRAPH.parent, checked=True)
        for i, rnd in enumerate(rounds, start=1):
            graph.refresh_models()
            version = graph.model_versions().get(NODE)
            started = time.perf_counter()
            results = asyncio.run(graph.abatch([(r.id, r.text) for r in rnd]))
            found = registry.version(setup.graph, NODE, version) if version else None
            row = _measure(results, gold) | {"round": i, "version": version,
                                             "thresholds": found.thresholds if found else None,
                                             "run_s": round(time.perf_counter() - started, 1)}
            shadow = registry.shadow(setup.graph, NODE)
            row["shadow"] = shadow
            if shadow is not None:
                done = promote(setup, shadow, evaluation=evaluation, registry=registry,
                               ledger=ledger, audit_path=audit)
                row["gate"] = {"version": shadow, "promoted": done.promoted,
                               "failed": [c.name for c in done.result.failed],
                               "shadow": done.shadow.as_dict(),
                               "frozen": {"champion": done.champion_metrics.as_dict(),
                                          "candidate": done.metrics.as_dict()}}
                for check in done.result.checks:
                    console.print(f"    {check.line()}")
                if not done.promoted:
                    refusals.append({"round": i, "version": shadow,
                                     "failed": row["gate"]["failed"]})
            if i < len(rounds):
                candidate = learn(setup, base=base, evaluation=evaluation, ledger=ledger,
                                  registry=registry, out_dir=models, seed=0)
                start_shadow(setup, candidate.version.version, registry=registry)
                row["learned"] = {"version": candidate.version.version,
                                  "ledger_rows": candidate.rows.counts(),
                                  "frozen_accuracy": round(candidate.metrics.accuracy, 4),
                                  "seconds": round(candidate.seconds, 1)}
            gate = row.get("gate")
            verdict = "" if gate is None else (
                f"; gate {gate['version']}: " + ("promoted" if gate["promoted"] else
                                                 "refused (" + ", ".join(gate["failed"]) + ")"))
            console.print(f"[{label}] round {i}: {version} share {row['planner_share']:.3f} "
                          f"accuracy {row['accuracy']:.3f} emergency recall "
                          f"{row['emergency_recall']:.3f}{verdict}")
            out.append(row)
        stats = oracle.index.stats.to_dict()
    return {"rounds": out, "refusals": refusals,
            "oracle": {k: v for k, v in stats.items() if k != "fallbacks"}}


def _targets(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    first, last = rounds[0], rounds[-1]
    return {
        "share_halved": last["planner_share"] <= first["planner_share"] / 2,
        "accuracy_kept": last["accuracy"] >= first["accuracy"],
        "emergency_recall_every_round": all(
            r["emergency_recall"] is None or r["emergency_recall"] >= TARGET_RECALL
            for r in rounds),
    }


def plot(path: Path, runs: dict[str, list[dict[str, Any]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (share, acc) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    styles = {"oracle planner": ("tab:blue", "o"), "10% wrong planner": ("tab:orange", "s")}
    for name, rounds in runs.items():
        color, marker = styles.get(name, ("tab:gray", "^"))
        xs = [r["round"] for r in rounds]
        share.plot(xs, [r["planner_share"] for r in rounds], color=color, marker=marker,
                   label=name)
        acc.plot(xs, [r["accuracy"] for r in rounds], color=color, marker=marker, label=name)
        acc.plot(xs, [r["emergency_recall"] for r in rounds], color=color, marker=marker,
                 ls=":", alpha=0.6, label=f"{name}: emergency recall")
    share.set(title="planner share per round", xlabel="round", ylabel="share of messages",
              ylim=(0, None))
    acc.set(title="triage accuracy per round", xlabel="round", ylabel="accuracy / recall",
            ylim=(0.8, 1.005))
    acc.axhline(TARGET_RECALL, color="red", lw=0.8, ls="--")
    share.legend(fontsize=8)
    acc.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--order-seed", type=int, default=20261202)
    parser.add_argument("--wrong-share", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=RESULTS / "learning.json")
    parser.add_argument("--only-oracle", action="store_true", help="skip the noisy run")
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error("at least 5 rounds")
    configure_logging("warning", stream=sys.stderr)
    started = time.perf_counter()
    spec, _ = load_spec(GRAPH)
    setup = node_setup(spec, GRAPH.parent, NODE)

    def labelled(path: Path) -> list[Record]:
        return [Record(id=r["id"], text=r["text"], label=r["label"])
                for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if r]

    def families(path: Path) -> list[str]:
        return [json.loads(line).get("family", "") or json.loads(line)["id"]
                for line in path.read_text(encoding="utf-8").splitlines() if line]

    with tempfile.TemporaryDirectory() as tmp:
        # The graph's store (ledger, registry) in a scratch folder; nothing of the repo changes.
        os.environ["SHOAL_OUTBOX"] = str(Path(tmp) / "warmup.sqlite")
        console.print("reading the training and dev splits as triage sees them (masked)")
        dev = setup.eval_path()
        base = concat_node_data([asyncio.run(node_data(GRAPH, NODE, labelled(train), file=train,
                                                       groups=families(train)))
                                 for train in setup.train_paths()])
        evaluation = asyncio.run(node_data(GRAPH, NODE, labelled(dev), file=dev))
        rounds = _rounds(labelled(DATA / "test.jsonl"), args.rounds, args.order_seed)
        runs: dict[str, dict[str, Any]] = {}
        plan = [("oracle planner", 0.0)]
        if not args.only_oracle:
            plan.append((f"{args.wrong_share:.0%} wrong planner", args.wrong_share))
        for name, wrong in plan:
            folder = Path(tmp) / name.replace(" ", "-").replace("%", "pct")
            folder.mkdir()
            store = folder / "outbox.sqlite"
            os.environ["SHOAL_OUTBOX"] = str(store)
            runs[name] = run_stream(setup, base, evaluation, rounds, store=store,
                                    models=folder / "models", wrong_share=wrong, label=name)
    oracle_run, noisy_name = runs["oracle planner"], f"{args.wrong_share:.0%} wrong planner"
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/learning.py " + " ".join(argv or sys.argv[1:]),
        "graph": "examples/healthcare/cascade.yaml cut after triage",
        "stream": f"test split ({sum(map(len, rounds))} messages), order seed "
                  f"{args.order_seed}, {len(rounds)} rounds",
        "frozen_split": f"dev ({len(evaluation.texts)} messages)",
        "learn": setup.learn.model_dump(mode="json"),
        "rounds": [{k: r[k] for k in ("planner_share", "accuracy", "emergency_recall",
                                      "version")} for r in oracle_run["rounds"]],
        "targets": _targets(oracle_run["rounds"]),
        "oracle": oracle_run,
    }
    curves = {"oracle planner": oracle_run["rounds"]}
    if noisy_name in runs:
        noisy = runs[noisy_name]
        result["noisy"] = {"wrong_share": args.wrong_share, **noisy,
                           "gates": sum("gate" in r for r in noisy["rounds"]),
                           "refused": len(noisy["refusals"]),
                           "targets": _targets(noisy["rounds"])}
        curves[noisy_name] = noisy["rounds"]
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    plot(args.out.with_suffix(".png"), curves)
    noisy_line = ("" if "noisy" not in result else
                  f"; noisy run: {result['noisy']['refused']} of {result['noisy']['gates']} "
                  "candidates refused")
    console.print(f"targets (oracle run): {result['targets']}{noisy_line}; wrote {args.out} "
                  f"in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
