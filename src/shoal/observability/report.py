"""Run summaries: status counts, escalation share per node, latency percentiles."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from shoal.graphs.results import STATUSES, RunResult


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]


@dataclass
class Summary:
    runs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    node_runs: Counter[str] = field(default_factory=Counter)
    node_escalate: Counter[str] = field(default_factory=Counter)
    node_escalated: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, result: RunResult) -> None:
        self.runs += 1
        self.statuses[result.status] += 1
        if result.latency_ms is not None and result.status != "error":
            self.latencies_ms.append(result.latency_ms)
        for node in result.nodes:
            self.node_runs[node.node] += 1
            self.node_escalate[node.node] += int(node.escalate)
            self.node_escalated[node.node] += int(node.escalated)


def render_summary(summary: Summary, console: Console, *, title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("status")
    table.add_column("runs", justify="right")
    table.add_column("share", justify="right")
    for status in STATUSES:
        n = summary.statuses.get(status, 0)
        share = f"{n / summary.runs:.1%}" if summary.runs else "-"
        table.add_row(status, str(n), share)
    console.print(table)

    nodes = Table(title="nodes", title_justify="left")
    nodes.add_column("node")
    nodes.add_column("runs", justify="right")
    nodes.add_column("wanted escalation", justify="right")
    nodes.add_column("escalated", justify="right")
    for name, n in summary.node_runs.items():
        nodes.add_row(name, str(n), f"{summary.node_escalate[name] / n:.1%}",
                      f"{summary.node_escalated[name] / n:.1%}")
    console.print(nodes)
    p50 = percentile(summary.latencies_ms, 50)
    p95 = percentile(summary.latencies_ms, 95)
    if p50 is not None and p95 is not None:
        console.print(f"latency per run: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
