"""The healthcare cascade on the test messages, with a local planner: what `make demo` runs.

    python examples/healthcare/demo.py [--per-class 15 | --all] [--output out/healthcare.jsonl]

Starts the embedded stand-in planner (llama_cpp.server on 127.0.0.1 serving SmolLM2-135M,
stopped at the end) unless SHOAL_PLANNER_URL points at a real one, runs
examples/healthcare/cascade.yaml over a stratified sample of the test split (every message with
--all), writes one result line per message (as `shoal run` does; `shoal report` reads it) and
prints per-class accuracy, escalation share per node, latency and money, and four sample
exchanges (the last a message with several requests and its one reply): the message as the
models saw it (masked) and the reply that went out (the patient reads their own name where it
shows ``[NAME_1]``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import shoal
from shoal.graphs.report import Summary, render_summary
from shoal.observability import configure_logging

HERE = Path(__file__).resolve().parent
GRAPH = HERE / "cascade.yaml"
TEST = HERE / "data" / "test.jsonl"


def predicted_class(result: shoal.RunResult) -> str | None:
    """The class the cascade acted on: triage's label (the planner's when it escalated), or the
    guard's category when the guard refused the message before triage."""
    for node in result.nodes:
        if node.node == "triage":
            return node.label
    if result.status == "refused" and isinstance(result.output, dict):
        category = result.output.get("category")
        return "injection" if category == "jailbreak" else category
    return None


def sample(rows: list[dict[str, Any]], per_class: int | None,
           seed: int = 7) -> list[dict[str, Any]]:
    if per_class is None:
        return rows
    rng = random.Random(seed)
    by_label: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    picked = [r for label in sorted(by_label)
              for r in rng.sample(by_label[label], min(per_class, len(by_label[label])))]
    return sorted(picked, key=lambda r: r["id"])


@contextlib.contextmanager
def planner() -> Iterator[str]:
    """The planner's URL: SHOAL_PLANNER_URL if set, else a local stand-in started here."""
    if os.environ.get("SHOAL_PLANNER_URL"):
        yield f"{os.environ['SHOAL_PLANNER_URL']} (from SHOAL_PLANNER_URL)"
        return
    from shoal.models.local_server import serve_embedded

    with serve_embedded(warmup=True) as server:
        os.environ["SHOAL_PLANNER_URL"] = server.base_url
        os.environ["SHOAL_PLANNER_MODEL"] = server.model_id
        try:
            yield f"{server.base_url} (local stand-in: llama_cpp.server, {server.model_id})"
        finally:
            del os.environ["SHOAL_PLANNER_URL"], os.environ["SHOAL_PLANNER_MODEL"]


