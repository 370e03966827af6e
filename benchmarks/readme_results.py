"""Render the README's "Results" block from benchmarks/results/*.json (never typed by hand).

Run: python benchmarks/readme_results.py            # rewrite the block in README.md
     python benchmarks/readme_results.py --check    # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def render() -> str:
    out: list[str] = []
    overhead = _load("overhead.json")
    if overhead:
        out += [
            "**Overhead** (`benchmarks/overhead.py`): the same 5-node no-op graph through shoal "
            "and through hand-written LangGraph, interleaved in one process.",
            "",
            "| | median ms / run | p95 ms |",
            "|---|---:|---:|",
            f"| LangGraph, hand-written | {overhead['langgraph_ms']:.2f} | "
            f"{overhead['langgraph_p95_ms']:.2f} |",
            f"| shoal, log level info | {overhead['shoal_ms']:.2f} | "
            f"{overhead['shoal_p95_ms']:.2f} |",
            f"| shoal, log level warning | {overhead['shoal_ms_quiet']:.2f} | "
            f"{overhead['shoal_p95_ms_quiet']:.2f} |",
            "",
            f"Ratio shoal / LangGraph: **{overhead['ratio']:.2f}** at info "
            f"({overhead['ratio_quiet']:.2f} with node events filtered out); target <= "
            f"{overhead['target']}. Measured {overhead['date'][:10]}, {overhead['n']} runs each.",
            "",
        ]
    models = _load("models.json")
    if models:
        out += [
            "**Models** (`benchmarks/models.py`): each backend operation on the embedded "
            "models, 2 CPU cores.",
            "",
            "| backend | operation | mode | p50 ms / call | p95 ms | items / s |",
            "|---|---|---|---:|---:|---:|",
        ]
        out += [
            f"| {r['backend']} | {r['op']} | {r['mode']} | {r['p50_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {r['throughput_per_s']:.1f} |"
            for r in models["rows"]
        ]
        out += ["", f"Measured {models['date'][:10]}.", ""]
    masking = _load("masking.json")
    if masking:
        out += [
            "**Masking** (`benchmarks/masking.py`): our masker (HIPAA Safe Harbor pack) vs "
            "vanilla Presidio (default recognizers, same spaCy model), side by side.",
            "",
            "| data | texts | identifier recall (shoal / Presidio) | F1 by type (shoal / "
            "Presidio) | F1 ignoring type | latency ratio |",
            "|---|---:|---|---|---|---:|",
        ]
        for key, label in (("generator", "presidio-evaluator sentences"),
                           ("clinical", "clinical fixture notes")):
            m = masking[key]
            rec, f1 = m["identifier_recall"], m["micro_f1"]
            out.append(
                f"| {label} | {m['texts']} | {rec['shoal']:.3f} / {rec['vanilla_presidio']:.3f} "
                f"| {f1['type_strict']['shoal']:.3f} / {f1['type_strict']['vanilla_presidio']:.3f}"
                f" | {f1['type_agnostic']['shoal']:.3f} / "
                f"{f1['type_agnostic']['vanilla_presidio']:.3f} | "
                f"{m['latency_ms']['ratio']:.2f} |")
        met = masking.get("targets_met_on_generator", {})
        misses = ", ".join(k for k, v in met.items() if not v) or "none"
        out += ["", f"Targets (recall >= {masking['targets']['identifier_recall']}, F1 +"
                    f"{masking['targets']['f1_delta']} over Presidio, <= "
                    f"{masking['targets']['latency_ratio']}x its latency) not met on the "
                    f"generator set: {misses}.", ""]
    if not out:
        out = ["No benchmark results yet: run `make bench`.", ""]
    return "\n".join(out).rstrip() + "\n"


def splice(readme: str, block: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the {START} / {END} markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    current = README.read_text()
    updated = splice(current, render())
    if args.check:
        if updated != current:
            print("README.md results are out of date: run python benchmarks/readme_results.py")
            sys.exit(1)
        return
    README.write_text(updated)
    print("README.md results updated")


if __name__ == "__main__":
    main()
