"""The plan-mode benchmark (issue 20): how many of the requests in multi-request messages reach the
right specialist, for the single-label cascade, the local splitter alone and plan mode.

Data: examples/healthcare/data/multi_test.jsonl (240 messages of two or three requests, each
request marked ``parts: [{label, text}]``), family-disjoint from multi_dev.jsonl, the split the
splitter's thresholds were chosen on (``--tune``); and the single-request messages of test.jsonl
(those without ``hard``), for what the splitter does to them.

Graph: the healthcare cascade's own nodes up to the routing decision (guard -> mask -> triage ->
split, configs, escalation policies and budget as in examples/healthcare/cascade.yaml): a step's
target is where the cascade sends it, so the replies need not be written to score the routing.
Two variants: ``local`` (the splitter with ``plan`` off) and ``plan`` (as shipped).

Scoring, per message, from the run's traces (never the text):
  gold            the labels of its parts (one request per label, as the splitter makes one step
                  per label).
  single_label    the triage node's label, planner's if it escalated (local run): what a graph
                  without the splitter answers. A run the guard refused answers ``injection``.
  splitter        the labels of the splitter's steps (its own label when it made none), local run.
  plan_mode       the same, plan run.
  intents_handled gold labels answered / gold labels (micro over messages); ``emergency_recall``
                  the same for the emergency parts alone; ``extra_per_message`` answered labels
                  that were not asked; ``exact`` messages answered with exactly their labels.
  planner calls   per message, from each run's metered cost (triage escalations and plans).
  cache           plan cache hits / (hits + misses) over the stream, in the order of the file.
Single-request messages: the share split into steps, the share whose whole-message label changed
(it must be none: the splitter keeps triage's label), and triage accuracy.

Planners: ``live`` is the embedded SmolLM2-135M behind a real ``llama_cpp.server`` on 127.0.0.1
(``serve_embedded``; SHOAL_PLANNER_URL overrides it): a weak planner, the number a user of the
defaults gets. ``oracle`` is benchmarks/oracle_planner.py: it answers every request from the
answer key (labels, and for a plan the gold parts located in the masked message): a ceiling for
the routing, not a model. The headline ``plan_mode`` is the live one; the oracle's is reported
beside it as ``plan_mode_oracle``.

Run: python benchmarks/plan.py [--planner live|oracle|both] [--limit N] [--single-n N]
[--tune] [--dev --out FILE] [--out benchmarks/results/plan.json]. ``--tune`` scores the
splitter's thresholds on the dev splits only (multi_dev.jsonl, dev.jsonl's single requests and
alarms_dev.jsonl), local, prints a table and writes benchmarks/results/plan_tune.json;
``--dev`` runs the whole benchmark on the dev splits (for choosing settings such as which
segments count as unsure).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import shoal
from shoal.agents.plans import steps_of
from shoal.agents.splitter import IntentSplitter, SplitterConfig
from shoal.agents.splitting import Segment, segments
from shoal.graphs.loader import load_spec
from shoal.graphs.results import RunResult
from shoal.models.local_server import serve_embedded

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "healthcare"
                       / "data"))
from make_asides import with_asides  # the example's generator: one aside put in a message

from oracle_planner import LabelledRecord, serve_oracle  # the sibling test double

ROOT = Path(__file__).resolve().parent.parent
HEALTH = ROOT / "examples" / "healthcare"
CASCADE = HEALTH / "cascade.yaml"
MULTI_TEST = HEALTH / "data" / "multi_test.jsonl"
MULTI_DEV = HEALTH / "data" / "multi_dev.jsonl"
TEST = HEALTH / "data" / "test.jsonl"
DEV = HEALTH / "data" / "dev.jsonl"
ALARMS_DEV = HEALTH / "data" / "alarms_dev.jsonl"
ASIDES = {split: HEALTH / "data" / f"asides_{split}.jsonl" for split in ("dev", "test")}
"""Small talk of families the clause model never saw (make_asides.py), put into single requests
to check that it adds no step."""
ASIDE_SEED = 20261207
RESULTS = ROOT / "benchmarks" / "results"
ROUTING_NODES = ("guard", "mask", "triage", "split")
TARGETS = {"intents_handled": 0.90, "planner_calls_per_message": 1.0}
SINGLE_SPLIT_MAX = 0.05
"""At most this share of single-request messages split into steps (the integration test allows
1 of 20)."""


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def gold_labels(row: Mapping[str, Any]) -> list[str]:
    """The message's requests, one per label, in order of their parts."""
    labels = [p["label"] for p in row.get("parts") or []] or list(row.get("labels") or []) \
        or [row["label"]]
    return list(dict.fromkeys(labels))


