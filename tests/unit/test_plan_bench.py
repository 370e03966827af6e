"""benchmarks/plan.py's scoring: which requests a run answered in each mode, and the numbers
made of them (on hand-made run results: the benchmark itself runs the real cascade)."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.graphs.results import NodeTrace, RunCost, RunResult
from tests.conftest import REPO, import_script

plan = import_script(REPO / "benchmarks" / "plan.py", "bench_plan")


def trace(node: str, label: str | None, output: Any = None) -> NodeTrace:
    return NodeTrace(node=node, agent="x", label=label, latency_ms=1.0, output=output)


def run(triage: str | None, steps: list[str] | None = None, *, plan_info: Any = None,
        calls: int = 0, status: str = "ok") -> RunResult:
    nodes = [trace("guard", "allow")]
    if triage is not None:
        out = {"steps": [{"label": s} for s in steps or []], "plan": plan_info or {}}
        nodes += [trace("triage", triage), trace("split", triage, out)]
    return RunResult(id="r", status=status, nodes=nodes,  # type: ignore[arg-type]
                     cost=RunCost(planner_calls=calls))


ROWS = [
    {"id": "a", "label": "billing", "parts": [{"label": "billing"}, {"label": "emergency"}]},
    {"id": "b", "label": "appointment", "parts": [{"label": "appointment"},
                                                  {"label": "prescription_refill"},
                                                  {"label": "appointment"}]},
]


def test_gold_labels_are_one_per_request_label_in_order():
    assert plan.gold_labels(ROWS[1]) == ["appointment", "prescription_refill"]
    assert plan.gold_labels({"label": "billing", "labels": ["billing", "appointment"]}) == [
        "billing", "appointment"]
    assert plan.gold_labels({"label": "billing"}) == ["billing"]


def test_each_mode_counts_the_requests_its_labels_answer():
    results = [run("billing", ["billing", "emergency"], calls=1,
                   plan_info={"source": "planner", "cache": "miss"}),
               run("appointment", [], calls=0, plan_info={"source": "cache", "cache": "hit"})]
    single = plan.score(ROWS, results, "single_label")
    assert single["intents"] == 4 and single["intents_handled"] == 0.5
    assert single["emergency_recall"] == 0.0 and single["emergencies_missed"] == ["a"]
    split = plan.score(ROWS, results, "plan_mode")
    assert split["intents_handled"] == 0.75 and split["emergency_recall"] == 1.0
    assert split["exact_share"] == 0.5 and split["extra_per_message"] == 0.0
    assert split["planner_calls_per_message"] == 0.5
    assert split["cache"] == {"hits": 1, "misses": 1, "hit_rate": 0.5}
    assert split["plan_sources"] == {"planner": 1, "cache": 1}


def test_a_run_the_guard_refused_answers_injection_only():
    refused = run(None, status="refused")
    assert plan.answered(refused, "splitter") == ["injection"]
    assert plan.answered(run("billing", ["billing", "off_topic"]), "single_label") == ["billing"]


@pytest.mark.parametrize("keep_plan", [True, False])
def test_the_routing_graph_is_the_cascades_own_up_to_the_split(keep_plan: bool):
    spec = plan.routing_spec(keep_plan)
    assert list(spec["nodes"]) == list(plan.ROUTING_NODES)
    assert spec["edges"] == ["guard -> mask -> triage -> split"]
    assert ("plan" in spec["nodes"]["split"]) is keep_plan
    assert spec["nodes"]["split"]["red_flags"] == "clinical_red_flags"
