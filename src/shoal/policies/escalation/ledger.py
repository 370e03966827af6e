"""The escalation ledger: every escalation the planner answered, kept as training data.

One entry per answered escalation: the graph, the node, the masked working text the planner was
sent (pseudonyms only: it passed the masker and the egress scan on its way out), the local label,
confidence and router score, the planner's label and answer (masked), the model version that
ran and the time. A person's label (``human_label``) outranks the planner's.

It lives in the same SQLite file as the outbox (the graph's ``escalation.outbox``, else
``$SHOAL_OUTBOX``, else ``.shoal/outbox.sqlite``), in a table of its own, behind
:class:`LedgerStore`, the interface the Postgres ledger (``SHOAL_DB``) implements too.
:func:`training_lines` turns entries into the JSONL lines a retrain reads:
``{"id", "text", "label", "source"}`` with ``source`` ``"human"`` or ``"planner"``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shoal.policies.escalation.outbox import SqliteStore

__all__ = ["LedgerEntry", "LedgerStore", "SqliteLedger", "count_by_label", "entry_filters",
           "training_lines"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    graph TEXT NOT NULL,
    node TEXT NOT NULL,
    record_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    text TEXT NOT NULL,
    local_label TEXT,
    local_confidence REAL,
    p_wrong REAL,
    planner_label TEXT,
    planner_answer TEXT,
    planner_confidence REAL,
    model_version TEXT,
    critical TEXT,
    human_label TEXT,
    human_at REAL
);
CREATE INDEX IF NOT EXISTS ledger_graph_node ON ledger (graph, node, created);
"""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One answered escalation. ``text`` and ``planner_answer`` are masked."""

    id: str
    created: float
    graph: str
    node: str
    record_id: str
    run_id: str
    text: str
    local_label: str | None
    local_confidence: float | None
    p_wrong: float | None
    planner_label: str | None
    planner_answer: str | None
    planner_confidence: float | None
    model_version: str | None
    critical: str | None = None
    human_label: str | None = None
    human_at: float | None = None

    @property
    def label(self) -> str | None:
        """The label to train on: a person's over the planner's."""
        return self.human_label or self.planner_label

    @property
    def source(self) -> str | None:
        if self.human_label:
            return "human"
        return "planner" if self.planner_label else None


class LedgerStore(Protocol):
    """Where answered escalations are kept: :class:`SqliteLedger`, or
    :class:`shoal.policies.escalation.ledger_postgres.PostgresLedger` with ``SHOAL_DB``."""

    @property
    def where(self) -> str:
        """The file, or the database URL without password: for messages."""
        ...

    def exists(self) -> bool:
        """Whether anything could have been kept yet (a missing file is not created)."""
        ...

    def close(self) -> None: ...

    def append(self, *, graph: str, node: str, record_id: str, run_id: str, text: str,
               local_label: str | None, local_confidence: float | None, p_wrong: float | None,
               planner_label: str | None, planner_answer: str | None,
               planner_confidence: float | None, model_version: str | None,
               critical: str | None = None) -> str: ...

    def entries(self, *, graph: str | None = None, node: str | None = None,
                since: float | None = None) -> list[LedgerEntry]: ...

    def counts(self, *, graph: str | None = None) -> dict[tuple[str, str, str], int]: ...

    def entry(self, entry_id: str) -> LedgerEntry | None: ...

    def set_human_label(self, entry_id: str, label: str) -> LedgerEntry | None: ...


class SqliteLedger(SqliteStore):
    """The ledger table of one SQLite file (WAL, shared safely between threads and
    processes, like the outbox beside it)."""

    schema = _SCHEMA

    def append(self, *, graph: str, node: str, record_id: str, run_id: str, text: str,
               local_label: str | None, local_confidence: float | None, p_wrong: float | None,
               planner_label: str | None, planner_answer: str | None,
               planner_confidence: float | None, model_version: str | None,
               critical: str | None = None) -> str:
        """Add one answered escalation; its id."""
        entry_id = uuid.uuid4().hex
        with self._lock:
            self._db().execute(
                "INSERT INTO ledger (id, created, graph, node, record_id, run_id, text, "
                "local_label, local_confidence, p_wrong, planner_label, planner_answer, "
                "planner_confidence, model_version, critical) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry_id, time.time(), graph, node, record_id, run_id, text, local_label,
                 local_confidence, p_wrong, planner_label, planner_answer, planner_confidence,
                 model_version, critical))
        return entry_id

    def entries(self, *, graph: str | None = None, node: str | None = None,
                since: float | None = None) -> list[LedgerEntry]:
        """Entries, oldest first, filtered by graph, node and creation time (epoch seconds)."""
        where, args = entry_filters(graph=graph, node=node, since=since, mark="?")
        with self._lock:
            rows = self._db().execute(f"SELECT * FROM ledger WHERE {where} ORDER BY created, id",
                                      args).fetchall()
        return [LedgerEntry(**dict(row)) for row in rows]

    def entry(self, entry_id: str) -> LedgerEntry | None:
        """One entry by id, or None."""
        with self._lock:
            row = self._db().execute("SELECT * FROM ledger WHERE id = ?",
                                     (entry_id,)).fetchone()
        return LedgerEntry(**dict(row)) if row is not None else None

    def set_human_label(self, entry_id: str, label: str) -> LedgerEntry | None:
        """A person's label for an entry (it outranks the planner's); the updated entry, or
        None when there is no such entry."""
        with self._lock:
            done = self._db().execute(
                "UPDATE ledger SET human_label = ?, human_at = ? WHERE id = ?",
                (label, time.time(), entry_id)).rowcount
        return self.entry(entry_id) if done else None

    def counts(self, *, graph: str | None = None) -> dict[tuple[str, str, str], int]:
        """(node, label to train on, source) -> entries; ``-`` for no label."""
        return count_by_label(self.entries(graph=graph))


def entry_filters(*, graph: str | None, node: str | None, since: float | None,
                  mark: str) -> tuple[str, list[Any]]:
    """The WHERE clause of :meth:`LedgerStore.entries` and its arguments; ``mark`` is the
    driver's placeholder (``?`` for sqlite3, ``%s`` for psycopg)."""
    where: list[str] = ["TRUE"]
    args: list[Any] = []
    for column, value in (("graph", graph), ("node", node)):
        if value is not None:
            where.append(f"{column} = {mark}")
            args.append(value)
    if since is not None:
        where.append(f"created >= {mark}")
        args.append(since)
    return " AND ".join(where), args


def count_by_label(entries: Iterable[LedgerEntry]) -> dict[tuple[str, str, str], int]:
    """(node, label to train on, source) -> entries; ``-`` for no label."""
    out: dict[tuple[str, str, str], int] = {}
    for e in entries:
        key = (e.node, e.label or "-", e.source or "-")
        out[key] = out.get(key, 0) + 1
    return out


def training_lines(entries: Iterable[LedgerEntry],
                   labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One ``{"id", "text", "label", "source"}`` line per entry with a label (a person's over
    the planner's); with ``labels``, only entries whose label is one of them."""
    lines = []
    for e in entries:
        label = e.label
        if label is None or (labels is not None and label not in labels):
            continue
        lines.append({"id": e.id, "text": e.text, "label": label, "source": e.source})
    return lines
