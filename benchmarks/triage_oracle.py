"""The triage acceptance run (issue 13): the real ``shoal run`` over the healthcare test split
against a planner that always answers with the right label, scored against the gold labels.

Graph: examples/healthcare/triage.yaml (mask -> triage; ``--graph`` for another graph with a
``privacy_masker`` and a node ``--node``). Data: examples/healthcare/data/test.jsonl (635
messages, 7 classes, gold ``label``), family-disjoint from the splits the models and thresholds
were chosen on.

Setup: the oracle planner (``benchmarks/oracle_planner.py``: an OpenAI-compatible test double
that reads the answer key; a ceiling, not a model) in a thread of this process on a free port of
127.0.0.1, loaded with the same data and masking it with the graph's masker pack, so it can find
the record each planner request is about from the masked text the planner receives. Then, as a
subprocess, exactly the acceptance command:

    shoal run GRAPH --input DATA --output <tmp>/run.jsonl

with SHOAL_PLANNER_URL pointing at the oracle, SHOAL_PLANNER_MODEL=oracle, and SHOAL_OUTBOX and
SHOAL_AUDIT_LOG in a temporary directory (no state leaks into the checkout or from an earlier
run). Everything else is the graph's own: thresholds, critical labels, red flags, router, budget.

Scoring (from the run's JSONL: ids, statuses and node traces; never the text):
  prediction      the node's final ``label`` (the planner's when it escalated); a run the input
                  guard refused (cascade.yaml) predicts the guard's category, ``jailbreak`` and
                  ``attack`` counting as ``injection``; an error or a missing line is wrong.
  accuracy        predictions equal to the gold label / records.
  planner share   records whose node escalated (``escalated``: the planner answered) / records.
  per-class recall, every gold label, emergency first; the emergencies missed, each with its id,
                  prediction and trace reason (not the text).
  escalations     how many were critical (trace ``critical``), how many the budget blocked
                  (reason starting ``budget_exhausted``), egress-blocked, failed or pending;
                  ``kept_local`` names those records (id and kind), for cascade.py's
                  cross-check.
  oracle checks   how the oracle matched requests (exact, pseudonym numbering ignored, difflib
                  fallback) and how many escalated records still ended wrong: both should be 0
                  apart from exact matches, or the harness, not the routing, is being measured.
Targets (issue 13, always-right planner): emergency recall >= 0.99, accuracy >= 0.93 at planner
share <= 0.25.

Run: python benchmarks/triage_oracle.py [--graph examples/healthcare/triage.yaml]
[--data examples/healthcare/data/test.jsonl] [--out benchmarks/results/triage_oracle.json]
[--node triage] [--keep-run PATH] [--check]; writes benchmarks/results/triage_oracle.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shoal.graphs.loader import load_spec
from shoal.graphs.spec import GraphSpec
from shoal.policies.escalation import NodeRule, resolve_rules

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle_planner import (  # the sibling test double, whether run as a script or imported
    DEFAULT_MODEL,
    LabelledRecord,
    read_records,
    serve_oracle,
)
from serve_load import shoal_command

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "examples/healthcare/triage.yaml"
DATA = ROOT / "examples/healthcare/data/test.jsonl"
RESULTS = ROOT / "benchmarks/results"
NODE = "triage"
FIRST_CLASS = "emergency"
GUARD_LABELS = {"jailbreak": "injection", "attack": "injection"}
"""The input guard's categories that are a triage label under another name (as cascade.py)."""
TARGETS = {"emergency_recall_min": 0.99, "accuracy_min": 0.93, "planner_share_max": 0.25}
REASON_CHARS = 160
"""Trace reasons are cut to this in the results (they name thresholds and red flags, not text)."""


