"""Throughput of shoal's local path beside spaCy and Presidio, side by side in one run.

On the healthcare test split (635 messages), two cores, one process:

* ``spacy_pipe``: spaCy's ``nlp.pipe`` alone with the masker's own pipeline (the small English
  model, parser excluded, as the masker loads it): what every spaCy-based masker pays at least.
* ``presidio_per_call``: vanilla Presidio's ``AnalyzerEngine.analyze`` per message (its default
  recognizers, the same spaCy model; the e-mail recognizer made offline).
* ``presidio_batch``: the same analyzer through Presidio's ``BatchAnalyzerEngine``.
* ``minilm_embed``: the embedded MiniLM alone over the same messages, batched on every core; the
  local path embeds each message twice, so with spaCy it bounds the path (``local_path_ceiling``).
* ``shoal_mask``: a graph of the privacy masker alone, through ``Graph.abatch``.
* ``shoal_local``: the healthcare cascade's local path (guard -> mask -> triage, no generation,
  nothing escalates: the planner is not reached) through ``Graph.abatch``.

Each shoal graph runs with default settings (micro-batching on) and with micro-batching off
(``batch: {max_size: 1}`` on every model and the masker), at concurrency 1, 8 and 64 (and at
``Graph.abatch``'s default); per message the run's own latency, p50 and p95. Every variant's
masks and labels are compared with the unbatched run's: they must be identical.

Results: ``benchmarks/results/throughput.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import spacy
from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import SpacyNlpEngine

import shoal
from shoal.graphs.runtime import DEFAULT_CONCURRENCY
from shoal.models.onnx import OnnxEmbedder
from shoal.policies import privacy
from shoal.testing import split_numbers

ROOT = Path(__file__).resolve().parent.parent
HEALTH = ROOT / "examples" / "healthcare"
TEST = HEALTH / "data" / "test.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "throughput.json"
CONCURRENCY = (1, 8, 64)
TARGET_VS_SPACY = 0.8
TARGET_P95_RATIO = 2.0

OFF = "{max_size: 1}"


def graph_yaml(local: bool, batched: bool) -> str:
    batch = "" if batched else f", batch: {OFF}"
    models = (
        "models:\n"
        f"  guard: {{kind: onnx-classifier, path: {HEALTH / 'models' / 'guard.onnx'}{batch}}}\n"
        f"  triage: {{kind: onnx-classifier, path: {HEALTH / 'models' / 'triage.onnx'}{batch}}}\n"
    ) if local else ""
    mask = f"  mask: {{agent: privacy_masker, pack: hipaa_safe_harbor{batch}}}\n"
    if not local:
        return f"shoal: 1\nname: mask-only\nnodes:\n{mask}edges: []\n"
    return (f"shoal: 1\nname: local-path\n{models}nodes:\n"
            "  guard: {agent: input_guard, model: guard}\n"
            f"{mask}"
            "  triage: {agent: classifier, model: triage}\n"
            "edges: [guard -> mask -> triage]\n")


def texts() -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in TEST.read_text().splitlines() if line.strip()]
    return [(r["id"], r["text"]) for r in rows]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def outputs(results: list[Any]) -> list[Any]:
    """What must not change with batching: each run's status and each node's label, escalation
    and output other than its numbers (masked text, entity types and spans, the guard's
    verdict). Numbers are compared apart (:func:`largest_difference`): the embedder's float
    arithmetic differs in the last bits with the shape of its batch."""
    return [(r.status, [(n.node, n.label, n.escalated, split_numbers(n.output)[0])
                        for n in r.nodes]) for r in results]


def largest_difference(a: list[Any], b: list[Any]) -> float:
    """The largest difference between any two corresponding numbers of two runs' outputs."""
    pairs = [(x, y) for ra, rb in zip(a, b, strict=True)
             for na, nb in zip(ra.nodes, rb.nodes, strict=True)
             for x, y in zip(split_numbers(na.output)[1], split_numbers(nb.output)[1],
                             strict=False)]
    return max((abs(x - y) for x, y in pairs), default=0.0)


def run_graph(path: Path, data: list[tuple[str, str]], concurrency: int) -> dict[str, Any]:
    graph = shoal.Graph.from_yaml(path)
    # Warm: load every model, so the timing is steady-state work.
    asyncio.run(graph.abatch([{"id": "warm", "text": data[0][1]}], concurrency=1))
    started = time.perf_counter()
    results = asyncio.run(graph.abatch([{"id": i, "text": t} for i, t in data],
                                       concurrency=concurrency))
    wall = time.perf_counter() - started
    bad = [r.id for r in results if r.status == "error"]
    lat = [r.latency_ms for r in results if r.latency_ms is not None]
    return {"concurrency": concurrency, "msg_per_s": round(len(data) / wall, 1),
            "p50_ms": round(percentile(lat, 0.5), 1), "p95_ms": round(percentile(lat, 0.95), 1),
            "errors": len(bad), "_results": results}


