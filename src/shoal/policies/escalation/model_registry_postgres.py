"""The model registry in Postgres (``SHOAL_DB``): learned versions, the champion stack, the
shadow and the shadow records of every graph in one database, so every ``shoal serve`` replica
and every ``shoal run`` on any machine runs the same champion, and a ``shoal promote`` or
``shoal rollback`` on any machine switches all of them (each polls
:meth:`PostgresModelRegistry.state`: one small query).

The same tables and rules as :class:`~shoal.policies.escalation.model_registry.
SqliteModelRegistry`. Events are appended in one transaction holding an advisory lock per graph
(``pg_advisory_xact_lock``), for two reasons:

- the stack a promotion or a rollback decided on (``expect``) is checked and the event appended
  under the lock, so two ``shoal promote`` or ``shoal rollback`` at once never leave a history
  whose events contradict each other (the second one is refused and says so);
- a graph's sequence numbers are committed in the order they are drawn, so the last one (what a
  server polls) never passes an event another process has yet to commit, which the server would
  then never see.

The lock is per graph, not per node, for the second reason; promotions are rare, so the wider
lock costs nothing anyone would notice.

**The model files are not in the database.** A version names its classifier (and router) by the
absolute path ``shoal learn`` wrote it to, and every process that runs the version reads the
file at that path. With processes on several machines, write the versions (``shoal learn
--output``) to a file system every machine mounts at the same path (NFS, EFS, an object store
mounted as a file system), or copy the files to that path on each machine before promoting.
shoal reads plain paths, not object-store URLs; a process that cannot read a version's file
cannot switch to it (a ``backend_failed`` error naming the node and the version).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from shoal.policies.escalation.model_registry import (
    BASE_VERSION,
    EventAction,
    ModelEvent,
    ModelVersion,
    ShadowRecord,
    champion_stacks,
    check_expected,
    check_learned,
    current_shadow,
    event_from_row,
    next_version_name,
    version_number,
)
from shoal.store import Migration, PostgresTables, connection

__all__ = ["MIGRATIONS", "PostgresModelRegistry"]

# ``lineage`` and ``detail`` are JSON text, as the SQLite store keeps them: the same text back
# (sorted keys), and a NaN in a metric survives (JSONB refuses it).
MIGRATIONS = (
    Migration(1, """
