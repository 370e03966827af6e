"""Prometheus metrics of ``shoal serve``, in a registry of their own (never the global one).

Counted from each RunResult a request produced (the server's start-up warm-up is not counted):

- ``shoal_runs_total{status}``: runs by status (ok, escalated, pending_escalation, refused, error);
- ``shoal_escalations_total{node, outcome}``: nodes that asked for the planner; ``outcome`` is
  ``escalated`` (the planner answered), ``pending`` (queued in the outbox) or ``local`` (the local
  answer was kept: budget, egress scan, a malformed answer, no planner);
- ``shoal_run_latency_seconds`` and ``shoal_node_latency_seconds{node}``: histograms.

Read at scrape time: ``shoal_model_generated_tokens_total{backend}``, completion tokens each
model generated for this process (in-process llama.cpp models, and the planner's answers as
reported by it); ``shoal_circuit_state{backend}`` (0 closed, 1 half open, 2
open) for every circuit breaker of the process, ``shoal_outbox_pending``, the pending rows of the
graph's outbox (0 while it has no file), and ``shoal_model_version_info{node, version}`` (always
1): the version of each learnable node's model running now (``v1``: the graph file's; it changes
when ``shoal promote`` or ``shoal rollback`` is picked up).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shoal.agents.plans import steps_of
from shoal.errors import StoreError
from shoal.graphs.results import RunResult
from shoal.models.tokens import generated_tokens
from shoal.observability.logging import get_logger
from shoal.policies.escalation.circuit import circuits
from shoal.policies.escalation.outbox import OutboxStore

_log = get_logger()

__all__ = ["CIRCUIT_STATES", "Metrics"]

CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
_RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_NODE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                 10.0, 30.0, 60.0)


class _ScrapeTime(Collector):
    """Gauges whose value lives elsewhere: read when Prometheus scrapes."""

    def __init__(self, outbox: OutboxStore | None,
                 versions: Callable[[], Mapping[str, str]] | None = None,
                 graph: str | None = None) -> None:
        self.outbox = outbox
        self.graph = graph
        self.versions = versions

    def collect(self) -> Iterable[Metric]:
        states = GaugeMetricFamily("shoal_circuit_state",
                                   "Circuit breaker per remote backend: 0 closed, 1 half open, "
                                   "2 open.", labels=["backend"])
        for name, state in sorted(circuits().items()):
            states.add_metric([name], CIRCUIT_STATES[state])
        yield states
        tokens = CounterMetricFamily("shoal_model_generated_tokens",
                                     "Completion tokens generated for this process, per model "
                                     "(in-process models and the planner's answers).",
                                     labels=["backend"])
        for name, count in sorted(generated_tokens().items()):
            tokens.add_metric([name], count)
        yield tokens
        yield GaugeMetricFamily("shoal_outbox_pending",
                                "Escalations waiting in the graph's outbox for the planner.",
                                value=self._pending())
        info = GaugeMetricFamily("shoal_model_version_info",
                                 "The version of each learnable node's model running now "
                                 "(always 1).", labels=["node", "version"])
        for node, version in sorted((self.versions() if self.versions else {}).items()):
            info.add_metric([node, version], 1)
        yield info

    def _pending(self) -> float:
        # Never create the file just to say it is empty.
        try:
            if self.outbox is None or not self.outbox.exists():
                return 0
            # A shared database holds every graph's escalations: count the served one's.
            return self.outbox.counts(self.graph).get("pending", 0)
        except StoreError:
            # The shared database is down: the scrape still answers, this gauge unknown.
            _log.warning("outbox_count_unavailable")
            return math.nan


class Metrics:
    """The counters and histograms of one served graph, and their text exposition."""

    def __init__(self, *, outbox: OutboxStore | None = None,
                 versions: Callable[[], Mapping[str, str]] | None = None,
                 graph: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter("shoal_runs", "Runs finished, by status.", ["status"],
                            registry=self.registry)
        self.escalations = Counter(
            "shoal_escalations", "Nodes that asked for the planner, by node and outcome "
            "(escalated, pending, local).", ["node", "outcome"], registry=self.registry)
        self.run_latency = Histogram("shoal_run_latency_seconds", "Run latency.",
                                     buckets=_RUN_BUCKETS, registry=self.registry)
        self.node_latency = Histogram("shoal_node_latency_seconds", "Node latency, by node.",
                                      ["node"], buckets=_NODE_BUCKETS, registry=self.registry)
        # Money as the run reports it (RunResult.cost): what the planner cost, and what sending
        # every escalation-eligible node to the planner would have cost (the saving's baseline).
        self.planner_usd = Counter("shoal_planner_spend_usd",
                                   "Money the planner cost (USD, from the model's price).",
                                   registry=self.registry)
        self.all_planner_usd = Counter(
            "shoal_all_planner_estimate_usd", "What the same runs would have cost with every "
            "escalation-eligible node sent to the planner (USD, estimated).",
            registry=self.registry)
        self.planner_calls = Counter("shoal_planner_calls", "Calls to the planner.",
                                     registry=self.registry)
        # Plan mode (intent_splitter nodes): how each multi-request message got its steps, and
        # the plan cache's hits and misses (a miss is a planner call, or an attempt at one).
        self.plans = Counter(
            "shoal_plans", "Messages split into steps, by node and where the steps came from "
            "(local, planner, cache).", ["node", "source"], registry=self.registry)
        self.plan_cache = Counter(
            "shoal_plan_cache", "Plan cache lookups, by node and result (hit, miss).",
            ["node", "result"], registry=self.registry)
        self.registry.register(_ScrapeTime(outbox, versions, graph))

    def observe(self, result: RunResult) -> None:
        self.runs.labels(status=result.status).inc()
        if result.cost is not None:
            self.planner_usd.inc(result.cost.planner_usd)
            self.all_planner_usd.inc(result.cost.all_planner_usd_estimate)
            self.planner_calls.inc(result.cost.planner_calls)
        if result.latency_ms is not None:
            self.run_latency.observe(result.latency_ms / 1000.0)
        for node in result.nodes:
            self.node_latency.labels(node=node.node).observe(node.latency_ms / 1000.0)
            plan = node.output.get("plan") if isinstance(node.output, dict) else None
            if isinstance(plan, dict):
                if steps_of(node):
                    self.plans.labels(node=node.node, source=plan.get("source", "local")).inc()
                if plan.get("cache") in {"hit", "miss"}:
                    self.plan_cache.labels(node=node.node, result=plan["cache"]).inc()
            if node.escalate or node.escalated or node.pending:
                outcome = ("escalated" if node.escalated
                           else "pending" if node.pending else "local")
                self.escalations.labels(node=node.node, outcome=outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