def timed(fn: Callable[[], object], n: int) -> dict[str, Any]:
    started = time.perf_counter()
    fn()
    wall = time.perf_counter() - started
    return {"msg_per_s": round(n / wall, 1), "seconds": round(wall, 2)}


def baselines(data: list[str]) -> dict[str, Any]:
    pack = privacy.detector("hipaa_safe_harbor").pack
    nlp = spacy.load(pack.spacy_model, exclude=["parser"])
    list(nlp.pipe(data[:32]))
    out = {"spacy_pipe": timed(lambda: list(nlp.pipe(data)), len(data))}

    class Engine(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": nlp}  # type: ignore[assignment]

    engine = Engine(models=[{"lang_code": "en", "model_name": pack.spacy_model}])
    engine.load()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=engine)
    registry.remove_recognizer("EmailRecognizer")
    registry.add_recognizer(privacy.offline_email_recognizer())
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine)
    analyzer.analyze(data[0], language="en")
    out["presidio_per_call"] = timed(
        lambda: [analyzer.analyze(t, language="en") for t in data], len(data))
    batch = BatchAnalyzerEngine(analyzer_engine=analyzer)
    out["presidio_batch"] = timed(
        lambda: list(batch.analyze_iterator(data, language="en", batch_size=32)), len(data))
    # The local path embeds each message twice (the guard reads the raw text, triage the masked
    # one) with the same MiniLM: its rate alone, on every core, bounds the path.
    embedder = OnnxEmbedder()
    embedder.embed_sync(data[:32])
    out["minilm_embed"] = timed(lambda: embedder.embed_sync(data), len(data))
    out["local_path_ceiling"] = {"msg_per_s": round(1.0 / (
        2.0 / out["minilm_embed"]["msg_per_s"] + 1.0 / out["spacy_pipe"]["msg_per_s"]), 1),
        "how": "one spaCy nlp.pipe pass and two MiniLM passes per message, nothing else"}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--limit", type=int, default=0, help="first N messages only (a quick look)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = texts()
    if args.limit:
        data = data[:args.limit]
    plain = [t for _, t in data]
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/throughput.py" + (f" --limit {args.limit}"
                                                         if args.limit else ""),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "spacy": version("spacy"), "presidio": version("presidio-analyzer"),
                    "onnxruntime": version("onnxruntime")},
        "messages": len(data), "default_concurrency": DEFAULT_CONCURRENCY,
    }
    print(f"{len(data)} messages; baselines...", file=sys.stderr)
    report["baselines"] = baselines(plain)
    spacy_rate = report["baselines"]["spacy_pipe"]["msg_per_s"]
    levels = sorted({*CONCURRENCY, DEFAULT_CONCURRENCY})
    with tempfile.TemporaryDirectory() as tmp:
        for name, local in (("shoal_mask", False), ("shoal_local", True)):
            variant: dict[str, Any] = {}
            reference: list[Any] | None = None
            for batched in (False, True):
                path = Path(tmp) / f"{name}-{batched}.yaml"
                path.write_text(graph_yaml(local, batched))
                rows = []
                for c in levels:
                    print(f"{name} batched={batched} concurrency={c}...", file=sys.stderr)
                    row = run_graph(path, data, c)
                    got = row.pop("_results")
                    reference = reference or got
                    row["same_results_as_unbatched"] = outputs(got) == outputs(reference)
                    diff = largest_difference(got, reference)
                    row["largest_number_difference"] = float(f"{diff:.2g}")
                    rows.append(row)
                    print(f"  {row}", file=sys.stderr)
                variant["batched" if batched else "unbatched"] = rows
            default = next(r for r in variant["batched"]
                           if r["concurrency"] == DEFAULT_CONCURRENCY)
            unb8 = next(r for r in variant["unbatched"] if r["concurrency"] == 8)
            b8 = next(r for r in variant["batched"] if r["concurrency"] == 8)
            variant["vs_spacy_pipe"] = round(default["msg_per_s"] / spacy_rate, 3)
            variant["p95_c8_vs_unbatched"] = round(b8["p95_ms"] / unb8["p95_ms"], 3)
            variant["identical"] = all(r["same_results_as_unbatched"]
                                       for rows in (variant["batched"], variant["unbatched"])
                                       for r in rows)
            report[name] = variant
    local = report["shoal_local"]
    report["targets"] = {
        "local_vs_spacy_pipe": {"value": local["vs_spacy_pipe"], "target": TARGET_VS_SPACY,
                                "met": local["vs_spacy_pipe"] >= TARGET_VS_SPACY},
        "p95_c8_vs_unbatched": {"value": local["p95_c8_vs_unbatched"],
                                "target": TARGET_P95_RATIO,
                                "met": local["p95_c8_vs_unbatched"] <= TARGET_P95_RATIO},
        "identical_results": {"value": local["identical"] and report["shoal_mask"]["identical"],
                              "met": local["identical"] and report["shoal_mask"]["identical"]},
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("baselines", "targets")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