def routing_spec(plan: bool, workdir: Path | None = None) -> dict[str, Any]:
    """The cascade up to its routing decision; ``plan`` False turns plan mode off. With a
    ``workdir``, its escalation policies are written there with the rules of these nodes only
    (a policy may not name a node the graph lacks)."""
    spec = yaml.safe_load(CASCADE.read_text(encoding="utf-8"))
    spec["name"] = "plan-bench"
    spec["nodes"] = {k: v for k, v in spec["nodes"].items() if k in ROUTING_NODES}
    if not plan:
        spec["nodes"]["split"].pop("plan", None)
    spec["models"].pop("slm", None)
    # The spec is written to a temporary folder: every path in it made absolute.
    for model in spec["models"].values():
        if "path" in model:
            model["path"] = str(HEALTH / model["path"])
    policies = []
    for i, name in enumerate(spec["escalation"]["policies"]):
        policy = yaml.safe_load((HEALTH / name).read_text(encoding="utf-8"))
        policy["nodes"] = {k: v for k, v in policy.get("nodes", {}).items()
                           if k in ROUTING_NODES}
        if workdir is not None:
            path = workdir / f"policy-{i}.yaml"
            path.write_text(yaml.safe_dump(policy, sort_keys=False), encoding="utf-8")
            policies.append(str(path))
    spec["escalation"]["policies"] = policies
    learn = spec["nodes"]["triage"].get("learn")
    if learn:
        learn["train"] = [str(HEALTH / p) for p in learn["train"]]
        learn["eval"] = str(HEALTH / learn["eval"])
    spec["edges"] = [" -> ".join(ROUTING_NODES)]
    spec["output"] = "split"
    return spec


def build_graph(plan: bool, workdir: Path, env: Mapping[str, str]) -> shoal.Graph:
    path = workdir / f"routing-{'plan' if plan else 'local'}.yaml"
    path.write_text(yaml.safe_dump(routing_spec(plan, workdir), sort_keys=False),
                    encoding="utf-8")
    spec, source = load_spec(path, env)
    return shoal.Graph(spec, base_dir=HEALTH, source=source, checked=True)


def trace(result: RunResult, node: str) -> Any | None:
    return next((n for n in result.nodes if n.node == node), None)


def answered(result: RunResult, mode: str) -> list[str]:
    """The labels the graph answers a message with, in ``mode``."""
    if result.status == "refused" and trace(result, "triage") is None:
        return ["injection"]  # the guard refused it: the whole message is declined
    triage = trace(result, "triage")
    if triage is None or triage.label is None:
        return []
    if mode == "single_label":
        return [triage.label]
    return [s["label"] for s in steps_of(trace(result, "split"))] or [triage.label]


def plan_info(result: RunResult) -> dict[str, Any]:
    split = trace(result, "split")
    out = split.output if split is not None and isinstance(split.output, dict) else {}
    plan = out.get("plan")
    return dict(plan) if isinstance(plan, dict) else {}