@dataclass(frozen=True)
class Scored:
    """One gold record against the run's line for it."""

    id: str
    gold: str
    predicted: str | None
    status: str
    reached: bool
    """The run has a trace of the node."""
    wanted: bool
    """The node asked for the planner (``escalate`` in its trace)."""
    escalated: bool
    critical: str | None
    reason: str
    confidence: float | None
    p_wrong: float | None
    local_label: str | None
    """The node's own answer: its label, or for an escalated node ``output.local.label`` when the
    run's output is that node's (None when the output is another node's)."""

    @property
    def correct(self) -> bool:
        return self.predicted == self.gold


def shown(path: Path) -> str:
    """A path as the results may show it: relative to the checkout, else its name only (no
    machine paths in results)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return f"<elsewhere>/{path.name}"


def masker_config(spec: GraphSpec) -> dict[str, Any]:
    """pack, mode and score_threshold of the graph's first ``privacy_masker``: what the oracle
    must mask with to see the text the planner is sent."""
    for node in spec.nodes.values():
        if node.agent == "privacy_masker":
            config = node.agent_config
            return {"pack": str(config.get("pack", "hipaa_safe_harbor")),
                    "mode": str(config.get("mode", "pseudonymize")),
                    "score_threshold": config.get("score_threshold")}
    raise SystemExit(f"graph {spec.name!r} has no privacy_masker: the planner would get raw "
                     "text (and the compiler refuses such a graph)")


def referenced_files(spec: GraphSpec, base: Path, rule: NodeRule | None) -> dict[str, str]:
    """sha256 (first 16 hex) of every local file the run depends on that is not code: model files
    named anywhere in ``models:`` (with their sidecars), escalation policy files, the node's router.
    The run's numbers move when these do; the hashes say which files made them."""
    candidates: list[Path] = []

    def walk(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, Mapping):
            for v in value.values():
                yield from walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                yield from walk(v)

    for model in spec.models.values():
        for value in walk(model.model_dump()):
            if value.endswith((".onnx", ".gguf", ".json", ".joblib", ".pkl")):
                candidates += [base / value, base / f"{value}.json"]
    for entry in spec.escalation.policies if spec.escalation is not None else []:
        candidates.append(base / entry)
    router_rule = getattr(rule, "router", None)  # older rules have no router
    if router_rule is not None:
        router = Path(router_rule.model)
        candidates += [router, router.with_name(f"{router.name}.json")]
    hashes: dict[str, str] = {}
    for path in candidates:
        if path.is_file():
            hashes[shown(path)] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return dict(sorted(hashes.items()))


def rule_for_results(rule: NodeRule | None) -> dict[str, Any] | None:
    """The node's resolved escalation rule (threshold, critical labels, router) as the results
    show it: file paths, absolute after resolution, shown relative to the checkout."""
    if rule is None:
        return None
    data = rule.model_dump(mode="json", exclude_defaults=True)
    if isinstance(data.get("router"), dict):
        data["router"]["model"] = shown(Path(data["router"]["model"]))
    for crit in data.get("critical", {}).values():
        flags = crit.get("red_flags")
        if isinstance(flags, str) and Path(flags).is_absolute():
            crit["red_flags"] = shown(Path(flags))
    return data


