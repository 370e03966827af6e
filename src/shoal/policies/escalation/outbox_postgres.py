"""The outbox in Postgres, for several processes or machines sharing one queue of escalations.

The same rows and the same guarded state changes as the SQLite :class:`Outbox`: ``claim`` is an
``UPDATE ... WHERE status = 'pending'``, and under Postgres's READ COMMITTED a second claimer
blocks on the row, re-reads it and finds it taken, so each escalation is sent once however many
drains run. :meth:`PostgresOutbox.claim_next` hands out whole work items with ``FOR UPDATE SKIP
LOCKED`` (the job-queue idiom): concurrent workers never wait on each other's rows.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from shoal.policies.escalation.outbox import OutboxRow, outbox_filters
from shoal.store import Migration, PostgresTables, connection

__all__ = ["MIGRATIONS", "PostgresOutbox"]

MIGRATIONS = (
    Migration(1, """
CREATE TABLE IF NOT EXISTS shoal_outbox (
    id TEXT PRIMARY KEY,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    graph TEXT NOT NULL,
    node TEXT NOT NULL,
    record_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    text TEXT NOT NULL,
    draft JSONB NOT NULL,
    labels JSONB,
    max_tokens INTEGER NOT NULL,
    reason TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'in_flight', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    answer JSONB,
    applied BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS shoal_outbox_status ON shoal_outbox (status, applied);
CREATE INDEX IF NOT EXISTS shoal_outbox_graph_created ON shoal_outbox (graph, created);
"""),
)
"""The outbox's schema, step by step (``shoal_schema`` records the step reached)."""


class PostgresOutbox(PostgresTables):
    """The outbox in the Postgres database at ``url``; tables created or migrated on first use.
    Safe to share between threads, processes and machines."""

    component = "outbox"
    migrations = MIGRATIONS

    # -- writing ------------------------------------------------------------------------------

    def put(self, *, graph: str, node: str, record_id: str, run_id: str, task: str, text: str,
            draft: Any, labels: list[str] | None, max_tokens: int, reason: str | None,
            error: str) -> str:
        """Queue one escalation; its id."""
        esc_id = uuid.uuid4().hex
        now = time.time()
        with connection(self._migrated()) as conn:
            conn.execute(
                "INSERT INTO shoal_outbox (id, created, updated, graph, node, record_id, run_id, "
                "task, text, draft, labels, max_tokens, reason, status, attempts, last_error) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, "
                "'pending', 1, %s)",
                (esc_id, now, now, graph, node, record_id, run_id, task, text,
                 json.dumps(draft, default=str), json.dumps(labels) if labels else None,
                 max_tokens, reason, error))
        return esc_id

    def claim(self, esc_id: str) -> bool:
        """pending -> in_flight; False if another drain has it or it is done."""
        with connection(self._migrated()) as conn:
            cur = conn.execute("UPDATE shoal_outbox SET status='in_flight', updated=%s "
                               "WHERE id=%s AND status='pending'", (time.time(), esc_id))
            return bool(cur.rowcount == 1)

    def claim_next(self, *, graph: str | None = None, limit: int = 1) -> list[OutboxRow]:
        """Up to ``limit`` pending rows, oldest first, moved to in_flight for this caller alone;
        rows another worker is claiming at this moment are skipped, not waited for."""
        where, args = "status='pending'", []
        if graph is not None:
            where += " AND graph=%s"
            args.append(graph)
        with connection(self._migrated()) as conn:
            found = conn.execute(
                "UPDATE shoal_outbox SET status='in_flight', updated=%s WHERE id IN ("
                f"SELECT id FROM shoal_outbox WHERE {where} ORDER BY created LIMIT %s "
                "FOR UPDATE SKIP LOCKED) RETURNING *",
                (time.time(), *args, limit)).fetchall()
        return sorted((_row(r) for r in found), key=lambda r: r.created)

    def complete(self, esc_id: str, answer: dict[str, Any]) -> None:
        with connection(self._migrated()) as conn:
            conn.execute("UPDATE shoal_outbox SET status='done', answer=%s::jsonb, updated=%s "
                         "WHERE id=%s AND status='in_flight'",
                         (json.dumps(answer), time.time(), esc_id))

    def release(self, esc_id: str, error: str, *, give_up: bool = False,
                attempted: bool = True) -> None:
        """A failed attempt: back to pending for the next drain, or ``failed`` for good;
        ``attempted=False`` when nothing was sent (the attempts stay)."""
        with connection(self._migrated()) as conn:
            conn.execute("UPDATE shoal_outbox SET status=%s, attempts=attempts+%s, "
                         "last_error=%s, updated=%s WHERE id=%s AND status='in_flight'",
                         ("failed" if give_up else "pending", int(attempted), error,
                          time.time(), esc_id))

    def mark_applied(self, esc_id: str) -> None:
        with connection(self._migrated()) as conn:
            conn.execute("UPDATE shoal_outbox SET applied=TRUE, updated=%s WHERE id=%s",
                         (time.time(), esc_id))

    def requeue_stale(self, older_than_s: float = 600.0) -> int:
        """In-flight rows of a drain that died: back to pending."""
        with connection(self._migrated()) as conn:
            cur = conn.execute("UPDATE shoal_outbox SET status='pending' "
                               "WHERE status='in_flight' AND updated<%s",
                               (time.time() - older_than_s,))
            return int(cur.rowcount)

    # -- reading ------------------------------------------------------------------------------

    def rows(self, *, status: str | None = None, graph: str | None = None,
             unapplied: bool = False) -> list[OutboxRow]:
        where, args = outbox_filters(status=status, graph=graph, unapplied=unapplied, mark="%s")
        with connection(self._migrated()) as conn:
            found = conn.execute(f"SELECT * FROM shoal_outbox WHERE {where} ORDER BY created, id",
                                 args).fetchall()
        return [_row(r) for r in found]

    def counts(self, graph: str | None = None) -> dict[str, int]:
        """Rows per status, of ``graph`` or of every graph."""
        where, args = ("WHERE graph = %s", [graph]) if graph is not None else ("", [])
        with connection(self._migrated()) as conn:
            found = conn.execute(
                f"SELECT status, COUNT(*) AS n FROM shoal_outbox {where} GROUP BY status",
                args).fetchall()
        return {str(r["status"]): int(r["n"]) for r in found}


def _row(r: dict[str, Any]) -> OutboxRow:
    return OutboxRow(
        id=r["id"], created=r["created"], graph=r["graph"], node=r["node"],
        record_id=r["record_id"], run_id=r["run_id"], task=r["task"], text=r["text"],
        draft=r["draft"], labels=r["labels"], max_tokens=r["max_tokens"], reason=r["reason"],
        status=r["status"], attempts=r["attempts"], last_error=r["last_error"],
        answer=r["answer"], applied=bool(r["applied"]))
