"""Which model a node runs: learned versions, the champion, the shadow, and shadow records.

The learning loop (``shoal learn``, ``shoal shadow``, ``shoal promote``, ``shoal rollback``)
keeps its state here, in the same store as the outbox and the ledger (the Postgres database of
``$SHOAL_DB`` when set, else the graph's ``escalation.outbox``, else ``$SHOAL_OUTBOX``, else
``.shoal/outbox.sqlite``), so that every process of a graph (``shoal run``, each ``shoal
serve``) sees one champion.

- A **version** is a candidate ``shoal learn`` built: its classifier file, its router file (when
  the node has a learned router), its parent and its lineage (data hashes and counts, metrics on
  the frozen evaluation split, and its escalation thresholds: a confidence threshold or a
  critical floor is a threshold on one model's probabilities, so each version carries its own,
  :func:`version_rule`). ``v1`` is the model the graph file names; it is never stored.
- The **champion** is what the node runs. It is the top of a stack kept as an append-only list
  of events: ``promote`` pushes a version, ``rollback`` pops one (never below ``v1``). Every
  event is kept, so the history can be audited and replayed.
- The **shadow** is a version that runs beside the champion without changing any output
  (``shadow_start`` / ``shadow_stop`` events); each shadowed run adds one **shadow record**: the
  labels and confidences of both, never the text.

:class:`ModelRegistry` is the interface; :class:`SqliteModelRegistry` is the embedded store and
:class:`~shoal.policies.escalation.model_registry_postgres.PostgresModelRegistry` the shared one
(``$SHOAL_DB``); :func:`~shoal.policies.escalation.stores.open_registry` chooses.

Promotions and rollbacks decide on the champion they read (the gate judges a candidate against
it; a rollback restores the version under it), so :meth:`ModelRegistry.add_event` takes the stack
the caller read as ``expect`` and appends only if it is still the stack, checked in the same
transaction: two ``shoal promote`` or ``shoal rollback`` at once never leave events that
contradict each other (a promotion recorded "over" a champion it was never judged against).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from shoal.errors import LearningError
from shoal.policies.escalation.outbox import SqliteStore
from shoal.policies.escalation.rules import NodeRule

__all__ = ["BASE_VERSION", "ModelEvent", "ModelRegistry", "ModelVersion", "ShadowRecord",
           "SqliteModelRegistry", "champion_stacks", "check_expected", "check_learned",
           "current_shadow", "event_from_row", "next_version_name", "version_number",
           "version_rule"]

BASE_VERSION: Final = "v1"
"""The version name of the model a graph file names."""

EventAction = Literal["promote", "rollback", "shadow_start", "shadow_stop"]

_VERSION = re.compile(r"v([1-9][0-9]{0,5})")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_versions (
    graph TEXT NOT NULL,
    node TEXT NOT NULL,
    version TEXT NOT NULL,
    model_path TEXT NOT NULL,
    router_path TEXT,
    parent TEXT NOT NULL,
    created REAL NOT NULL,
    lineage TEXT NOT NULL,
    PRIMARY KEY (graph, node, version)
);
CREATE TABLE IF NOT EXISTS model_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    graph TEXT NOT NULL,
    node TEXT NOT NULL,
    action TEXT NOT NULL,
    version TEXT NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS shadow_records (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    graph TEXT NOT NULL,
    node TEXT NOT NULL,
    record_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    champion_version TEXT NOT NULL,
    champion_label TEXT,
    champion_confidence REAL,
    candidate_version TEXT NOT NULL,
    candidate_label TEXT,
    candidate_confidence REAL
);
CREATE INDEX IF NOT EXISTS shadow_node ON shadow_records (graph, node, candidate_version);
"""