def git_state() -> dict[str, Any]:
    """The commit the run was made on and whether the tree had changes (numbers from a dirty
    tree are not reproducible from the commit alone)."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  check=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "--short=12", "HEAD"),
            "dirty": None if status is None else bool(status)}


# --- the run ------------------------------------------------------------------------------------


def run_cli(graph: Path, data: Path, out: Path, tmp: Path, base_url: str
            ) -> tuple[list[str], float, int, str]:
    """``shoal run GRAPH --input DATA --output OUT`` against the oracle: (the command as shown,
    seconds, exit code, the tail of stderr)."""
    env = os.environ | {
        "SHOAL_PLANNER_URL": base_url,
        "SHOAL_PLANNER_MODEL": DEFAULT_MODEL,
        # A fresh outbox and audit log: an earlier run's pending escalations or audit chain must
        # not meet this one, and nothing may land in the checkout's .shoal/.
        "SHOAL_OUTBOX": str(tmp / "outbox.sqlite"),
        "SHOAL_AUDIT_LOG": str(tmp / "audit.jsonl"),
    }
    args = ["run", shown(graph), "--input", shown(data), "--output", str(out), "--no-progress"]
    stderr_path = tmp / "stderr.txt"
    started = time.perf_counter()
    with stderr_path.open("w", encoding="utf-8") as stderr:
        code = subprocess.run([*shoal_command(), *args], cwd=ROOT, env=env, stderr=stderr,
                              stdout=subprocess.DEVNULL, check=False).returncode
    seconds = time.perf_counter() - started
    tail = "\n".join(stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:])
    shown_args = [a if a != str(out) else "<tmp>/run.jsonl" for a in args]
    return ["shoal", *shown_args], seconds, code, tail


def read_run(path: Path) -> tuple[dict[str, dict[str, Any]], int]:
    """The run's lines by id, and how many lines could not be read."""
    lines: dict[str, dict[str, Any]] = {}
    unreadable = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            lines[str(row["id"])] = row
        except (ValueError, KeyError, TypeError):
            unreadable += 1
    return lines, unreadable


def score_one(record: LabelledRecord, row: Mapping[str, Any] | None, node: str) -> Scored:
    if row is None:
        return Scored(record.id, record.label, None, "missing", False, False, False, None,
                      "no line in the run's output", None, None, None)
    status = str(row.get("status"))
    traces = [t for t in row.get("nodes") or [] if isinstance(t, dict)]
    trace = next((t for t in traces if t.get("node") == node), None)
    if trace is None:
        predicted = None
        if status == "refused" and isinstance(row.get("output"), dict):
            category = str(row["output"].get("category", "refused"))
            predicted = GUARD_LABELS.get(category, category)
        reason = str(traces[-1].get("reason") or "") if traces else ""
        return Scored(record.id, record.label, predicted, status, False, False, False, None,
                      reason, None, None, predicted)
    escalated = bool(trace.get("escalated"))
    label = trace.get("label")
    output = row.get("output")
    if escalated:
        local = output.get("local") if isinstance(output, dict) else None
        local_label = local.get("label") if isinstance(local, dict) else None
    else:
        # A critical label taken with no planner call (a red flag holds, ``action: route``) is
        # the node's label; the model's own answer is the output's ``local_label``.
        own = output.get("local_label") if isinstance(output, dict) else None
        local_label = own if isinstance(own, str) else label
    return Scored(
        id=record.id, gold=record.label, predicted=label if isinstance(label, str) else None,
        status=status, reached=True, wanted=bool(trace.get("escalate")), escalated=escalated,
        critical=trace.get("critical"), reason=str(trace.get("reason") or ""),
        confidence=trace.get("confidence"), p_wrong=trace.get("p_wrong"),
        local_label=local_label)


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def class_order(labels: Sequence[str], critical: Sequence[str]) -> list[str]:
    """Emergency first, then the other critical labels, then the rest alphabetically."""
    first = [FIRST_CLASS] if FIRST_CLASS in labels else []
    crit = [c for c in critical if c in labels and c not in first]
    return first + crit + sorted(set(labels) - set(first) - set(crit))


def why_local(s: Scored, rule: NodeRule | None) -> str:
    """A reason for a trace that gives none (a node that stayed local without a note), built
    from the trace's numbers and the rule: which check did not fire."""
    if not s.reached:
        return f"never reached the node (status {s.status})"
    parts = ["stayed local"]
    below = rule.below if rule is not None else None
    if below is not None and s.confidence is not None:
        parts.append(f"confidence {s.confidence:.3f} >= {below:g}")
    router = getattr(rule, "router", None)
    if router is not None and router.above is not None and s.p_wrong is not None:
        parts.append(f"P(wrong) {s.p_wrong:.3f} < {router.above:g}")
    if rule is not None and rule.critical and s.critical is None:
        parts.append("no critical label fired")
    return "; ".join(parts) + " [derived: the trace gives no reason]"


