"""The escalation ledger in Postgres (``SHOAL_DB``): every process's answered escalations in one
table, so a retrain on any machine sees what every replica learned from the planner."""

from __future__ import annotations

import time
import uuid

from shoal.policies.escalation.ledger import LedgerEntry, count_by_label, entry_filters
from shoal.store import Migration, PostgresTables, connection

__all__ = ["MIGRATIONS", "PostgresLedger"]

MIGRATIONS = (
    Migration(1, """
CREATE TABLE IF NOT EXISTS shoal_ledger (
    id TEXT PRIMARY KEY,
    created DOUBLE PRECISION NOT NULL,
    graph TEXT NOT NULL,
    node TEXT NOT NULL,
    record_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    text TEXT NOT NULL,
    local_label TEXT,
    local_confidence DOUBLE PRECISION,
    p_wrong DOUBLE PRECISION,
    planner_label TEXT,
    planner_answer TEXT,
    planner_confidence DOUBLE PRECISION,
    model_version TEXT,
    critical TEXT,
    human_label TEXT,
    human_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS shoal_ledger_graph_node ON shoal_ledger (graph, node, created);
"""),
)


class PostgresLedger(PostgresTables):
    """:class:`shoal.policies.escalation.LedgerStore` in the Postgres database at ``url``."""

    component = "ledger"
    migrations = MIGRATIONS

    def append(self, *, graph: str, node: str, record_id: str, run_id: str, text: str,
               local_label: str | None, local_confidence: float | None, p_wrong: float | None,
               planner_label: str | None, planner_answer: str | None,
               planner_confidence: float | None, model_version: str | None,
               critical: str | None = None) -> str:
        """Add one answered escalation; its id."""
        entry_id = uuid.uuid4().hex
        with connection(self._migrated()) as conn:
            conn.execute(
                "INSERT INTO shoal_ledger (id, created, graph, node, record_id, run_id, text, "
                "local_label, local_confidence, p_wrong, planner_label, planner_answer, "
                "planner_confidence, model_version, critical) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (entry_id, time.time(), graph, node, record_id, run_id, text, local_label,
                 local_confidence, p_wrong, planner_label, planner_answer, planner_confidence,
                 model_version, critical))
        return entry_id

    def entries(self, *, graph: str | None = None, node: str | None = None,
                since: float | None = None) -> list[LedgerEntry]:
        """Entries, oldest first, filtered by graph, node and creation time (epoch seconds)."""
        where, args = entry_filters(graph=graph, node=node, since=since, mark="%s")
        with connection(self._migrated()) as conn:
            rows = conn.execute(f"SELECT * FROM shoal_ledger WHERE {where} ORDER BY created, id",
                                args).fetchall()
        return [LedgerEntry(**row) for row in rows]

    def entry(self, entry_id: str) -> LedgerEntry | None:
        """One entry by id, or None."""
        with connection(self._migrated()) as conn:
            row = conn.execute("SELECT * FROM shoal_ledger WHERE id = %s",
                               (entry_id,)).fetchone()
        return LedgerEntry(**row) if row is not None else None

    def set_human_label(self, entry_id: str, label: str) -> LedgerEntry | None:
        """A person's label for an entry (it outranks the planner's); the updated entry, or
        None when there is no such entry."""
        with connection(self._migrated()) as conn:
            done = conn.execute("UPDATE shoal_ledger SET human_label = %s, human_at = %s "
                                "WHERE id = %s", (label, time.time(), entry_id)).rowcount
        return self.entry(entry_id) if done else None

    def counts(self, *, graph: str | None = None) -> dict[tuple[str, str, str], int]:
        """(node, label to train on, source) -> entries; ``-`` for no label."""
        return count_by_label(self.entries(graph=graph))
