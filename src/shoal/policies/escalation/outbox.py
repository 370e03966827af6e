"""The durable outbox: escalations the planner could not take (unreachable, timed out, circuit
open) wait here, in SQLite (WAL) or in the Postgres database of ``SHOAL_DB`` when several
processes share one, until ``shoal outbox drain`` sends them.

A row holds what would have been sent, and nothing more: the node's task, the masked working
text, the masked draft, the label set. Rows move ``pending -> in_flight -> done`` (or ``failed``
after repeated malformed answers) with guarded updates, so two drains never send one escalation
twice, and ``applied`` records that a drained answer was written into the stored results, so it
is never applied twice either.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

__all__ = ["Outbox", "OutboxRow", "OutboxStore", "default_outbox_path", "outbox_filters",
           "outbox_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS escalations (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    graph TEXT NOT NULL,
    node TEXT NOT NULL,
    record_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    text TEXT NOT NULL,
    draft TEXT NOT NULL,
    labels TEXT,
    max_tokens INTEGER NOT NULL,
    reason TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'in_flight', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    answer TEXT,
    applied INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS escalations_status ON escalations (status, applied);
"""


def open_store(path: Path, schema: str) -> sqlite3.Connection:
    """The escalation store's SQLite file (outbox and ledger share it): WAL, so threads and
    processes share it safely; synchronous FULL, so a queued escalation or a paid-for answer
    survives power loss; ``schema`` created if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(schema)
    return conn


class SqliteStore:
    """One set of tables in the escalation store's SQLite file (:func:`open_store`), opened on
    first use; the outbox, the ledger and the model registry are each one."""

    schema: ClassVar[str]
    rows_by_name: ClassVar[bool] = True
    """Rows as :class:`sqlite3.Row` (by column name); plain tuples when False."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @property
    def where(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        """Whether the file exists (it is not created to find out)."""
        return self.path.is_file()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = open_store(self.path, self.schema)
            if self.rows_by_name:
                conn.row_factory = sqlite3.Row
            self._conn = conn
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def default_outbox_path() -> Path:
    """``$SHOAL_OUTBOX``, else ``.shoal/outbox.sqlite`` under the working directory."""
    return Path(os.environ.get("SHOAL_OUTBOX") or Path(".shoal") / "outbox.sqlite")


def outbox_path(configured: str | None, base_dir: Path | None) -> Path:
    """Where a graph's outbox is: its ``escalation.outbox`` (relative to the graph file), else
    :func:`default_outbox_path`. ``Graph.outbox_path`` answers this for a loaded graph."""
    if configured is None:
        return default_outbox_path()
    path = Path(configured)
    return path if path.is_absolute() or base_dir is None else base_dir / path


@dataclass(frozen=True)
class OutboxRow:
    id: str
    created: float
    graph: str
    node: str
    record_id: str
    run_id: str
    task: str
    text: str
    draft: Any
    labels: list[str] | None
    max_tokens: int
    reason: str | None
    status: str
    attempts: int
    last_error: str | None
    answer: dict[str, Any] | None
    applied: bool


class OutboxStore(Protocol):
    """What the escalator, ``shoal outbox`` and ``shoal serve`` need of an outbox; the SQLite
    :class:`Outbox` and :class:`shoal.policies.escalation.outbox_postgres.PostgresOutbox` keep
    it (tests/conformance/test_outbox_store.py runs one suite on both)."""

    @property
    def where(self) -> str:
        """The file, or the database URL without password: for messages."""
        ...

    def exists(self) -> bool:
        """Whether anything was ever queued here (a missing file is not created to find out)."""
        ...

    def put(self, *, graph: str, node: str, record_id: str, run_id: str, task: str, text: str,
            draft: Any, labels: list[str] | None, max_tokens: int, reason: str | None,
            error: str) -> str: ...

    def claim(self, esc_id: str) -> bool: ...

    def complete(self, esc_id: str, answer: dict[str, Any]) -> None: ...

    def release(self, esc_id: str, error: str, *, give_up: bool = False,
                attempted: bool = True) -> None: ...

    def mark_applied(self, esc_id: str) -> None: ...

    def requeue_stale(self, older_than_s: float = 600.0) -> int: ...

    def rows(self, *, status: str | None = None, graph: str | None = None,
             unapplied: bool = False) -> list[OutboxRow]: ...

    def counts(self, graph: str | None = None) -> dict[str, int]: ...

    def close(self) -> None: ...


class Outbox(SqliteStore):
    """One SQLite file; safe to share between threads of a process and between processes."""

    schema = _SCHEMA
    rows_by_name = False

    # -- writing ------------------------------------------------------------------------------

    def put(self, *, graph: str, node: str, record_id: str, run_id: str, task: str, text: str,
            draft: Any, labels: list[str] | None, max_tokens: int, reason: str | None,
            error: str) -> str:
        """Queue one escalation; its id."""
        esc_id = uuid.uuid4().hex
        now = time.time()
        with self._lock:
            self._db().execute(
                "INSERT INTO escalations (id, created, updated, graph, node, record_id, run_id, "
                "task, text, draft, labels, max_tokens, reason, status, attempts, last_error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 1, ?)",
                (esc_id, now, now, graph, node, record_id, run_id, task, text,
                 json.dumps(draft, default=str), json.dumps(labels) if labels else None,
                 max_tokens, reason, error))
        return esc_id

    def claim(self, esc_id: str) -> bool:
        """pending -> in_flight; False if another drain has it or it is done."""
        with self._lock:
            cur = self._db().execute(
                "UPDATE escalations SET status='in_flight', updated=? "
                "WHERE id=? AND status='pending'", (time.time(), esc_id))
            return cur.rowcount == 1

    def complete(self, esc_id: str, answer: dict[str, Any]) -> None:
        with self._lock:
            self._db().execute(
                "UPDATE escalations SET status='done', answer=?, updated=? "
                "WHERE id=? AND status='in_flight'", (json.dumps(answer), time.time(), esc_id))

    def release(self, esc_id: str, error: str, *, give_up: bool = False,
                attempted: bool = True) -> None:
        """A failed attempt: back to pending for the next drain, or ``failed`` for good (the
        run keeps its local answer; the row stays for the record). ``attempted=False``: nothing
        was sent (an open circuit), so the row's attempts stay as they were."""
        with self._lock:
            self._db().execute(
                "UPDATE escalations SET status=?, attempts=attempts+?, last_error=?, "
                "updated=? WHERE id=? AND status='in_flight'",
                ("failed" if give_up else "pending", int(attempted), error, time.time(),
                 esc_id))

    def mark_applied(self, esc_id: str) -> None:
        with self._lock:
            self._db().execute("UPDATE escalations SET applied=1, updated=? WHERE id=?",
                               (time.time(), esc_id))

    def requeue_stale(self, older_than_s: float = 600.0) -> int:
        """In-flight rows of a drain that died: back to pending."""
        with self._lock:
            cur = self._db().execute(
                "UPDATE escalations SET status='pending' WHERE status='in_flight' AND updated<?",
                (time.time() - older_than_s,))
            return cur.rowcount

    # -- reading ------------------------------------------------------------------------------

    def rows(self, *, status: str | None = None, graph: str | None = None,
             unapplied: bool = False) -> list[OutboxRow]:
        where, args = outbox_filters(status=status, graph=graph, unapplied=unapplied, mark="?")
        with self._lock:
            db = self._db()
            db.row_factory = sqlite3.Row
            found = db.execute(f"SELECT * FROM escalations WHERE {where} ORDER BY created",
                               args).fetchall()
            db.row_factory = None
        return [_row(r) for r in found]

    def counts(self, graph: str | None = None) -> dict[str, int]:
        """Rows per status, of ``graph`` or of every graph."""
        where, args = ("WHERE graph = ?", [graph]) if graph is not None else ("", [])
        with self._lock:
            found = self._db().execute(
                f"SELECT status, COUNT(*) FROM escalations {where} GROUP BY status",
                args).fetchall()
        return {str(status): int(n) for status, n in found}


def outbox_filters(*, status: str | None, graph: str | None, unapplied: bool,
                   mark: str) -> tuple[str, list[Any]]:
    """The WHERE clause of :meth:`OutboxStore.rows` and its arguments; ``mark`` is the
    driver's placeholder (``?`` for sqlite3, ``%s`` for psycopg)."""
    where: list[str] = ["TRUE"]
    args: list[Any] = []
    for column, value in (("status", status), ("graph", graph)):
        if value is not None:
            where.append(f"{column} = {mark}")
            args.append(value)
    if unapplied:
        where.append("NOT applied")
    return " AND ".join(where), args


def _row(r: sqlite3.Row) -> OutboxRow:
    return OutboxRow(
        id=r["id"], created=r["created"], graph=r["graph"], node=r["node"],
        record_id=r["record_id"], run_id=r["run_id"], task=r["task"], text=r["text"],
        draft=json.loads(r["draft"]), labels=json.loads(r["labels"]) if r["labels"] else None,
        max_tokens=r["max_tokens"], reason=r["reason"], status=r["status"],
        attempts=r["attempts"], last_error=r["last_error"],
        answer=json.loads(r["answer"]) if r["answer"] else None, applied=bool(r["applied"]))