def version_number(version: str) -> int:
    """``"v3"`` -> 3; ValueError for anything else."""
    match = _VERSION.fullmatch(version)
    if match is None:
        raise ValueError(f"{version!r} is not a version name (v1, v2, ...)")
    return int(match.group(1))


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One learned candidate of a node."""

    graph: str
    node: str
    version: str
    model_path: str
    router_path: str | None
    parent: str
    created: float
    lineage: dict[str, Any]

    @property
    def thresholds(self) -> dict[str, Any]:
        """The escalation thresholds chosen for this version's probabilities (lineage
        ``rule``): ``below`` and ``critical`` (label -> floor); empty for none."""
        rule = self.lineage.get("rule")
        return rule if isinstance(rule, dict) else {}


def version_rule(rule: NodeRule | None, version: ModelVersion | None) -> NodeRule | None:
    """The node's escalation rule with ``version``'s own thresholds: its confidence threshold
    (``below``) and its critical floors, where the rule has them (the rule as written for
    ``v1`` or a version without any). Red flags, ``min_recall``, actions and routers stay the
    rule's: only the thresholds on the model's own probabilities move with the model."""
    chosen = version.thresholds if version is not None else {}
    if rule is None or not chosen:
        return rule
    update: dict[str, Any] = {}
    if rule.below is not None and chosen.get("below") is not None:
        update["below"] = float(chosen["below"])
    floors = chosen.get("critical") or {}
    if floors:
        update["critical"] = {
            label: crit.model_copy(update={"floor": float(floors[label])})
            if crit.floor is not None and floors.get(label) is not None else crit
            for label, crit in rule.critical.items()}
    return rule.model_copy(update=update) if update else rule


@dataclass(frozen=True, slots=True)
class ModelEvent:
    seq: int
    at: float
    graph: str
    node: str
    action: EventAction
    version: str
    detail: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ShadowRecord:
    """One run in which a shadow answered beside the champion (labels only, never text)."""

    id: str
    at: float
    graph: str
    node: str
    record_id: str
    run_id: str
    champion_version: str
    champion_label: str | None
    champion_confidence: float | None
    candidate_version: str
    candidate_label: str | None
    candidate_confidence: float | None


def next_version_name(names: Iterable[str]) -> str:
    """One past the highest of a node's version ``names`` (``v2`` for none)."""
    return f"v{max([1, *(version_number(n) for n in names)]) + 1}"


def check_learned(version: str) -> None:
    """ValueError unless ``version`` names a learned version (``v2`` on)."""
    if version_number(version) == 1:
        raise ValueError(f"{BASE_VERSION} is the graph file's model; learned versions start "
                         "at v2")


def champion_stacks(events: Iterable[ModelEvent]) -> dict[str, list[str]]:
    """node -> its champion stack, oldest first (``[v1, ...]``), replayed from ``events`` in
    sequence order: ``promote`` pushes, ``rollback`` pops, never below ``v1``."""
    stacks: dict[str, list[str]] = {}
    for e in events:
        stack = stacks.setdefault(e.node, [BASE_VERSION])
        if e.action == "promote":
            stack.append(e.version)
        elif e.action == "rollback" and len(stack) > 1:
            stack.pop()
    return stacks


def current_shadow(events: Iterable[ModelEvent]) -> str | None:
    """The version a node's ``events`` (in sequence order) leave shadowing it, or None."""
    current: str | None = None
    for e in events:
        if e.action == "shadow_start":
            current = e.version
        elif e.action == "shadow_stop":
            current = None
    return current


def check_expected(node: str, expect: Sequence[str] | None, stack: Sequence[str]) -> None:
    """LearningError unless the node's champion ``stack`` is still the one the caller read
    (``expect``; None expects nothing)."""
    if expect is not None and list(expect) != list(stack):
        raise LearningError(
            f"the champion of node {node!r} changed while this was decided (it was "
            f"{expect[-1] if expect else BASE_VERSION}, it is {stack[-1]}): look again and "
            "repeat if still wanted")


