"""One contract for every outbox store: the embedded SQLite file and Postgres (a real server from
the ``pgserver`` wheel, started by the session fixture). Each escalation is claimed once however
many drains run at the same time, and nothing queued is lost."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from shoal import StoreError
from shoal.policies.escalation import (
    Outbox,
    OutboxStore,
    PostgresOutbox,
    open_outbox,
)
from shoal.store import migrate
from shoal.store.postgres import Migration
from tests.conformance.threads import together

Factory = Callable[[], OutboxStore]


@pytest.fixture(params=["sqlite", "postgres"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """A factory of handles on one store: each call is another connection, as another process
    would have."""
    if request.param == "sqlite":
        return lambda: Outbox(tmp_path / "outbox.sqlite")
    url = request.getfixturevalue("postgres_url")
    return lambda: PostgresOutbox(url)



def _put(box: OutboxStore, record: str = "r1", graph: str = "g") -> str:
    return box.put(graph=graph, node="triage", record_id=record, run_id="run-1",
                   task="Classify.", text="[NAME] has chest pain",
                   draft={"label": "routine", "confidence": 0.4},
                   labels=["emergency", "routine"], max_tokens=64, reason="low_confidence",
                   error="backend_failed: down")


def test_a_queued_escalation_comes_back_whole(make: Factory) -> None:
    box = make()
    esc = _put(box)
    [row] = box.rows(status="pending")
    assert row.id == esc and row.graph == "g" and row.node == "triage" and row.record_id == "r1"
    assert row.draft == {"label": "routine", "confidence": 0.4}
    assert row.labels == ["emergency", "routine"] and row.max_tokens == 64
    assert (row.attempts, row.last_error, row.answer, row.applied) == (
        1, "backend_failed: down", None, False)
    assert box.counts() == {"pending": 1} and box.exists()
    # Another handle (another process) sees the same row.
    assert [r.id for r in make().rows()] == [esc]


def test_a_row_moves_pending_in_flight_done_applied_once(make: Factory) -> None:
    box = make()
    esc = _put(box)
    assert box.claim(esc) and not make().claim(esc)
    box.complete(esc, {"label": "emergency", "confidence": 0.9})
    [row] = box.rows(status="done", unapplied=True)
    assert row.answer == {"label": "emergency", "confidence": 0.9}
    box.mark_applied(esc)
    assert box.rows(unapplied=True) == [] and box.counts() == {"done": 1}
    assert not box.claim(esc)  # done stays done


def test_failures_go_back_to_pending_then_give_up(make: Factory) -> None:
    box = make()
    esc = _put(box)
    assert box.claim(esc)
    box.release(esc, "output_invalid: not JSON")
    [row] = box.rows(status="pending")
    assert row.attempts == 2 and row.last_error == "output_invalid: not JSON"
    assert box.claim(esc)
    box.release(esc, "output_invalid: again", give_up=True)
    assert box.counts() == {"failed": 1}


def test_a_dead_drains_rows_are_requeued(make: Factory) -> None:
    box = make()
    esc = _put(box)
    assert box.claim(esc)
    assert box.requeue_stale(older_than_s=3600) == 0
    assert box.requeue_stale(older_than_s=0) == 1
    assert [r.status for r in box.rows()] == ["pending"]


def test_rows_filter_by_graph_in_queue_order(make: Factory) -> None:
    box = make()
    first, _, third = _put(box, "a", "g1"), _put(box, "b", "g2"), _put(box, "c", "g1")
    assert [r.id for r in box.rows(graph="g1")] == [first, third]


def test_concurrent_drains_claim_each_row_once(make: Factory) -> None:
    box = make()
    ids = [_put(box, f"r{i}") for i in range(40)]
    won: list[list[str]] = [[] for _ in range(4)]

    def drain(k: int) -> None:
        mine = make()  # its own connection, as a second process would have
        order = ids if k % 2 == 0 else list(reversed(ids))
        won[k] = [esc for esc in order if mine.claim(esc)]

    together(drain, 4)
    claimed = [esc for part in won for esc in part]
    assert sorted(claimed) == sorted(ids)  # every row once: none twice, none lost
    assert box.counts() == {"in_flight": 40}


# --- Postgres only ----------------------------------------------------------------------------


def test_skip_locked_hands_every_row_to_one_worker(postgres_url: str) -> None:
    box = PostgresOutbox(postgres_url)
    ids = {_put(box, f"r{i}") for i in range(30)}
    got: list[list[str]] = [[] for _ in range(3)]

    def worker(k: int) -> None:
        mine = PostgresOutbox(postgres_url)
        while batch := mine.claim_next(graph="g", limit=4):
            got[k].extend(r.id for r in batch)

    together(worker, 3)
    handed = [esc for part in got for esc in part]
    assert sorted(handed) == sorted(ids)
    assert box.claim_next() == []


def test_migrations_run_once_and_a_newer_schema_is_refused(postgres_url: str) -> None:
    steps = (Migration(1, "CREATE TABLE t_conf (x INTEGER)"),)
    assert migrate(postgres_url, "conformance", steps) == 1
    assert migrate(postgres_url, "conformance", steps) == 1  # no second CREATE TABLE
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO shoal_schema VALUES ('later', 3)")
    with pytest.raises(StoreError, match="version 3, this shoal knows 1"):
        migrate(postgres_url, "later", steps)


def test_an_unreachable_database_is_a_store_error_without_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shoal.store.postgres.CONNECT_TIMEOUT_S", 1.0)
    url = f"postgresql://shoal:CANARY-pw-5521@/nodb?host={tmp_path}"
    with pytest.raises(StoreError) as caught:
        _put(PostgresOutbox(url))
    assert caught.value.code == "store_unavailable"
    assert "CANARY" not in str(caught.value) and "***" in str(caught.value)


def test_shoal_db_chooses_the_store(postgres_url: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_outbox(tmp_path / "o.sqlite"), Outbox)
    monkeypatch.setenv("SHOAL_DB", postgres_url)
    box = open_outbox(tmp_path / "o.sqlite")
    assert isinstance(box, PostgresOutbox) and not (tmp_path / "o.sqlite").exists()
    monkeypatch.setenv("SHOAL_DB", str(tmp_path / "state.sqlite"))
    with pytest.raises(StoreError, match="not a postgresql:// URL"):
        open_outbox(tmp_path / "o.sqlite")