def score(rows: Sequence[Mapping[str, Any]], results: Sequence[RunResult],
          mode: str) -> dict[str, Any]:
    asked = handled = emergencies = emergencies_handled = extra = exact = calls = 0
    sources: Counter[str] = Counter()
    cache: Counter[str] = Counter()
    problems = 0
    errors = 0
    missed: list[str] = []
    per_label: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row, result in zip(rows, results, strict=True):
        gold = gold_labels(row)
        got = answered(result, mode)
        errors += result.status == "error"
        asked += len(gold)
        handled += len(set(gold) & set(got))
        for label in gold:
            per_label[label][0] += 1
            per_label[label][1] += label in got
        emergencies += "emergency" in gold
        emergencies_handled += "emergency" in gold and "emergency" in got
        if "emergency" in gold and "emergency" not in got:
            missed.append(row["id"])
        extra += len(set(got) - set(gold))
        exact += set(got) == set(gold)
        calls += result.cost.planner_calls if result.cost is not None else 0
        if mode != "single_label":
            plan = plan_info(result)
            if plan:
                sources[str(plan.get("source"))] += 1
                if plan.get("cache"):
                    cache[str(plan["cache"])] += 1
                problems += len(plan.get("problems") or [])
    n = len(rows)
    lookups = cache["hit"] + cache["miss"]
    out: dict[str, Any] = {
        "messages": n, "intents": asked, "intents_handled": round(handled / asked, 4),
        "emergency_parts": emergencies,
        "emergency_recall": round(emergencies_handled / emergencies, 4) if emergencies else None,
        "emergencies_missed": missed,
        "handled_per_label": {k: round(v[1] / v[0], 4) for k, v in sorted(per_label.items())},
        "extra_per_message": round(extra / n, 4), "exact_share": round(exact / n, 4),
        "planner_calls_per_message": round(calls / n, 4), "errors": errors}
    if mode != "single_label":
        out.update(plan_sources=dict(sources), plan_problems=problems,
                   cache={"hits": cache["hit"], "misses": cache["miss"],
                          "hit_rate": round(cache["hit"] / lookups, 4) if lookups else None})
    return out


def score_single(rows: Sequence[Mapping[str, Any]], results: Sequence[RunResult]
                 ) -> dict[str, Any]:
    split = relabelled = right = calls = 0
    split_ids: list[str] = []
    for row, result in zip(rows, results, strict=True):
        triage, node = trace(result, "triage"), trace(result, "split")
        label = triage.label if triage is not None else "injection"
        right += label == row["label"]
        calls += result.cost.planner_calls if result.cost is not None else 0
        if node is None:
            continue
        relabelled += node.label != label
        if steps_of(node):
            split += 1
            split_ids.append(row["id"])
    n = len(rows)
    return {"messages": n, "split_share": round(split / n, 4), "split_ids": split_ids[:20],
            "label_changed": relabelled, "triage_accuracy": round(right / n, 4),
            "planner_calls_per_message": round(calls / n, 4)}


async def run_all(graph: shoal.Graph, rows: Sequence[Mapping[str, Any]], what: str,
                  progress: Progress) -> list[RunResult]:
    """One message at a time, in file order (the plan cache sees the stream as deployed; the
    planner answers one request at a time)."""
    task = progress.add_task(what, total=len(rows))
    out = []
    for row in rows:
        out.append(await graph.arun(row["text"], id=row["id"]))
        progress.advance(task)
    return out


@contextmanager
def planner(kind: str, records: Sequence[LabelledRecord]) -> Iterator[dict[str, str]]:
    """The env that points the graph at the planner ``kind``: the oracle (a thread of this
    process) or the embedded model behind a real llama_cpp.server (or SHOAL_PLANNER_URL)."""
    if kind == "oracle":
        with serve_oracle(records) as oracle:
            yield {"SHOAL_PLANNER_URL": oracle.base_url, "SHOAL_PLANNER_MODEL": "oracle"}
        return
    if os.environ.get("SHOAL_PLANNER_URL"):
        yield {"SHOAL_PLANNER_URL": os.environ["SHOAL_PLANNER_URL"],
               "SHOAL_PLANNER_MODEL": os.environ.get("SHOAL_PLANNER_MODEL",
                                                     "smollm2-135m-instruct")}
        return
    with serve_embedded(warmup=True) as server:
        yield {"SHOAL_PLANNER_URL": server.base_url, "SHOAL_PLANNER_MODEL": server.model_id}