class ModelRegistry(Protocol):
    """The learning loop's state: :class:`SqliteModelRegistry` or, with ``$SHOAL_DB``,
    :class:`~shoal.policies.escalation.model_registry_postgres.PostgresModelRegistry`
    (tests/conformance/test_model_registry_store.py runs one contract on both)."""

    @property
    def where(self) -> str:
        """The store, for messages (a file path, or the database URL without password)."""
        ...

    def exists(self) -> bool:
        """Whether the store is there to read (a file is not created to find out)."""
        ...

    def register(self, *, graph: str, node: str, model_path: str, router_path: str | None,
                 parent: str, lineage: dict[str, Any], version: str | None = None
                 ) -> ModelVersion: ...

    def next_version(self, graph: str, node: str) -> str: ...

    def version(self, graph: str, node: str, version: str) -> ModelVersion | None: ...

    def versions(self, graph: str, node: str | None = None) -> list[ModelVersion]: ...

    def events(self, graph: str, node: str | None = None) -> list[ModelEvent]: ...

    def add_event(self, *, graph: str, node: str, action: EventAction, version: str,
                  detail: dict[str, Any] | None = None,
                  expect: Sequence[str] | None = None) -> ModelEvent:
        """Append one event. ``expect``: the node's champion stack the caller decided on
        (``champions(graph).get(node, [v1])``); the event is appended only if the stack is still
        that, checked in the same transaction as the append (LearningError otherwise)."""
        ...

    def champion(self, graph: str, node: str) -> str: ...

    def champions(self, graph: str) -> dict[str, list[str]]: ...

    def shadow(self, graph: str, node: str) -> str | None: ...

    def state(self, graph: str) -> int: ...

    def add_shadow(self, *, graph: str, node: str, record_id: str, run_id: str,
                   champion_version: str, champion_label: str | None,
                   champion_confidence: float | None, candidate_version: str,
                   candidate_label: str | None, candidate_confidence: float | None) -> str: ...

    def shadow_records(self, graph: str, node: str,
                       candidate_version: str | None = None) -> list[ShadowRecord]: ...