async def run_all(graph: shoal.Graph, rows: list[dict[str, Any]], concurrency: int,
                  console: Console) -> list[shoal.RunResult]:
    results: list[shoal.RunResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("healthcare cascade", total=len(rows))
        async for result in graph.astream_batch(((r["id"], r["text"]) for r in rows),
                                                concurrency=concurrency):
            results.append(result)
            progress.advance(task)
    return results


def per_class_table(rows: list[dict[str, Any]], results: dict[str, shoal.RunResult]) -> Table:
    total: Counter[str] = Counter()
    right: Counter[str] = Counter()
    escalated: Counter[str] = Counter()
    for row in rows:
        result = results[row["id"]]
        total[row["label"]] += 1
        right[row["label"]] += int(predicted_class(result) == row["label"])
        escalated[row["label"]] += int(any(n.escalated for n in result.nodes))
    table = Table(title="per-class accuracy (the class the cascade acted on)",
                  title_justify="left")
    for col in ("class", "messages", "accuracy", "runs with a planner call"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for label in sorted(total):
        table.add_row(label, str(total[label]), f"{right[label] / total[label]:.1%}",
                      f"{escalated[label] / total[label]:.1%}")
    n = sum(total.values())
    table.add_row("all", str(n), f"{sum(right.values()) / n:.1%}",
                  f"{sum(escalated.values()) / n:.1%}", style="bold")
    return table


def _trace(result: shoal.RunResult, node: str) -> Any:
    return next((n for n in result.nodes if n.node == node), None)


REPLY_NODES = ("answer", "urgent", "decline")


def exchange(result: shoal.RunResult) -> tuple[str, str, str] | None:
    """(masked message, reply as sent (masked), where it came from), or None when no reply went
    out. Masked: the demo prints what the pipeline handled, not the patients' data."""
    mask = _trace(result, "mask")
    message = getattr(mask, "text", None)
    out = result.output
    reply = out.get("answer") if isinstance(out, dict) else out
    if not isinstance(message, str) or not isinstance(reply, str) or result.status == "refused":
        return None
    steps = [n for n in result.nodes if n.step is not None and n.node in REPLY_NODES]
    if _trace(result, "reply") is not None and steps:
        return message, reply, "reply: " + ", ".join(
            f"step {n.step} {n.node} ({n.label})" for n in steps)
    node = next((n for n in REPLY_NODES if _trace(result, n)), "?")
    source = out.get("template", "model") if isinstance(out, dict) else "model"
    personal = " + the model's sentence" if isinstance(out, dict) and out.get("personal") else ""
    return message, reply, f"{node}: {source}{personal}"


def sample_exchanges(rows: list[dict[str, Any]], results: dict[str, shoal.RunResult],
                     n: int = 4) -> list[tuple[str, str, str, str]]:
    """One refill or appointment (personalised if any), one emergency, one decline, and one
    message with several requests answered in one reply: what a new user should see first."""
    wanted = ((("prescription_refill", "appointment"), "answer"), (("emergency",), "urgent"),
              (("off_topic", "injection"), "decline"), (None, "reply"))
    picked: list[tuple[str, str, str, str]] = []
    for labels, node in wanted:
        # Each from the branch its class takes (a triage mistake is in the table above, not
        # the example of what a class's patients get).
        candidates = [r for r in rows if (labels is None or r["label"] in labels)
                      and _trace(results[r["id"]], node) is not None
                      and exchange(results[r["id"]]) is not None]
        candidates.sort(key=lambda r: not (isinstance(results[r["id"]].output, dict)
                                           and results[r["id"]].output.get("personal")))
        if node == "reply":
            # A message written with several requests (its gold `labels`), before one the
            # splitter split by mistake (benchmarks/plan.py counts those: 3.5% of single ones).
            candidates.sort(key=lambda r: len(r.get("labels") or []) < 2)
        if candidates:
            row = candidates[0]
            got = exchange(results[row["id"]])
            assert got is not None
            shown = (" + ".join(row.get("labels") or [row["label"]]) if node == "reply"
                     else row["label"])
            picked.append((shown, *got))
    return picked[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--per-class", type=int, default=15,
                      help="messages per class from the test split (default 15)")
    size.add_argument("--all", action="store_true", help="every test message (635)")
    parser.add_argument("--output", type=Path, default=Path("out/healthcare.jsonl"))
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    console = Console()
    configure_logging("warning", stream=sys.stderr)
    rows = [json.loads(line) for line in TEST.read_text(encoding="utf-8").splitlines() if line]
    rows = sample(rows, None if args.all else args.per_class)
    with planner() as where:
        console.print(f"planner: {where}")
        graph = shoal.load_graph(GRAPH)
        results = asyncio.run(run_all(graph, rows, args.concurrency, console))
    by_id = {r.id: r for r in results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(by_id[row["id"]].model_dump_json() + "\n")
    summary = Summary()
    for row in rows:
        summary.add(by_id[row["id"]])
    console.print(per_class_table(rows, by_id))
    for label, message, reply, source in sample_exchanges(rows, by_id):
        # escape: "[NAME_1]" would otherwise be read as console markup and vanish.
        console.print(Panel(f"[bold]message[/bold] (masked, as the models saw it):\n"
                            f"{escape(message)}\n\n[bold]reply[/bold] ({escape(source)}):\n"
                            f"{escape(reply)}",
                            title=f"sample exchange: {label}", title_align="left"))
    render_summary(summary, console, title=f"{graph.name}: {len(rows)} test messages")
    console.print(f"results: {args.output} (shoal report {args.output})")
    return 0 if not summary.statuses.get("error") else 1


if __name__ == "__main__":
    sys.exit(main())