def measure(kind: str, multi: list[dict[str, Any]], single: list[dict[str, Any]],
            chatty: list[dict[str, Any]], console: Console) -> dict[str, Any]:
    """``chatty``: the single requests with an aside put in (the oracle answers them as their
    plain twins: the same request, the same label)."""
    records = [LabelledRecord(r["id"], r["text"], r["label"],
                              tuple((p["label"], p["text"]) for p in r.get("parts") or []))
               for r in [*multi, *single, *chatty]]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, planner(kind, records) as env:
        work = Path(tmp)
        # Fresh state per planner: outbox, ledger, budget and audit log in a temporary folder.
        os.environ.update(SHOAL_OUTBOX=str(work / "outbox.sqlite"),
                          SHOAL_AUDIT_LOG=str(work / "audit.jsonl"))
        full_env = {**os.environ, **env}
        started = time.perf_counter()
        with Progress(console=console, transient=True) as progress:
            local = build_graph(False, work, full_env)
            local_runs = asyncio.run(run_all(local, multi, f"{kind}: local", progress))
            plan = build_graph(True, work, full_env)
            plan_runs = asyncio.run(run_all(plan, multi, f"{kind}: plan mode", progress))
            fresh = build_graph(True, work, full_env)  # an empty plan cache
            single_runs = asyncio.run(run_all(fresh, single, f"{kind}: single", progress))
            fresh = build_graph(True, work, full_env)
            chatty_runs = asyncio.run(run_all(fresh, chatty, f"{kind}: single + aside",
                                              progress))
        out["single_label"] = score(multi, local_runs, "single_label")
        out["splitter"] = score(multi, local_runs, "splitter")
        out["plan_mode"] = score(multi, plan_runs, "plan_mode")
        out["single_requests"] = score_single(single, single_runs)
        out["single_requests_with_asides"] = score_single(chatty, chatty_runs)
        out["seconds"] = round(time.perf_counter() - started, 1)
    return out


# --- --tune: the splitter's thresholds on the dev splits ------------------------------------------


GRID_NEW_PART = (0.6, 0.7)
GRID_FOLLOW = (0.4, 0.5)
GRID_FLOOR = (0.0, 0.1, 0.3)
GRID_TOP = (False, True)
GRID_QUIET = (0.4, 0.8)
TRIAGE_FLOOR = 0.1336
"""The triage node's emergency floor (policies/triage-calibrated.yaml): ``--tune`` counts a
whole-message emergency at it, without the red flags and the planner the graph adds."""


