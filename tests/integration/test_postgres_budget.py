"""The planner-share window shared through a real Postgres: processes deciding at the same time
never exceed the share together."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psycopg
import pytest

import shoal
from shoal.policies.escalation import (
    Budget,
    BudgetSpec,
    SharedShareBudget,
    budget_postgres,
    open_budget,
)

pytestmark = [pytest.mark.integration]

SPEC = BudgetSpec(max_share=0.2, window=50)  # 10 planner calls in any 50 decisions


def decide_many(url: str, n: int) -> int:
    """In a worker process: ``n`` decisions that all want the planner; how many were admitted."""
    budget_postgres.PRUNE_EVERY = 10**9  # keep every row, so the test can check every window
    budget = SharedShareBudget(SPEC, url=url, graph="shared")
    return sum(budget.decide(True) is None for _ in range(n))


def test_three_processes_share_one_window(postgres_url: str) -> None:
    with ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool:
        admitted = list(pool.map(decide_many, [postgres_url] * 3, [120] * 3))
    with psycopg.connect(postgres_url) as conn:
        seq = [bool(w) for (w,) in conn.execute(
            "SELECT wants FROM shoal_budget_decisions WHERE graph = 'shared' ORDER BY seq")]
    assert len(seq) == 360 and sum(seq) == sum(admitted)
    # Every window of 50 consecutive decisions, whichever process made them, holds <= 10 calls.
    assert max(sum(seq[i:i + 50]) for i in range(len(seq) - 49)) <= 10
    assert sum(admitted) >= 60  # and the share was used, not starved: 10 per 50 decisions
    assert SharedShareBudget(SPEC, url=postgres_url, graph="shared").share() == pytest.approx(
        sum(seq[-50:]) / 50)


def test_old_decisions_are_pruned_to_two_windows(postgres_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget_postgres, "PRUNE_EVERY", 1)
    budget = SharedShareBudget(SPEC, url=postgres_url, graph="pruned")
    for _ in range(300):
        budget.decide(True)
    with psycopg.connect(postgres_url) as conn:
        (kept,) = conn.execute("SELECT COUNT(*) FROM shoal_budget_decisions").fetchone() or (0,)
    assert 2 * 50 <= kept <= 2 * 50 + 1


def test_a_critical_decision_passes_a_full_shared_window(postgres_url: str) -> None:
    budget = SharedShareBudget(BudgetSpec(max_share=0.1, window=10), url=postgres_url, graph="g")
    assert budget.decide(True) is None
    assert budget.decide(True) is not None  # one call in 10 decisions: full
    assert budget.decide(True, critical=True) is None


def test_a_graph_uses_the_shared_window_when_shoal_db_is_set(
        postgres_url: str, write_yaml, monkeypatch: pytest.MonkeyPatch) -> None:
    path: Path = write_yaml("""
        shoal: 1
        name: shared-budget
        models:
          planner: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m, boundary: inside}
        escalation: {planner: planner, max_share: 0.2}
        nodes:
          n: {agent: noop}
        edges: []
    """)
    assert type(shoal.Graph.from_yaml(path).budget) is Budget
    monkeypatch.setenv("SHOAL_DB", postgres_url)
    assert isinstance(shoal.Graph.from_yaml(path).budget, SharedShareBudget)
    assert type(open_budget(BudgetSpec(), graph="g")) is Budget  # no share cap: nothing shared
