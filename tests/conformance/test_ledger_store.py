"""One contract for every ledger store: the embedded SQLite file and Postgres (a real server from
the ``pgserver`` wheel). What one process appends, another reads."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shoal.policies.escalation import (
    LedgerStore,
    PostgresLedger,
    SqliteLedger,
    open_ledger,
    training_lines,
)

Factory = Callable[[], LedgerStore]


@pytest.fixture(params=["sqlite", "postgres"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    if request.param == "sqlite":
        return lambda: SqliteLedger(tmp_path / "outbox.sqlite")
    url = request.getfixturevalue("postgres_url")
    return lambda: PostgresLedger(url)


def _append(ledger: LedgerStore, node: str = "triage", graph: str = "g",
            planner: str | None = "emergency") -> str:
    return ledger.append(graph=graph, node=node, record_id="r1", run_id="run-1",
                         text="[NAME_1] has crushing chest pain", local_label="routine",
                         local_confidence=0.41, p_wrong=0.7, planner_label=planner,
                         planner_answer='{"label": "emergency"}', planner_confidence=0.9,
                         model_version="v1", critical=None)


def test_an_entry_comes_back_whole_to_another_handle(make: Factory) -> None:
    entry_id = _append(make())
    [entry] = make().entries()
    assert entry.id == entry_id and entry.graph == "g" and entry.node == "triage"
    assert entry.text == "[NAME_1] has crushing chest pain"
    assert (entry.local_label, entry.local_confidence, entry.p_wrong) == ("routine", 0.41, 0.7)
    assert (entry.planner_label, entry.planner_confidence) == ("emergency", 0.9)
    assert entry.label == "emergency" and entry.source == "planner"
    assert make().entry(entry_id) == entry and make().entry("nope") is None


def test_a_persons_label_outranks_the_planners(make: Factory) -> None:
    ledger = make()
    entry_id = _append(ledger)
    updated = ledger.set_human_label(entry_id, "urgent")
    assert updated is not None and updated.label == "urgent" and updated.source == "human"
    assert updated.human_at is not None
    assert ledger.set_human_label("nope", "urgent") is None
    assert training_lines(make().entries()) == [
        {"id": entry_id, "text": "[NAME_1] has crushing chest pain", "label": "urgent",
         "source": "human"}]


def test_filters_and_counts(make: Factory) -> None:
    ledger = make()
    _append(ledger, "triage", "g1")
    cut = time.time()
    time.sleep(0.01)
    _append(ledger, "triage", "g1", planner=None)
    _append(ledger, "answer", "g2")
    assert len(ledger.entries(graph="g1")) == 2
    assert len(ledger.entries(graph="g1", since=cut)) == 1
    assert [e.node for e in ledger.entries(node="answer")] == ["answer"]
    assert ledger.counts(graph="g1") == {("triage", "emergency", "planner"): 1,
                                         ("triage", "-", "-"): 1}


def test_shoal_db_chooses_the_ledger(postgres_url: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    local = open_ledger(tmp_path / "o.sqlite")
    assert isinstance(local, SqliteLedger) and not local.exists()
    monkeypatch.setenv("SHOAL_DB", postgres_url)
    shared = open_ledger(tmp_path / "o.sqlite")
    assert isinstance(shared, PostgresLedger) and shared.exists()
    assert "postgres" in shared.where
