"""Run summaries: status counts, escalation share per node, critical escalations apart, latency
percentiles, planner spend.

One ``Summary`` serves both ``shoal run`` (fed result by result) and ``shoal report`` (fed from a
results JSONL by ``summarize_file``). It only reads ids, statuses, node traces and costs: a
result's ``output`` may quote the (masked) input and is never kept, rendered or serialized.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shoal.graphs.results import STATUSES, NodeTrace, RunResult


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]


def kept_local(node: NodeTrace) -> bool:
    """The node's escalation was held back: the planner budget ran out or egress is blocked."""
    reason = node.reason or ""
    return reason.startswith("budget_exhausted") or "egress blocked" in reason



def _share(n: int, of: int) -> float | None:
    return n / of if of else None


@dataclass
class Summary:
    """Counters over run results; ``add`` one ``RunResult`` at a time.

    .. versionchanged:: 0.1.0
       Also counts nodes kept local, planner spend (``RunResult.cost``) and unreadable lines;
       ``to_dict`` for ``shoal report --json``.
    """

    runs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    node_runs: Counter[str] = field(default_factory=Counter)
    node_escalate: Counter[str] = field(default_factory=Counter)
    node_escalated: Counter[str] = field(default_factory=Counter)
    node_kept_local: Counter[str] = field(default_factory=Counter)
    node_critical: Counter[str] = field(default_factory=Counter)
    """Nodes on which a critical label fired (escalated past the budget, or routed)."""
    critical_escalated: int = 0
    """Of those, how many the planner answered."""
    critical_labels: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    unreadable: int = 0
    """Lines of a results file that were not a RunResult (``shoal report`` only)."""
    runs_with_cost: int = 0
    planner_usd: float = 0.0
    all_planner_usd_estimate: float = 0.0
    planner_calls: int = 0
    planner_tokens: int = 0
    local_ms: float = 0.0
    planner_ms: float = 0.0

    def add(self, result: RunResult) -> None:
        self.runs += 1
        self.statuses[result.status] += 1
        if result.latency_ms is not None and result.status != "error":
            self.latencies_ms.append(result.latency_ms)
        for node in result.nodes:
            self.node_runs[node.node] += 1
            self.node_escalate[node.node] += int(node.escalate)
            self.node_escalated[node.node] += int(node.escalated)
            self.node_kept_local[node.node] += int(kept_local(node))
            if node.critical is not None:
                self.node_critical[node.node] += 1
                self.critical_labels[node.critical] += 1
                self.critical_escalated += int(node.escalated)
        cost = result.cost
        if cost is not None:
            self.runs_with_cost += 1
            self.planner_usd += cost.planner_usd
            self.all_planner_usd_estimate += cost.all_planner_usd_estimate
            self.planner_calls += cost.planner_calls
            self.planner_tokens += cost.planner_tokens
            self.local_ms += cost.local_ms
            self.planner_ms += cost.planner_ms

    @property
    def saving_percent(self) -> float | None:
        """1 - spent / all-planner estimate, in percent; None when the estimate is 0."""
        if not self.all_planner_usd_estimate:
            return None
        return (1 - self.planner_usd / self.all_planner_usd_estimate) * 100

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: shares are fractions in [0, 1] (None when there is nothing to
        divide by), latencies in milliseconds, money in USD."""
        saving = self.saving_percent
        return {
            "runs": self.runs,
            "unreadable": self.unreadable,
            "statuses": {
                status: {"runs": self.statuses.get(status, 0),
                         "share": _share(self.statuses.get(status, 0), self.runs)}
                for status in STATUSES
            },
            "nodes": {
                name: {
                    "runs": n,
                    "escalate": self.node_escalate[name],
                    "escalate_share": _share(self.node_escalate[name], n),
                    "escalated": self.node_escalated[name],
                    "escalated_share": _share(self.node_escalated[name], n),
                    "kept_local": self.node_kept_local[name],
                    "kept_local_share": _share(self.node_kept_local[name], n),
                    "critical": self.node_critical[name],
                    "critical_share": _share(self.node_critical[name], n),
                }
                for name, n in self.node_runs.items()
            },
            "critical": {
                "nodes": sum(self.node_critical.values()),
                "escalated": self.critical_escalated,
                "labels": dict(self.critical_labels),
            },
            "latency_ms": {
                "runs": len(self.latencies_ms),
                "p50": percentile(self.latencies_ms, 50),
                "p95": percentile(self.latencies_ms, 95),
            },
            "cost": {
                "runs_with_cost": self.runs_with_cost,
                "planner_usd": self.planner_usd,
                "all_planner_usd_estimate": self.all_planner_usd_estimate,
                "saving_percent": None if saving is None else round(saving, 4),
                "planner_calls": self.planner_calls,
                "planner_tokens": self.planner_tokens,
                "local_ms": self.local_ms,
                "planner_ms": self.planner_ms,
            },
        }


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A results line that is not a RunResult; ``str()`` is ``FILE:LINE: reason``."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse(raw: bytes) -> RunResult | str:
    """A RunResult, or why the line is not one. Reasons never quote the line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte {exc.start})"
    try:
        data = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} (column {exc.colno})"
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    data.pop("output", None)  # may hold text; the report never needs it
    try:
        return RunResult.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        first = errors[0]
        loc = ".".join(str(part) for part in first["loc"]) or "(record)"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"not a RunResult: {loc}: {first['msg']}{more}"