def tune(console: Console) -> list[dict[str, Any]]:
    """Each threshold set of the grid on the dev splits, the local splitter alone: intents
    handled and emergency recall on multi_dev.jsonl, single requests of dev.jsonl split and
    given an emergency part that is not one, and the same false alarms on alarms_dev.jsonl
    (no-emergency messages full of emergency words, families the clause model never saw).
    The grid runs on the split node's own model; the triage model, the splitter's model
    before it, is scored beside it at the shipped thresholds."""
    multi = read_rows(MULTI_DEV)
    single = [r for r in read_rows(DEV) if not r.get("hard")]
    alarms = read_rows(ALARMS_DEV)
    chatty = with_asides(single, read_rows(ASIDES["dev"]), ASIDE_SEED)
    env = {**os.environ, "SHOAL_PLANNER_URL": "http://127.0.0.1:9/v1"}
    base = routing_spec(False)["nodes"]["split"]
    Inputs = list[tuple[dict[str, Any], list[Segment], list[Any], float]]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(SHOAL_OUTBOX=str(Path(tmp) / "outbox.sqlite"),
                          SHOAL_AUDIT_LOG=str(Path(tmp) / "audit.jsonl"))
        graph = build_graph(False, Path(tmp), env)
        models = {base["model"]: graph.models[base["model"]], "triage": graph.models["triage"]}
        from shoal.policies import privacy
        detector = privacy.detector("hipaa_safe_harbor")

        async def labelled(rows: list[dict[str, Any]]) -> dict[str, Inputs]:
            """Each row masked and cut once; its segments labelled by every model, the whole
            message by triage."""
            out: dict[str, Inputs] = {name: [] for name in models}
            for row in rows:
                text = detector.mask(row["text"], mode="pseudonymize").masked
                segs = segments(text)
                [whole] = await models["triage"].classify([text])
                for name, model in models.items():
                    probs = await model.classify([s.text for s in segs]) if segs else []
                    out[name].append((row, segs, probs, whole.get("emergency", 0.0)))
            return out

        per_set = [asyncio.run(labelled(rows)) for rows in (multi, single, alarms, chatty)]
        inputs = {name: tuple(found[name] for found in per_set) for name in models}

    shipped = (base["new_part"], base["follow_below"], base["floors"]["emergency"],
               base.get("red_flags"), bool(base.get("critical_top", False)),
               base.get("quiet_new_part", 0.8))
    grid = [(base["model"], *point) for point in itertools.product(
        GRID_NEW_PART, GRID_FOLLOW, GRID_FLOOR, (base.get("red_flags"), None), GRID_TOP,
        GRID_QUIET)]
    if base["model"] != "triage":  # the splitter's model before, at its thresholds and these
        grid += [("triage", *shipped[:2], floor, shipped[3], top, 0.8)
                 for floor in (0.0, 0.1) for top in GRID_TOP]
    table = []
    for name, new_part, follow, floor, flags, top, quiet in grid:
        if follow > new_part or (flags is None and floor == 0.0):
            continue  # a floor of 0 with no red flag to bear it out: every segment
        cfg = {k: v for k, v in base.items() if k not in ("agent", "model")}
        cfg.update(new_part=new_part, follow_below=follow, floors={"emergency": floor},
                   red_flags=flags, critical_top=top, quiet_new_part=quiet)
        if name == "triage":
            cfg["asides"] = []  # the triage model has no aside label
        agent = IntentSplitter(SplitterConfig.model_validate(cfg), node="split",
                               model=models[name])
        multi_in, single_in, alarms_in, chatty_in = inputs[name]
        asked = handled = em = em_handled = unsure = 0
        for row, segs, probs, whole in multi_in:
            found = agent.split(segs, probs)
            gold = set(gold_labels(row))
            got = set(found.labels)
            if len(got) > 1 and whole >= TRIAGE_FLOOR:
                got.add("emergency")  # the whole message's emergency (splitter.py)
            asked += len(gold)
            handled += len(gold & got)
            em += "emergency" in gold
            em_handled += "emergency" in gold and "emergency" in got
            unsure += not found.sure
        singles = [(row["label"], agent.split(s, p)) for row, s, p, _ in single_in]
        false_alarms = sum(row["label"] != "emergency" and "emergency" in agent.split(s, p).labels
                           for row, s, p, _ in alarms_in)
        table.append({"model": name, "new_part": new_part, "follow_below": follow,
                      "floor": floor, "red_flags": flags or "-", "critical_top": top,
                      "quiet_new_part": quiet,
                      "intents_handled": round(handled / asked, 4),
                      "emergency_recall": round(em_handled / em, 4),
                      "unsure_share": round(unsure / len(multi), 4),
                      "single_split_share": round(sum(f.multi for _, f in singles)
                                                  / len(single), 4),
                      "single_false_emergency": sum(gold != "emergency" and "emergency"
                                                    in f.labels for gold, f in singles),
                      "aside_split_share": round(sum(agent.split(s, p).multi
                                                     for _, s, p, _ in chatty_in)
                                                 / len(chatty), 4),
                      "alarms_false_emergency": f"{false_alarms}/"
                                                f"{sum(r['label'] != 'emergency' for r in alarms)}",
                      "shipped": (name, new_part, follow, floor, flags, top, quiet)
                                 == (base["model"], *shipped)})
    view = Table(title=f"splitter thresholds on the dev splits ({len(multi)} multi, "
                       f"{len(single)} single, {len(alarms)} alarm look-alikes)")
    for key in table[0]:
        view.add_column(key, justify="right")
    for line in table:
        view.add_row(*(str(v) for v in line.values()))
    console.print(view)
    return table


# --- report ---------------------------------------------------------------------------------------


