"""`/metrics` carries the money each run reports: the planner's spend, the all-planner estimate
(the saving's baseline) and the planner calls, summed over runs (dashboards and alerts read
them)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shoal.graphs.results import RunCost, RunResult
from shoal.service.metrics import Metrics


def _values(text: str) -> dict[str, float]:
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}


def test_money_counters_sum_what_the_runs_report() -> None:
    metrics = Metrics()
    for spent, estimate, calls in ((0.002, 0.010, 1), (0.0, 0.004, 0), (0.003, 0.006, 2)):
        metrics.observe(RunResult(id=f"r{calls}", status="ok", cost=RunCost(
            planner_usd=spent, all_planner_usd_estimate=estimate, planner_calls=calls)))
    metrics.observe(RunResult(id="no-cost", status="error"))  # an error run has no cost
    values = _values(metrics.render().decode())
    assert values["shoal_planner_spend_usd_total"] == pytest.approx(0.005)
    assert values["shoal_all_planner_estimate_usd_total"] == pytest.approx(0.020)
    assert values["shoal_planner_calls_total"] == 3