class SqliteModelRegistry(SqliteStore):
    """The registry's tables in the escalation store's SQLite file (WAL; threads and processes
    share it)."""

    schema = _SCHEMA

    # --- versions -------------------------------------------------------------------------------

    def next_version(self, graph: str, node: str) -> str:
        """The name the next candidate of ``node`` gets: one past the highest so far."""
        return next_version_name(v.version for v in self.versions(graph, node))

    def register(self, *, graph: str, node: str, model_path: str, router_path: str | None,
                 parent: str, lineage: dict[str, Any], version: str | None = None
                 ) -> ModelVersion:
        """Record a candidate (its files already written); ValueError when the version exists.
        Without ``version`` the next number is drawn and taken in one transaction, so two
        learners at once get two numbers."""
        if version is not None:
            check_learned(version)
        created = time.time()
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                name = version or next_version_name(
                    r["version"] for r in db.execute(
                        "SELECT version FROM model_versions WHERE graph = ? AND node = ?",
                        (graph, node)))
                check_learned(name)
                db.execute(
                    "INSERT INTO model_versions (graph, node, version, model_path, router_path, "
                    "parent, created, lineage) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (graph, node, name, model_path, router_path, parent, created,
                     json.dumps(lineage, sort_keys=True)))
                db.execute("COMMIT")
            except sqlite3.IntegrityError:
                db.execute("ROLLBACK")
                raise ValueError(f"node {node!r} of graph {graph!r} already has a version "
                                 f"{name!r}") from None
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return ModelVersion(graph=graph, node=node, version=name, model_path=model_path,
                            router_path=router_path, parent=parent, created=created,
                            lineage=lineage)

    @staticmethod
    def _version(row: sqlite3.Row) -> ModelVersion:
        data = dict(row)
        data["lineage"] = json.loads(data["lineage"])
        return ModelVersion(**data)

    def version(self, graph: str, node: str, version: str) -> ModelVersion | None:
        with self._lock:
            row = self._db().execute(
                "SELECT * FROM model_versions WHERE graph = ? AND node = ? AND version = ?",
                (graph, node, version)).fetchone()
        return None if row is None else self._version(row)

    def versions(self, graph: str, node: str | None = None) -> list[ModelVersion]:
        sql, args = "SELECT * FROM model_versions WHERE graph = ?", [graph]
        if node is not None:
            sql += " AND node = ?"
            args.append(node)
        with self._lock:
            rows = self._db().execute(sql + " ORDER BY created, version", args).fetchall()
        return sorted((self._version(r) for r in rows),
                      key=lambda v: (v.node, version_number(v.version)))

    # --- events: champion and shadow -----------------------------------------------------------

    def events(self, graph: str, node: str | None = None) -> list[ModelEvent]:
        sql, args = "SELECT * FROM model_events WHERE graph = ?", [graph]
        if node is not None:
            sql += " AND node = ?"
            args.append(node)
        with self._lock:
            rows = self._db().execute(sql + " ORDER BY seq", args).fetchall()
        return [event_from_row(r) for r in rows]

    def add_event(self, *, graph: str, node: str, action: EventAction, version: str,
                  detail: dict[str, Any] | None = None,
                  expect: Sequence[str] | None = None) -> ModelEvent:
        """Append one event. The caller checks it makes sense (the gate, the stack depth);
        ``expect`` (the stack it decided on) makes the check and the append one transaction."""
        at = time.time()
        with self._lock:
            db = self._db()
            # BEGIN IMMEDIATE takes the file's write lock before the stack is read: another
            # process's promotion cannot slip between this check and this append.
            db.execute("BEGIN IMMEDIATE")
            try:
                if expect is not None:
                    rows = db.execute("SELECT * FROM model_events WHERE graph = ? AND node = ? "
                                      "ORDER BY seq", (graph, node)).fetchall()
                    stacks = champion_stacks(map(event_from_row, rows))
                    check_expected(node, expect, stacks.get(node, [BASE_VERSION]))
                cursor = db.execute(
                    "INSERT INTO model_events (at, graph, node, action, version, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (at, graph, node, action, version,
                     None if detail is None else json.dumps(detail, sort_keys=True)))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        seq = cursor.lastrowid
        assert seq is not None
        return ModelEvent(seq=seq, at=at, graph=graph, node=node, action=action,
                          version=version, detail=detail)

    def champions(self, graph: str) -> dict[str, list[str]]:
        """node -> its champion stack, oldest first (``[v1, ...]``), for nodes with events."""
        return champion_stacks(self.events(graph))

    def champion(self, graph: str, node: str) -> str:
        """The version ``node`` runs: ``v1`` (the graph file's model) until a promotion."""
        return self.champions(graph).get(node, [BASE_VERSION])[-1]

    def shadow(self, graph: str, node: str) -> str | None:
        """The version shadowing ``node``, or None."""
        return current_shadow(self.events(graph, node))

    def state(self, graph: str) -> int:
        """A number that changes whenever any of the graph's events does (the last event's
        sequence number, 0 before any): what a running server polls."""
        with self._lock:
            row = self._db().execute("SELECT MAX(seq) FROM model_events WHERE graph = ?",
                                     (graph,)).fetchone()
        return int(row[0] or 0)

    # --- shadow records -------------------------------------------------------------------------

    def add_shadow(self, *, graph: str, node: str, record_id: str, run_id: str,
                   champion_version: str, champion_label: str | None,
                   champion_confidence: float | None, candidate_version: str,
                   candidate_label: str | None, candidate_confidence: float | None) -> str:
        record = uuid.uuid4().hex
        with self._lock:
            self._db().execute(
                "INSERT INTO shadow_records (id, at, graph, node, record_id, run_id, "
                "champion_version, champion_label, champion_confidence, candidate_version, "
                "candidate_label, candidate_confidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?)",
                (record, time.time(), graph, node, record_id, run_id, champion_version,
                 champion_label, champion_confidence, candidate_version, candidate_label,
                 candidate_confidence))
        return record

    def shadow_records(self, graph: str, node: str,
                       candidate_version: str | None = None) -> list[ShadowRecord]:
        sql, args = "SELECT * FROM shadow_records WHERE graph = ? AND node = ?", [graph, node]
        if candidate_version is not None:
            sql += " AND candidate_version = ?"
            args.append(candidate_version)
        with self._lock:
            rows = self._db().execute(sql + " ORDER BY at, id", args).fetchall()
        return [ShadowRecord(**dict(r)) for r in rows]


def event_from_row(r: Any) -> ModelEvent:
    """A ``model_events`` row (by column name; ``detail`` JSON text) as a :class:`ModelEvent`."""
    return ModelEvent(seq=r["seq"], at=r["at"], graph=r["graph"], node=r["node"],
                      action=r["action"], version=r["version"],
                      detail=json.loads(r["detail"]) if r["detail"] else None)