def report(results: Mapping[str, Any], console: Console) -> None:
    view = Table(title="Requests routed to the right specialist (multi_test.jsonl)")
    for col in ("mode", "intents handled", "emergency parts", "extra / msg", "exact",
                "planner calls / msg", "cache hit rate"):
        view.add_column(col, justify="right" if col != "mode" else "left")
    for key in ("single_label", "splitter", "plan_mode", "plan_mode_oracle"):
        m = results.get(key)
        if not m:
            continue
        hit = (m.get("cache") or {}).get("hit_rate")
        view.add_row(key, f"{m['intents_handled']:.3f}", f"{m['emergency_recall']:.3f}",
                     f"{m['extra_per_message']:.3f}", f"{m['exact_share']:.3f}",
                     f"{m['planner_calls_per_message']:.3f}",
                     "" if hit is None else f"{hit:.3f}")
    console.print(view)
    for key in ("single_requests", "single_requests_with_asides", "single_requests_oracle"):
        s = results.get(key)
        if s:
            console.print(f"{key}: {s['messages']} messages, split into steps "
                          f"{s['split_share']:.3f}, label changed {s['label_changed']}, "
                          f"triage accuracy {s['triage_accuracy']:.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--planner", choices=("live", "oracle", "both"), default="both")
    parser.add_argument("--limit", type=int, default=None,
                        help="the first N multi-request messages only (a quick look)")
    parser.add_argument("--single-n", type=int, default=200,
                        help="single-request messages of test.jsonl to run (first N)")
    parser.add_argument("--tune", action="store_true",
                        help="score the splitter's thresholds on the dev splits and stop")
    parser.add_argument("--dev", action="store_true",
                        help="the dev splits (multi_dev.jsonl, dev.jsonl) instead of test, for "
                             "choosing settings; needs --out")
    parser.add_argument("--out", type=Path, default=RESULTS / "plan.json")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    if args.tune:
        table = tune(console)
        out = RESULTS / "plan_tune.json"
        out.write_text(json.dumps({"dev_splits": [str(p.relative_to(ROOT)) for p in
                                                  (MULTI_DEV, DEV, ALARMS_DEV, ASIDES["dev"])],
                                   "grid": table}, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {out}")
        return 0
    if args.dev and args.out == RESULTS / "plan.json":
        parser.error("--dev writes no benchmark result: give --out")
    multi_path, single_path = (MULTI_DEV, DEV) if args.dev else (MULTI_TEST, TEST)
    multi = read_rows(multi_path)[:args.limit]
    single = [r for r in read_rows(single_path) if not r.get("hard")][:args.single_n]
    asides = ASIDES["dev" if args.dev else "test"]
    chatty = with_asides(single, read_rows(asides), ASIDE_SEED)
    kinds = ("live", "oracle") if args.planner == "both" else (args.planner,)
    measured = {kind: measure(kind, multi, single, chatty, console) for kind in kinds}
    head = measured.get("live") or measured["oracle"]
    results: dict[str, Any] = {
        "single_label": head["single_label"], "splitter": head["splitter"],
        "plan_mode": head["plan_mode"], "single_requests": head["single_requests"],
        "single_requests_with_asides": head["single_requests_with_asides"],
        "planner": ("embedded SmolLM2-135M-Instruct behind a real llama_cpp.server"
                    if "live" in measured else "ORACLE (answers from the gold parts)")}
    if "live" in measured and "oracle" in measured:
        oracle = measured["oracle"]
        results.update(plan_mode_oracle=oracle["plan_mode"],
                       splitter_oracle=oracle["splitter"],
                       single_requests_oracle=oracle["single_requests"])
    pm = results["plan_mode"]
    results["targets"] = {
        **TARGETS, "single_split_max": SINGLE_SPLIT_MAX,
        "met": {"intents_handled": pm["intents_handled"] >= TARGETS["intents_handled"],
                "planner_calls_per_message":
                    pm["planner_calls_per_message"] <= TARGETS["planner_calls_per_message"],
                "single_requests_unaffected":
                    results["single_requests"]["label_changed"] == 0
                    and results["single_requests"]["split_share"] <= SINGLE_SPLIT_MAX}}
    if "plan_mode_oracle" in results:
        oracle_pm = results["plan_mode_oracle"]
        results["targets"]["met_oracle"] = {
            "intents_handled": oracle_pm["intents_handled"] >= TARGETS["intents_handled"],
            "planner_calls_per_message":
                oracle_pm["planner_calls_per_message"] <= TARGETS["planner_calls_per_message"]}
    results["data"] = {"multi": str(multi_path.relative_to(ROOT)), "multi_messages": len(multi),
                       "single": str(single_path.relative_to(ROOT)),
                       "single_messages": len(single),
                       "asides": str(asides.relative_to(ROOT))}
    results["seconds"] = {k: m["seconds"] for k, m in measured.items()}
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    report(results, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