CREATE TABLE IF NOT EXISTS shoal_model_versions (
    graph TEXT NOT NULL,
    node TEXT NOT NULL,
    version TEXT NOT NULL,
    model_path TEXT NOT NULL,
    router_path TEXT,
    parent TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    lineage TEXT NOT NULL,
    PRIMARY KEY (graph, node, version)
);
CREATE TABLE IF NOT EXISTS shoal_model_events (
    seq BIGSERIAL PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    graph TEXT NOT NULL,
    node TEXT NOT NULL,
    action TEXT NOT NULL
        CHECK (action IN ('promote', 'rollback', 'shadow_start', 'shadow_stop')),
    version TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS shoal_model_events_graph ON shoal_model_events (graph, seq);
CREATE TABLE IF NOT EXISTS shoal_shadow_records (
    id TEXT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    graph TEXT NOT NULL,
    node TEXT NOT NULL,
    record_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    champion_version TEXT NOT NULL,
    champion_label TEXT,
    champion_confidence DOUBLE PRECISION,
    candidate_version TEXT NOT NULL,
    candidate_label TEXT,
    candidate_confidence DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS shoal_shadow_records_node
    ON shoal_shadow_records (graph, node, candidate_version);
"""),
)
"""The registry's schema, step by step (``shoal_schema`` records the step reached)."""

_LOCK = "SELECT pg_advisory_xact_lock(hashtext(%s))"


def _lock_key(graph: str) -> str:
    return f"shoal-registry:{graph}"


class PostgresModelRegistry(PostgresTables):
    """:class:`~shoal.policies.escalation.model_registry.ModelRegistry` in the Postgres
    database at ``url``; safe to share between threads, processes and machines."""

    component = "model_registry"
    migrations = MIGRATIONS

    # --- versions -------------------------------------------------------------------------------

    def next_version(self, graph: str, node: str) -> str:
        """The name the next candidate of ``node`` gets: one past the highest so far."""
        with connection(self._migrated()) as conn:
            return _next(conn, graph, node)

    def register(self, *, graph: str, node: str, model_path: str, router_path: str | None,
                 parent: str, lineage: dict[str, Any], version: str | None = None
                 ) -> ModelVersion:
        """Record a candidate (its files already written); ValueError when the version exists.
        Without ``version`` the next number is drawn under the graph's lock, so two learners at
        once get two numbers."""
        if version is not None:
            check_learned(version)
        created = time.time()
        with connection(self._migrated()) as conn, conn.transaction():
            if version is None:
                conn.execute(_LOCK, (_lock_key(graph),))
            name = version or _next(conn, graph, node)
            check_learned(name)
            done = conn.execute(
                "INSERT INTO shoal_model_versions (graph, node, version, model_path, "
                "router_path, parent, created, lineage) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (graph, node, name, model_path, router_path, parent, created,
                 json.dumps(lineage, sort_keys=True))).rowcount
        if not done:
            raise ValueError(f"node {node!r} of graph {graph!r} already has a version "
                             f"{name!r}")
        return ModelVersion(graph=graph, node=node, version=name, model_path=model_path,
                            router_path=router_path, parent=parent, created=created,
                            lineage=lineage)

    def version(self, graph: str, node: str, version: str) -> ModelVersion | None:
        with connection(self._migrated()) as conn:
            row = conn.execute("SELECT * FROM shoal_model_versions WHERE graph = %s AND "
                               "node = %s AND version = %s", (graph, node, version)).fetchone()
        return None if row is None else _version(row)

    def versions(self, graph: str, node: str | None = None) -> list[ModelVersion]:
        sql, args = "SELECT * FROM shoal_model_versions WHERE graph = %s", [graph]
        if node is not None:
            sql += " AND node = %s"
            args.append(node)
        with connection(self._migrated()) as conn:
            rows = conn.execute(sql, args).fetchall()
        return sorted((_version(r) for r in rows),
                      key=lambda v: (v.node, version_number(v.version)))

    # --- events: champion and shadow -----------------------------------------------------------

    def events(self, graph: str, node: str | None = None) -> list[ModelEvent]:
        with connection(self._migrated()) as conn:
            return _events(conn, graph, node)

    def add_event(self, *, graph: str, node: str, action: EventAction, version: str,
                  detail: dict[str, Any] | None = None,
                  expect: Sequence[str] | None = None) -> ModelEvent:
        """Append one event under the graph's lock; with ``expect`` only if the node's stack is
        still that one (LearningError otherwise)."""
        at = time.time()
        with connection(self._migrated()) as conn, conn.transaction():
            conn.execute(_LOCK, (_lock_key(graph),))
            if expect is not None:
                stacks = champion_stacks(_events(conn, graph, node))
                check_expected(node, expect, stacks.get(node, [BASE_VERSION]))
            row = conn.execute(
                "INSERT INTO shoal_model_events (at, graph, node, action, version, detail) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING seq",
                (at, graph, node, action, version,
                 None if detail is None else json.dumps(detail, sort_keys=True))).fetchone()
        return ModelEvent(seq=int(row["seq"]), at=at, graph=graph, node=node, action=action,
                          version=version, detail=detail)

    def champions(self, graph: str) -> dict[str, list[str]]:
        """node -> its champion stack, oldest first (``[v1, ...]``), for nodes with events."""
        return champion_stacks(self.events(graph))

    def champion(self, graph: str, node: str) -> str:
        """The version ``node`` runs: ``v1`` (the graph file's model) until a promotion."""
        return champion_stacks(self.events(graph, node)).get(node, [BASE_VERSION])[-1]

    def shadow(self, graph: str, node: str) -> str | None:
        """The version shadowing ``node``, or None."""
        return current_shadow(self.events(graph, node))

    def state(self, graph: str) -> int:
        """The graph's last event's sequence number (0 before any): what a server polls."""
        with connection(self._migrated()) as conn:
            row = conn.execute("SELECT MAX(seq) AS seq FROM shoal_model_events WHERE graph = %s",
                               (graph,)).fetchone()
        return int(row["seq"] or 0)

    # --- shadow records -------------------------------------------------------------------------

    def add_shadow(self, *, graph: str, node: str, record_id: str, run_id: str,
                   champion_version: str, champion_label: str | None,
                   champion_confidence: float | None, candidate_version: str,
                   candidate_label: str | None, candidate_confidence: float | None) -> str:
        record = uuid.uuid4().hex
        with connection(self._migrated()) as conn:
            conn.execute(
                "INSERT INTO shoal_shadow_records (id, at, graph, node, record_id, run_id, "
                "champion_version, champion_label, champion_confidence, candidate_version, "
                "candidate_label, candidate_confidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s, %s)",
                (record, time.time(), graph, node, record_id, run_id, champion_version,
                 champion_label, champion_confidence, candidate_version, candidate_label,
                 candidate_confidence))
        return record

    def shadow_records(self, graph: str, node: str,
                       candidate_version: str | None = None) -> list[ShadowRecord]:
        sql = "SELECT * FROM shoal_shadow_records WHERE graph = %s AND node = %s"
        args = [graph, node]
        if candidate_version is not None:
            sql += " AND candidate_version = %s"
            args.append(candidate_version)
        with connection(self._migrated()) as conn:
            rows = conn.execute(sql + " ORDER BY at, id", args).fetchall()
        return [ShadowRecord(**r) for r in rows]


def _next(conn: Any, graph: str, node: str) -> str:
    rows = conn.execute("SELECT version FROM shoal_model_versions WHERE graph = %s AND "
                        "node = %s", (graph, node)).fetchall()
    return next_version_name(r["version"] for r in rows)


def _events(conn: Any, graph: str, node: str | None) -> list[ModelEvent]:
    sql, args = "SELECT * FROM shoal_model_events WHERE graph = %s", [graph]
    if node is not None:
        sql += " AND node = %s"
        args.append(node)
    return [event_from_row(r) for r in conn.execute(sql + " ORDER BY seq", args).fetchall()]


def _version(row: dict[str, Any]) -> ModelVersion:
    return ModelVersion(**{**row, "lineage": json.loads(row["lineage"])})