def read_results(path: Path) -> Iterator[RunResult | Unreadable]:
    """Yield one RunResult (without its ``output``) or Unreadable per non-blank line."""
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            parsed = _parse(raw)
            yield Unreadable(path, line_no, parsed) if isinstance(parsed, str) else parsed


def summarize_file(
    path: Path, *, on_unreadable: Callable[[Unreadable], None] | None = None
) -> Summary:
    """Summarize a JSONL of RunResults (as ``shoal run --output`` writes); bad lines are counted
    in ``Summary.unreadable`` and handed to ``on_unreadable``. Raises ``OSError`` if the file
    cannot be read.

    .. versionadded:: 0.1.0
    """
    summary = Summary()
    for item in read_results(path):
        if isinstance(item, Unreadable):
            summary.unreadable += 1
            if on_unreadable is not None:
                on_unreadable(item)
        else:
            summary.add(item)
    return summary


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 100 else f"${value:.6f}"


def render_summary(summary: Summary, console: Console, *, title: str) -> None:
    table = Table(title=escape(title), title_justify="left",
                  caption=f"{summary.runs} runs"
                  + (f", {summary.unreadable} unreadable line(s)" if summary.unreadable else ""),
                  caption_justify="left")
    table.add_column("status")
    table.add_column("runs", justify="right")
    table.add_column("share", justify="right")
    for status in STATUSES:
        n = summary.statuses.get(status, 0)
        table.add_row(status, str(n), _pct(_share(n, summary.runs)))
    console.print(table)

    if summary.node_runs:
        nodes = Table(title="nodes", title_justify="left")
        nodes.add_column("node")
        nodes.add_column("runs", justify="right")
        nodes.add_column("wanted escalation", justify="right")
        nodes.add_column("escalated", justify="right")
        nodes.add_column("kept local", justify="right")
        nodes.add_column("critical", justify="right")
        for name, n in summary.node_runs.items():
            nodes.add_row(escape(name), str(n), _pct(_share(summary.node_escalate[name], n)),
                          _pct(_share(summary.node_escalated[name], n)),
                          _pct(_share(summary.node_kept_local[name], n)),
                          _pct(_share(summary.node_critical[name], n)))
        console.print(nodes)
        critical = sum(summary.node_critical.values())
        labels = ", ".join(f"{escape(k)} {v}" for k, v in sorted(summary.critical_labels.items()))
        console.print(f"critical escalations: {critical} ({summary.critical_escalated} answered "
                      f"by the planner, {critical - summary.critical_escalated} routed or kept"
                      + (f"; {labels}" if labels else "") + "); never held back by a budget",
                      highlight=False)

    p50 = percentile(summary.latencies_ms, 50)
    p95 = percentile(summary.latencies_ms, 95)
    if p50 is not None and p95 is not None:
        console.print(f"latency per run: p50 {p50:.2f} ms, p95 {p95:.2f} ms", highlight=False)
    else:
        console.print("latency per run: n/a (no finished runs)", highlight=False)

    if not summary.runs_with_cost:
        console.print("money: n/a (no cost fields in these results)", highlight=False)
        return
    saving = summary.saving_percent
    money = Table(title=f"money ({summary.runs_with_cost} of {summary.runs} runs with costs)",
                  title_justify="left", show_header=False)
    money.add_column("what")
    money.add_column("value", justify="right")
    money.add_row("planner spent", _usd(summary.planner_usd))
    money.add_row("all-planner estimate", _usd(summary.all_planner_usd_estimate))
    money.add_row("saving", "n/a" if saving is None else f"{saving:.1f}%")
    money.add_row("planner calls", f"{summary.planner_calls:,}")
    money.add_row("planner tokens", f"{summary.planner_tokens:,}")
    money.add_row("local time", f"{summary.local_ms:,.1f} ms")
    money.add_row("planner time", f"{summary.planner_ms:,.1f} ms")
    console.print(money)