def summarize(scored: Sequence[Scored], rule: NodeRule | None) -> dict[str, Any]:
    critical_labels = list(rule.critical) if rule is not None else []
    n = len(scored)
    correct = sum(s.correct for s in scored)
    escalated = [s for s in scored if s.escalated]
    kept = [s for s in scored if not s.escalated]
    per_class: dict[str, dict[str, Any]] = {}
    for label in class_order(sorted({s.gold for s in scored}), critical_labels):
        of = [s for s in scored if s.gold == label]
        hit = sum(s.correct for s in of)
        predicted_as = sum(s.predicted == label for s in scored)
        per_class[label] = {"n": len(of), "correct": hit, "recall": _ratio(hit, len(of)),
                            "precision": _ratio(hit, predicted_as)}
    emergencies = [s for s in scored if s.gold == FIRST_CLASS]
    missed = [{"id": s.id, "predicted": s.predicted, "status": s.status,
               "escalated": s.escalated, "wanted_planner": s.wanted, "critical": s.critical,
               "confidence": None if s.confidence is None else round(s.confidence, 4),
               "p_wrong": None if s.p_wrong is None else round(s.p_wrong, 4),
               "reason": (s.reason or why_local(s, rule))[:REASON_CHARS]}
              for s in emergencies if not s.correct]
    local_known = [s for s in scored if s.local_label is not None or not s.escalated]
    # Which records, by id: a simulation of the routing (benchmarks/cascade.py) runs neither the
    # budget nor the privacy boundary's egress check, so it needs them to compare like for like.
    kept_local = [{"id": s.id, "why": _why_kept(s.reason)}
                  for s in scored if s.wanted and not s.escalated]
    confusions = Counter((s.gold, s.predicted or "none") for s in scored if not s.correct)
    return {
        "n": n,
        "accuracy": _ratio(correct, n),
        "planner_share": _ratio(len(escalated), n),
        "wanted_share": _ratio(sum(s.wanted for s in scored), n),
        "emergency_recall": per_class.get(FIRST_CLASS, {}).get("recall"),
        "emergencies": len(emergencies),
        "missed_emergencies": len(missed),
        "missed_emergency_list": missed,
        "per_class_recall": {k: v["recall"] for k, v in per_class.items()},
        "per_class": per_class,
        "accuracy_escalated": _ratio(sum(s.correct for s in escalated), len(escalated)),
        "accuracy_kept_local": _ratio(sum(s.correct for s in kept), len(kept)),
        # The node's own answer everywhere (what the planner replaced, where it answered): the
        # local model's quality on this split, for reading the routing's numbers against.
        "local_only_accuracy": (_ratio(sum(s.local_label == s.gold for s in local_known), n)
                                if len(local_known) == n else None),
        "escalations": {
            "escalated": len(escalated),
            "critical": sum(s.critical is not None for s in escalated),
            "critical_any": sum(s.critical is not None for s in scored),
            "critical_routed_no_planner": sum(s.critical is not None and not s.wanted
                                              for s in scored),
            "wanted_not_escalated": len(kept_local),
            **{kind: sum(k["why"] == kind for k in kept_local)
               for kind in ("budget_blocked", "egress_blocked", "planner_failed", "pending")},
            "escalated_but_wrong": sum(not s.correct for s in escalated),
        },
        "kept_local": kept_local,
        "statuses": dict(sorted(Counter(s.status for s in scored).items())),
        "not_reaching_node": sum(not s.reached for s in scored),
        "confusions": [{"gold": g, "predicted": p, "n": k}
                       for (g, p), k in confusions.most_common()],
    }


def _why_kept(reason: str) -> str:
    """The kind of reason a node that asked for the planner kept its own answer."""
    for prefix, kind in (("budget_exhausted", "budget_blocked"),
                         ("planner failed", "planner_failed"), ("pending_escalation", "pending")):
        if reason.startswith(prefix):
            return kind
    return "egress_blocked" if "egress blocked" in reason else "other"


def check_targets(summary: Mapping[str, Any]) -> dict[str, Any]:
    recall, acc, share = (summary["emergency_recall"], summary["accuracy"],
                          summary["planner_share"])
    met = {
        "emergency_recall": recall is not None and recall >= TARGETS["emergency_recall_min"],
        "accuracy_at_share": (acc is not None and share is not None
                              and acc >= TARGETS["accuracy_min"]
                              and share <= TARGETS["planner_share_max"]),
    }
    return {"wanted": dict(TARGETS), "met": met | {"all": all(met.values())}}


# --- output -------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def tables(console: Console, results: Mapping[str, Any]) -> None:
    esc = results["escalations"]
    head = Table(title=f"{results['graph']} on {results['data']} (oracle planner)",
                 title_justify="left")
    for col in ("n", "accuracy", "planner share", "emergency recall", "missed emergencies",
                "escalated (critical)", "budget-blocked", "local-only acc.", "shoal run s"):
        head.add_column(col, justify="right")
    head.add_row(str(results["n"]), _f(results["accuracy"]), _f(results["planner_share"]),
                 _f(results["emergency_recall"]),
                 f"{results['missed_emergencies']} of {results['emergencies']}",
                 f"{esc['escalated']} ({esc['critical']})", str(esc["budget_blocked"]),
                 _f(results["local_only_accuracy"]), f"{results['shoal_run_s']:.1f}")
    console.print(head)

    pc = Table(title="per-class recall", title_justify="left")
    for col in ("class", "n", "recall", "precision"):
        pc.add_column(col, justify="left" if col == "class" else "right")
    for label, row in results["per_class"].items():
        pc.add_row(label, str(row["n"]), _f(row["recall"]), _f(row["precision"]))
    console.print(pc)

    if results["missed_emergency_list"]:
        me = Table(title="missed emergencies (trace reason, no text)", title_justify="left")
        for col in ("id", "predicted", "escalated", "confidence", "reason"):
            me.add_column(col)
        for m in results["missed_emergency_list"]:
            me.add_row(m["id"], str(m["predicted"]), "yes" if m["escalated"] else "no",
                       _f(m["confidence"]), m["reason"])
        console.print(me)

    match = results["oracle_matches"]
    console.print(
        f"oracle: {match['requests']} planner requests; matched exact {match['exact']}, "
        f"pseudonym numbering ignored {match['normalised']}, difflib fallback "
        f"{match['fallback']}; escalated but wrong {esc['escalated_but_wrong']}; "
        f"wanted the planner but kept local {esc['wanted_not_escalated']} (budget "
        f"{esc['budget_blocked']}, egress {esc['egress_blocked']}, failed "
        f"{esc['planner_failed']}, pending {esc['pending']})")

    wanted, met = results["targets"]["wanted"], results["targets"]["met"]
    tt = Table(title="targets (issue 13)", title_justify="left")
    for col in ("target", "wanted", "measured", "met"):
        tt.add_column(col)
    tt.add_row("emergency recall", f">= {wanted['emergency_recall_min']}",
               f"{_f(results['emergency_recall'])} ({results['missed_emergencies']} missed)",
               "yes" if met["emergency_recall"] else "NO")
    tt.add_row("accuracy at planner share", f">= {wanted['accuracy_min']} at <= "
               f"{wanted['planner_share_max']}",
               f"{_f(results['accuracy'])} at {_f(results['planner_share'])}",
               "yes" if met["accuracy_at_share"] else "NO")
    console.print(tt)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--graph", type=Path, default=GRAPH)
    parser.add_argument("--data", type=Path, default=DATA, help="labelled JSONL: id, text, label")
    parser.add_argument("--out", type=Path, default=RESULTS / "triage_oracle.json")
    parser.add_argument("--node", default=NODE, help="the node whose label is scored")
    parser.add_argument("--keep-run", type=Path, default=None,
                        help="also copy the run's JSONL here (default: a temporary file)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 150)
    started = time.perf_counter()
    graph, data = args.graph.resolve(), args.data.resolve()

    spec, _ = load_spec(graph)
    if args.node not in spec.nodes:
        raise SystemExit(f"graph {spec.name!r} has no node {args.node!r}")
    rule = resolve_rules(spec.nodes, spec.escalation, graph.parent).nodes.get(args.node)
    masking = masker_config(spec)
    records = read_records(data)

    with tempfile.TemporaryDirectory(prefix="shoal-triage-oracle-") as tmp_name:
        tmp = Path(tmp_name)
        run_out = tmp / "run.jsonl"
        with console.status("masking the data for the oracle planner"), \
                serve_oracle(records, **masking) as oracle:
            oracle_start_s = time.perf_counter() - started
            console.print(f"oracle planner on {oracle.base_url} ({len(records)} records masked "
                          f"in {oracle.index.mask_s:.1f} s); running shoal run ...")
            command, run_s, code, tail = run_cli(graph, data, run_out, tmp, oracle.base_url)
            matches = oracle.index.stats.to_dict()
        if code != 0 or not run_out.is_file():
            console.print(f"[red]shoal run exited {code}[/]\n{tail}")
            return 2
        lines, unreadable = read_run(run_out)
        if args.keep_run is not None:
            args.keep_run.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run_out, args.keep_run)

    scored = [score_one(r, lines.get(r.id), args.node) for r in records]
    summary = summarize(scored, rule)
    runtime = time.perf_counter() - started
    results: dict[str, Any] = {
        # The headline numbers, flat (README generators and issue checks read these).
        "accuracy": summary["accuracy"],
        "planner_share": summary["planner_share"],
        "emergency_recall": summary["emergency_recall"],
        "missed_emergencies": summary["missed_emergencies"],
        "n": summary["n"],
        "targets": check_targets(summary),
        "per_class_recall": summary["per_class_recall"],
        **{k: v for k, v in summary.items() if k not in (
            "accuracy", "planner_share", "emergency_recall", "missed_emergencies", "n",
            "per_class_recall")},
        "graph": shown(graph),
        "data": shown(data),
        "node": args.node,
        "node_rule": rule_for_results(rule),
        "command": " ".join(command),
        "env": {"SHOAL_PLANNER_URL": "http://127.0.0.1:<free port>/v1 (the oracle planner)",
                "SHOAL_PLANNER_MODEL": DEFAULT_MODEL, "SHOAL_OUTBOX": "<tmp>/outbox.sqlite",
                "SHOAL_AUDIT_LOG": "<tmp>/audit.jsonl"},
        "run_lines_unreadable": unreadable,
        "oracle_matches": matches,
        "oracle_masking": masking,
        "files_sha256_16": referenced_files(spec, graph.parent, rule),
        "git": git_state(),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
        "shoal_run_s": round(run_s, 1),
        "oracle_start_s": round(oracle_start_s, 1),
        "runtime_s": round(runtime, 1),
        "note": "the planner is an oracle (benchmarks/oracle_planner.py returns the gold label): "
                "the ceiling a strong LLM approaches, so these numbers measure the routing and "
                "the local model, not a planner",
    }
    tables(console, results)
    if matches["fallback"] or summary["escalations"]["escalated_but_wrong"]:
        console.print("[yellow]the oracle guessed (fallback) or an escalated record ended "
                      "wrong: check the harness before reading the numbers[/]")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {shown(args.out)}; runtime {runtime:.1f} s (shoal run {run_s:.1f} s)")
    return 1 if args.check and not results["targets"]["met"]["all"] else 0


if __name__ == "__main__":
    sys.exit(main())
